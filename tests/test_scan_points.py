"""Scan points: ops add and delete them per enterprise."""
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ScanPoint


def test_add_list_delete(browser, ops, make_enterprise):
    ent = make_enterprise("甲")
    browser.login("root")
    resp = browser.post("/scan-points/", {"code": "SZ-01", "name": "深圳扫描点", "enterprise_id": str(ent.id)}, htmx="scan-point-form-wrap")
    assert resp.status_code == 200 and resp.headers["HX-Retarget"] == "#scan-point-rows"
    assert "深圳扫描点" in resp.data.decode() and 'hx-swap-oob="true"' in resp.data.decode()
    point = db.session.scalar(select(ScanPoint))
    assert (point.code, point.enterprise_id) == ("SZ-01", ent.id)
    resp = browser.post("/scan-points/", {"code": "SZ-01", "name": "重复", "enterprise_id": str(ent.id)}, htmx="scan-point-form-wrap")
    assert resp.status_code == 422 and "相同编码" in resp.data.decode()
    resp = browser.post("/scan-points/", {"code": "bad code!", "name": "", "enterprise_id": str(ent.id)})
    assert resp.status_code == 422
    assert browser.post(f"/scan-points/{point.id}/delete", htmx="scan-point-1").status_code == 200
    assert db.session.scalar(select(func.count()).select_from(ScanPoint)) == 0


def test_other_enterprises_scan_points_are_out_of_reach(browser, make_user, make_enterprise, make_scan_point):
    a, b = make_enterprise("甲"), make_enterprise("乙")
    theirs = make_scan_point(b, "B-01", "乙的扫描点")
    make_user("ops_a", "ops", [a])
    browser.login("ops_a")
    assert "乙的扫描点" not in browser.get("/scan-points/").data.decode()
    assert browser.post(f"/scan-points/{theirs.id}/delete").status_code == 404
    resp = browser.post("/scan-points/", {"code": "X", "name": "x", "enterprise_id": str(b.id)})
    assert resp.status_code == 422  # not a valid choice for this user
    assert db.session.scalar(select(func.count()).select_from(ScanPoint)) == 1


# --------------------------------------------------------------------------- edit and safe delete

import pytest  # noqa: E402

from portal import bills  # noqa: E402
from portal.models import AuditEvent, Bill, User  # noqa: E402


@pytest.fixture
def used_point(browser, ops, make_enterprise, make_user, make_scan_point):
    """SZ-01 of 甲 with one scanner and two bills (one finished); SZ-02 unused."""
    ent = make_enterprise("甲")
    point = make_scan_point(ent, "SZ-01", "深圳扫描点")
    make_scan_point(ent, "SZ-02", "广州扫描点")
    make_user("scanner1", "scanner", [ent], [point])
    for no, status in (("BX-1", "pending"), ("BX-2", "completed")):
        bills.open_bill(ent, {"bill_no": no, "scan_point": "SZ-01"}, "erp").bill.status = status
    db.session.commit()
    browser.login("root")
    return point.id


def test_edit_a_scan_point_keeps_codes_unique_and_is_audited(browser, used_point):
    page = browser.get(f"/scan-points/{used_point}/edit")
    assert page.status_code == 200 and 'value="SZ-01"' in page.get_data(as_text=True)
    clash = browser.post(f"/scan-points/{used_point}/edit", {"code": "SZ-02", "name": "x"})
    assert clash.status_code == 422 and "该企业已有相同编码的扫描点" in clash.get_data(as_text=True)
    assert db.session.get(ScanPoint, used_point).code == "SZ-01"
    resp = browser.post(f"/scan-points/{used_point}/edit", {"code": "SZ-09", "name": "深圳南山扫描点"})
    assert resp.status_code == 303
    point = db.session.get(ScanPoint, used_point)
    assert (point.code, point.name) == ("SZ-09", "深圳南山扫描点")
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "update"))
    assert ev.object_type == "scan_point" and ev.before == {"code": "SZ-01", "name": "深圳扫描点"}
    assert ev.after == {"code": "SZ-09", "name": "深圳南山扫描点"}


def test_edit_is_out_of_reach_for_other_enterprises_and_roles(browser, used_point, make_enterprise, make_user):
    make_user("ops_b", "ops", [make_enterprise("乙")])
    browser.post("/logout")
    browser.login("ops_b")
    assert browser.get(f"/scan-points/{used_point}/edit").status_code == 404
    assert browser.post(f"/scan-points/{used_point}/edit", {"code": "X", "name": "x"}).status_code == 404
    browser.post("/logout")
    browser.login("scanner1")
    assert browser.post(f"/scan-points/{used_point}/edit", {"code": "X", "name": "x"}).status_code == 403
    assert db.session.get(ScanPoint, used_point).code == "SZ-01"


def test_a_point_with_unfinished_bills_cannot_be_deleted(browser, used_point):
    panel = browser.get(f"/scan-points/{used_point}/delete", htmx="scan-point-dialog").get_data(as_text=True)
    assert "还有 1 张未完成的单据，不能删除" in panel and "单据 2 张（其中未完成 1 张），扫描岗 1 名" in panel
    assert 'name="confirm"' not in panel
    resp = browser.post(f"/scan-points/{used_point}/delete", {"confirm": "1"}, htmx="scan-point-dialog")
    assert resp.status_code == 409
    assert db.session.get(ScanPoint, used_point) is not None
    assert db.session.scalar(select(Bill.scan_point_id).where(Bill.bill_no == "BX-1")) == used_point


def test_a_point_still_in_use_is_deleted_only_after_the_counts_were_confirmed(browser, used_point):
    db.session.scalar(select(Bill).where(Bill.bill_no == "BX-1")).status = "completed"
    db.session.commit()
    panel = browser.get(f"/scan-points/{used_point}/delete", htmx="scan-point-dialog").get_data(as_text=True)
    assert "2 张已完成的单据和 1 名扫描岗" in panel and 'name="confirm" value="1"' in panel
    # A bare POST (the old one-click delete) no longer goes through.
    assert browser.post(f"/scan-points/{used_point}/delete", htmx="scan-point-dialog").status_code == 409
    assert db.session.get(ScanPoint, used_point) is not None
    resp = browser.post(f"/scan-points/{used_point}/delete", {"confirm": "1"}, htmx="scan-point-dialog")
    assert resp.status_code == 200 and f'<tr id="scan-point-{used_point}" hx-swap-oob="delete">' in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ScanPoint, used_point) is None
    assert db.session.scalar(select(func.count()).select_from(Bill).where(Bill.scan_point_id.is_(None))) == 2
    assert db.session.scalar(select(User).where(User.username == "scanner1")).scan_points == []
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "delete"))
    assert ev.before == {"code": "SZ-01", "name": "深圳扫描点", "bills": 2, "scanners": 1}
