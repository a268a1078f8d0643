"""Enterprise authorizations: add with the cloud check, validation, edit, delete, isolation."""
import re

import pytest
from sqlalchemy import func, select

from portal.crypto import decrypt
from portal.extensions import db
from portal.models import AuditEvent, Enterprise
from portal.sandbox.invoice_cloud import MSG_BAD_SIGN, MSG_EXPIRED, MSG_UNKNOWN_CLIENT
from portal.sandbox.seed import TEST_CLOUD_CLIENT, TEST_EXPIRED_CLIENT

from .conftest import tax_no

GOOD = {
    "name": "深圳测试科技有限公司",
    "tax_no": tax_no(9001),
    "client_id": TEST_CLOUD_CLIENT.client_id,
    "client_secret": TEST_CLOUD_CLIENT.client_secret,
    "encrypt_key": TEST_CLOUD_CLIENT.encrypt_key,
}


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(Enterprise))


@pytest.fixture
def as_ops(browser, ops, cloud):
    browser.login("root")
    return browser


def test_add_with_valid_credentials(as_ops):
    resp = as_ops.post("/enterprises/", GOOD)
    assert resp.status_code == 303
    ent = db.session.scalar(select(Enterprise))
    assert ent.tax_no == GOOD["tax_no"] and ent.image_mode == "basic"
    assert decrypt(ent.client_secret_enc) == GOOD["client_secret"]
    assert decrypt(ent.encrypt_key_enc) == GOOD["encrypt_key"]
    page = as_ops.get(resp.headers["Location"]).data.decode()
    assert GOOD["name"] in page


def test_htmx_add_returns_the_new_row_for_the_list(as_ops):
    resp = as_ops.post("/enterprises/", GOOD, htmx="enterprise-form")
    assert resp.status_code == 200
    assert resp.headers["HX-Retarget"] == "#enterprise-rows"
    assert resp.headers["HX-Reswap"] == "afterbegin"
    html = resp.data.decode()
    assert html.lstrip().startswith("<tr") and GOOD["name"] in html
    assert 'id="enterprise-form-panel" hx-swap-oob="true"' in html


@pytest.mark.parametrize("change,message", [
    ({"client_secret": "wrong-secret"}, MSG_BAD_SIGN),
    ({"client_id": "noSuchClient99"}, MSG_UNKNOWN_CLIENT),
    ({"client_id": TEST_EXPIRED_CLIENT.client_id, "client_secret": TEST_EXPIRED_CLIENT.client_secret}, MSG_EXPIRED),
])
@pytest.mark.parametrize("htmx", [False, "enterprise-form"])
def test_cloud_refusal_shows_its_description_and_stores_nothing(as_ops, change, message, htmx):
    resp = as_ops.post("/enterprises/", {**GOOD, **change}, htmx=htmx)
    assert resp.status_code == 422
    html = resp.data.decode()
    assert message in html
    assert ("<html" in html) is (not htmx)  # htmx gets the form fragment, a plain post the page
    assert count() == 0


def test_unreachable_cloud_says_so_and_stores_nothing(as_ops, cloud):
    cloud.stop()
    resp = as_ops.post("/enterprises/", GOOD)
    assert resp.status_code == 422
    assert "无法连接发票云" in resp.data.decode()
    assert count() == 0


@pytest.mark.parametrize("field,value,message", [
    ("tax_no", "91440300MA5FXXXX1A", "校验位不正确"),
    ("tax_no", "123", "18 位统一社会信用代码"),
    ("tax_no", "91440300MA5FIOZSV1", "不允许的字符"),
    ("encrypt_key", "short", "16 个字符"),
    ("encrypt_key", "0123456789abcdefX", "16 个字符"),
    ("name", "", "请输入企业名称"),
    ("client_id", "", "请输入 client_id"),
    ("client_secret", "", "请输入 client_secret"),
])
def test_validation_errors(as_ops, cloud, field, value, message):
    resp = as_ops.post("/enterprises/", {**GOOD, field: value}, htmx="enterprise-form")
    assert resp.status_code == 422
    assert message in resp.data.decode()
    assert count() == 0
    assert cloud.calls == []  # a form that fails validation never reaches the cloud


def test_legacy_15_and_20_character_tax_numbers_are_accepted(as_ops):
    assert as_ops.post("/enterprises/", {**GOOD, "tax_no": "440300123456789"}).status_code == 303


def test_tax_number_and_client_id_are_unique(as_ops, make_enterprise):
    make_enterprise(tax_no=GOOD["tax_no"], client_id=GOOD["client_id"])
    html = as_ops.post("/enterprises/", GOOD).data.decode()
    assert "该税号已有企业授权" in html and "已被其他企业授权使用" in html
    assert count() == 1


