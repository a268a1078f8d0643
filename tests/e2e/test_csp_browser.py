"""The strict CSP in a real browser: confirmations and the scan box work without inline script.

The ``page`` fixture fails any test during which the CSP blocked something.
"""
from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from portal.crypto import encrypt
from portal.extensions import db
from portal.models import Enterprise
from tests.conftest import tax_no
from tests.e2e.conftest import login

NAME = "引号'+alert(1)+'测试公司"


def _make_enterprise(live_app) -> int:
    def make() -> int:
        ent = Enterprise(tax_no=tax_no(1), name=NAME, client_id="client0001",
                         client_secret_enc=encrypt("s3cret-value-1234567890"), encrypt_key_enc=encrypt("0123456789abcdef"))
        db.session.add(ent)
        db.session.commit()
        return ent.id

    return live_app.call(make)


def test_delete_confirmation_shows_the_name_and_cancel_keeps_it(live_app, page):
    ent_id = _make_enterprise(live_app)
    live_app.make_user("root", "ops")
    login(page, live_app, "root")
    page.goto(f"{live_app.url}/enterprises/{ent_id}")
    dialogs: list[str] = []
    alerts: list[str] = []

    def answer(dialog, accept):
        (dialogs if dialog.type == "confirm" else alerts).append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.get_by_role("button", name="删除").click()
    expect(page.get_by_role("heading", name=NAME)).to_be_visible()
    assert dialogs == [f"确定删除企业授权“{NAME}”吗？"]
    assert live_app.scalar(select(Enterprise.id)) == ent_id

    page.once("dialog", lambda d: answer(d, True))
    with page.expect_navigation():
        page.get_by_role("button", name="删除").click()
    assert live_app.scalar(select(Enterprise.id)) is None
    assert alerts == []  # the name never ran as code


def test_scan_box_selects_the_number_after_a_miss(live_app, page):
    live_app.make_user("root", "ops")
    login(page, live_app, "root")
    page.goto(f"{live_app.url}/scan/")
    box = page.locator("#open-bill-no")
    box.fill("NO-SUCH-BILL")
    with page.expect_response(lambda r: "bill_no=" in r.url) as missed:
        box.press("Enter")
    assert missed.value.status == 422
    expect(page.locator("#open-bill-error")).to_contain_text("没有找到单据 NO-SUCH-BILL")
    # The next scan must replace the number: the field is focused with its text selected.
    expect(page.locator("#open-bill-no")).to_be_focused()
    page.wait_for_function("() => { const i = document.querySelector('#open-bill-no');"
                           " return i.selectionStart === 0 && i.selectionEnd === i.value.length && i.value.length > 0; }")
