"""The integration module against the emulators over real loopback HTTP (no mocked requests)."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from portal.integration import (
    DEFAULT_TIMEOUT,
    GalaxyClient,
    IntegrationError,
    InvoiceCloudClient,
    RemoteRefused,
    RemoteUnavailable,
    fetch_file,
    host_allowed,
    timeout_from_config,
)
from portal.sandbox.seed import TEST_CLOUD_CLIENT, TEST_EXPIRED_CLIENT, TEST_GALAXY

FAST = (1.0, 2.0)
IMPATIENT = (1.0, 0.3)  # read timeout shorter than the injected delays


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def client(galaxy):
    """A GalaxyClient for the seeded test user, closed after the test."""
    with GalaxyClient(galaxy.base_url, TEST_GALAXY.acct_id, TEST_GALAXY.username, TEST_GALAXY.password,
                      timeout=FAST) as c:
        yield c


def other_client(galaxy, *, acct_id=TEST_GALAXY.acct_id, username=TEST_GALAXY.username,
                 password=TEST_GALAXY.password, timeout=FAST) -> GalaxyClient:
    return GalaxyClient(galaxy.base_url, acct_id, username, password, timeout=timeout)


# -- errors and configuration -----------------------------------------------------------------


def test_error_family_and_attributes():
    refused = RemoteRefused("用户名或密码错误", code=0)
    unavailable = RemoteUnavailable("无法连接")
    assert isinstance(refused, IntegrationError) and isinstance(unavailable, IntegrationError)
    assert str(refused) == "用户名或密码错误" and refused.code == 0 and refused.unreachable is False
    assert unavailable.unreachable is True
    assert "用户名或密码错误" in repr(refused)


def test_timeout_from_config():
    assert timeout_from_config({}) == DEFAULT_TIMEOUT
    assert timeout_from_config({"OUTBOUND_CONNECT_TIMEOUT": 1, "OUTBOUND_READ_TIMEOUT": "2.5"}) == (1.0, 2.5)


def test_client_repr_hides_the_password(galaxy):
    with other_client(galaxy, password="top-secret-pw") as c:
        assert "top-secret-pw" not in repr(c)


# -- invoice cloud ------------------------------------------------------------------------------


def test_fetch_token_success(cloud):
    reply = InvoiceCloudClient(cloud.url, timeout=FAST).fetch_token(TEST_CLOUD_CLIENT.client_id,
                                                                     TEST_CLOUD_CLIENT.client_secret)
    assert reply["expires_in"] == 7200
    assert cloud.token_owner(reply["access_token"]) == TEST_CLOUD_CLIENT.client_id


@pytest.mark.parametrize(
    ("client_id", "secret", "code", "message"),
    [
        ("unknownClient1", "whatever", "1101", "授权ID（client_id）不存在，请检查发票云授权标识"),
        (TEST_CLOUD_CLIENT.client_id, "wrong-secret", "1102", "签名错误，请检查client_id与client_secret"),
        (TEST_EXPIRED_CLIENT.client_id, TEST_EXPIRED_CLIENT.client_secret, "0300", "【收票服务】许可已过期失效"),
        ("", "x", "1200", "授权ID不能为空"),
    ],
)
def test_fetch_token_refusals_carry_the_cloud_description(cloud, client_id, secret, code, message):
    with pytest.raises(RemoteRefused) as info:
        InvoiceCloudClient(cloud.url, timeout=FAST).fetch_token(client_id, secret)
    assert info.value.code == code and info.value.message == message and not info.value.unreachable


def test_fetch_token_unreachable():
    with pytest.raises(RemoteUnavailable) as info:
        InvoiceCloudClient(f"http://127.0.0.1:{free_port()}", timeout=FAST).fetch_token("a", "b")
    assert info.value.unreachable and "无法连接到发票云" in info.value.message


def test_fetch_token_timeout(cloud):
    cloud.inject_fault(match="oauth", delay=1.0)
    with pytest.raises(RemoteUnavailable) as info:
        InvoiceCloudClient(cloud.url, timeout=IMPATIENT).fetch_token("a", "b")
    assert info.value.unreachable and "响应超时" in info.value.message


@pytest.mark.parametrize(
    ("status", "body", "content_type", "fragment"),
    [
        (502, "<html>Bad Gateway</html>", "text/html", "HTTP 502"),
        (519, '{"errcode":4002,"description":"网关限流"}', "application/json", "网关限流"),
        (200, "<html>登录页</html>", "text/html", "不是有效的 JSON"),
        (200, '{"unexpected": true}', "application/json", "无法识别"),
    ],
)
def test_fetch_token_bad_replies_are_unavailable(cloud, status, body, content_type, fragment):
    cloud.inject_fault(match="oauth", status=status, body=body, content_type=content_type)
    with pytest.raises(RemoteUnavailable) as info:
        InvoiceCloudClient(cloud.url, timeout=FAST).fetch_token("a", "b")
    assert fragment in info.value.message and info.value.unreachable is False


def test_bad_base_url_is_an_integration_error():
    with pytest.raises(IntegrationError, match="地址格式不正确"):
        InvoiceCloudClient("not a url", timeout=FAST).fetch_token("a", "b")


# -- Galaxy: data centres and login -------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "gzip", "base64gzip"])
def test_data_centers_in_every_encoding(galaxy, client, encoding):
    galaxy.app.set_data_center_encoding(encoding)
    [item] = client.data_centers()
    assert (item["Id"], item["Name"]) == (TEST_GALAXY.acct_id, TEST_GALAXY.acct_name)
    assert galaxy.login_count == 0  # no login needed


def test_login_success_keeps_session_cookie_and_header(galaxy, client):
    reply = client.login()
    assert reply["LoginResultType"] == 1
    assert client.session_id == reply["KDSVCSessionId"]
    assert client._session.headers["kdservice-sessionid"] == client.session_id
    assert client._session.cookies.get("kdservice-sessionid") == client.session_id


@pytest.mark.parametrize(
    ("overrides", "code", "fragment"),
    [
        ({"acct_id": "00000000000000"}, -1, "数据中心无法获取到"),
        ({"password": "wrong"}, 0, "用户名或密码错误"),
        ({"username": "nobody"}, 0, "用户名或密码错误"),
        ({"username": TEST_GALAXY.no_webapi_username}, -1, "未指定允许调用WebAPI接口"),
    ],
)
def test_login_refusals_carry_galaxy_message(galaxy, overrides, code, fragment):
    with other_client(galaxy, **overrides) as c, pytest.raises(RemoteRefused) as info:
        c.login()
    assert info.value.code == code and fragment in info.value.message


def test_login_refusal_raised_from_a_lazy_business_call(galaxy):
    with other_client(galaxy, password="wrong") as c, pytest.raises(RemoteRefused, match="用户名或密码错误"):
        c.view(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no)
    assert [call["service"] for call in galaxy.calls] == ["ValidateUser"]


# -- Galaxy: business calls -----------------------------------------------------------------------


def test_call_logs_in_lazily_once(galaxy, client):
    bill = client.view(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no)
    assert bill["Id"] == TEST_GALAXY.bill_id
    assert client.view(TEST_GALAXY.form_id, id=TEST_GALAXY.bill_id)["BillNo"] == TEST_GALAXY.bill_no
    assert galaxy.login_count == 1
    assert [c["service"] for c in galaxy.calls] == ["ValidateUser", "view", "view"]


@pytest.mark.parametrize("signal", ["both", "code", "message"])
def test_session_lost_logs_in_again_once_and_repeats(galaxy, client, signal):
    """Some servers say MsgCode 1 without the message, others the message with MsgCode 0: each is a lost session."""
    galaxy.set_session_lost_signal(signal)
    client.login()
    galaxy.expire_sessions()
    result = client.save(TEST_GALAXY.form_id, {"Model": {"FID": TEST_GALAXY.bill_id, "FImageStatus": "已上传"}})
    assert result["Id"] == TEST_GALAXY.bill_id
    assert galaxy.get_bill(TEST_GALAXY.form_id, id=TEST_GALAXY.bill_id).fields["FImageStatus"] == "已上传"
    assert galaxy.login_count == 2
    services = [c["service"] for c in galaxy.calls]
    assert services == ["ValidateUser", "save", "ValidateUser", "save"]
    assert [c.get("authenticated") for c in galaxy.calls if c["service"] == "save"] == [False, True]


def test_session_lost_twice_gives_up_after_one_relogin(galaxy, client):
    galaxy.inject_business_error("Save", count=5, message="会话信息已丢失，请重新登录", msg_code=1)
    with pytest.raises(RemoteRefused) as info:
        client.save(TEST_GALAXY.form_id, {"Model": {"FID": TEST_GALAXY.bill_id}})
    assert info.value.code == 1 and "会话信息已丢失" in info.value.message
    assert galaxy.login_count == 2  # the lazy login plus exactly one retry
    assert [c["service"] for c in galaxy.calls].count("save") == 2


def test_relogin_refused_after_session_loss(galaxy, client):
    client.login()
    galaxy.expire_sessions()
    galaxy.add_user(TEST_GALAXY.acct_id, TEST_GALAXY.username, "changed-password")
    with pytest.raises(RemoteRefused, match="用户名或密码错误"):
        client.view(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no)


def test_business_error_maps_to_refusal_with_msg_code(galaxy, client):
    galaxy.inject_business_error("AttachmentUpLoad", message="附件大小超过系统限制", msg_code=11, field_name="FFile")
    with pytest.raises(RemoteRefused) as info:
        client.attachment_upload("a.pdf", TEST_GALAXY.form_id, TEST_GALAXY.bill_id, TEST_GALAXY.bill_no, b"x")
    assert info.value.message == "附件大小超过系统限制" and info.value.code == 11
    assert info.value.errors == [{"FieldName": "FFile", "Message": "附件大小超过系统限制", "DIndex": 0}]
    assert galaxy.attachments() == []  # nothing stored, and nothing retried
    assert [c["service"] for c in galaxy.calls].count("attachmentupload") == 1


def test_save_refusal_and_nested_query_errors(galaxy, client):
    with pytest.raises(RemoteRefused, match="已经存在") as info:
        client.save(TEST_GALAXY.form_id, {"Model": {"FID": 0, "FBillNo": TEST_GALAXY.bill_no}})
    assert info.value.code == 11
    with pytest.raises(RemoteRefused, match="FieldKeys") as info:
        client.call("ExecuteBillQuery", {"data": {"FormId": TEST_GALAXY.form_id}})
    assert info.value.code == 8


def test_save_view_and_query_round_trip(galaxy, client):
    saved = client.save(TEST_GALAXY.form_id, {"Model": {"FID": 0, "FCausa": "影像系统创建"}})
    assert client.view(TEST_GALAXY.form_id, id=saved["Id"])["FCausa"] == "影像系统创建"
    rows = client.call("DynamicFormService.ExecuteBillQuery", {"data": {
        "FormId": TEST_GALAXY.form_id, "FieldKeys": "FBillNo", "FilterString": f"FID={saved['Id']}"}})
    assert rows == [[saved["Number"]]]
    with pytest.raises(RemoteRefused, match="不存在"):
        client.view(TEST_GALAXY.form_id, number="FYBX9999")
    with pytest.raises(ValueError):
        client.view(TEST_GALAXY.form_id)


def test_attachment_round_trip_md5(galaxy, client, monkeypatch):
    monkeypatch.setattr(galaxy.app, "download_chunk_size", 64 * 1024)  # force several chunks
    content = os.urandom(300 * 1024)
    file_id = client.attachment_upload("扫描件 1.pdf", TEST_GALAXY.form_id, TEST_GALAXY.bill_id,
                                       TEST_GALAXY.bill_no, content)
    [stored] = galaxy.attachments(TEST_GALAXY.form_id, TEST_GALAXY.bill_id)
    assert stored["file_id"] == file_id and stored["bill_no"] == TEST_GALAXY.bill_no
    assert stored["md5"] == hashlib.md5(content).hexdigest()
    downloaded = client.attachment_download(file_id)
    assert hashlib.md5(downloaded).hexdigest() == stored["md5"]
    downloads = [c for c in galaxy.calls if c["service"] == "attachmentdownload"]
    assert len(downloads) == 5  # 300 KB in 64 KB pieces


def test_attachment_download_of_unknown_file(galaxy, client):
    with pytest.raises(RemoteRefused, match="不存在"):
        client.attachment_download("0" * 32)


# -- Galaxy: transport failures --------------------------------------------------------------------


def test_stopped_server_is_unavailable_then_recovers_on_same_port(galaxy, client):
    client.view(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no)
    url = galaxy.url
    galaxy.stop()
    try:
        with pytest.raises(RemoteUnavailable) as info:
            client.view(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no)
        assert info.value.unreachable
        assert info.value.message.startswith("无法连接到星空服务器")
        with pytest.raises(RemoteUnavailable):
            client.data_centers()
    finally:
        galaxy.start()
    assert galaxy.url == url
    assert client.view(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no)["Id"] == TEST_GALAXY.bill_id
    assert galaxy.login_count == 1  # the session survived the restart


def test_read_timeout(galaxy):
    galaxy.inject_fault(match="ValidateUser", delay=1.0)
    with other_client(galaxy, timeout=IMPATIENT) as c, pytest.raises(RemoteUnavailable) as info:
        c.login()
    assert info.value.unreachable and "星空服务器" in info.value.message and "响应超时" in info.value.message


@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        (500, "<html>Runtime Error</html>", "HTTP 500"),
        (503, '{"Message":"服务维护中"}', "服务维护中"),
        (200, "<!DOCTYPE html><html>金蝶云星空 登录</html>", "不是有效的 JSON"),
        (404, "<html>Not Found</html>", "不是有效的 JSON"),
    ],
)
def test_server_errors_and_html_pages_are_unavailable(galaxy, client, status, body, fragment):
    galaxy.inject_fault(match="DynamicFormService", status=status, body=body)
    with pytest.raises(RemoteUnavailable) as info:
        client.view(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no)
    assert fragment in info.value.message and info.value.unreachable is False


def test_login_reply_without_login_fields_is_unavailable(galaxy, client):
    galaxy.inject_fault(match="ValidateUser", status=200, body="[]", content_type="application/json")
    with pytest.raises(RemoteUnavailable, match="无法识别"):
        client.login()


def test_unreachable_galaxy_address():
    with GalaxyClient(f"http://127.0.0.1:{free_port()}/k3cloud/", "x", "u", "p", timeout=FAST) as c:
        with pytest.raises(RemoteUnavailable, match="无法连接到星空服务器") as info:
            c.data_centers()
    assert info.value.unreachable


# -- file downloads ---------------------------------------------------------------------------------


def test_fetch_file_returns_content_and_filename(cloud):
    url = cloud.add_file("inv-001.pdf", b"%PDF-1.7 invoice", download_name="增值税电子普通发票.pdf")
    content, name = fetch_file(url, max_bytes=1024, allowed_hosts=["127.0.0.1"], timeout=FAST)
    assert content == b"%PDF-1.7 invoice" and name == "增值税电子普通发票.pdf"
    plain = cloud.add_file("发票.ofd", b"ofd")
    assert fetch_file(plain, max_bytes=1024, timeout=FAST)[1] == "发票.ofd"


def test_fetch_file_exact_cap_is_allowed(cloud):
    url = cloud.add_file("cap.bin", b"x" * 1000)
    assert len(fetch_file(url, max_bytes=1000, timeout=FAST)[0]) == 1000


@pytest.mark.parametrize("chunked", [False, True])
def test_fetch_file_refuses_over_cap(cloud, chunked):
    url = cloud.add_file("big.bin", b"x" * 200_000) + ("?chunked=1" if chunked else "")
    with pytest.raises(IntegrationError, match="上限"):
        fetch_file(url, max_bytes=100_000, timeout=FAST)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://127.0.0.1/a.pdf", "http"),
        ("file:///etc/passwd", "http"),
        ("http:///nohost", "主机"),
        ("http://127.0.0.1:notaport/a", "格式不正确"),
    ],
)
def test_fetch_file_refuses_bad_urls(url, fragment):
    with pytest.raises(IntegrationError, match=fragment):
        fetch_file(url, max_bytes=10, timeout=FAST)


def test_fetch_file_allow_list(cloud):
    url = cloud.add_file("a.pdf", b"%PDF")
    with pytest.raises(IntegrationError, match="不在允许的列表中"):
        fetch_file(url, max_bytes=10, allowed_hosts=["*.piaozone.com"], timeout=FAST)
    with pytest.raises(IntegrationError, match="不在允许的列表中"):
        fetch_file(url, max_bytes=10, allowed_hosts=[], timeout=FAST)
    port = cloud.url.rsplit(":", 1)[1]
    assert fetch_file(url, max_bytes=10, allowed_hosts=[f"127.0.0.1:{port}"], timeout=FAST)[0] == b"%PDF"
    assert cloud.calls and all(c["service"] == "file" for c in cloud.calls)
    assert len(cloud.calls) == 1  # refused downloads never reached the server


@pytest.mark.parametrize(
    ("url", "entries", "allowed"),
    [
        ("https://api.piaozone.com/f/1.pdf", ["api.piaozone.com"], True),
        ("https://API.Piaozone.com/f/1.pdf", ["api.piaozone.com"], True),
        ("https://dl.piaozone.com/f", ["*.piaozone.com"], True),
        ("https://a.b.piaozone.com/f", ["*.piaozone.com"], True),
        ("https://piaozone.com/f", ["*.piaozone.com"], False),
        ("https://evilpiaozone.com/f", ["*.piaozone.com"], False),
        ("https://piaozone.com.evil.cn/f", ["*.piaozone.com", "piaozone.com"], False),
        ("http://files.example.cn:8080/x", ["files.example.cn:8080"], True),
        ("http://files.example.cn/x", ["files.example.cn:8080"], False),
        ("https://files.example.cn/x", ["files.example.cn:443"], True),
        ("https://files.example.cn/x", [" ", "bad:port:x"], False),
    ],
)
def test_host_allowed(url, entries, allowed):
    assert host_allowed(url, entries) is allowed


def test_fetch_file_redirects_only_within_the_host(cloud):
    target = cloud.add_file("r.pdf", b"%PDF-redirected")
    same_host = f"{cloud.url}/redirect?to=/files/r.pdf"
    assert fetch_file(same_host, max_bytes=100, timeout=FAST) == (b"%PDF-redirected", "r.pdf")
    other_host = f"{cloud.url}/redirect?to={target.replace('127.0.0.1', 'localhost')}"
    with pytest.raises(IntegrationError, match="重定向到其他主机 localhost"):
        fetch_file(other_host, max_bytes=100, timeout=FAST)
    loop = f"{cloud.url}/redirect?to=/redirect%3Fto%3D/redirect"
    with pytest.raises(IntegrationError, match="重定向"):
        fetch_file(loop, max_bytes=100, timeout=FAST, max_redirects=1)


def test_fetch_file_http_errors(cloud):
    with pytest.raises(RemoteRefused, match="HTTP 404") as info:
        fetch_file(cloud.file_url("missing.pdf"), max_bytes=100, timeout=FAST)
    assert info.value.code == 404
    cloud.add_file("e.pdf", b"x")
    cloud.inject_fault(match="/files/", status=503, body="busy")
    with pytest.raises(RemoteUnavailable, match="HTTP 503"):
        fetch_file(cloud.file_url("e.pdf"), max_bytes=100, timeout=FAST)


def test_fetch_file_unreachable_and_timeouts(cloud):
    with pytest.raises(RemoteUnavailable, match="无法连接到文件服务器") as info:
        fetch_file(f"http://127.0.0.1:{free_port()}/a.pdf", max_bytes=100, timeout=FAST)
    assert info.value.unreachable
    url = cloud.add_file("slow.pdf", b"x" * 10)
    cloud.inject_fault(match="/files/", delay=1.0)
    with pytest.raises(RemoteUnavailable, match="响应超时"):
        fetch_file(url, max_bytes=100, timeout=IMPATIENT)
    with pytest.raises(RemoteUnavailable, match="下载文件超时"):
        fetch_file(url, max_bytes=100, timeout=FAST, deadline=0)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://0.0.0.0/x",
                                 "http://224.0.0.1/x"])
def test_fetch_file_refuses_reserved_addresses_without_an_allow_list(url):
    with pytest.raises(IntegrationError) as err:
        fetch_file(url, max_bytes=1024, timeout=(0.5, 0.5))
    assert "保留地址" in err.value.message