def test_edit_keeps_masked_secrets_and_sets_mode(as_ops, make_enterprise, galaxy):
    ent = make_enterprise(client_id=GOOD["client_id"], secret=GOOD["client_secret"], key=GOOD["encrypt_key"])
    form = as_ops.get(f"/enterprises/{ent.id}/edit").data.decode()
    assert GOOD["client_secret"] not in form and "••••" in form
    resp = as_ops.post(f"/enterprises/{ent.id}/edit", {
        "name": "改名后的公司", "tax_no": ent.tax_no, "client_id": ent.client_id,
        "client_secret": "••••" + GOOD["client_secret"][-4:], "encrypt_key": "", "image_mode": "match", "docking_id": "0"})
    assert resp.status_code == 303, resp.data.decode()
    db.session.refresh(ent)
    assert ent.name == "改名后的公司" and ent.image_mode == "match"
    assert decrypt(ent.client_secret_enc) == GOOD["client_secret"]
    assert decrypt(ent.encrypt_key_enc) == GOOD["encrypt_key"]
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "update"))
    assert ev.before["name"] != ev.after["name"] and ev.after["client_secret"] == "未修改"


def test_encrypted_push_only_is_on_by_default_and_ops_can_turn_it_off(as_ops, make_enterprise):
    as_ops.post("/enterprises/", GOOD)
    ent = db.session.scalar(select(Enterprise).where(Enterprise.client_id == GOOD["client_id"]))
    assert ent.encrypted_push_only is True
    assert "只接受加密推送" in as_ops.get(f"/enterprises/{ent.id}").data.decode()
    form = as_ops.get(f"/enterprises/{ent.id}/edit").data.decode()
    assert re.search(r'<input checked id="encrypted_push_only" name="encrypted_push_only" type="checkbox"', form)
    fields = {"name": ent.name, "tax_no": ent.tax_no, "client_id": ent.client_id, "client_secret": "",
              "encrypt_key": "", "image_mode": "basic", "docking_id": "0"}
    assert as_ops.post(f"/enterprises/{ent.id}/edit", fields).status_code == 303  # an unticked box is not sent
    db.session.refresh(ent)
    assert ent.encrypted_push_only is False
    assert "接受加密和明文推送" in as_ops.get(f"/enterprises/{ent.id}").data.decode()
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "update"))
    assert ev.before["encrypted_push_only"] is True and ev.after["encrypted_push_only"] is False
    assert as_ops.post(f"/enterprises/{ent.id}/edit", {**fields, "encrypted_push_only": "y"}).status_code == 303
    db.session.refresh(ent)
    assert ent.encrypted_push_only is True


def test_edit_with_new_wrong_secret_is_refused(as_ops, make_enterprise):
    ent = make_enterprise(client_id=GOOD["client_id"], secret=GOOD["client_secret"], key=GOOD["encrypt_key"])
    resp = as_ops.post(f"/enterprises/{ent.id}/edit", {
        "name": ent.name, "tax_no": ent.tax_no, "client_id": ent.client_id, "client_secret": "another-wrong-one",
        "encrypt_key": "", "image_mode": "basic", "docking_id": "0"})
    assert resp.status_code == 422 and MSG_BAD_SIGN in resp.data.decode()
    db.session.refresh(ent)
    assert decrypt(ent.client_secret_enc) == GOOD["client_secret"]


def test_image_modes_have_help_and_hand_over_block(as_ops, make_enterprise):
    ent = make_enterprise(client_id="handover01")
    html = as_ops.get(f"/enterprises/{ent.id}").data.decode()
    for words in ("基础模式", "影像匹配", "影像同步提单人", "企业名称：", "企业税号：", "client_id：handover01",
                  "推送地址：http://localhost/api/v1/push/invoices", 'data-copy="#handover"'):
        assert words in html


def test_delete_with_htmx_confirm(as_ops, make_enterprise):
    ent = make_enterprise()
    listing = as_ops.get("/enterprises/").data.decode()
    assert "hx-confirm" in listing
    resp = as_ops.post(f"/enterprises/{ent.id}/delete", htmx="enterprise-1")
    assert resp.status_code == 200 and "toast" in resp.headers["HX-Trigger"]
    assert count() == 0
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "delete")).object_type == "enterprise"


def test_active_search_returns_rows_only(as_ops, make_enterprise):
    make_enterprise("北京甲")
    make_enterprise("上海乙")
    resp = as_ops.get("/enterprises/?q=上海", htmx="enterprise-rows")
    html = resp.data.decode()
    assert "上海乙" in html and "北京甲" not in html and "<html" not in html
    assert "HX-Request" in resp.headers["Vary"]
    # Boosted or history-restore requests get the whole page.
    full = as_ops.get("/enterprises/?q=上海", headers={"HX-Request": "true", "HX-Boosted": "true", "HX-Target": "x"})
    assert "<html" in full.data.decode()


