"""Galaxy docking connections: data centres, test connection, save, isolation."""
import html as html_lib
import re

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
            "username": TEST_GALAXY.username, "password": TEST_GALAXY.password, "status_field": "", "enterprise_id": "0",
            "form_ids": "ER_ExpReimbursement", "amount_field": "FExpenseAmount"}
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


def test_data_centres_reply_is_capped_by_the_deployment_setting(app, as_ops, galaxy):
    # 1 MB of blanks, gzipped to a few KB: under the default cap, over the configured one.
    galaxy.app.set_data_center_encoding("gzip", padding=1024 * 1024)
    url = {"base_url": galaxy.url + "/k3cloud/"}
    assert TEST_GALAXY.acct_name in as_ops.post("/docking/datacenters", url, htmx="acct-field").data.decode()
    app.config["ERP_MAX_REPLY_BYTES"] = 256 * 1024
    html = html_lib.unescape(as_ops.post("/docking/datacenters", url, htmx="acct-field").data.decode())
    assert "获取数据中心失败" in html and "应答超过大小上限 256.0 KB，已拒绝" in html


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
    ({"form_ids": ""}, "至少一个单据类型"),
    ({"form_ids": "ER_ExpReimbursement;DROP"}, "英文逗号分隔"),
    ({"amount_field": "F Amount"}, "金额字段只能"),
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


@pytest.fixture
def shared_setup(make_enterprise, make_user):
    """ops_a holds 甲 and 甲二; 乙 uses 甲's connection too (shared), 甲二 has one of its own."""
    a, a2, b = make_enterprise("甲"), make_enterprise("甲二"), make_enterprise("乙")
    shared = DockingConnection(name="甲乙共用星空", base_url="http://127.0.0.1:9/k3cloud/", acct_id="x", username="u",
                               password_enc=encrypt("pw-123456789"), enterprise_id=a.id)
    own = DockingConnection(name="甲二自用星空", base_url="http://127.0.0.1:9/k3cloud/", acct_id="x", username="u",
                            password_enc=encrypt("pw-123456789"), enterprise_id=a2.id)
    db.session.add_all([shared, own])
    db.session.flush()
    a.docking_id = b.docking_id = shared.id
    a2.docking_id = own.id
    db.session.commit()
    make_user("ops_a", "ops", [a, a2])
    return a, a2, b, shared, own


def test_bound_ops_cannot_change_a_connection_other_enterprises_use(browser, galaxy, shared_setup):
    a, a2, b, shared, own = shared_setup
    before = service_snapshot(shared)
    browser.login("ops_a")
    html = browser.get("/docking/").data.decode()
    assert "甲乙共用星空" in html and "共享连接，只读" in html and f"/docking/{shared.id}/edit" not in html
    assert "其他企业" in html and "乙" not in html.replace("甲乙共用星空", "")
    assert f"/docking/{own.id}/edit" in html
    refused = [
        browser.get(f"/docking/{shared.id}/edit"),
        browser.post(f"/docking/{shared.id}/edit", fields(galaxy, enterprise_id=str(a.id), connection_id=str(shared.id))),
        browser.post(f"/docking/{shared.id}/delete"),
        browser.post("/docking/test", {**fields(galaxy, enterprise_id=str(a.id)), "connection_id": str(shared.id)}),
    ]
    for resp in refused:
        assert resp.status_code == 403 and "管理范围以外的企业" in resp.data.decode()
    db.session.refresh(shared)
    assert service_snapshot(shared) == before
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.object_type == "docking")) == 0
    assert galaxy.login_count == 0
    # Its own enterprises' connection stays in its hands.
    resp = browser.post(f"/docking/{own.id}/edit", fields(galaxy, enterprise_id=str(a2.id), connection_id=str(own.id)))
    assert resp.status_code == 303


def test_shared_connection_is_changed_by_deployment_wide_ops_or_one_bound_to_all(browser, ops, make_user, galaxy,
                                                                                  shared_setup):
    a, a2, b, shared, own = shared_setup
    make_user("ops_ab", "ops", [a, b])
    for who, name in [("ops_ab", "改名一"), ("root", "改名二")]:
        browser.login(who)
        assert f"/docking/{shared.id}/edit" in browser.get("/docking/").data.decode()
        resp = browser.post(f"/docking/{shared.id}/edit",
                            fields(galaxy, name=name, enterprise_id=str(a.id), connection_id=str(shared.id)))
        assert resp.status_code == 303, resp.data.decode()[-1500:]
        db.session.refresh(shared)
        assert shared.name == name


