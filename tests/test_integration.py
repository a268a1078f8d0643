"""The integration module against the emulators over real loopback HTTP (no mocked requests)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time

import pytest

from portal.integration.download import fetch_file
from portal.integration.errors import IntegrationError, RemoteRefused, RemoteUnavailable
from portal.integration.galaxy import GalaxyClient
from portal.integration.http import DEFAULT_TIMEOUT, host_allowed, timeout_from_config
from portal.integration.invoice_cloud import InvoiceCloudClient
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


GALAXY_ENCODINGS = ["json", "gzip", "base64gzip", "content-gzip"]
SMALL_CAP = 64 * 1024


@pytest.mark.parametrize("encoding", GALAXY_ENCODINGS)
def test_galaxy_reply_under_the_cap_is_read_in_every_encoding(galaxy, encoding):
    galaxy.app.set_data_center_encoding(encoding, padding=SMALL_CAP // 2)
    with other_client(galaxy) as small:
        small.max_reply = SMALL_CAP
        [item] = small.data_centers()
    assert item["Id"] == TEST_GALAXY.acct_id


@pytest.mark.parametrize("encoding", GALAXY_ENCODINGS)
def test_galaxy_reply_over_the_cap_is_refused_also_when_it_only_inflates_past_it(galaxy, encoding):
    # 4 MB of blanks: sent plain it is over the cap on the wire; gzipped it is a few KB that
    # inflate to 4 MB (a gzip bomb), refused while unpacking.
    galaxy.app.set_data_center_encoding(encoding, padding=4 * 1024 * 1024)
    with other_client(galaxy) as small:
        small.max_reply = SMALL_CAP
        with pytest.raises(RemoteUnavailable, match="应答超过大小上限 64.0 KB，已拒绝") as info:
            small.data_centers()
    assert info.value.unreachable is False


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
        (500, "<html>Runtime Error</html>", "内部错误"),
        (503, '{"Message":"服务维护中"}', "服务维护中"),
        (200, "<!DOCTYPE html><html>金蝶云星空 登录</html>", "不是星空 WebAPI 的内容"),
        (404, "<html>Not Found</html>", "不是星空 WebAPI 的内容"),
    ],
)
def test_server_errors_and_html_pages_are_unavailable(galaxy, client, status, body, fragment):
    galaxy.inject_fault(match="DynamicFormService", status=status, body=body)
    with pytest.raises(RemoteUnavailable) as info:
        client.view(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no)
    assert fragment in info.value.message and info.value.unreachable is False
    # One fixed text per class: the page itself is never read back, nor a status below 500.
    assert "html" not in info.value.message.lower()
    assert status >= 500 or str(status) not in info.value.message.split("）", 1)[1]


def test_login_reply_without_login_fields_is_unavailable(galaxy, client):
    galaxy.inject_fault(match="ValidateUser", status=200, body="[]", content_type="application/json")
    with pytest.raises(RemoteUnavailable, match="无法识别"):
        client.login()


def _elsewhere(galaxy, service: str) -> str:
    """The same emulator under another host name: where a redirect would carry the request."""
    return f"{galaxy.url.replace('127.0.0.1', 'localhost')}/k3cloud/{service}.common.kdsvc"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_galaxy_redirects_are_never_followed(galaxy, status):
    galaxy.inject_fault(match="ValidateUser", status=status, body="",
                        headers={"Location": _elsewhere(galaxy, "Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser")})
    with other_client(galaxy) as c, pytest.raises(RemoteUnavailable, match="要求跳转到其他地址，已拒绝") as info:
        c.login()
    assert not info.value.unreachable and "localhost" not in info.value.message
    # The password never went to the host the redirect named (the same emulator under another name).
    assert [call for call in galaxy.calls if call["service"] == "ValidateUser"] == []


@pytest.mark.parametrize(("status", "body"), [
    (200, '{"message": "内网服务 token=abc", "description": "内网服务 token=abc"}'),
    (403, '{"errcode": "40300", "description": "内网服务 token=abc"}'),
    (500, '{"message": "内网服务 token=abc"}'),
])
def test_galaxy_shows_only_its_own_message_fields(galaxy, status, body):
    galaxy.inject_fault(match="GetDataCenterList", status=status, body=body, content_type="application/json")
    with other_client(galaxy) as c, pytest.raises(IntegrationError) as info:
        c.data_centers()
    assert "内网服务" not in info.value.message and "token" not in info.value.message


def test_galaxy_message_fields_are_shown_clipped(galaxy):
    galaxy.inject_fault(match="GetDataCenterList", status=200, body='{"Message": "数据中心服务未启动"}',
                        content_type="application/json")
    with other_client(galaxy) as c, pytest.raises(RemoteRefused, match="^数据中心服务未启动$"):
        c.data_centers()
    galaxy.inject_fault(match="ValidateUser", status=200, content_type="application/json",
                        body=json.dumps({"LoginResultType": -1, "Message": "很长的消息\n" * 500}))
    with other_client(galaxy) as c, pytest.raises(RemoteRefused) as info:
        c.login()
    assert info.value.message.startswith("很长的消息 很长的消息")
    assert len(info.value.message) <= 301 and "\n" not in info.value.message


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1/k3cloud/", "file:///etc/passwd", "http:///k3cloud/"])
def test_galaxy_client_checks_the_scheme_before_sending(base_url):
    with GalaxyClient(base_url, "x", "u", "p", timeout=FAST) as c, pytest.raises(IntegrationError) as info:
        c.data_centers()
    assert type(info.value) is IntegrationError
    assert "http:// 或 https://" in info.value.message or "缺少主机名" in info.value.message


def test_galaxy_allow_list(galaxy):
    with GalaxyClient(galaxy.base_url, TEST_GALAXY.acct_id, TEST_GALAXY.username, TEST_GALAXY.password, timeout=FAST,
                      allowed_hosts=["erp.example.com", "*.example.org"]) as c:
        with pytest.raises(IntegrationError, match="不在允许的地址列表"):
            c.login()
    assert galaxy.calls == []
    with GalaxyClient(galaxy.base_url, TEST_GALAXY.acct_id, TEST_GALAXY.username, TEST_GALAXY.password, timeout=FAST,
                      allowed_hosts=["erp.example.com", "127.0.0.1"]) as c:
        c.login()
    assert galaxy.login_count == 1


def test_credentials_in_an_address_never_reach_a_message():
    with GalaxyClient(f"http://admin:s3cret-pw@127.0.0.1:{free_port()}/k3cloud/", "x", "u", "p", timeout=FAST) as c:
        with pytest.raises(RemoteUnavailable, match="无法连接到星空服务器") as info:
            c.data_centers()
    assert "s3cret-pw" not in info.value.message and "127.0.0.1" in info.value.message


def test_unreachable_galaxy_address():
    with GalaxyClient(f"http://127.0.0.1:{free_port()}/k3cloud/", "x", "u", "p", timeout=FAST) as c:
        with pytest.raises(RemoteUnavailable, match="无法连接到星空服务器") as info:
            c.data_centers()
    assert info.value.unreachable


# -- file downloads ---------------------------------------------------------------------------------


def sandbox_host(cloud) -> list[str]:
    """The allow-list entry of the loopback file server: loopback is refused unless listed."""
    return [f"127.0.0.1:{cloud.url.rsplit(':', 1)[1]}"]


def test_fetch_file_returns_content_and_filename(cloud):
    url = cloud.add_file("inv-001.pdf", b"%PDF-1.7 invoice", download_name="增值税电子普通发票.pdf")
    content, name = fetch_file(url, max_bytes=1024, allowed_hosts=["127.0.0.1"], timeout=FAST)
    assert content == b"%PDF-1.7 invoice" and name == "增值税电子普通发票.pdf"
    plain = cloud.add_file("发票.ofd", b"ofd")
    assert fetch_file(plain, max_bytes=1024, allowed_hosts=sandbox_host(cloud), timeout=FAST)[1] == "发票.ofd"


def test_fetch_file_exact_cap_is_allowed(cloud):
    url = cloud.add_file("cap.bin", b"x" * 1000)
    assert len(fetch_file(url, max_bytes=1000, allowed_hosts=sandbox_host(cloud), timeout=FAST)[0]) == 1000


@pytest.mark.parametrize("chunked", [False, True])
def test_fetch_file_refuses_over_cap(cloud, chunked):
    url = cloud.add_file("big.bin", b"x" * 200_000) + ("?chunked=1" if chunked else "")
    with pytest.raises(IntegrationError, match="上限"):
        fetch_file(url, max_bytes=100_000, allowed_hosts=sandbox_host(cloud), timeout=FAST)


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


def test_fetch_file_redirects_are_checked_like_the_first_address(cloud):
    target = cloud.add_file("r.pdf", b"%PDF-redirected")
    port = cloud.url.rsplit(":", 1)[1]
    allowed = sandbox_host(cloud)
    same_host = f"{cloud.url}/redirect?to=/files/r.pdf"
    assert fetch_file(same_host, max_bytes=100, allowed_hosts=allowed, timeout=FAST) == (b"%PDF-redirected", "r.pdf")
    # Another host that passes the check is followed; one that does not is refused before any request.
    both = allowed + [f"localhost:{port}"]
    other_host = f"{cloud.url}/redirect?to={target.replace('127.0.0.1', 'localhost')}"
    assert fetch_file(other_host, max_bytes=100, allowed_hosts=both, timeout=FAST)[0] == b"%PDF-redirected"
    before = len(cloud.calls)
    with pytest.raises(IntegrationError, match="重定向到 localhost.*不在允许的列表中"):
        fetch_file(other_host, max_bytes=100, allowed_hosts=allowed, timeout=FAST)
    for inside in (f"http://[::ffff:127.0.0.1]:{port}/files/r.pdf", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(IntegrationError, match="重定向到"):
            fetch_file(f"{cloud.url}/redirect?to={inside}", max_bytes=100, allowed_hosts=allowed, timeout=FAST)
    assert len(cloud.calls) == before  # /redirect is not a file call; the refused targets were never asked
    loop = f"{cloud.url}/redirect?to=/redirect%3Fto%3D/redirect"
    with pytest.raises(IntegrationError, match="重定向"):
        fetch_file(loop, max_bytes=100, allowed_hosts=allowed, timeout=FAST, max_redirects=1)


def test_fetch_file_http_errors(cloud):
    with pytest.raises(RemoteRefused, match="HTTP 404") as info:
        fetch_file(cloud.file_url("missing.pdf"), max_bytes=100, allowed_hosts=sandbox_host(cloud), timeout=FAST)
    assert info.value.code == 404
    cloud.add_file("e.pdf", b"x")
    cloud.inject_fault(match="/files/", status=503, body="busy")
    with pytest.raises(RemoteUnavailable, match="HTTP 503"):
        fetch_file(cloud.file_url("e.pdf"), max_bytes=100, allowed_hosts=sandbox_host(cloud), timeout=FAST)


def test_fetch_file_unreachable_and_timeouts(cloud):
    port = free_port()
    with pytest.raises(RemoteUnavailable, match="无法连接到文件服务器") as info:
        fetch_file(f"http://127.0.0.1:{port}/a.pdf", max_bytes=100, allowed_hosts=[f"127.0.0.1:{port}"], timeout=FAST)
    assert info.value.unreachable
    url = cloud.add_file("slow.pdf", b"x" * 10)
    cloud.inject_fault(match="/files/", delay=1.0)
    with pytest.raises(RemoteUnavailable, match="响应超时"):
        fetch_file(url, max_bytes=100, allowed_hosts=sandbox_host(cloud), timeout=IMPATIENT)
    with pytest.raises(RemoteUnavailable, match="下载文件超时"):
        fetch_file(url, max_bytes=100, allowed_hosts=sandbox_host(cloud), timeout=FAST, deadline=0)


def test_fetch_file_deadline_covers_the_whole_transfer(cloud):
    """A server dripping one byte at a time never trips the read timeout; the wall clock stops it."""
    url = cloud.add_file("drip.pdf", b"%PDF" + b"x" * 196) + "?drip=0.05"  # 200 bytes: 10 s in all
    started = time.monotonic()
    with pytest.raises(RemoteUnavailable, match="下载文件超时"):
        fetch_file(url, max_bytes=1000, allowed_hosts=sandbox_host(cloud), timeout=FAST, deadline=0.5)
    assert time.monotonic() - started < 1.5


RESERVED = [
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://0.0.0.0/x", "http://224.0.0.1/x",
    "http://127.0.0.1/x", "http://localhost/x", "http://[::1]/x", "http://10.0.0.8/x", "http://172.16.5.4/x",
    "http://192.168.1.1/x", "http://100.64.0.1/x", "http://[fd00::1]/x",
    # IPv4 addresses in IPv6 clothing reach the same place as the plain form.
    "http://[::ffff:127.0.0.1]/x", "http://[::ffff:169.254.169.254]/latest/meta-data/", "http://[::ffff:10.0.0.1]/x",
    "http://[::ffff:0.0.0.0]/x", "http://[64:ff9b::a9fe:a9fe]/x", "http://[2002:7f00:1::]/x",
]


@pytest.mark.parametrize("url", RESERVED)
def test_fetch_file_refuses_inside_addresses_without_an_allow_list(url):
    with pytest.raises(IntegrationError) as err:
        fetch_file(url, max_bytes=1024, timeout=(0.5, 0.5))
    assert "保留地址" in err.value.message and "FETCH_ALLOWED_HOSTS" in err.value.message


def test_loopback_file_server_needs_the_allow_list(cloud):
    url = cloud.add_file("a.pdf", b"%PDF")
    with pytest.raises(IntegrationError, match="保留地址"):
        fetch_file(url, max_bytes=10, timeout=FAST)
    mapped = url.replace("127.0.0.1", "[::ffff:127.0.0.1]")
    with pytest.raises(IntegrationError, match="不在允许的列表中"):  # listing 127.0.0.1 lets no other spelling in
        fetch_file(mapped, max_bytes=10, allowed_hosts=sandbox_host(cloud), timeout=FAST)
    assert cloud.calls == []
    assert fetch_file(url, max_bytes=10, allowed_hosts=sandbox_host(cloud), timeout=FAST)[0] == b"%PDF"


def test_fetch_file_connects_to_the_address_it_checked(cloud, monkeypatch):
    """DNS rebinding: the name answers a public address for the check, then loopback; only the first is used."""
    url = cloud.add_file("a.pdf", b"%PDF").replace("127.0.0.1", "rebind.example")
    real = socket.getaddrinfo
    asked = []

    def resolver(host, port, *args, **kw):
        # Stands in for a hostile DNS server: a public address first, the loopback sandbox after.
        if host != "rebind.example":
            return real(host, port, *args, **kw)
        asked.append(host)
        address = "198.51.0.1" if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(RemoteUnavailable):
        fetch_file(url, max_bytes=10, timeout=(0.3, 0.3), deadline=1.0)
    assert asked == ["rebind.example"]  # resolved once
    assert cloud.calls == []  # and the loopback answer was never connected to


def tls_server_context(tmp_path):
    """A server TLS context with a fresh self-signed certificate for ``localhost`` (not trusted by clients)."""
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def serve_once(handler) -> tuple[int, threading.Thread, socket.socket]:
    """Accept one loopback connection in a thread and pass it to ``handler``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run():
        conn, _ = listener.accept()
        try:
            handler(conn)
        except OSError:
            pass  # the client gave up or refused the certificate: expected in these tests
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, listener