def test_viewer_sees_read_only_list(browser, make_enterprise, make_user):
    ent = make_enterprise("只读企业")
    make_user("v", "viewer", [ent])
    browser.login("v")
    html = browser.get("/enterprises/").data.decode()
    assert "只读企业" in html and "编辑" not in html and "新增企业授权" not in html and "删除" not in html
    assert decrypt(ent.client_secret_enc) not in html


def test_users_of_one_enterprise_never_reach_another(browser, make_enterprise, make_user):
    a, b = make_enterprise("甲"), make_enterprise("乙")
    make_user("ops_a", "ops", [a])
    browser.login("ops_a")
    assert "乙" not in browser.get("/enterprises/").data.decode()
    for url in (f"/enterprises/{b.id}", f"/enterprises/{b.id}/edit"):
        assert browser.get(url).status_code == 404
    assert browser.post(f"/enterprises/{b.id}/delete").status_code == 404
    assert browser.post(f"/enterprises/{b.id}/edit", {"name": "x"}).status_code == 404


def test_bound_ops_sees_what_it_creates(browser, make_enterprise, make_user, cloud):
    a = make_enterprise("甲")
    make_user("ops_a", "ops", [a])
    browser.login("ops_a")
    assert browser.post("/enterprises/", GOOD).status_code == 303
    assert GOOD["name"] in browser.get("/enterprises/").data.decode()


def test_erp_orgs_and_reject_on_return_are_set_on_the_edit_form(as_ops, make_enterprise):
    ent = make_enterprise()
    fields = {"name": ent.name, "tax_no": ent.tax_no, "client_id": ent.client_id, "client_secret": "",
              "encrypt_key": "", "image_mode": "basic", "docking_id": "0", "encrypted_push_only": "y"}
    bad = as_ops.post(f"/enterprises/{ent.id}/edit", {**fields, "erp_orgs": "100; DROP"}, htmx="enterprise-form")
    assert bad.status_code == 422 and "组织编码只能包含" in bad.data.decode()
    resp = as_ops.post(f"/enterprises/{ent.id}/edit", {**fields, "erp_orgs": " 100 ,200,", "reject_on_return": "y"})
    assert resp.status_code == 303
    db.session.refresh(ent)
    assert (ent.erp_orgs, ent.erp_org_list, ent.reject_on_return) == ("100,200", ["100", "200"], True)
    page = as_ops.get(f"/enterprises/{ent.id}").data.decode()
    assert "100,200" in page and f"/erp/plugin/{ent.id}/image_buttons.py" in page
    ev = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "update")).all()[-1]
    assert ev.after["erp_orgs"] == "100,200" and ev.after["reject_on_return"] is True


@pytest.mark.parametrize("htmx", [False, "enterprise-form"])
def test_a_refused_add_keeps_the_typed_secrets(as_ops, htmx):
    resp = as_ops.post("/enterprises/", {**GOOD, "client_secret": "wrong-secret-typed", "name": ""}, htmx=htmx)
    assert resp.status_code == 422
    html = resp.data.decode()
    assert 'name="client_secret" type="password" value="wrong-secret-typed"' in html
    assert f'name="encrypt_key" type="password" value="{GOOD["encrypt_key"]}"' in html
    resp = as_ops.post("/enterprises/", {**GOOD, "client_secret": "wrong-secret"}, htmx=htmx)  # refused by the cloud
    assert resp.status_code == 422 and 'value="wrong-secret"' in resp.data.decode()
    assert count() == 0


def test_a_refused_edit_shows_the_mask_never_the_stored_secret(as_ops, make_enterprise):
    ent = make_enterprise(secret="stored-secret-value-0001", key="stored-key-00001")
    fields = {"name": "", "tax_no": ent.tax_no, "client_id": ent.client_id, "client_secret": "",
              "encrypt_key": "••••", "image_mode": "basic", "docking_id": "0"}
    resp = as_ops.post(f"/enterprises/{ent.id}/edit", fields, htmx="enterprise-form")
    assert resp.status_code == 422
    html = resp.data.decode()
    assert "stored-secret-value-0001" not in html and "stored-key-00001" not in html
    assert 'name="client_secret" type="password" value="••••0001"' in html
    assert 'name="encrypt_key" type="password" value="••••"' in html
    # A newly typed key on a refused edit comes back as typed.
    resp = as_ops.post(f"/enterprises/{ent.id}/edit", {**fields, "encrypt_key": "new-key-typed-16"}, htmx="enterprise-form")
    assert resp.status_code == 422 and 'name="encrypt_key" type="password" value="new-key-typed-16"' in resp.data.decode()