def test_bound_ops_cannot_spread_a_shared_connection(browser, shared_setup):
    a, a2, b, shared, own = shared_setup
    browser.login("ops_a")
    page = browser.get(f"/enterprises/{a2.id}/edit").data.decode()
    assert f'value="{shared.id}"' not in page and f'value="{own.id}"' in page

    def edit(ent, docking_id):
        return browser.post(f"/enterprises/{ent.id}/edit", {
            "name": ent.name, "tax_no": ent.tax_no, "client_id": ent.client_id, "client_secret": "••••7890",
            "encrypt_key": "", "image_mode": "basic", "docking_id": str(docking_id)})

    assert edit(a2, shared.id).status_code == 422
    db.session.refresh(a2)
    assert a2.docking_id == own.id
    # The enterprise that already uses it keeps it on an unrelated edit.
    assert f'value="{shared.id}"' in browser.get(f"/enterprises/{a.id}/edit").data.decode()
    assert edit(a, shared.id).status_code == 303
    db.session.refresh(a)
    assert a.docking_id == shared.id


def service_snapshot(conn):
    from portal.blueprints.docking.service import snapshot

    return {**snapshot(conn), "password_enc": conn.password_enc}


@pytest.mark.parametrize("change", [
    lambda g: {"base_url": g.url.replace("127.0.0.1", "localhost") + "/k3cloud/"},  # same server, another host name
    lambda g: {"acct_id": "5f0c4a1e2b3d4c"},
    lambda g: {"username": "someone-else"},
], ids=["host", "data-centre", "user"])
def test_masked_password_goes_only_where_it_was_stored_for(as_ops, galaxy, change):
    as_ops.post("/docking/", fields(galaxy))
    conn = db.session.scalar(select(DockingConnection))
    stored = service_snapshot(conn)
    galaxy.reset()  # forget the calls made while saving
    data = fields(galaxy, password="••••", connection_id=str(conn.id), **change(galaxy))
    html = as_ops.post("/docking/test", data, htmx="docking-test-result").data.decode()
    assert "连接失败" in html and "请重新输入星空密码" in html
    resp = as_ops.post(f"/docking/{conn.id}/edit", data, htmx="docking-form")
    assert resp.status_code == 422 and "请重新输入星空密码" in resp.data.decode()
    assert [c for c in galaxy.calls if c["service"] == "ValidateUser"] == []
    db.session.refresh(conn)
    assert service_snapshot(conn) == stored


def test_masked_password_is_kept_for_the_same_server_and_retyped_for_a_new_one(as_ops, galaxy):
    as_ops.post("/docking/", fields(galaxy))
    conn = db.session.scalar(select(DockingConnection))
    # Another path on the same host and port, same data centre and user: the stored password serves.
    resp = as_ops.post(f"/docking/{conn.id}/edit", fields(galaxy, base_url=galaxy.url + "/K3Cloud/", password="••••",
                                                          connection_id=str(conn.id)))
    assert resp.status_code == 303
    # A new host name with the password typed again is saved.
    moved = galaxy.url.replace("127.0.0.1", "localhost") + "/k3cloud/"
    resp = as_ops.post(f"/docking/{conn.id}/edit", fields(galaxy, base_url=moved, connection_id=str(conn.id)))
    assert resp.status_code == 303
    db.session.refresh(conn)
    assert conn.base_url == moved and decrypt(conn.password_enc) == TEST_GALAXY.password


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1/k3cloud/", "file:///etc/passwd", "gopher://127.0.0.1:6379/_x"])
def test_data_centre_lookup_checks_the_scheme_like_save_does(as_ops, galaxy, base_url):
    html = as_ops.post("/docking/datacenters", {"base_url": base_url}, htmx="acct-field").data.decode()
    assert "应以 http:// 或 https:// 开头" in html and "获取数据中心失败" not in html


def test_test_connection_follows_no_redirect(as_ops, galaxy):
    elsewhere = galaxy.url.replace("127.0.0.1", "localhost")
    galaxy.inject_fault(match="ValidateUser", status=307, body="", headers={
        "Location": f"{elsewhere}/k3cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser.common.kdsvc"})
    html = as_ops.post("/docking/test", fields(galaxy), htmx="docking-test-result").data.decode()
    assert "连接失败" in html and "要求跳转到其他地址，已拒绝" in html and "localhost" not in html
    assert [c for c in galaxy.calls if c["service"] == "ValidateUser"] == []


def test_data_centre_lookup_follows_no_redirect(as_ops, galaxy):
    elsewhere = galaxy.url.replace("127.0.0.1", "localhost")
    galaxy.inject_fault(match="GetDataCenterList", status=302, body="", headers={
        "Location": f"{elsewhere}/k3cloud/Kingdee.BOS.ServiceFacade.ServicesStub.Account.AccountService.GetDataCenterList.common.kdsvc"})
    html = as_ops.post("/docking/datacenters", {"base_url": galaxy.url + "/k3cloud/"}, htmx="acct-field").data.decode()
    assert "要求跳转到其他地址，已拒绝" in html and TEST_GALAXY.acct_name not in html


