"""Kingdee Cloud Galaxy's WebAPI (金蝶云星空): one logged-in conversation per client."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import zlib
from typing import Any
from urllib.parse import urlsplit

import requests

from .errors import IntegrationError, RemoteRefused, RemoteUnavailable
from .http import (DEFAULT_GALAXY_MAX_REPLY, _USER_AGENT, ReplyTooLarge, Timeout, _host_of, _normalise_timeout,
                   _parse_json_bytes, _send, gunzip_capped, host_allowed, human_size, read_capped,
                   transport_errors)

log = logging.getLogger(__name__)

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


def _decode_galaxy_body(content: bytes, max_bytes: int = DEFAULT_GALAXY_MAX_REPLY) -> Any:
    """Decode a Galaxy reply: plain JSON, raw gzip, or base64 text of gzip (``H4sI...``).

    Some Galaxy installations compress GetDataCenterList without a Content-Encoding
    header, and some wrap that in base64; requests cannot know, so we sniff. Unpacking
    stops at ``max_bytes`` (:class:`ReplyTooLarge`): a small answer must not inflate
    into gigabytes.
    """
    data = content
    if data[:2] == b"\x1f\x8b":
        data = gunzip_capped(data, max_bytes)
    else:
        stripped = data.strip().strip(b'"')
        if stripped.startswith(b"H4sI"):
            data = gunzip_capped(base64.b64decode(stripped), max_bytes)
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
        max_reply: int = DEFAULT_GALAXY_MAX_REPLY,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: Largest reply read, as received and once unpacked; a bigger one is refused.
        self.max_reply = int(max_reply)
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
            stream=True,
        )
        host = _host_of(url)
        too_large = RemoteUnavailable(f"{self.label}（{host}）的应答超过大小上限 {human_size(self.max_reply)}，已拒绝"
                                      "（ERP_MAX_REPLY_BYTES）", unreachable=False)
        with resp:
            if 300 <= resp.status_code < 400:
                raise RemoteUnavailable(f"{self.label}（{host}）要求跳转到其他地址，已拒绝：请直接填写星空的前缀地址",
                                        unreachable=False)
            try:
                with transport_errors(self.label, url, self.timeout):
                    content = read_capped(resp, self.max_reply)
            except ReplyTooLarge:
                raise too_large from None
        try:
            reply = _decode_galaxy_body(content, self.max_reply)
        except ReplyTooLarge:
            raise too_large from None
        except (OSError, EOFError, binascii.Error, UnicodeDecodeError, ValueError, zlib.error):
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