def test_manual_confirmation_needs_a_second_person_by_default_and_is_set_on_the_edit_form(as_ops, make_enterprise):
    ent = make_enterprise()
    assert ent.confirm_needs_second
    page = as_ops.get(f"/enterprises/{ent.id}/edit").data.decode()
    assert re.search(r'<input checked id="confirm_needs_second" name="confirm_needs_second" type="checkbox"', page)
    fields = {"name": ent.name, "tax_no": ent.tax_no, "client_id": ent.client_id, "client_secret": "",
              "encrypt_key": "", "image_mode": "basic", "docking_id": "0", "encrypted_push_only": "y"}
    assert as_ops.post(f"/enterprises/{ent.id}/edit", fields).status_code == 303
    db.session.refresh(ent)
    assert ent.confirm_needs_second is False
    assert "人工确认需他人复核</dt><dd>否" in as_ops.get(f"/enterprises/{ent.id}").data.decode()
    ev = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "update")).all()[-1]
    assert ev.before["confirm_needs_second"] is True and ev.after["confirm_needs_second"] is False
    assert as_ops.post(f"/enterprises/{ent.id}/edit", {**fields, "confirm_needs_second": "y"}).status_code == 303
    db.session.refresh(ent)
    assert ent.confirm_needs_second is True


def test_a_new_enterprise_needs_a_second_person_for_manual_confirmation(as_ops):
    assert as_ops.post("/enterprises/", GOOD).status_code == 303
    assert db.session.scalar(select(Enterprise)).confirm_needs_second is True


# --------------------------------------------------------------------------- image mode and docking on add

def _connection(name: str, enterprise_id: int | None):
    from portal.crypto import encrypt
    from portal.models import DockingConnection

    conn = DockingConnection(name=name, base_url="http://127.0.0.1:9/k3cloud/", acct_id="x", username="u",
                             password_enc=encrypt("pw-123456789"), enterprise_id=enterprise_id)
    db.session.add(conn)
    db.session.commit()
    return conn


def test_add_sets_image_mode_and_docking_connection(as_ops):
    conn = _connection("总部星空", None)
    form = as_ops.get("/enterprises/new").get_data(as_text=True)
    assert 'name="image_mode"' in form and 'name="docking_id"' in form and "总部星空" in form
    resp = as_ops.post("/enterprises/", {**GOOD, "image_mode": "match", "docking_id": str(conn.id)})
    assert resp.status_code == 303
    ent = db.session.scalar(select(Enterprise))
    assert (ent.image_mode, ent.docking_id) == ("match", conn.id)
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.object_type == "enterprise", AuditEvent.action == "create"))
    assert ev.after["image_mode"] == "match" and ev.after["docking_id"] == conn.id


def test_add_without_a_choice_keeps_basic_mode_and_no_docking(as_ops):
    assert as_ops.post("/enterprises/", GOOD).status_code == 303
    ent = db.session.scalar(select(Enterprise))
    assert (ent.image_mode, ent.docking_id) == ("basic", None)


def test_an_unknown_image_mode_is_refused_in_chinese(as_ops):
    resp = as_ops.post("/enterprises/", {**GOOD, "image_mode": "bogus"})
    assert resp.status_code == 422 and "请选择影像模式" in resp.get_data(as_text=True)
    assert count() == 0


def test_bound_ops_may_not_attach_a_shared_connection_on_add(browser, cloud, make_enterprise, make_user):
    a, b = make_enterprise("甲"), make_enterprise("乙")
    own = _connection("甲自用星空", a.id)
    shared = _connection("甲乙共用星空", a.id)
    b.docking_id = shared.id  # 乙 uses it too: the connection reaches beyond ops_a's enterprises
    central = _connection("总部星空", None)
    db.session.commit()
    make_user("ops_a", "ops", [a])
    browser.login("ops_a")
    form = browser.get("/enterprises/new").get_data(as_text=True)
    assert "甲自用星空" in form and "甲乙共用星空" not in form and "总部星空" not in form
    for conn in (shared, central):
        resp = browser.post("/enterprises/", {**GOOD, "docking_id": str(conn.id)})
        assert resp.status_code == 422 and "不能选择该对接业务系统" in resp.get_data(as_text=True)
        assert count() == 2
    assert browser.post("/enterprises/", {**GOOD, "docking_id": str(own.id)}).status_code == 303
    assert db.session.scalar(select(Enterprise).where(Enterprise.tax_no == GOOD["tax_no"])).docking_id == own.id
