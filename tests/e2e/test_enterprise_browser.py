"""企业授权 in a real browser: the htmx add form refuses wrong credentials in place, then adds the row."""
from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import func, select

from portal.models import Enterprise
from portal.sandbox.invoice_cloud import MSG_BAD_SIGN
from portal.sandbox.seed import TEST_CLOUD_CLIENT
from tests.conftest import tax_no
from tests.e2e.conftest import login

NAME = "深圳市浏览器测试科技有限公司"


def _enterprise_count(live_app) -> int:
    return live_app.scalar(select(func.count()).select_from(Enterprise))


def test_add_enterprise_refused_then_accepted_in_place(live_app, page):
    live_app.make_user("root", "ops")
    login(page, live_app, "root")
    page.goto(live_app.url + "/enterprises/")
    expect(page.get_by_role("heading", name="企业授权")).to_be_visible()
    list_url = page.url

    # From here on every change must come from htmx swaps: no document request, no reload.
    documents = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)
    page.evaluate("window.__marker = 1")

    page.get_by_role("link", name="新增企业授权").click()
    form = page.locator("#enterprise-form-panel #enterprise-form")
    expect(form).to_be_visible()

    number = tax_no(1)
    form.locator("[name=name]").fill(NAME)
    form.locator("[name=tax_no]").fill(number)
    form.locator("[name=client_id]").fill(TEST_CLOUD_CLIENT.client_id)
    form.locator("[name=client_secret]").fill("wrong-secret-000000000000000000")
    form.locator("[name=encrypt_key]").fill(TEST_CLOUD_CLIENT.encrypt_key)
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        form.get_by_role("button", name="保存").click()
    assert refused.value.status == 422

    # The cloud's own words, inside the re-rendered form, which is still in the panel.
    error = page.locator("#enterprise-form-panel #enterprise-form #enterprise-form-error")
    expect(error).to_contain_text(MSG_BAD_SIGN)
    expect(form.locator("[name=name]")).to_have_value(NAME)
    expect(form.locator("[name=tax_no]")).to_have_value(number)
    assert page.url == list_url
    assert page.evaluate("window.__marker") == 1
    assert documents == []
    assert _enterprise_count(live_app) == 0
    expect(page.locator("#enterprise-rows tr")).to_have_count(1)  # only the "none yet" row

    # What was typed in this request comes back (never a stored secret): only the wrong one is retyped.
    expect(form.locator("[name=client_secret]")).to_have_value("wrong-secret-000000000000000000")
    expect(form.locator("[name=encrypt_key]")).to_have_value(TEST_CLOUD_CLIENT.encrypt_key)
    form.locator("[name=client_secret]").fill(TEST_CLOUD_CLIENT.client_secret)
    form.get_by_role("button", name="保存").click()

    row = page.locator("#enterprise-rows tr", has_text=NAME)
    expect(row).to_be_visible()
    expect(row).to_contain_text(number)
    expect(row).to_contain_text(TEST_CLOUD_CLIENT.client_id)
    expect(row).not_to_contain_text(TEST_CLOUD_CLIENT.client_secret)
    expect(page.locator("#enterprise-form-panel")).to_be_empty()
    expect(page.locator("#enterprise-rows tr")).to_have_count(1)  # the "none yet" row is gone
    expect(page.locator("#toasts")).to_contain_text(f"已新增企业授权：{NAME}")
    assert page.url == list_url
    assert page.evaluate("window.__marker") == 1
    assert documents == []
    assert live_app.scalar(select(Enterprise.tax_no)) == number
    assert _enterprise_count(live_app) == 1