@pytest.mark.parametrize("status,body", [
    (200, '{"message": "redis_version:7.0 内网服务"}'),
    (404, '{"description": "redis_version:7.0 内网服务"}'),
    (502, '<html><body>redis_version:7.0 内网服务</body></html>'),
])
def test_remote_bodies_are_never_read_back(as_ops, galaxy, status, body):
    for route, data, target in [("/docking/datacenters", {"base_url": galaxy.url + "/k3cloud/"}, "acct-field"),
                                ("/docking/test", fields(galaxy), "docking-test-result")]:
        galaxy.inject_fault(status=status, body=body, content_type="application/json")
        html = as_ops.post(route, data, htmx=target).data.decode()
        assert "redis_version" not in html and "内网服务" not in html
        assert status >= 500 or f"HTTP {status}" not in html
        assert "失败" in html


def test_erp_allowed_hosts(app, as_ops, galaxy):
    app.config["ERP_ALLOWED_HOSTS"] = "erp.example.com"
    html = as_ops.post("/docking/test", fields(galaxy), htmx="docking-test-result").data.decode()
    assert "不在允许的地址列表" in html
    html = as_ops.post("/docking/datacenters", {"base_url": galaxy.url + "/k3cloud/"}, htmx="acct-field").data.decode()
    assert "不在允许的地址列表" in html
    assert galaxy.calls == []
    app.config["ERP_ALLOWED_HOSTS"] = "erp.example.com, 127.0.0.1"
    assert "连接成功" in as_ops.post("/docking/test", fields(galaxy), htmx="docking-test-result").data.decode()


def test_form_ids_and_amount_field_are_saved_and_the_last_pull_is_shown(as_ops, galaxy):
    resp = as_ops.post("/docking/", fields(galaxy, form_ids=" ER_ExpReimbursement , ER_ExpReimbursement_Travel ",
                                           amount_field="FReqAmount"))
    assert resp.status_code == 303
    conn = db.session.scalar(select(DockingConnection))
    assert (conn.form_ids, conn.amount_field) == ("ER_ExpReimbursement,ER_ExpReimbursement_Travel", "FReqAmount")
    assert "尚未拉取" in as_ops.get("/docking/").data.decode()
    from portal.models import utcnow

    conn.pulled_at, conn.pull_tasks, conn.pull_opened, conn.pull_error = utcnow(), 7, 2, "组织 900 不属于任何企业"
    db.session.commit()
    page = as_ops.get("/docking/").data.decode()
    assert "待办 7，新开 2" in page and "星空返回：组织 900 不属于任何企业" in page


def test_a_refused_save_keeps_the_typed_password_and_the_data_centre_choice(as_ops, galaxy):
    # The list from 获取数据中心 comes back with the form; the save is refused by Galaxy.
    listed = as_ops.post("/docking/datacenters", {"base_url": galaxy.url + "/k3cloud/"}, htmx="acct-field").data.decode()
    choices = re.search(r"name=\"acct_choices\" value='([^']*)'", listed).group(1)
    data = fields(galaxy, username=TEST_GALAXY.no_webapi_username, password="typed-Pa55word",
                  acct_choices=html_lib.unescape(choices))
    resp = as_ops.post("/docking/", data, htmx="docking-form")
    assert resp.status_code == 422
    page = resp.data.decode()
    assert 'value="typed-Pa55word"' in page  # typed in this request: shown again, not lost
    # The data centre is still chosen by its name in the list, not reduced to a bare Id.
    option = re.search(r'<option value="([^"]+)" selected>([^<]*)</option>', page)
    assert option and option.group(1) == TEST_GALAXY.acct_id and TEST_GALAXY.acct_name in option.group(2)
    assert count() == 0


def test_a_refused_edit_never_shows_the_stored_password(as_ops, galaxy):
    as_ops.post("/docking/", fields(galaxy))
    conn = db.session.scalar(select(DockingConnection))
    resp = as_ops.post(f"/docking/{conn.id}/edit", fields(galaxy, name="", password="••••", connection_id=str(conn.id)),
                       htmx="docking-form")
    assert resp.status_code == 422
    page = resp.data.decode()
    assert TEST_GALAXY.password not in page and 'name="password" type="password" value="••••' in page


@pytest.mark.parametrize("choices", ["not json", '{"Id": "x"}', '[{"Id": 5}]', '[{"Id": "' + "x" * 300 + '"}]', "[1]"])
def test_a_malformed_data_centre_list_falls_back_to_the_id_field(as_ops, galaxy, choices):
    resp = as_ops.post("/docking/", fields(galaxy, name="", acct_choices=choices), htmx="docking-form")
    assert resp.status_code == 422
    page = resp.data.decode()
    assert "<select id=\"acct_id\"" not in page and f'value="{TEST_GALAXY.acct_id}"' in page
