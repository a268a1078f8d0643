"""Day-to-day desk work in a real browser: the bills' active search and sortable headers, the scan
point delete panel, and the user form's enterprise checkboxes."""
from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from portal import bills
from portal.extensions import db
from portal.models import Enterprise, ScanPoint, User
from tests.conftest import tax_no
from tests.e2e.conftest import login


def _enterprise(name: str, n: int) -> int:
    from portal.crypto import encrypt

    ent = Enterprise(tax_no=tax_no(n), name=name, client_id=f"client{n:04d}", client_secret_enc=encrypt("s3cret-1234"),
                     encrypt_key_enc=encrypt("0123456789abcdef"))
    db.session.add(ent)
    db.session.commit()
    return ent.id


def _bills(ent_id: int, rows) -> None:
    ent = db.session.get(Enterprise, ent_id)
    for no, who, amount in rows:
        bills.open_bill(ent, {"bill_no": no, "submitter": who, "amount": amount}, "erp")
    db.session.commit()


def _listed(page) -> list[str]:
    return page.locator("#bill-list tbody a.mono").all_inner_texts()


def test_bills_search_in_place_and_sort_by_a_header(live_app, page):
    ent = live_app.call(_enterprise, "甲公司", 1)
    live_app.call(_bills, ent, [("BX-1", "王五", "300.00"), ("BX-2", "赵六", "100.00"), ("BX-3", "王小明", "200.00")])
    live_app.make_user("root", "ops")
    login(page, live_app, "root")
    page.goto(live_app.url + "/bills/")
    documents = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)

    page.get_by_placeholder("提单人").fill("王")
    expect(page.locator("#bill-list tbody a.mono")).to_have_count(2)
    assert _listed(page) == ["BX-3", "BX-1"]

    page.locator("#bill-list thead").get_by_role("link", name="金额").click()
    expect(page.locator("#bill-list thead th[aria-sort=ascending]")).to_contain_text("金额")
    assert _listed(page) == ["BX-3", "BX-1"]  # 200 before 300, still only 王
    page.locator("#bill-list thead").get_by_role("link", name="金额").click()
    expect(page.locator("#bill-list thead th[aria-sort=descending]")).to_contain_text("金额")
    assert _listed(page) == ["BX-1", "BX-3"]

    # Clearing the search keeps the order the header chose.
    page.get_by_placeholder("提单人").fill("")
    expect(page.locator("#bill-list tbody a.mono")).to_have_count(3)
    assert _listed(page) == ["BX-1", "BX-3", "BX-2"]
    assert "sort=amount" in page.url and documents == []


def _used_point(ent_id: int) -> int:
    point = ScanPoint(enterprise_id=ent_id, code="SZ-01", name="深圳扫描点")
    db.session.add(point)
    db.session.commit()
    bill = bills.open_bill(db.session.get(Enterprise, ent_id), {"bill_no": "BX-9", "scan_point": "SZ-01"}, "erp").bill
    bill.status = "completed"
    db.session.commit()
    return point.id


def test_deleting_a_used_scan_point_shows_the_counts_first(live_app, page):
    ent = live_app.call(_enterprise, "甲公司", 1)
    point = live_app.call(_used_point, ent)
    live_app.make_user("scanner1", "scanner", [ent], [point])
    live_app.make_user("root", "ops")
    login(page, live_app, "root")
    page.goto(live_app.url + "/scan-points/")
    page.locator(f"#scan-point-{point}").get_by_role("link", name="删除").click()
    dialog = page.locator("#scan-point-dialog")
    expect(dialog).to_contain_text("1 张已完成的单据和 1 名扫描岗")
    assert live_app.scalar(select(ScanPoint.id).where(ScanPoint.id == point)) == point
    dialog.get_by_role("button", name="确认删除").click()
    expect(page.locator(f"#scan-point-{point}")).to_have_count(0)
    expect(page.locator("#scan-point-dialog")).to_be_empty()
    assert live_app.scalar(select(ScanPoint.id).where(ScanPoint.id == point)) is None


def test_enterprises_are_picked_with_plain_clicks(live_app, page):
    a = live_app.call(_enterprise, "甲公司", 1)
    live_app.call(_enterprise, "乙公司", 2)
    target = live_app.make_user("carol", "viewer", [a])
    live_app.make_user("root", "ops")
    login(page, live_app, "root")
    page.goto(f"{live_app.url}/users/{target}/edit")
    expect(page.get_by_role("checkbox", name="甲公司", exact=False)).to_be_checked()
    page.get_by_role("checkbox", name="乙公司", exact=False).check()
    with page.expect_navigation():
        page.get_by_role("button", name="保存").click()
    names = live_app.call(lambda: sorted(e.name for e in db.session.get(User, target).enterprises))
    assert names == ["乙公司", "甲公司"]
