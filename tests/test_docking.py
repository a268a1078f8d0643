"""Galaxy docking connections: data centres, test connection, save, isolation."""
import pytest
from sqlalchemy import func, select

from portal.crypto import decrypt, encrypt
from portal.extensions import db
from portal.models import AuditEvent, DockingConnection
from portal.sandbox.galaxy import (
    MSG_BAD_PASSWORD,
    MSG_NO_DATA_CENTER,
    MSG_NOT_WEBAPI_USER,
)
from portal.sandbox.seed import TEST_GALAXY


@pytest.fixture
def as_ops(browser, ops, galaxy):
    browser.login("root")
    return browser


def fields(galaxy, **change):
    data = {"name": "总部星空", "base_url": galaxy.url + "/k3cloud/", "acct_id": TEST_GALAXY.acct_id,
            "username": TEST_GALAXY.username, "password": TEST_GALAXY.password, "status_field": "", "enterprise_id": "0"}
    data.update(change)
    return data


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(DockingConnection))


def test_data_centres_are_listed_by_name_with_their_id(as_ops, galaxy):
    resp = as_ops.post("/docking/datacenters", {"base_url": galaxy.url + "/k3cloud/"}, htmx="acct-field")
    html = resp.data.decode()
    assert resp.status_code == 200
    assert f'value="{TEST_GALAXY.acct_id}"' in html and TEST_GALAXY.acct_name in html


def test_data_centres_of_an_unreachable_server(as_ops, galaxy):
    galaxy.stop()
    html = as_ops.post("/docking/datacenters", {"base_url": galaxy.url + "/k3cloud/"}, htmx="acct-field").data.decode()
    assert "获取数据中心失败" in html


@pytest.mark.parametrize("change,message", [
    ({}, "连接成功"),
    ({"password": "wrong-password"}, MSG_BAD_PASSWORD),
    ({"username": TEST_GALAXY.no_webapi_username}, MSG_NOT_WEBAPI_USER.split("，")[0]),
    ({"acct_id": "ffffffffffffff"}, MSG_NO_DATA_CENTER),
])
def test_test_connection_shows_galaxys_own_message(as_ops, galaxy, change, message):
    resp = as_ops.post("/docking/test", fields(galaxy, **change), htmx="docking-test-result")
    assert resp.status_code == 200  # a failed remote test is a result, not an error of ours
    assert message in resp.data.decode()
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "test"))
    assert ev is not None and ev.after["ok"] is (message == "连接成功")


def test_test_connection_when_galaxy_is_down(as_ops, galaxy):
    galaxy.stop()
    html = as_ops.post("/docking/test", fields(galaxy), htmx="docking-test-result").data.decode()
    assert "连接失败" in html


def test_save_runs_the_test_and_refuses_on_failure(as_ops, galaxy):
    resp = as_ops.post("/docking/", fields(galaxy, password="wrong-password"), htmx="docking-form")
    assert resp.status_code == 422
    assert MSG_BAD_PASSWORD in resp.data.decode() and "未保存" in resp.data.decode()
    assert count() == 0
    resp = as_ops.post("/docking/", fields(galaxy))
    assert resp.status_code == 303
    conn = db.session.scalar(select(DockingConnection))
    assert conn.acct_id == TEST_GALAXY.acct_id and conn.acct_name == TEST_GALAXY.acct_name
    assert decrypt(conn.password_enc) == TEST_GALAXY.password


@pytest.mark.parametrize("change,message", [
    ({"base_url": "ftp://x"}, "http://"),
    ({"name": ""}, "请输入连接名称"),
    ({"acct_id": ""}, "数据中心 ID"),
    ({"password": ""}, "请输入星空密码"),
    ({"status_field": "F bad"}, "字段标识"),
])
def test_validation(as_ops, galaxy, change, message):
    resp = as_ops.post("/docking/", fields(galaxy, **change), htmx="docking-form")
    assert resp.status_code == 422 and message in resp.data.decode()
    assert count() == 0


def test_edit_keeps_masked_password(as_ops, galaxy):
    as_ops.post("/docking/", fields(galaxy))
    conn = db.session.scalar(select(DockingConnection))
    form = as_ops.get(f"/docking/{conn.id}/edit").data.decode()
    assert TEST_GALAXY.password not in form
    resp = as_ops.post(f"/docking/{conn.id}/edit", fields(galaxy, name="改名", password="••••", connection_id=str(conn.id)))
    assert resp.status_code == 303, resp.data.decode()[-2000:]
    db.session.refresh(conn)
    assert conn.name == "改名" and decrypt(conn.password_enc) == TEST_GALAXY.password


def test_enterprise_chooses_its_connection(as_ops, galaxy, make_enterprise):
    ent = make_enterprise()
    as_ops.post("/docking/", fields(galaxy, enterprise_id=str(ent.id)))
    conn = db.session.scalar(select(DockingConnection))
    edit = as_ops.get(f"/enterprises/{ent.id}/edit").data.decode()
    assert f'value="{conn.id}"' in edit
    # Deleting a connection in use is refused with a reason.
    resp = as_ops.post(f"/docking/{conn.id}/delete", htmx="docking-1")
    assert resp.status_code == 200 or resp.status_code == 303
    assert count() == 0


def test_connection_in_use_cannot_be_deleted(as_ops, galaxy, make_enterprise):
    as_ops.post("/docking/", fields(galaxy))
    conn = db.session.scalar(select(DockingConnection))
    make_enterprise(docking_id=conn.id)
    resp = as_ops.post(f"/docking/{conn.id}/delete", htmx="docking-1")
    assert resp.status_code == 409 and "仍有 1 个企业授权使用该连接" in resp.data.decode()
    assert count() == 1


def test_other_enterprises_connections_are_invisible(browser, make_enterprise, make_user, galaxy):
    a, b = make_enterprise("甲"), make_enterprise("乙")
    theirs = DockingConnection(name="乙的星空", base_url="http://127.0.0.1:9/", acct_id="x", username="u",
                               password_enc=encrypt("pw-123456789"), enterprise_id=b.id)
    db.session.add(theirs)
    db.session.commit()
    make_user("ops_a", "ops", [a])
    browser.login("ops_a")
    assert "乙的星空" not in browser.get("/docking/").data.decode()
    assert browser.get(f"/docking/{theirs.id}/edit").status_code == 404
    assert browser.post(f"/docking/{theirs.id}/edit", fields(galaxy)).status_code == 404
    assert browser.post(f"/docking/{theirs.id}/delete").status_code == 404
    assert browser.post("/docking/test", {**fields(galaxy), "connection_id": str(theirs.id)}).status_code == 404
    # Nor can a connection be created for someone else's enterprise.
    assert browser.post("/docking/", fields(galaxy, enterprise_id=str(b.id))).status_code == 422
