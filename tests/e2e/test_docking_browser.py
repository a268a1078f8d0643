"""对接业务系统 in a real browser: 获取数据中心 and 测试连接 show that they run, and an old
result never stands beside a test still running."""
from __future__ import annotations

from playwright.sync_api import expect

from portal.sandbox.galaxy import MSG_BAD_PASSWORD
from portal.sandbox.seed import TEST_GALAXY
from tests.e2e.conftest import login


def test_test_connection_shows_progress_and_drops_the_old_result(live_app, page, galaxy):
    live_app.make_user("root", "ops")
    login(page, live_app, "root")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_app.url + "/docking/new")
    form = page.locator("#docking-form")
    buttons = form.locator(".form-actions button")
    progress = form.locator(".form-actions .htmx-indicator")
    result = page.locator("#docking-test-result")
    expect(buttons).to_have_count(3)
    expect(progress).to_be_hidden()

    # Each request is held at the browser's edge until the test has looked at the page.
    held: list = []
    page.route("**/docking/datacenters", lambda route: held.append(route))
    page.route("**/docking/test", lambda route: held.append(route))

    form.locator("[name=name]").fill("总部星空")
    form.locator("[name=base_url]").fill(galaxy.url + "/k3cloud/")
    form.get_by_role("button", name="获取数据中心").click()
    for i in range(3):
        expect(buttons.nth(i)).to_be_disabled()
    expect(progress).to_be_visible()
    held.pop().continue_()
    expect(form.locator("select[name=acct_id]")).to_have_value(TEST_GALAXY.acct_id)
    for i in range(3):
        expect(buttons.nth(i)).to_be_enabled()
    expect(progress).to_be_hidden()

    form.locator("[name=username]").fill(TEST_GALAXY.username)
    form.locator("[name=password]").fill(TEST_GALAXY.password)
    form.get_by_role("button", name="测试连接").click()
    expect(progress).to_be_visible()
    held.pop().continue_()
    expect(result).to_contain_text("✔ 连接成功")

    # A second test with a wrong password: while it runs, the old ✔ is gone.
    form.locator("[name=password]").fill("wrong-password")
    form.get_by_role("button", name="测试连接").click()
    expect(progress).to_be_visible()
    expect(form.get_by_role("button", name="测试连接")).to_be_disabled()
    expect(result).to_be_empty()
    held.pop().continue_()
    expect(result).to_contain_text("✘ 连接失败")
    expect(progress).to_be_hidden()
    assert errors == []


def test_a_refused_save_keeps_the_chosen_data_centre_and_the_typed_password(live_app, page, galaxy):
    live_app.make_user("root", "ops")
    login(page, live_app, "root")
    page.goto(live_app.url + "/docking/new")
    form = page.locator("#docking-form")
    form.locator("[name=name]").fill("总部星空")
    form.locator("[name=base_url]").fill(galaxy.url + "/k3cloud/")
    form.get_by_role("button", name="获取数据中心").click()
    expect(form.locator("select[name=acct_id]")).to_have_value(TEST_GALAXY.acct_id)
    form.locator("[name=username]").fill(TEST_GALAXY.username)
    form.locator("[name=password]").fill("wrong-password")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/docking/")) as refused:
        form.get_by_role("button", name="保存").click()
    assert refused.value.status == 422

    form = page.locator("#docking-form")
    expect(form.locator(".alert-error")).to_contain_text(MSG_BAD_PASSWORD)
    # The data centre is still picked by its name from the list, and the password need not be retyped.
    select = form.locator("select[name=acct_id]")
    expect(select).to_have_value(TEST_GALAXY.acct_id)
    expect(select.locator("option:checked")).to_contain_text(TEST_GALAXY.acct_name)
    expect(form.locator("[name=password]")).to_have_value("wrong-password")
    form.locator("[name=password]").fill(TEST_GALAXY.password)
    form.get_by_role("button", name="保存").click()
    page.wait_for_url(live_app.url + "/docking/")
    expect(page.locator("body")).to_contain_text("总部星空")
