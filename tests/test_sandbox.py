"""The emulators themselves, spoken to over raw HTTP: they must behave like the real remotes."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import subprocess
import sys
import time

import pytest
import requests

from portal.sandbox.galaxy import GalaxyApp, GalaxySandbox
from portal.sandbox.invoice_cloud import CloudApp
from portal.sandbox.seed import (
    DEMO_CLOUD_CLIENTS,
    DEMO_GALAXY,
    TEST_CLOUD_CLIENT,
    TEST_EXPIRED_CLIENT,
    TEST_GALAXY,
)
from portal.sandbox.server import SandboxServer
from portal.signing import sign

STUB = "Kingdee.BOS.WebApi.ServicesStub"
DATA_CENTER_LIST = "Kingdee.BOS.ServiceFacade.ServicesStub.Account.AccountService.GetDataCenterList"
TIMEOUT = (2, 5)


def kdsvc(galaxy, service: str) -> str:
    return f"{galaxy.base_url}{service}.common.kdsvc"


def post_json(url: str, body, session: requests.Session | None = None) -> requests.Response:
    data = json.dumps(body, ensure_ascii=False).encode()
    if session is not None:
        return session.post(url, data=data, timeout=TIMEOUT)
    return requests.post(url, data=data, timeout=TIMEOUT)


@pytest.fixture
def logged_in(galaxy):
    """A raw requests session holding a Galaxy session cookie."""
    with requests.Session() as session:
        resp = post_json(kdsvc(galaxy, f"{STUB}.AuthService.ValidateUser"),
                         {"acctid": TEST_GALAXY.acct_id, "username": TEST_GALAXY.username,
                          "password": TEST_GALAXY.password, "lcid": 2052}, session)
        assert resp.json()["LoginResultType"] == 1
        yield session


def form_op(galaxy, session, op: str, body):
    return post_json(kdsvc(galaxy, f"{STUB}.DynamicFormService.{op}"), body, session).json()


# -- server ------------------------------------------------------------------------------


def test_server_restarts_on_the_same_port_and_refuses_while_stopped():
    server = SandboxServer(CloudApp())
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018 - no port before the first start
    server.start()
    try:
        url = server.url
        assert server.running
        assert requests.get(f"{url}/nothing", timeout=TIMEOUT).status_code == 404
        server.stop()
        assert not server.running
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/nothing", timeout=TIMEOUT)
        server.start()
        assert server.url == url
        assert requests.get(f"{url}/nothing", timeout=TIMEOUT).status_code == 404
        server.start()  # idempotent
    finally:
        server.stop()
    server.stop()  # idempotent


def test_stop_cuts_kept_alive_connections():
    with SandboxServer(CloudApp()) as server, requests.Session() as session:
        url = f"{server.url}/nothing"
        assert session.get(url, timeout=TIMEOUT).status_code == 404  # connection now pooled
        server.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(url, timeout=TIMEOUT)


def test_control_api_is_json_and_rejects_bad_input(galaxy):
    resp = requests.post(f"{galaxy.url}/_sandbox/users", json={"username": "x"}, timeout=TIMEOUT)
    assert resp.status_code == 400 and resp.json()["ok"] is False
    assert requests.get(f"{galaxy.url}/_sandbox/nope", timeout=TIMEOUT).status_code == 404
    assert requests.get(f"{galaxy.url}/_sandbox/reset", timeout=TIMEOUT).status_code == 405


# -- Galaxy: data centres and login ----------------------------------------------------


def test_data_center_list_needs_no_login_and_has_the_real_shape(galaxy):
    resp = post_json(kdsvc(galaxy, DATA_CENTER_LIST), {})
    [item] = resp.json()
    assert item["Id"] == TEST_GALAXY.acct_id
    assert item["Name"] == TEST_GALAXY.acct_name
    assert item["Number"] == TEST_GALAXY.acct_number
    assert item["LocaleValueName"] == [{"Key": 2052, "Value": TEST_GALAXY.acct_name}]
    assert "DBType" in item


def test_data_center_list_compressed_variants(galaxy):
    expected = post_json(kdsvc(galaxy, DATA_CENTER_LIST), {}).json()
    galaxy.app.set_data_center_encoding("gzip")
    raw = post_json(kdsvc(galaxy, DATA_CENTER_LIST), {}).content
    assert raw[:2] == b"\x1f\x8b" and json.loads(gzip.decompress(raw)) == expected
    requests.post(f"{galaxy.url}/_sandbox/data-center-encoding", json={"encoding": "base64gzip"}, timeout=TIMEOUT)
    text = post_json(kdsvc(galaxy, DATA_CENTER_LIST), {}).text
    assert text.startswith("H4sI") and json.loads(gzip.decompress(base64.b64decode(text))) == expected


@pytest.mark.parametrize(
    ("acct_id", "username", "password", "result_type", "message"),
    [
        ("00000000000000", TEST_GALAXY.username, TEST_GALAXY.password, -1, "数据中心无法获取到"),
        (TEST_GALAXY.acct_id, TEST_GALAXY.username, "wrong", 0, "用户名或密码错误"),
        (TEST_GALAXY.acct_id, "nobody", TEST_GALAXY.password, 0, "用户名或密码错误"),
        (TEST_GALAXY.acct_id, TEST_GALAXY.no_webapi_username, TEST_GALAXY.password, -1, "未指定允许调用WebAPI接口"),
    ],
)
def test_validate_user_failures(galaxy, acct_id, username, password, result_type, message):
    resp = post_json(kdsvc(galaxy, f"{STUB}.AuthService.ValidateUser"),
                     {"acctid": acct_id, "username": username, "password": password, "lcid": 2052})
    body = resp.json()
    assert resp.status_code == 200
    assert body["LoginResultType"] == result_type
    assert message in body["Message"]
    assert body["KDSVCSessionId"] is None
    assert "kdservice-sessionid" not in resp.cookies


def test_validate_user_success_sets_session_cookies(galaxy):
    resp = post_json(kdsvc(galaxy, f"{STUB}.AuthService.ValidateUser"),
                     {"acctid": TEST_GALAXY.acct_id, "username": TEST_GALAXY.username.upper(),
                      "password": TEST_GALAXY.password, "lcid": 2052})
    body = resp.json()
    assert body["LoginResultType"] == 1 and body["IsSuccessByAPI"] is True
    assert resp.cookies["kdservice-sessionid"] == body["KDSVCSessionId"]
    assert "ASP.NET_SessionId" in resp.cookies
    assert body["Context"]["DataCenterName"] == TEST_GALAXY.acct_name
    assert galaxy.login_count == 1


def test_validate_user_accepts_the_official_sdk_envelope(galaxy):
    params = json.dumps([TEST_GALAXY.acct_id, TEST_GALAXY.username, TEST_GALAXY.password, 2052])
    resp = post_json(kdsvc(galaxy, f"{STUB}.AuthService.ValidateUser"),
                     {"format": 1, "useragent": "ApiClient", "rid": "1", "parameters": params, "v": "1.0"})
    assert resp.json()["LoginResultType"] == 1


def test_paths_are_case_insensitive_and_prefix_free(galaxy):
    url = f"{galaxy.url}/{STUB.lower()}.authservice.validateuser.common.kdsvc"
    resp = post_json(url, {"acctid": TEST_GALAXY.acct_id, "username": TEST_GALAXY.username,
                           "password": TEST_GALAXY.password})
    assert resp.json()["LoginResultType"] == 1
    assert requests.post(f"{galaxy.url}/k3cloud/Default.aspx", timeout=TIMEOUT).status_code == 404
    assert requests.get(kdsvc(galaxy, DATA_CENTER_LIST), timeout=TIMEOUT).status_code == 405


# -- Galaxy: sessions and business operations ------------------------------------------


def test_form_ops_without_a_session_say_session_lost(galaxy):
    body = post_json(kdsvc(galaxy, f"{STUB}.DynamicFormService.View"),
                     {"formid": TEST_GALAXY.form_id, "data": {"Number": TEST_GALAXY.bill_no}}).json()
    status = body["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == 1
    assert status["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"


def test_session_accepted_by_header_and_expired_on_request(galaxy, logged_in):
    session_id = logged_in.cookies["kdservice-sessionid"]
    view = {"formid": TEST_GALAXY.form_id, "data": {"Number": TEST_GALAXY.bill_no}}
    by_header = requests.post(kdsvc(galaxy, f"{STUB}.DynamicFormService.View"), json=view,
                              headers={"kdservice-sessionid": session_id}, timeout=TIMEOUT).json()
    assert by_header["Result"]["ResponseStatus"]["IsSuccess"] is True
    assert requests.post(f"{galaxy.url}/_sandbox/expire-sessions", timeout=TIMEOUT).json() == {"expired": 1}
    again = form_op(galaxy, logged_in, "View", view)
    assert again["Result"]["ResponseStatus"]["MsgCode"] == 1


def test_view_returns_the_bill(galaxy, logged_in):
    by_number = form_op(galaxy, logged_in, "View", {"formid": TEST_GALAXY.form_id,
                                                    "data": {"Number": TEST_GALAXY.bill_no}})
    bill = by_number["Result"]["Result"]
    assert bill["Id"] == TEST_GALAXY.bill_id and bill["BillNo"] == TEST_GALAXY.bill_no
    assert bill["FCausa"] == "测试报销"
    by_id = form_op(galaxy, logged_in, "View", {"formid": TEST_GALAXY.form_id,
                                                "data": json.dumps({"Id": str(TEST_GALAXY.bill_id)})})
    assert by_id["Result"]["Result"] == bill
    missing = form_op(galaxy, logged_in, "View", {"formid": TEST_GALAXY.form_id, "data": {"Number": "NOPE"}})
    assert missing["Result"]["ResponseStatus"]["IsSuccess"] is False


def test_save_creates_updates_and_refuses_duplicate_numbers(galaxy, logged_in):
    created = form_op(galaxy, logged_in, "Save", {"formid": TEST_GALAXY.form_id,
                                                  "data": {"Model": {"FID": 0, "FCausa": "新单据"}}})
    result = created["Result"]
    assert result["ResponseStatus"]["IsSuccess"] is True
    assert result["ResponseStatus"]["SuccessEntitys"] == [{"Id": result["Id"], "Number": result["Number"],
                                                           "DIndex": 0}]
    assert result["Number"].startswith("FYBX")
    bill = galaxy.get_bill(TEST_GALAXY.form_id, id=result["Id"])
    assert bill.fields == {"FCausa": "新单据"}

    form_op(galaxy, logged_in, "Save", {"formid": TEST_GALAXY.form_id, "data": {
        "NeedUpDateFields": ["FImageStatus"],
        "Model": {"FID": result["Id"], "FImageStatus": "2", "FCausa": "ignored"}}})
    assert bill.fields == {"FCausa": "新单据", "FImageStatus": "2"}

    clash = form_op(galaxy, logged_in, "Save", {"formid": TEST_GALAXY.form_id, "data": {
        "Model": {"FID": result["Id"], "FBillNo": TEST_GALAXY.bill_no}}})
    status = clash["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["Errors"][0]["FieldName"] == "FBillNo"

    unknown = form_op(galaxy, logged_in, "Save", {"formid": TEST_GALAXY.form_id,
                                                  "data": {"Model": {"FID": 999}}})
    assert unknown["Result"]["ResponseStatus"]["IsSuccess"] is False


def test_submit_audit_and_bill_query(galaxy, logged_in):
    galaxy.add_bill(TEST_GALAXY.form_id, 100050, "FYBX0050", FCausa="查询")
    form_op(galaxy, logged_in, "Submit", {"formid": TEST_GALAXY.form_id, "data": {"Numbers": ["FYBX0050"]}})
    assert galaxy.get_bill(TEST_GALAXY.form_id, number="FYBX0050").status == "B"
    form_op(galaxy, logged_in, "Audit", {"formid": TEST_GALAXY.form_id, "data": {"Ids": "100050"}})
    rows = form_op(galaxy, logged_in, "ExecuteBillQuery", {"data": {
        "FormId": TEST_GALAXY.form_id, "FieldKeys": "FID,FBillNo,FDocumentStatus,FCausa",
        "FilterString": "FBillNo='FYBX0050'"}})
    assert rows == [[100050, "FYBX0050", "C", "查询"]]
    error = form_op(galaxy, logged_in, "ExecuteBillQuery", {"data": {"FormId": TEST_GALAXY.form_id}})
    assert error[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 8


def test_unimplemented_operation_is_a_refusal_not_a_crash(galaxy, logged_in):
    body = form_op(galaxy, logged_in, "Push", {"formid": TEST_GALAXY.form_id, "data": {}})
    assert body["Result"]["ResponseStatus"]["MsgCode"] == 4


# -- Galaxy: attachments -------------------------------------------------------------------


def upload_body(content: bytes, **overrides):
    data = {"FileName": "发票.pdf", "FormId": TEST_GALAXY.form_id, "InterId": str(TEST_GALAXY.bill_id),
            "BillNO": TEST_GALAXY.bill_no, "SendByte": base64.b64encode(content).decode(), "IsLast": True}
    data.update(overrides)
    return {"data": {k: v for k, v in data.items() if v is not None}}


def test_attachment_upload_stores_and_download_returns_it(galaxy, logged_in):
    content = b"%PDF-1.7 sandbox " * 100
    reply = form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(content))
    assert reply["Result"]["ResponseStatus"]["IsSuccess"] is True
    file_id = reply["Result"]["FileId"]
    [listed] = requests.get(f"{galaxy.url}/_sandbox/attachments",
                            params={"form_id": TEST_GALAXY.form_id, "inter_id": TEST_GALAXY.bill_id},
                            timeout=TIMEOUT).json()
    assert listed["file_id"] == file_id and listed["file_name"] == "发票.pdf"
    assert listed["md5"] == hashlib.md5(content).hexdigest() and listed["size"] == len(content)
    down = form_op(galaxy, logged_in, "AttachmentDownLoad", {"data": {"FileID": file_id}})["Result"]
    assert base64.b64decode(down["FilePart"]) == content
    assert down["FileSize"] == len(content) and down["FileName"] == "发票.pdf" and down["IsLast"] is True


def test_attachment_download_in_chunks(galaxy, logged_in, monkeypatch):
    monkeypatch.setattr(galaxy.app, "download_chunk_size", 1000)
    content = bytes(range(256)) * 10
    file_id = form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(content))["Result"]["FileId"]
    first = form_op(galaxy, logged_in, "AttachmentDownLoad", {"data": {"FileId": file_id}})["Result"]
    assert len(base64.b64decode(first["FilePart"])) == 1000 and first["IsLast"] is False
    last = form_op(galaxy, logged_in, "AttachmentDownLoad", {"data": {"FileId": file_id, "StartIndex": 2000}})
    assert base64.b64decode(last["Result"]["FilePart"]) == content[2000:] and last["Result"]["IsLast"] is True


def test_attachment_upload_without_is_last_succeeds_but_stores_nothing(galaxy, logged_in):
    reply = form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(b"lost", IsLast=None))
    assert reply["Result"]["ResponseStatus"]["IsSuccess"] is True and reply["Result"]["FileId"]
    assert galaxy.attachments() == []
    missing = form_op(galaxy, logged_in, "AttachmentDownLoad", {"data": {"FileId": reply["Result"]["FileId"]}})
    assert missing["Result"]["ResponseStatus"]["IsSuccess"] is False


@pytest.mark.parametrize("missing", ["FileName", "FormId", "InterId", "BillNO", "SendByte"])
def test_attachment_upload_requires_its_parameters(galaxy, logged_in, missing):
    reply = form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(b"x", **{missing: None}))
    status = reply["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == 8 and missing in status["Errors"][0]["Message"]


def test_attachment_upload_refuses_unknown_bills_unless_told_to_create_them(galaxy, logged_in):
    reply = form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(b"x", InterId="100778", BillNO="FYBX0778"))
    status = reply["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and "100778" in status["Errors"][0]["Message"]
    assert galaxy.get_bill(TEST_GALAXY.form_id, number="FYBX0778") is None
    galaxy.app.auto_create_bills = True  # reset() turns it off again
    form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(b"x", InterId="100777", BillNO="FYBX0777"))
    assert galaxy.get_bill(TEST_GALAXY.form_id, number="FYBX0777").id == 100777


def test_business_error_injection_over_http(galaxy, logged_in):
    requests.post(f"{galaxy.url}/_sandbox/business-errors",
                  json={"op": "AttachmentUpLoad", "count": 2, "message": "附件服务器空间不足", "msg_code": 11},
                  timeout=TIMEOUT)
    for _ in range(2):
        status = form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(b"x"))["Result"]["ResponseStatus"]
        assert status["IsSuccess"] is False and status["Errors"][0]["Message"] == "附件服务器空间不足"
    assert form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(b"x"))["Result"]["ResponseStatus"]["IsSuccess"]
    assert len(galaxy.attachments()) == 1


def test_registration_over_http_and_reset(galaxy):
    base = f"{galaxy.url}/_sandbox"
    requests.post(f"{base}/data-centers", json={"Id": "abc123", "Name": "第二账套", "Number": "002"}, timeout=TIMEOUT)
    requests.post(f"{base}/users", json={"acct_id": "abc123", "username": "u2", "password": "p2"}, timeout=TIMEOUT)
    requests.post(f"{base}/bills", json={"form_id": "ER_ExpReimbursement", "id": 200001, "number": "FYBX9001",
                                         "fields": {"FCausa": "经 HTTP 注册"}}, timeout=TIMEOUT)
    login = post_json(kdsvc(galaxy, f"{STUB}.AuthService.ValidateUser"),
                      {"acctid": "abc123", "username": "u2", "password": "p2"}).json()
    assert login["LoginResultType"] == 1
    bills = requests.get(f"{base}/bills", params={"number": "FYBX9001"}, timeout=TIMEOUT).json()
    assert bills[0]["fields"] == {"FCausa": "经 HTTP 注册"}
    state = requests.get(f"{base}/state", timeout=TIMEOUT).json()
    assert state["sessions"] == 1 and len(state["data_centers"]) == 2
    assert [c["service"] for c in requests.get(f"{base}/calls", timeout=TIMEOUT).json()] == ["ValidateUser"]
    requests.post(f"{base}/reset", timeout=TIMEOUT)
    state = requests.get(f"{base}/state", timeout=TIMEOUT).json()
    assert state["sessions"] == 0 and len(state["data_centers"]) == 1 and state["bills"] == 1


def test_fault_injection_delays_and_replaces_replies(galaxy):
    galaxy.inject_fault(match="GetDataCenterList", status=502, body="Bad Gateway")
    resp = post_json(kdsvc(galaxy, DATA_CENTER_LIST), {})
    assert resp.status_code == 502 and resp.text == "Bad Gateway"
    assert post_json(kdsvc(galaxy, DATA_CENTER_LIST), {}).status_code == 200  # consumed
    requests.post(f"{galaxy.url}/_sandbox/faults", json={"delay": 0.3}, timeout=TIMEOUT)
    started = time.monotonic()
    post_json(kdsvc(galaxy, DATA_CENTER_LIST), {})
    assert time.monotonic() - started >= 0.3


def test_a_reset_voids_a_request_still_sleeping_in_an_injected_delay(galaxy):
    """A client that timed out leaves the emulator sleeping; the next test's reset must end that sleep
    at once, and the request must not log in (or touch anything) in the state the next test set up."""
    galaxy.inject_fault(match="ValidateUser", delay=30.0)
    login = {"acctid": TEST_GALAXY.acct_id, "username": TEST_GALAXY.username,
             "password": TEST_GALAXY.password, "lcid": 2052}
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(kdsvc(galaxy, f"{STUB}.AuthService.ValidateUser"), json=login, timeout=(2, 0.1))
    assert not galaxy.app.wait_idle(0.05)  # still sleeping after its client gave up

    started = time.monotonic()
    galaxy.reset()
    assert galaxy.app.wait_idle(2.0) and time.monotonic() - started < 2.0
    assert galaxy.login_count == 0 and galaxy.calls == []
    assert requests.get(f"{galaxy.url}/_sandbox/state", timeout=TIMEOUT).json()["sessions"] == 0


def test_session_loss_is_signalled_by_code_message_or_both(galaxy):
    view = {"formid": TEST_GALAXY.form_id, "data": {"Number": TEST_GALAXY.bill_no}}
    seen = {}
    for signal in ("code", "message", "both"):
        requests.post(f"{galaxy.url}/_sandbox/session-lost-signal", json={"signal": signal}, timeout=TIMEOUT)
        status = post_json(kdsvc(galaxy, f"{STUB}.DynamicFormService.View"), view).json()["Result"]["ResponseStatus"]
        assert status["IsSuccess"] is False
        seen[signal] = (status["MsgCode"], [e["Message"] for e in status["Errors"]])
    assert seen == {"code": (1, []), "message": (0, ["会话信息已丢失，请重新登录"]),
                    "both": (1, ["会话信息已丢失，请重新登录"])}
    resp = requests.post(f"{galaxy.url}/_sandbox/session-lost-signal", json={"signal": "never"}, timeout=TIMEOUT)
    assert resp.status_code == 400
    galaxy.reset()
    assert galaxy.app.session_lost_signal == "both"


# -- invoice cloud -------------------------------------------------------------------------


def token(cloud, body) -> dict:
    return post_json(f"{cloud.url}/base/oauth/token", body).json()


def signed(client, timestamp=1700000000000, enc_type=None, secret=None) -> dict:
    body = {"client_id": client.client_id, "timestamp": timestamp,
            "sign": sign(client.client_id, secret or client.client_secret, timestamp, enc_type or 0)}
    if enc_type is not None:
        body["encType"] = enc_type
    return body


def test_token_success(cloud):
    reply = token(cloud, signed(TEST_CLOUD_CLIENT))
    assert reply["errcode"] == "0000" and reply["description"] == "操作成功"
    assert reply["token_type"] == "bearer" and reply["expires_in"] == 7200
    assert cloud.token_owner(reply["access_token"]) == TEST_CLOUD_CLIENT.client_id
    assert cloud.token_owner("nope") is None


@pytest.mark.parametrize("enc_type", [1, 2])
def test_token_accepts_other_enc_types(cloud, enc_type):
    assert token(cloud, signed(TEST_CLOUD_CLIENT, enc_type=enc_type))["errcode"] == "0000"


@pytest.mark.parametrize(
    ("body", "errcode", "fragment"),
    [
        ({"client_id": "", "timestamp": 1, "sign": "x"}, "1200", "授权ID不能为空"),
        ({"client_id": "unknownClient1", "timestamp": 1, "sign": "x"}, "1101", "client_id"),
        (signed(TEST_CLOUD_CLIENT, secret="wrong-secret"), "1102", "签名错误，请检查client_id与client_secret"),
        ({"client_id": TEST_CLOUD_CLIENT.client_id}, "1201", "sign"),
        (signed(TEST_EXPIRED_CLIENT), "0300", "许可已过期"),
        (["not", "an", "object"], "0400", "JSON"),
    ],
)
def test_token_refusals(cloud, body, errcode, fragment):
    reply = token(cloud, body)
    assert reply["errcode"] == errcode and fragment in reply["description"]
    assert "access_token" not in reply


def test_token_endpoint_rejects_garbage_and_get(cloud):
    resp = requests.post(f"{cloud.url}/base/oauth/token", data=b"{not json", timeout=TIMEOUT)
    assert resp.json()["errcode"] == "0400"
    assert requests.get(f"{cloud.url}/base/oauth/token", timeout=TIMEOUT).status_code == 405


def test_clients_registered_over_http(cloud):
    requests.post(f"{cloud.url}/_sandbox/clients",
                  json={"client_id": "httpClient0001", "client_secret": "s" * 30, "encrypt_key": "k" * 16},
                  timeout=TIMEOUT)
    body = {"client_id": "httpClient0001", "timestamp": "20240101120000",
            "sign": sign("httpClient0001", "s" * 30, "20240101120000")}
    assert token(cloud, body)["errcode"] == "0000"


def test_file_server(cloud):
    url = cloud.add_file("inv-1.pdf", b"%PDF-1.7 demo", download_name="电子发票.pdf")
    resp = requests.get(url, timeout=TIMEOUT)
    assert resp.content == b"%PDF-1.7 demo"
    assert resp.headers["Content-Type"] == "application/pdf"
    assert "UTF-8''%E7%94%B5" in resp.headers["Content-Disposition"]
    chunked = requests.get(url, params={"chunked": "1"}, timeout=TIMEOUT)
    assert chunked.content == b"%PDF-1.7 demo" and "Content-Length" not in chunked.headers
    assert requests.get(cloud.file_url("missing.pdf"), timeout=TIMEOUT).status_code == 404
    requests.post(f"{cloud.url}/_sandbox/files", json={"name": "a.xml", "content_b64": base64.b64encode(b"<a/>")
                                                       .decode()}, timeout=TIMEOUT)
    assert requests.get(cloud.file_url("a.xml"), timeout=TIMEOUT).content == b"<a/>"
    hop = requests.get(f"{cloud.url}/redirect", params={"to": url}, allow_redirects=False, timeout=TIMEOUT)
    assert hop.status_code == 302 and hop.headers["Location"] == url


def test_reset_forgets_files_and_restores_seed(cloud):
    cloud.add_file("x.bin", b"x")
    cloud.add_client("tmpClient00001", "secret")
    cloud.reset()
    assert requests.get(cloud.file_url("x.bin"), timeout=TIMEOUT).status_code == 404
    assert token(cloud, {"client_id": "tmpClient00001", "timestamp": 1, "sign": "x"})["errcode"] == "1101"
    assert token(cloud, signed(TEST_CLOUD_CLIENT))["errcode"] == "0000"


# -- seeds and the command line --------------------------------------------------------------


def test_demo_seed_is_obviously_demo():
    app = GalaxyApp(DEMO_GALAXY.apply)
    assert app.data_centers["69a531ee82525a"]["Name"] == "演示账套"
    for client in DEMO_CLOUD_CLIENTS:
        assert client.client_id.startswith("demo") and "demo" in client.client_secret
        assert len(client.encrypt_key) == 16 and len(client.client_id) == 14


def test_seed_tax_numbers_pass_the_portal_check():
    from portal.taxno import validate

    for client in (*DEMO_CLOUD_CLIENTS, TEST_CLOUD_CLIENT, TEST_EXPIRED_CLIENT):
        assert validate(client.tax_no) is None, client.tax_no


def test_command_line_runs_both_sandboxes_seeded():
    cmd = [sys.executable, "-m", "portal.sandbox", "--galaxy-port", "0", "--cloud-port", "0", "--seed", "demo"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            header = []
            while not header or "Ctrl-C" not in header[-1]:
                header.append(proc.stdout.readline())
                assert header[-1], "the sandbox exited before printing its banner"
            galaxy_url = re.search(r"http://\S+", header[0]).group(0)
            cloud_url = re.search(r"http://\S+", header[1]).group(0)
            demo = DEMO_CLOUD_CLIENTS[0]
            reply = post_json(f"{cloud_url}/base/oauth/token", signed(demo)).json()
            assert reply["errcode"] == "0000"
            login = post_json(f"{galaxy_url}{STUB}.AuthService.ValidateUser.common.kdsvc",
                              {"acctid": DEMO_GALAXY.acct_id, "username": DEMO_GALAXY.username,
                               "password": DEMO_GALAXY.password}).json()
            assert login["LoginResultType"] == 1
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert DEMO_GALAXY.password in "".join(header)  # the demo password is printed for the newcomer


def test_galaxy_sandbox_handle_shortcuts():
    with GalaxySandbox(seed=TEST_GALAXY.apply) as server:
        assert server.base_url.endswith("/k3cloud/")
        server.add_user(TEST_GALAXY.acct_id, "extra", "pw", webapi_allowed=False)
        assert server.app.users[(TEST_GALAXY.acct_id, "extra")].webapi_allowed is False
        assert server.expire_sessions() == 0
