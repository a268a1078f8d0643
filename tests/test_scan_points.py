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
