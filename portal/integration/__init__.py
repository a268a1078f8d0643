"""The one place that talks HTTP to the outside world.

Three remotes: Kingdee Cloud Galaxy's WebAPI (金蝶云星空), the invoice cloud (发票云) token
endpoint, and plain file downloads (the ``downloadUrl`` of pushed invoices).

Rules this module keeps for the rest of the code base (STYLE.md rule 9):

* every request has an explicit ``(connect, read)`` timeout;
* nothing is retried except where the protocol makes it safe: a Galaxy call answered with
  "session lost" (MsgCode 1) was not executed, so it is repeated once after logging in again;
* every remote failure surfaces as :class:`IntegrationError` (or a subclass) carrying the
  remote's own message, or a Chinese description when the remote said nothing usable;
* secrets (passwords, client secrets) never appear in exceptions or log lines.

Nothing here imports Flask: callers pass configuration in, so the module is usable from
views, background workers, the CLI and the tests alike.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from email.message import Message
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions
import urllib3.util.connection

from portal.signing import sign

__all__ = [
    "DEFAULT_TIMEOUT",
    "GalaxyClient",
    "IntegrationError",
    "InvoiceCloudClient",
    "RemoteRefused",
    "RemoteUnavailable",
    "allowed_hosts_from_config",
    "fetch_file",
    "host_allowed",
    "timeout_from_config",
]

log = logging.getLogger(__name__)

#: Seconds to wait for the TCP connect and for each read. Connect is short because a
#: host that does not answer SYN in 5 s is down; read is generous because Galaxy's Save
#: and attachment calls on a busy ERP take seconds.
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_TIMEOUT: tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)

#: Upper bound on the whole of one file download, on top of the per-read timeout,
#: so a server dripping one byte every few seconds cannot hold a worker forever.
DEFAULT_DOWNLOAD_DEADLINE = 120.0

#: Upper bound on one whole invoice verification call (查验), and on the size of its answer.
DEFAULT_CHECK_DEADLINE = 30.0
MAX_CHECK_REPLY = 1024 * 1024

_USER_AGENT = "portal-invoice-image/0.1 (+python-requests)"

Timeout = float | tuple[float, float]


def timeout_from_config(config: Mapping[str, Any]) -> tuple[float, float]:
    """Read ``OUTBOUND_CONNECT_TIMEOUT`` / ``OUTBOUND_READ_TIMEOUT`` from an app config.

    Missing keys fall back to the module defaults; pass the result as ``timeout=``.
    """
    return (
        float(config.get("OUTBOUND_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)),
        float(config.get("OUTBOUND_READ_TIMEOUT", DEFAULT_READ_TIMEOUT)),
    )


def allowed_hosts_from_config(config: Mapping[str, Any], key: str) -> list[str] | None:
    """Read a comma-separated host allow-list (e.g. ``ERP_ALLOWED_HOSTS``); empty → None (any host).

    Entries follow :func:`host_allowed`: ``host``, ``host:port`` or ``*.suffix``.
    """
    hosts = [h.strip() for h in str(config.get(key) or "").split(",") if h.strip()]
    return hosts or None


def _normalise_timeout(timeout: Timeout | None) -> tuple[float, float]:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, (int, float)):
        return (float(timeout), float(timeout))
    connect, read = timeout
    return (float(connect), float(read))


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class IntegrationError(Exception):
    """A call to an outside system failed.

    ``message`` is what to show the user: the remote's own words when it gave any,
    otherwise a Chinese description. ``code`` is the remote's code (Galaxy MsgCode or
    LoginResultType, invoice-cloud errcode) when there is one. ``unreachable`` is True
    when no answer came back at all (connection refused, DNS failure, timeout).

    The base class itself is raised for problems found before anything was sent
    (a malformed address, a download refused by our own policy).
    """

    def __init__(self, message: str, *, code: Any = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.unreachable = unreachable

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"unreachable={self.unreachable!r})"
        )


class RemoteRefused(IntegrationError):
    """The remote answered and said no: wrong password, bad signature, business rule.

    Retrying will not help; the user must change something. ``errors`` holds Galaxy's
    ``Errors`` list (``FieldName``/``Message``/``DIndex``) when the refusal came from one.
    """

    def __init__(self, message: str, *, code: Any = None, errors: list[dict] | None = None) -> None:
        super().__init__(message, code=code, unreachable=False)
        self.errors = list(errors or [])


class RemoteUnavailable(IntegrationError):
    """The remote could not be reached or gave no usable answer.

    Connection errors and timeouts (``unreachable`` True), HTTP 5xx and replies that are
    not the JSON we expect (``unreachable`` False). Usually worth trying again later.
    """

    def __init__(self, message: str, *, code: Any = None, unreachable: bool = True) -> None:
        super().__init__(message, code=code, unreachable=unreachable)


# --------------------------------------------------------------------------------------
# Transport helpers
# --------------------------------------------------------------------------------------


def _host_of(url: str) -> str:
    # Host and port only: credentials written into an address never reach a message.
    try:
        return urlsplit(url).netloc.rpartition("@")[2] or url
    except ValueError:
        return url


def _send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    label: str,
    timeout: tuple[float, float],
    **kwargs: Any,
) -> requests.Response:
    """Send one request and translate transport failures into the exception family."""
    host = _host_of(url)
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL) as exc:
        raise IntegrationError(f"{label}地址格式不正确：{url}") from exc
    except requests.exceptions.ConnectTimeout as exc:
        raise RemoteUnavailable(f"连接{label}（{host}）超时（超过 {timeout[0]:g} 秒）") from exc
    except requests.exceptions.ReadTimeout as exc:
        raise RemoteUnavailable(f"{label}（{host}）响应超时（超过 {timeout[1]:g} 秒）") from exc
    except requests.exceptions.SSLError as exc:
        raise RemoteUnavailable(f"与{label}（{host}）建立 HTTPS 连接失败，请检查证书") from exc
    except requests.exceptions.ConnectionError as exc:
        raise RemoteUnavailable(f"无法连接到{label}（{host}），请检查地址和网络") from exc
    except requests.exceptions.RequestException as exc:
        raise RemoteUnavailable(f"请求{label}（{host}）失败：{type(exc).__name__}") from exc


def _parse_json_bytes(content: bytes) -> Any:
    # .NET servers sometimes prefix a BOM; utf-8-sig strips it when present.
    return json.loads(content.decode("utf-8-sig"))


def _remote_words(body: Any) -> tuple[str | None, Any]:
    """Pick the human message and code out of an error body, whatever its dialect."""
    if not isinstance(body, dict):
        return None, None
    message = (
        body.get("description_cn")
        or body.get("description")
        or body.get("Message")
        or body.get("message")
    )
    code = body.get("errcode", body.get("MsgCode", body.get("code")))
    return (str(message) if message else None), code


def _reject_server_error(resp: requests.Response, label: str, body: Any = None) -> None:
    if resp.status_code >= 500:
        message, code = _remote_words(body)
        text = f"{label}（{_host_of(resp.url)}）返回 HTTP {resp.status_code} 错误"
        if message:
            text = f"{text}：{message}"
        raise RemoteUnavailable(text, code=code, unreachable=False)


def _not_json(resp: requests.Response, label: str) -> RemoteUnavailable:
    return RemoteUnavailable(
        f"{label}（{_host_of(resp.url)}）返回的内容不是有效的 JSON（HTTP {resp.status_code}），"
        "请检查地址是否正确",
        unreachable=False,
    )


def _json_reply(resp: requests.Response, label: str) -> Any:
    """Parse a JSON reply; 5xx and non-JSON become RemoteUnavailable."""
    try:
        body = _parse_json_bytes(resp.content)
    except (UnicodeDecodeError, ValueError):
        body = None
        _reject_server_error(resp, label)
        raise _not_json(resp, label) from None
    _reject_server_error(resp, label, body)
    return body


# --------------------------------------------------------------------------------------
# Invoice cloud (发票云)
# --------------------------------------------------------------------------------------


class InvoiceCloudClient:
    """Client for the invoice cloud's standard-edition open API: access token and verification (查验)."""

    label = "发票云"

    def __init__(self, base_url: str, timeout: Timeout | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = _normalise_timeout(timeout)

    def fetch_token(self, client_id: str, client_secret: str) -> dict:
        """Obtain an access token; return the reply (``access_token``, ``expires_in``, ...).

        Raises RemoteRefused with the cloud's ``description`` for any errcode other than
        ``"0000"`` (unknown client, bad signature, expired licence), RemoteUnavailable when
        the cloud cannot be reached or answers garbage. Validating an enterprise's
        credentials is exactly this call.
        """
        timestamp = int(time.time() * 1000)
        body = {
            "client_id": client_id,
            "timestamp": timestamp,
            "sign": sign(client_id, client_secret, timestamp, 0),
        }
        url = f"{self.base_url}/base/oauth/token"
        with requests.Session() as session:
            resp = _send(
                session,
                "POST",
                url,
                label=self.label,
                timeout=self.timeout,
                json=body,
                headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
            )
            reply = _json_reply(resp, self.label)
        if not isinstance(reply, dict) or "errcode" not in reply:
            raise RemoteUnavailable(
                f"{self.label}返回了无法识别的令牌应答（HTTP {resp.status_code}）", unreachable=False
            )
        errcode = str(reply.get("errcode"))
        if errcode != "0000":
            description = reply.get("description") or f"{self.label}拒绝了请求（errcode={errcode}）"
            raise RemoteRefused(str(description), code=errcode)
        if not reply.get("access_token"):
            raise RemoteUnavailable(f"{self.label}的应答中缺少 access_token", code=errcode, unreachable=False)
        return reply

    def check_invoice(self, access_token: str, fields: Mapping[str, Any], *,
                      deadline: float = DEFAULT_CHECK_DEADLINE) -> dict:
        """查验: ``POST /m13/bill/invoice/sys/check?access_token=…`` with ``fields``; return the reply.

        The reply is returned whatever its ``errcode`` (what a code means is the caller's rule,
        :mod:`portal.verification`); RemoteUnavailable when the cloud cannot be reached, times out,
        answers 5xx or something that is not a JSON object with an ``errcode``. Besides the
        per-read timeout, ``deadline`` seconds bound the whole call (a cloud dripping its answer is
        cut off), and an answer above :data:`MAX_CHECK_REPLY` bytes is refused.
        """
        url = f"{self.base_url}/m13/bill/invoice/sys/check"
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        adapter = _PinnedAdapter()  # only for its cut(): the cloud's address is the operator's setting
        try:
            adapter.pins[(host, port)] = _resolve(host, port, check=False)
        except RemoteUnavailable:
            raise RemoteUnavailable(f"无法解析{self.label}的主机名 {host}，请检查发票云地址") from None
        expired = threading.Event()

        def cut_off() -> None:
            expired.set()
            adapter.cut()

        too_slow = RemoteUnavailable(f"{self.label}（{_host_of(url)}）查验超时（整个请求超过 {deadline:g} 秒）")
        watchdog = threading.Timer(max(deadline, 0.0), cut_off)
        watchdog.daemon = True
        # The watchdog cuts an open connection; a connect in progress is bounded by its own timeout.
        timeout = (min(self.timeout[0], deadline), self.timeout[1])
        with requests.Session() as session:
            session.trust_env = False
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            watchdog.start()
            try:
                resp = _send(session, "POST", url, label=self.label, timeout=timeout, json=dict(fields),
                             params={"access_token": access_token}, stream=True,
                             headers={"User-Agent": _USER_AGENT, "Accept": "application/json"})
                with resp:
                    body = bytearray()
                    for chunk in resp.iter_content(chunk_size=16 * 1024):
                        body += chunk
                        if len(body) > MAX_CHECK_REPLY:
                            raise RemoteUnavailable(f"{self.label}的查验应答过大，已拒绝", unreachable=False)
            except (RemoteUnavailable, requests.exceptions.RequestException, OSError) as exc:
                if expired.is_set():
                    raise too_slow from None
                if isinstance(exc, IntegrationError):
                    raise
                raise RemoteUnavailable(f"读取{self.label}（{_host_of(url)}）的查验应答时连接中断或超时") from exc
            finally:
                watchdog.cancel()
        if expired.is_set():
            raise too_slow
        try:
            reply = _parse_json_bytes(bytes(body))
        except (UnicodeDecodeError, ValueError):
            _reject_server_error(resp, self.label)
            raise _not_json(resp, self.label) from None
        _reject_server_error(resp, self.label, reply)
        if not isinstance(reply, dict) or "errcode" not in reply:
            raise RemoteUnavailable(f"{self.label}返回了无法识别的查验应答（HTTP {resp.status_code}）", unreachable=False)
        return reply


# --------------------------------------------------------------------------------------
# Kingdee Cloud Galaxy WebAPI (金蝶云星空)
# --------------------------------------------------------------------------------------

_STUB = "Kingdee.BOS.WebApi.ServicesStub"
SERVICE_VALIDATE_USER = f"{_STUB}.AuthService.ValidateUser"
SERVICE_DATA_CENTER_LIST = "Kingdee.BOS.ServiceFacade.ServicesStub.Account.AccountService.GetDataCenterList"
MSG_CODE_SESSION_LOST = 1
QUERY_PAGE = 2000  # ExecuteBillQuery rows per call (the server's default cap)
ATTACHMENT_PART = 2 * 1024 * 1024  # bytes per AttachmentUpLoad call
_SESSION_LOST_TEXT = "会话信息已丢失"

_LOGIN_FALLBACK = {
    0: "用户名或密码错误",
    -1: "登录星空失败",
}


def _decode_galaxy_body(content: bytes) -> Any:
    """Decode a Galaxy reply: plain JSON, raw gzip, or base64 text of gzip (``H4sI...``).

    Some Galaxy installations compress GetDataCenterList without a Content-Encoding
    header, and some wrap that in base64; requests cannot know, so we sniff.
    """
    data = content
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    else:
        stripped = data.strip().strip(b'"')
        if stripped.startswith(b"H4sI"):
            data = gzip.decompress(base64.b64decode(stripped))
    body = _parse_json_bytes(data)
    # A JSON string holding JSON happens with hand-rolled plug-ins; unwrap one level.
    if isinstance(body, str) and body[:1] in ("[", "{"):
        body = json.loads(body)
    return body


def _response_status(reply: Any) -> dict | None:
    """Find ``Result.ResponseStatus`` in a Galaxy reply, if it has one.

    ExecuteBillQuery wraps its error envelope in ``[[{...}]]``; unwrap single-item lists.
    """
    node = reply
    while isinstance(node, list) and len(node) == 1:
        node = node[0]
    if isinstance(node, dict):
        result = node.get("Result")
        if isinstance(result, dict) and isinstance(result.get("ResponseStatus"), dict):
            return result["ResponseStatus"]
    return None


def _truthy(value: Any) -> bool:
    # Galaxy writes booleans as JSON booleans, but templates and plug-ins send "true"/"false".
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _status_message(status: dict) -> str:
    errors = status.get("Errors") or []
    messages = [str(e.get("Message")).strip() for e in errors if isinstance(e, dict) and e.get("Message")]
    if messages:
        return _clip("；".join(messages))
    return f"星空返回操作失败（MsgCode={status.get('MsgCode')}，ErrorCode={status.get('ErrorCode')}）"


#: Longest remote message shown to a person; a hostile server's essay stops here.
_MAX_REMOTE_MESSAGE = 300


def _clip(text: Any) -> str:
    """One line of at most ``_MAX_REMOTE_MESSAGE`` characters (control characters folded to spaces)."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_REMOTE_MESSAGE else line[:_MAX_REMOTE_MESSAGE] + "…"


def _galaxy_message(reply: Any) -> str | None:
    """Galaxy's own words in a reply: ``Message`` or ``Result.ResponseStatus.Errors[].Message``.

    Nothing else of a body is ever shown: whatever answers at a mistyped or hostile address (a
    proxy, an internal service) must not have its replies read back through the portal.
    """
    if isinstance(reply, dict) and isinstance(reply.get("Message"), str) and reply["Message"].strip():
        return _clip(reply["Message"])
    status = _response_status(reply)
    if status is not None and status.get("Errors"):
        return _clip(_status_message(status))
    return None


def _is_session_lost(reply: Any) -> bool:
    status = _response_status(reply)
    if status is None:
        return False
    if _truthy(status.get("IsSuccess")):
        return False
    try:
        if int(status.get("MsgCode") or 0) == MSG_CODE_SESSION_LOST:
            return True
    except (TypeError, ValueError):
        pass
    return _SESSION_LOST_TEXT in _status_message(status)


class GalaxyClient:
    """A logged-in conversation with one Galaxy data centre as one user.

    Holds a ``requests.Session`` (cookie jar plus the ``kdservice-sessionid`` header, as the
    official SDK does). Not thread-safe: use one client per job or request, and close it
    (``with GalaxyClient(...) as galaxy:``).
    """

    label = "星空服务器"

    def __init__(
        self,
        base_url: str,
        acct_id: str,
        username: str,
        password: str,
        lcid: int = 2052,
        timeout: Timeout | None = None,
        allowed_hosts: list[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: When given, only hosts matching it are called (see :func:`host_allowed`).
        self.allowed_hosts = allowed_hosts
        self.acct_id = acct_id
        self.username = username
        self._password = password
        self.lcid = lcid
        self.timeout = _normalise_timeout(timeout)
        self.session_id: str | None = None
        self.user_id: int | None = None  # the login context's UserId: whose workflow tasks we hold
        self._logged_in = False
        self._session = requests.Session()
        self._session.headers.update(
            {
                "Accept": "application/json",
                "Content-Type": "application/json; charset=utf-8",
                "Accept-Charset": "utf-8",
                "User-Agent": _USER_AGENT,
            }
        )

    def __repr__(self) -> str:  # the password stays out of reprs and tracebacks
        return f"GalaxyClient({self.base_url!r}, acct_id={self.acct_id!r}, username={self.username!r})"

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections. The client must not be used afterwards."""
        self._session.close()

    def __enter__(self) -> GalaxyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------

    def service_url(self, service: str) -> str:
        """Full URL of a service, e.g. ``...DynamicFormService.Save`` → ``{base}/....common.kdsvc``."""
        return f"{self.base_url}/{service}.common.kdsvc"

    def _check_target(self, url: str) -> None:
        """Refuse, before anything is sent, an address that is not plain http(s) to an allowed host."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise IntegrationError("星空前缀地址格式不正确，请检查") from None
        if parts.scheme not in ("http", "https"):
            raise IntegrationError("星空前缀地址应以 http:// 或 https:// 开头")
        if not parts.hostname:
            raise IntegrationError("星空前缀地址缺少主机名")
        if self.allowed_hosts is not None and not host_allowed(url, self.allowed_hosts):
            raise IntegrationError(f"星空服务器 {parts.hostname} 不在允许的地址列表（ERP_ALLOWED_HOSTS）中，已拒绝")

    def _post(self, service: str, body: Any) -> Any:
        """POST one service call; every failure is one fixed message per class.

        Redirects are never followed: a 307 would carry the body (the password at login) to
        whatever host it names. Only Galaxy's own message fields are ever shown, never the
        body or the socket error, so the test cannot be used to read or map another network.
        """
        url = self.service_url(service)
        self._check_target(url)
        resp = _send(
            self._session,
            "POST",
            url,
            label=self.label,
            timeout=self.timeout,
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            allow_redirects=False,
        )
        host = _host_of(url)
        if 300 <= resp.status_code < 400:
            raise RemoteUnavailable(f"{self.label}（{host}）要求跳转到其他地址，已拒绝：请直接填写星空的前缀地址",
                                    unreachable=False)
        try:
            reply = _decode_galaxy_body(resp.content)
        except (OSError, EOFError, binascii.Error, UnicodeDecodeError, ValueError):
            reply = None
            if resp.status_code < 500:
                raise RemoteUnavailable(f"{self.label}（{host}）的应答不是星空 WebAPI 的内容，请检查前缀地址",
                                        unreachable=False) from None
        if resp.status_code >= 500:
            message = _galaxy_message(reply)
            code = reply.get("MsgCode") if isinstance(reply, dict) else None
            # The 5xx number helps whoever reads the write-back list and tells no more than the class does.
            raise RemoteUnavailable(f"{self.label}（{host}）内部错误（HTTP {resp.status_code}）"
                                    + (f"：{message}" if message else ""), code=code, unreachable=False)
        return reply

    # -- unauthenticated ----------------------------------------------------------------

    def data_centers(self) -> list[dict]:
        """List the data centres (账套) of this Galaxy; needs no login.

        Each item has at least ``Id`` (the acct id to log in with), ``Number`` and ``Name``.
        """
        reply = self._post(SERVICE_DATA_CENTER_LIST, {})
        if isinstance(reply, dict):
            message = _galaxy_message(reply)
            if message:
                raise RemoteRefused(message, code=reply.get("MsgCode"))
        if not isinstance(reply, list) or not all(isinstance(item, dict) for item in reply):
            raise RemoteUnavailable("星空返回的数据中心列表格式无法识别", unreachable=False)
        return reply

    # -- session ------------------------------------------------------------------------

    def login(self) -> dict:
        """Log in with ValidateUser; return Galaxy's reply on ``LoginResultType == 1``.

        Any other result raises RemoteRefused carrying Galaxy's ``Message`` (wrong data
        centre, wrong password, user not allowed to call WebAPI, ...) and the
        LoginResultType as ``code``.
        """
        self._logged_in = False
        reply = self._post(
            SERVICE_VALIDATE_USER,
            {"acctid": self.acct_id, "username": self.username, "password": self._password, "lcid": self.lcid},
        )
        if not isinstance(reply, dict) or "LoginResultType" not in reply:
            raise RemoteUnavailable("星空登录接口返回了无法识别的内容，请检查前缀地址", unreachable=False)
        result_type = reply.get("LoginResultType")
        try:
            result_type = int(result_type)
        except (TypeError, ValueError):
            pass
        if result_type != 1:
            message = _galaxy_message(reply) or _LOGIN_FALLBACK.get(result_type, "登录星空失败")
            raise RemoteRefused(message, code=result_type)
        self.session_id = reply.get("KDSVCSessionId") or self._session.cookies.get("kdservice-sessionid")
        if self.session_id:
            # The official SDK echoes the session id as a header as well as the cookie;
            # some reverse proxies drop cookies on the way to IIS.
            self._session.headers["kdservice-sessionid"] = self.session_id
        context = reply.get("Context") if isinstance(reply.get("Context"), dict) else {}
        try:
            self.user_id = int(context.get("UserId"))
        except (TypeError, ValueError):
            self.user_id = None
        self._logged_in = True
        log.info("galaxy login ok: acct=%s user=%s host=%s", self.acct_id, self.username, _host_of(self.base_url))
        return reply

    # -- business calls ------------------------------------------------------------------

    def call(self, service_op: str, payload: Any) -> Any:
        """Call a DynamicFormService operation (``"Save"`` or ``"DynamicFormService.Save"``).

        Logs in first if needed. A "session lost" reply (MsgCode 1) means the call was not
        executed, so it logs in again once and repeats it; nothing else is retried.
        A reply whose ``ResponseStatus.IsSuccess`` is false raises RemoteRefused with the
        joined ``Errors[].Message`` and ``MsgCode`` as ``code``. Returns the parsed reply.
        """
        service = service_op if "." in service_op else f"DynamicFormService.{service_op}"
        service = f"{_STUB}.{service}"
        if not self._logged_in:
            self.login()
        reply = self._post(service, payload)
        if _is_session_lost(reply):
            log.info("galaxy session lost on %s, logging in again once", service_op)
            self.login()
            reply = self._post(service, payload)
        status = _response_status(reply)
        if status is not None and not _truthy(status.get("IsSuccess")):
            if _is_session_lost(reply):
                self._logged_in = False
            raise RemoteRefused(_status_message(status), code=status.get("MsgCode"), errors=status.get("Errors"))
        return reply

    def save(self, form_id: str, data: dict) -> dict:
        """Save a bill (``data`` is Galaxy's Save parameter: ``Model``, ``NeedUpDateFields``...).

        Returns ``Result`` (``Id``, ``Number``, ``ResponseStatus``...).
        """
        reply = self.call("Save", {"formid": form_id, "data": data})
        return reply["Result"]

    def view(self, form_id: str, number: str | None = None, id: int | str | None = None) -> dict:
        """Read one bill by number or internal id; return Galaxy's ``Result.Result`` object."""
        if number is None and id is None:
            raise ValueError("view() needs a bill number or id")
        data: dict[str, Any] = {"CreateOrgId": 0}
        if number is not None:
            data["Number"] = number
        if id is not None:
            data["Id"] = str(id)
        reply = self.call("View", {"formid": form_id, "data": data})
        bill = (reply.get("Result") or {}).get("Result") if isinstance(reply, dict) else None
        if not bill:
            raise RemoteRefused(f"星空中找不到单据 {number or id}")
        return bill

    def bill_query(self, form_id: str, field_keys: list[str], filter_string: str = "", *, order: str = "",
              start: int = 0, limit: int = QUERY_PAGE) -> list[list[Any]]:
        """One ExecuteBillQuery page: rows in ``field_keys`` order (at most ``limit`` ≤ 2000)."""
        data = {"FormId": form_id, "FieldKeys": ",".join(field_keys), "FilterString": filter_string,
                "OrderString": order, "StartRow": start, "Limit": min(limit, QUERY_PAGE), "TopRowCount": 0}
        reply = self.call("ExecuteBillQuery", {"formid": form_id, "data": data})
        if not isinstance(reply, list) or not all(isinstance(row, list) for row in reply):
            raise RemoteUnavailable("星空查询接口返回了无法识别的内容", unreachable=False)
        return reply

    def query_all(self, form_id: str, field_keys: list[str], filter_string: str = "", *, order: str = "",
                  max_rows: int = 100_000) -> list[list[Any]]:
        """Every row of a query, page by page (``StartRow``/``Limit``) until a short page."""
        rows: list[list[Any]] = []
        while len(rows) < max_rows:
            page = self.bill_query(form_id, field_keys, filter_string, order=order, start=len(rows))
            rows.extend(page)
            if len(page) < QUERY_PAGE:
                return rows
        raise RemoteUnavailable(f"星空查询结果超过 {max_rows} 行，请缩小范围", unreachable=False)

    def workflow_audit(self, form_id: str, bill_no: str, approval_type: int, disposition: str,
                       *, post_id: int | None = None) -> dict:
        """Process the logged-in user's workflow task of one bill: 1 approve, 2 reject, 3 terminate.

        Never retried here: when the outcome is unknown (timeout, connection lost) the caller
        re-reads the task before deciding anything. A refusal raises RemoteRefused with
        Galaxy's own message.
        """
        if self.user_id is None:
            self.login()
        data: dict[str, Any] = {"FormId": form_id, "Numbers": [bill_no], "UserId": self.user_id,
                                "ApprovalType": approval_type, "Disposition": disposition}
        if post_id:
            data["PostId"] = post_id
        reply = self.call("WorkflowAudit", {"formid": form_id, "data": data})
        return reply.get("Result") if isinstance(reply, dict) else {}

    def attachment_upload(self, file_name: str, form_id: str, inter_id: int | str, bill_no: str, content: bytes,
                          *, part_size: int = ATTACHMENT_PART) -> str:
        """Attach ``content`` to a bill; return Galaxy's FileId.

        Up to ``part_size`` bytes go in one call. A larger file goes in parts: the first without
        ``FileId``, later ones with the FileId the first answered, ``IsLast`` on the last (Galaxy
        answers success without storing anything when IsLast is missing). Reference A.6 could not
        confirm that servers continue by FileId, so a non-final part is always sent before the
        final one: if the server answers it with another FileId, nothing has been stored yet and the
        file goes again in one piece. Not retried: a second call could attach the file twice.
        """
        if len(content) <= part_size:
            return self._upload_part(file_name, form_id, inter_id, bill_no, content, None, True)
        count = max(3, -(-len(content) // part_size))
        size = -(-len(content) // count)
        parts = [content[i:i + size] for i in range(0, len(content), size)]
        file_id = self._upload_part(file_name, form_id, inter_id, bill_no, parts[0], None, False)
        for index, part in enumerate(parts[1:], start=1):
            last = index == len(parts) - 1
            answered = self._upload_part(file_name, form_id, inter_id, bill_no, part, file_id, last)
            if answered != file_id:
                if last:  # cannot happen after a continued non-final part; never attach a fragment silently
                    raise RemoteUnavailable("星空分块上传附件时返回了不同的 FileId", unreachable=False)
                log.warning("galaxy did not continue upload %s by FileId; sending %s in one piece", file_id, file_name)
                return self._upload_part(file_name, form_id, inter_id, bill_no, content, None, True)
        return file_id

    def _upload_part(self, file_name: str, form_id: str, inter_id: int | str, bill_no: str, part: bytes,
                     file_id: str | None, last: bool) -> str:
        data = {"FileName": file_name, "FormId": form_id, "InterId": str(inter_id), "BillNO": bill_no,
                "IsLast": last, "SendByte": base64.b64encode(part).decode("ascii")}
        if file_id:
            data["FileId"] = file_id
        reply = self.call("AttachmentUpLoad", {"data": data})
        answered = (reply.get("Result") or {}).get("FileId") if isinstance(reply, dict) else None
        if not answered:
            raise RemoteUnavailable("星空上传附件后没有返回 FileId", unreachable=False)
        return str(answered)

    def attachment_download(self, file_id: str) -> bytes:
        """Download an attachment by FileId, following Galaxy's chunking (StartIndex/IsLast)."""
        parts: list[bytes] = []
        start = 0
        # A well-behaved server ends with IsLast; the bound only protects against one
        # that keeps answering without making progress.
        for _ in range(100_000):
            reply = self.call("AttachmentDownLoad", {"data": {"FileId": file_id, "StartIndex": start}})
            result = reply.get("Result") if isinstance(reply, dict) else None
            if not isinstance(result, dict) or result.get("FilePart") is None:
                raise RemoteUnavailable("星空下载附件的应答中缺少 FilePart", unreachable=False)
            try:
                chunk = base64.b64decode(result["FilePart"], validate=True)
            except (binascii.Error, ValueError):
                raise RemoteUnavailable("星空返回的附件内容不是有效的 base64", unreachable=False) from None
            parts.append(chunk)
            start += len(chunk)
            if "IsLast" not in result or _truthy(result.get("IsLast")) or not chunk:
                break
        content = b"".join(parts)
        expected = result.get("FileSize")
        if expected not in (None, "") and str(expected).isdigit() and int(expected) != len(content):
            raise RemoteUnavailable(
                f"星空附件大小不一致：应为 {expected} 字节，实际收到 {len(content)} 字节", unreachable=False
            )
        return content


# --------------------------------------------------------------------------------------
# File downloads
# --------------------------------------------------------------------------------------


def _split_host_entry(entry: str) -> tuple[str, int | None] | None:
    entry = entry.strip().lower()
    if not entry:
        return None
    try:
        parts = urlsplit(f"//{entry}")
        return (parts.hostname or "", parts.port)
    except ValueError:
        return None


def host_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    """True when the URL's host matches an allow-list entry.

    Entries are ``host``, ``host:port`` or ``*.suffix`` (any subdomain of suffix, not the
    suffix itself); hosts compare case-insensitively.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    if not host:
        return False
    for entry in allowed_hosts:
        split = _split_host_entry(entry)
        if split is None:
            continue
        pattern, entry_port = split
        if entry_port is not None and entry_port != port:
            continue
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


class _Refused(IntegrationError):
    """A download refused by our own policy before anything was sent to that address."""


def _check_download_url(url: str, allowed_hosts: list[str] | None) -> tuple[str, int]:
    """Check scheme, host and allow-list of ``url``; return its ``(host, port)``."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise IntegrationError(f"下载地址格式不正确：{url}") from None
    if parts.scheme not in ("http", "https"):
        raise _Refused("下载地址只支持 http 或 https 协议")
    if not parts.hostname:
        raise IntegrationError(f"下载地址缺少主机名：{url}")
    if allowed_hosts is not None and not host_allowed(url, allowed_hosts):
        raise _Refused(f"下载地址的主机 {parts.hostname} 不在允许的列表中")
    return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def _public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the public internet: not loopback, private, link-local, multicast...

    IPv4 addresses hidden in IPv6 (``::ffff:a.b.c.d``, the NAT64 prefix, 6to4, Teredo) are judged by
    the IPv4 address they reach, so ``[::ffff:169.254.169.254]`` is link-local like the plain form.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not _public_address(embedded):
            return False
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _resolve(host: str, port: int, check: bool) -> list[str]:
    """Resolve ``host`` once and return the addresses to connect to, in the resolver's order.

    With ``check`` every address the name resolves to must be public: a name that answers one
    public and one private address is refused, since the connection could land on either.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise RemoteUnavailable(f"无法解析文件服务器的主机名 {host}，请检查下载地址") from None
    addresses = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise RemoteUnavailable(f"无法解析文件服务器的主机名 {host}，请检查下载地址")
    if check:
        for text in addresses:
            try:
                ip = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                ip = None
            if ip is None or not _public_address(ip):
                # Loopback, private networks, link-local (cloud metadata services), mapped forms of
                # those and unspecified addresses are our own side of the wall: refused by default.
                raise _Refused(
                    f"下载地址的主机 {host} 指向本机、内网或保留地址（{text}），已拒绝；"
                    "确需从该主机下载时，请把它加入 FETCH_ALLOWED_HOSTS")
    return list(dict.fromkeys(addresses))


class _PinnedConnectionMixin:
    """A urllib3 connection that connects to the address checked before, never to a fresh lookup.

    The URL keeps the host name, so the Host header, TLS SNI and the certificate check all use the
    name; only the TCP connect goes to the pinned address (no DNS rebinding between check and use).
    """

    pinned_addresses: list[str] = []
    on_connect: Any = None

    def _new_conn(self):
        """Open the TCP connection to the first pinned address that answers (urllib3 hook)."""
        if not self.pinned_addresses:
            raise urllib3.exceptions.NewConnectionError(self, "下载地址未经检查，拒绝连接")
        error: OSError | None = None
        for address in self.pinned_addresses:  # e.g. IPv6 first, IPv4 when that does not answer
            try:
                sock = urllib3.util.connection.create_connection(
                    (address, self.port), self.timeout,
                    source_address=self.source_address, socket_options=self.socket_options)
            except socket.timeout as exc:
                raise urllib3.exceptions.ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from exc
            except OSError as exc:
                error = exc
                continue
            if self.on_connect is not None:
                # A second descriptor of the same socket: TLS wrapping detaches this one, and the
                # response may outlive the connection object, but shutting the dup down still cuts
                # the TLS handshake, the headers and the body alike.
                self.on_connect(sock.dup())
            return sock
        raise urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {error}")


class _PinnedHTTPConnection(_PinnedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _PinnedAdapter(requests.adapters.HTTPAdapter):
    """Transport of one download: connects each ``(host, port)`` only to the address in ``pins``.

    It also keeps a descriptor of every connection it opened, so the deadline watchdog can cut them.
    """

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], list[str]] = {}
        self.sockets: list[socket.socket] = []
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        adapter = self

        def pool_class(base: type, connection_class: type) -> type:
            class Pool(base):
                ConnectionCls = connection_class

                def _new_conn(self):
                    conn = super()._new_conn()
                    conn.pinned_addresses = adapter.pins.get(((self.host or "").lower(), int(self.port or 0)), [])
                    conn.on_connect = adapter.sockets.append
                    return conn

            return Pool

        self.poolmanager.pool_classes_by_scheme = {
            "http": pool_class(urllib3.HTTPConnectionPool, _PinnedHTTPConnection),
            "https": pool_class(urllib3.HTTPSConnectionPool, _PinnedHTTPSConnection),
        }

    def cut(self) -> None:
        """Shut every open connection down, waking a read blocked on a dripping server."""
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Close the pools and the watchdog's descriptors."""
        super().close()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def _human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} 字节"


def _filename_from(resp: requests.Response, url: str) -> str | None:
    disposition = resp.headers.get("Content-Disposition")
    name = None
    if disposition:
        msg = Message()
        msg["Content-Disposition"] = disposition
        name = msg.get_filename()  # handles RFC 2231 filename*=UTF-8''...
    if not name:
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    # Never trust a remote path: keep only the last component.
    name = PurePosixPath(name.replace("\\", "/")).name if name else ""
    return name or None


def fetch_file(
    url: str,
    *,
    max_bytes: int,
    allowed_hosts: list[str] | None = None,
    timeout: Timeout | None = None,
    deadline: float = DEFAULT_DOWNLOAD_DEADLINE,
    max_redirects: int = 5,
) -> tuple[bytes, str | None]:
    """Download ``url`` and return ``(content, filename or None)``.

    Only http/https. When ``allowed_hosts`` is given the host must match it (see
    :func:`host_allowed`). A host that is not allow-listed must resolve only to public
    addresses: loopback, private, link-local, multicast, unspecified and IPv4-mapped forms
    of those are refused. The host is resolved once and the connection goes to the address
    that was checked. Redirects are followed by hand, at most ``max_redirects``, each target
    checked the same way. The body is refused as soon as it exceeds ``max_bytes`` (declared
    or actual), and ``deadline`` seconds of wall-clock time bound the whole transfer —
    connect, headers and body; a server dripping bytes is cut off when it runs out. Every
    failure raises IntegrationError (RemoteRefused for HTTP 4xx, RemoteUnavailable for
    transport/5xx/timeout).
    """
    timeout = _normalise_timeout(timeout)
    label = "文件服务器"
    ends_at = time.monotonic() + deadline
    adapter = _PinnedAdapter()
    expired = threading.Event()

    def cut_off() -> None:
        expired.set()
        adapter.cut()

    def too_slow(host: str) -> RemoteUnavailable:
        return RemoteUnavailable(f"从{label}（{host}）下载文件超时（整个下载超过 {deadline:g} 秒）")

    watchdog = threading.Timer(max(deadline, 0.0), cut_off)
    watchdog.daemon = True
    current = url
    with requests.Session() as session:
        # No proxy from the environment: it would resolve the name itself and undo the pinning.
        session.trust_env = False
        session.headers["User-Agent"] = _USER_AGENT
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        watchdog.start()
        try:
            for hop in range(max_redirects + 1):
                try:
                    host, port = _check_download_url(current, allowed_hosts)
                    if (host, port) not in adapter.pins:
                        adapter.pins[(host, port)] = _resolve(
                            host, port, check=not (allowed_hosts and host_allowed(current, allowed_hosts)))
                except _Refused as exc:
                    if hop:
                        raise _Refused(f"下载地址被重定向到 {urlsplit(current).hostname}，{exc.message}") from None
                    raise
                remaining = ends_at - time.monotonic()
                if remaining <= 0 or expired.is_set():
                    raise too_slow(_host_of(current))
                hop_timeout = (min(timeout[0], remaining), min(timeout[1], remaining))
                try:
                    resp = _send(session, "GET", current, label=label, timeout=hop_timeout, stream=True,
                                 allow_redirects=False)
                except RemoteUnavailable:
                    if expired.is_set():
                        raise too_slow(_host_of(current)) from None
                    raise
                with resp:
                    if resp.is_redirect:
                        current = urljoin(current, resp.headers.get("Location", ""))
                        continue
                    return _read_body(resp, current, label, max_bytes, expired, too_slow)
            raise IntegrationError(f"下载地址重定向次数过多（超过 {max_redirects} 次）")
        finally:
            watchdog.cancel()


def _read_body(resp: requests.Response, url: str, label: str, max_bytes: int, expired: threading.Event,
               too_slow: Any) -> tuple[bytes, str | None]:
    """Read a final (non-redirect) download answer within the size cap; see :func:`fetch_file`."""
    host = _host_of(url)
    if resp.status_code >= 500:
        raise RemoteUnavailable(f"{label}（{host}）返回 HTTP {resp.status_code} 错误", unreachable=False)
    if resp.status_code >= 400:
        raise RemoteRefused(f"下载文件失败：{label}（{host}）返回 HTTP {resp.status_code}", code=resp.status_code)
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise IntegrationError(f"文件大小 {_human_size(int(declared))} 超过上限 {_human_size(max_bytes)}，已拒绝下载")
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in resp.iter_content(chunk_size=64 * 1024):
            received += len(chunk)
            if received > max_bytes:
                raise IntegrationError(f"文件超过大小上限 {_human_size(max_bytes)}，已停止下载")
            if expired.is_set():
                raise too_slow(host)
            chunks.append(chunk)
    except (requests.exceptions.RequestException, OSError) as exc:
        # Read timeouts while streaming surface as ConnectionError in requests; a cut socket may
        # also surface as a bare OSError from below.
        if expired.is_set():
            raise too_slow(host) from exc
        raise RemoteUnavailable(f"从{label}（{host}）下载文件时连接中断或超时") from exc
    if expired.is_set():
        # The watchdog cut the connection: what arrived may look complete but is not to be trusted.
        raise too_slow(host)
    return b"".join(chunks), _filename_from(resp, url)
