"""Every main page on a phone (390×844) and a laptop (1366×900) in a real browser: no sideways
page scroll, the nav folds behind a button on the phone, wide tables scroll in their own box.

Set ``PORTAL_LAYOUT_SHOTS=<folder>`` to keep a full-page PNG of every page visited, to look at.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal import bills, links
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import AuditEvent, Bill, DockingConnection, Enterprise, ScanPoint, User, WritebackJob
from tests.conftest import CORPUS, tax_no
from tests.e2e.conftest import login

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1366, "height": 900}}
PHONE_MAX = 760  # app.css folds the nav at this width and below
BILL_NO = "FYBX-2024-000123"
LONG_NAME = "中国石油天然气股份有限公司四川销售分公司成都龙泉驿区第二加油站财务共享中心"
FILES = ["vat_e_special_guizhou_00008006.pdf", "vat_e_ordinary_tianjin_33207675.png",
         "shudian_vat_special_24112000000048542163.ofd"]
SHOTS = os.environ.get("PORTAL_LAYOUT_SHOTS")


def _world() -> dict:
    """An enterprise with a docking connection, a scan point, users, bills (one with three
    recognised invoices, waiting for manual confirmation), write-back jobs and audit events."""
    conn = DockingConnection(name="星空正式环境（财务共享中心）", base_url="http://erp.example.com/k3cloud/",
                             acct_id="6543210fedcba98765", acct_name="正式账套", username="image_user",
                             password_enc=encrypt("erp-password-123"))
    db.session.add(conn)
    db.session.flush()
    ent = Enterprise(tax_no=tax_no(3), name=LONG_NAME, client_id="client-layout-0001",
                     client_secret_enc=encrypt("s3cret-value-1234567890"), encrypt_key_enc=encrypt("0123456789abcdef"),
                     image_mode="match", docking_id=conn.id)
    db.session.add(ent)
    db.session.flush()
    db.session.add(ScanPoint(enterprise_id=ent.id, code="SP01", name="成都一号扫描点（财务共享中心三楼）"))
    db.session.flush()
    bill = bills.open_bill(ent, {"bill_no": BILL_NO, "scan_point": "SP01", "submitter": "张三丰",
                                 "org": "四川销售分公司财务共享中心", "amount": "29756.32"}, "erp").bill
    for name in FILES:
        bills.add_file(bill, (CORPUS / name).read_bytes(), name, "scanner1")
    bill.status = "match_failed"  # both the return and the confirm panels are on the page
    for n in range(1, 8):
        other = bills.open_bill(ent, {"bill_no": f"FYBX-2024-{n:06d}", "scan_point": "SP01", "submitter": "李四",
                                      "org": "四川销售分公司", "amount": f"{n * 1234}.50"}, "erp").bill
        db.session.add(WritebackJob(bill_id=other.id, enterprise_id=ent.id, kind="status", state="failed",
                                    attempts=n, last_error="星空返回：单据已被他人锁定，请稍后重试（Kingdee.BOS.Core）"))
    db.session.add_all(AuditEvent(actor="root", action="update", object_type="enterprise", object_id=str(ent.id),
                                  enterprise_id=ent.id, summary=f"修改企业授权 {LONG_NAME}（第 {n} 次）",
                                  ip="192.168.100.200") for n in range(5))
    db.session.commit()
    return {"ent": ent.id, "conn": conn.id, "bill": bill.id, "view": links.view_link(bill.id).token,
            "upload": links.upload_link(bill.id).token}


def _pages(world: dict, user_id: int) -> dict[str, str]:
    return {
        "enterprises": "/enterprises/",
        "enterprise": f"/enterprises/{world['ent']}",
        "enterprise-edit": f"/enterprises/{world['ent']}/edit",
        "docking": "/docking/",
        "docking-edit": f"/docking/{world['conn']}/edit",
        "scan-points": "/scan-points/",
        "users": "/users/",
        "user-edit": f"/users/{user_id}/edit",
        "audit": "/audit/",
        "scan": "/scan/",
        "bills": "/bills/",
        "bill": f"/bills/{BILL_NO}",
        "invoices": "/invoices/",
        "writeback": "/writeback/",
        "help": "/help/",
        "help-scanner": "/help/scanner",
        "help-ops": "/help/ops",
    }


# What a page must be at any width: no sideways page scroll, every table in a scroll box that
# fits the screen, no id twice. Returns the problems found (an empty list is a pass).
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > window.innerWidth) problems.push(`page is ${root.scrollWidth}px wide`);
  for (const table of document.querySelectorAll("table")) {
    const box = table.closest(".table-scroll");
    if (!box) { problems.push(`table.${table.className} has no scroll box`); continue; }
    if (!["auto", "scroll"].includes(getComputedStyle(box).overflowX)) problems.push("scroll box does not scroll");
    if (box.getBoundingClientRect().right > window.innerWidth + 0.5) problems.push("scroll box wider than the screen");
  }
  const seen = new Set();
  for (const el of document.querySelectorAll("[id]")) {
    if (seen.has(el.id)) problems.push(`id ${el.id} twice`);
    seen.add(el.id);
  }
  return problems;
}"""