def test_pinned_https_keeps_the_name_for_sni_and_the_certificate_check(tmp_path):
    """Connecting to the checked address must not turn TLS into a check against that address."""
    context = tls_server_context(tmp_path)
    seen = []
    context.sni_callback = lambda sock, server_name, ctx: seen.append(server_name)
    port, thread, listener = serve_once(lambda conn: context.wrap_socket(conn, server_side=True).close())
    try:
        with pytest.raises(RemoteUnavailable, match="证书"):
            fetch_file(f"https://localhost:{port}/a.pdf", max_bytes=10, allowed_hosts=[f"localhost:{port}"],
                       timeout=FAST, deadline=3)
    finally:
        thread.join(3)
        listener.close()
    assert seen == ["localhost"]  # SNI carries the name, and the unknown issuer was refused


def test_the_deadline_also_covers_a_dripping_tls_handshake(tmp_path):
    """A TLS server whose handshake arrives a byte at a time is cut off at the deadline like a slow body."""
    context = tls_server_context(tmp_path)

    def drip_handshake(conn):
        # The real handshake bytes, relayed one every 50 ms: no read ever times out.
        inner, outer = socket.socketpair()

        def handshake():
            try:
                context.wrap_socket(inner, server_side=True).close()
            except OSError:
                pass  # the client hung up mid-handshake, as it should

        tls = threading.Thread(target=handshake, daemon=True)
        tls.start()
        conn.settimeout(0.05)
        outer.settimeout(0.05)
        try:
            while True:
                try:
                    outer.sendall(conn.recv(65536) or b"")
                except socket.timeout:
                    pass
                try:
                    byte = outer.recv(1)
                except socket.timeout:
                    continue
                if not byte:
                    return
                conn.sendall(byte)
                time.sleep(0.05)
        finally:
            outer.close()
            tls.join(3)
            inner.close()

    port, thread, listener = serve_once(drip_handshake)
    started = time.monotonic()
    try:
        with pytest.raises(RemoteUnavailable, match="下载文件超时"):
            # Generous timeouts: only the deadline can end this in time.
            fetch_file(f"https://localhost:{port}/a.pdf", max_bytes=10, allowed_hosts=[f"localhost:{port}"],
                       timeout=(5.0, 5.0), deadline=0.5)
        assert time.monotonic() - started < 1.5
    finally:
        thread.join(5)
        listener.close()