def _check(page, name: str, viewport: str) -> None:
    page.wait_for_load_state("load")
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{viewport}-{name}.png"), full_page=True)
    assert page.evaluate(LAYOUT_PROBLEMS) == [], name


def _check_nav(page, viewport: str) -> None:
    toggle = page.locator(".topbar [data-nav-toggle]")
    nav = page.locator(".topbar .nav")
    bills_link = nav.get_by_role("link", name="单据")
    if VIEWPORTS[viewport]["width"] > PHONE_MAX:
        expect(toggle).to_be_hidden()
        expect(bills_link).to_be_visible()
        # One row of links beside the brand: the bar is no taller than at its minimum.
        assert page.locator(".topbar").evaluate("e => e.getBoundingClientRect().height") <= 53
        return
    expect(nav).to_be_hidden()
    expect(page.locator(".topbar .who")).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(bills_link).to_be_visible()
    expect(page.locator(".topbar .who").get_by_role("button", name="退出")).to_be_visible()
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"{viewport}-nav-open.png"))
    # Every link a full-width row of the open menu, inside the screen.
    widths = nav.locator("a").evaluate_all("as => as.map(a => a.getBoundingClientRect())"
                                            ".map(r => [Math.round(r.left), Math.round(r.right)])")
    assert all(left >= 0 and right <= VIEWPORTS[viewport]["width"] and right - left > 300 for left, right in widths)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    toggle.click()
    expect(nav).to_be_hidden()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_page_fits_the_screen(live_app, page, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    world = live_app.call(_world)
    root_id = live_app.make_user("root", "ops")
    missing: list[str] = []
    errors: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(live_app.url + "/login")
    expect(page.locator("input[name=username]")).to_be_focused()
    _check(page, "login", viewport)

    login(page, live_app, "root")
    for name, path in _pages(world, root_id).items():
        page.goto(live_app.url + path)
        _check(page, name, viewport)
        _check_nav(page, viewport)

    page.goto(f"{live_app.url}/v/{world['view']}")
    expect(page.locator("#image-list .image-card")).to_have_count(len(FILES))
    _check(page, "public-view", viewport)
    page.goto(f"{live_app.url}/v/upload/{world['upload']}")
    _check(page, "public-upload", viewport)

    assert missing == []  # the favicon among them
    assert errors == []


def test_phone_tables_scroll_in_their_box_and_invoices_read_on_a_line(live_app, page):
    page.set_viewport_size(VIEWPORTS["phone"])
    live_app.call(_world)
    live_app.make_user("root", "ops")
    login(page, live_app, "root")

    # The bills table is wider than a phone: it scrolls inside its box, the page stays put.
    page.goto(live_app.url + "/bills/")
    box = page.locator("#bill-list .table-scroll")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")
    box.evaluate("b => { b.scrollLeft = 200; }")
    assert box.evaluate("b => b.scrollLeft") > 0
    assert page.evaluate("window.scrollX") == 0

    # The bill page: every recognised value on a few lines, not a character a line. The longest is a party
    # with a 19-character company name and its tax number (guizhou 00008006's buyer): three lines on a phone.
    page.goto(f"{live_app.url}/bills/{BILL_NO}")
    values = page.locator("#image-list .invoice-fields dd")
    expect(values.first).to_be_visible()
    line = values.first.evaluate("d => d.getBoundingClientRect().height")  # the kind: one line
    for width, height in values.evaluate_all("ds => ds.map(d => [d.getBoundingClientRect().width,"
                                             " d.getBoundingClientRect().height])"):
        assert width >= 150 and height <= 3 * line + 2, (width, height, line)
    total = page.locator("#image-list .invoice-number").first
    expect(total).to_be_visible()
    assert total.evaluate("e => e.getBoundingClientRect().height") < 30


def test_login_focuses_the_name_then_the_password_after_a_refusal(live_app, page):
    live_app.make_user("root", "ops")
    page.goto(live_app.url + "/login")
    expect(page.locator("input[name=username]")).to_be_focused()
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "wrong-password")
    with page.expect_navigation():
        page.click("form button[type=submit]")
    expect(page.locator(".alert-error")).to_be_visible()
    expect(page.locator("input[name=username]")).to_have_value("root")
    expect(page.locator("input[name=password]")).to_be_focused()