# -- workflow: paged queries, WorkflowAudit, chunked attachments ------------------------------


def _client(galaxy):
    return GalaxyClient(galaxy.base_url, TEST_GALAXY.acct_id, TEST_GALAXY.username, TEST_GALAXY.password)


def test_query_all_reads_every_page(galaxy):
    for n in range(2, 4503):
        galaxy.add_bill(TEST_GALAXY.form_id, 200000 + n, f"Q{n:05d}", "B")
    with _client(galaxy) as client:
        rows = client.query_all(TEST_GALAXY.form_id, ["FBillNo"], "FBillNo LIKE 'Q%'", order="FID")
    assert len(rows) == 4501 and rows[0] == ["Q00002"] and rows[-1] == ["Q04502"]
    queries = [c for c in galaxy.calls if c.get("service") == "executebillquery"]
    assert len(queries) == 3  # 2000 + 2000 + 501


def test_workflow_audit_uses_the_login_context_user(galaxy):
    with _client(galaxy) as client:
        client.login()
        galaxy.app.add_task(TEST_GALAXY.form_id, TEST_GALAXY.bill_no, client.user_id)
        client.workflow_audit(TEST_GALAXY.form_id, TEST_GALAXY.bill_no, 1, "影像审核通过：1 个影像，1 张发票")
        with pytest.raises(RemoteRefused, match="待审批任务"):
            client.workflow_audit(TEST_GALAXY.form_id, TEST_GALAXY.bill_no, 1, "again")
    assert galaxy.get_bill(TEST_GALAXY.form_id, number=TEST_GALAXY.bill_no).status == "C"


@pytest.mark.parametrize("mode", ["file_id", "separate"])
def test_big_attachments_arrive_byte_exact_whatever_the_server_does_with_parts(galaxy, mode):
    galaxy.app.chunk_mode = mode
    content = os.urandom(5 * 1024 * 1024 + 123)
    with _client(galaxy) as client:
        file_id = client.attachment_upload("大文件.pdf", TEST_GALAXY.form_id, TEST_GALAXY.bill_id, TEST_GALAXY.bill_no,
                                           content)
        assert client.attachment_download(file_id) == content
    stored = galaxy.attachments(form_id=TEST_GALAXY.form_id)
    assert [a["size"] for a in stored] == [len(content)]  # one attachment, no fragment beside it
    uploads = [c for c in galaxy.calls if c.get("service") == "attachmentupload"]
    # file_id: three parts; separate: two parts (the second answered with a new FileId) and then the whole file.
    assert len(uploads) == 3
