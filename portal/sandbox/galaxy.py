"""Emulator of Kingdee Cloud Galaxy's WebAPI (金蝶云星空), for tests and the demo.

It speaks the wire protocol in ``reference/kingdee-protocols.md`` §A: ``POST
{prefix}/<Service>.common.kdsvc`` with JSON bodies (named-field style, or the official
SDK's ``parameters`` envelope), the ``kdservice-sessionid`` session cookie, the
``LoginResultType`` codes and messages of ValidateUser, MsgCode 1 for a lost session,
and the ``Result.ResponseStatus`` envelope of write operations. Any path prefix is
accepted (``/k3cloud/``, ``/K3Cloud/``, none), and service names are case-insensitive,
as on IIS.

Implemented DynamicFormService operations: View, Save, Submit, Audit, ExecuteBillQuery
(``FilterString`` evaluated for real: comparisons, IN, LIKE, AND/OR/NOT, parentheses — see
``filters.py`` — with ``OrderString`` and ``StartRow``/``Limit`` paging, at most 2000 rows a call),
WorkflowAudit, AttachmentUpLoad, AttachmentDownLoad.
Bills live in one table shared by all data centres; fields are stored as saved (Save
keys, e.g. ``FCausa``, or dotted query keys such as ``FOrgID.FNumber``) and View returns them next to
``Id``/``BillNo``/``DocumentStatus``. Workflow tasks live in ``WF_AssignmentBill_ProcManage`` (pending
and done; ``WF_AssignmentHisBill_ProcManage`` lists the done ones): WorkflowAudit approves (1), rejects
(2) or terminates (3) the pending task of each bill that the calling user holds, and refuses otherwise.
AttachmentUpLoad refuses an unknown InterId (``auto_create_bills`` turns bill creation on) and joins
parts: the first part without ``FileId`` opens an upload, later parts name it, ``IsLast`` ends it. Whether
the real server continues by ``FileId`` is not confirmed (reference A.6), so ``chunk_mode`` plays the
other plausible behaviour too: ``"separate"`` ignores ``FileId`` and stores only each ``IsLast`` part.

Control API (JSON, under ``/_sandbox/``): ``GET state``; ``POST reset``; ``GET|POST
data-centers`` ``{Id, Name, Number}``; ``POST users`` ``{acct_id, username, password,
webapi_allowed}``; ``GET|POST bills`` ``{form_id, id, number, status, fields}``; ``GET
attachments?form_id=&inter_id=&bill_no=`` (with md5/sha256); ``POST expire-sessions``;
``POST|DELETE business-errors`` ``{op, count, message, msg_code, field_name}``; ``POST
data-center-encoding`` ``{encoding: json|gzip|base64gzip|content-gzip, padding}``; ``POST session-lost-signal``
``{signal: both|code|message}``; ``POST|DELETE faults``
``{match, count, delay, status, body, content_type}``; ``GET|DELETE calls``; ``GET|POST tasks``
``{form_id, bill_no, receiver_id, base_post}``; ``POST withdraw`` ``{form_id, bill_no}``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from portal.sandbox.base import SandboxApp, json_response, request_json
from portal.sandbox.filters import FilterSyntaxError, compile_filter
from portal.sandbox.server import SandboxServer

__all__ = ["GalaxyApp", "GalaxySandbox", "Bill", "Attachment", "TASK_FORM", "TASK_HISTORY_FORM"]

TASK_FORM = "WF_AssignmentBill_ProcManage"
TASK_HISTORY_FORM = "WF_AssignmentHisBill_ProcManage"
QUERY_LIMIT = 2000  # rows per ExecuteBillQuery call
MSG_NO_TASK = "当前用户没有单据 {number} 的待审批任务，或该任务已被处理"

SESSION_COOKIE = "kdservice-sessionid"

MSG_SESSION_LOST = "会话信息已丢失，请重新登录"
#: How a lost session is signalled. Real servers differ: MsgCode 1 with the message (``both``),
#: MsgCode 1 without it (``code``), or the message with MsgCode 0 (``message``).
SESSION_LOST_SIGNALS = ("both", "code", "message")
MSG_NO_DATA_CENTER = "数据中心无法获取到，请检查数据中心ID（acctid）是否正确"
MSG_BAD_PASSWORD = "用户名或密码错误！"
MSG_NOT_WEBAPI_USER = (
    "未指定允许调用WebAPI接口的用户，请在 基础管理→公共设置→参数设置→BOS平台→WebAPI "
    "的「允许调用WebAPI接口用户」中添加该用户"
)

_SERVICE_SUFFIX = ".common.kdsvc"
_DATA_CENTER_LIST = "kingdee.bos.servicefacade.servicesstub.account.accountservice.getdatacenterlist"
_VALIDATE_USER = "kingdee.bos.webapi.servicesstub.authservice.validateuser"
_DYNAMIC_FORM = "kingdee.bos.webapi.servicesstub.dynamicformservice."

# Number prefixes for bills created by Save without FBillNo (ER_ExpReimbursement → FYBX).
_NUMBER_PREFIX = {"er_expreimbursement": "FYBX", "er_expenserequest": "FYSQ", "iv_receivedinvoice": "SPD"}


@dataclass
class GalaxyUser:
    """A Galaxy user of one data centre; ``webapi_allowed`` = on the WebAPI whitelist."""

    acct_id: str
    username: str
    password: str
    webapi_allowed: bool = True
    user_id: int = 0


@dataclass
class Bill:
    """A bill of any form: internal id (FID), number (FBillNo), status, other field values."""

    form_id: str
    id: int
    number: str
    fields: dict[str, Any] = field(default_factory=dict)
    status: str = "A"

    def value(self, key: str) -> Any:
        """Field value by Save/query key (FID, FBillNo, FDocumentStatus or a stored field)."""
        lowered = key.lower()
        if lowered in ("fid", "id"):
            return self.id
        if lowered in ("fbillno", "billno", "number"):
            return self.number
        if lowered in ("fdocumentstatus", "documentstatus"):
            return self.status
        for name, value in self.fields.items():
            if name.lower() == lowered:
                return value
        return None

    def as_view(self) -> dict[str, Any]:
        """What View returns under ``Result.Result``."""
        return {"Id": self.id, "BillNo": self.number, "FormId": self.form_id, "DocumentStatus": self.status,
                **self.fields}

    def as_dict(self) -> dict[str, Any]:
        """Control-API representation."""
        return {"form_id": self.form_id, "id": self.id, "number": self.number, "status": self.status,
                "fields": self.fields}


@dataclass
class Attachment:
    """A file attached to a bill by AttachmentUpLoad."""

    file_id: str
    file_name: str
    form_id: str
    inter_id: int
    bill_no: str
    content: bytes
    created: str

    def as_dict(self) -> dict[str, Any]:
        """Control-API representation: metadata plus md5/sha256 of the stored bytes."""
        return {
            "file_id": self.file_id,
            "file_name": self.file_name,
            "form_id": self.form_id,
            "inter_id": self.inter_id,
            "bill_no": self.bill_no,
            "size": len(self.content),
            "md5": hashlib.md5(self.content, usedforsecurity=False).hexdigest(),
            "sha256": hashlib.sha256(self.content).hexdigest(),
            "created": self.created,
        }


class _Refusal(Exception):
    """Internal: abort an operation with a ResponseStatus failure."""

    def __init__(self, message: str, msg_code: int = 11, field_name: str | None = None, error_code: int = 500):
        super().__init__(message)
        self.message, self.msg_code, self.field_name, self.error_code = message, msg_code, field_name, error_code


def _status(success: bool, *, errors: list[dict] | None = None, msg_code: int = 0, error_code: int | None = None,
            entities: list[dict] | None = None) -> dict:
    return {
        "ErrorCode": (0 if success else 500) if error_code is None else error_code,
        "IsSuccess": success,
        "Errors": errors or [],
        "SuccessEntitys": entities or [],
        "SuccessMessages": [],
        "MsgCode": msg_code,
    }


def _failure(message: str, *, msg_code: int = 11, field_name: str | None = None, error_code: int = 500) -> dict:
    error = {"FieldName": field_name, "Message": message, "DIndex": 0}
    return {"Result": {"ResponseStatus": _status(False, errors=[error], msg_code=msg_code, error_code=error_code)}}


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _sort_key(value: Any) -> tuple:
    """Order like a database: numbers by value, text by text, NULLs last."""
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def _as_int(value: Any, what: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise _Refusal(f"{what}格式不正确：{value!r}", msg_code=8) from None


class GalaxyApp(SandboxApp):
    """The Galaxy WebAPI emulator (WSGI). Thread-safe; state lives in memory."""

    name = "galaxy"

    def __init__(self, seed: Callable[[GalaxyApp], None] | None = None, *, download_chunk_size: int = 1 << 20):
        self.download_chunk_size = download_chunk_size
        super().__init__(seed)
        self.register_control("state", ("GET",), lambda req: self.summary())
        self.register_control("data-centers", ("GET", "POST"), self._control_data_centers)
        self.register_control("users", ("POST",), self._control_users)
        self.register_control("bills", ("GET", "POST"), self._control_bills)
        self.register_control("attachments", ("GET",), self._control_attachments)
        self.register_control("expire-sessions", ("POST",), lambda req: {"expired": self.expire_sessions()})
        self.register_control("business-errors", ("POST", "DELETE"), self._control_business_errors)
        self.register_control("data-center-encoding", ("POST",), self._control_encoding)
        self.register_control("session-lost-signal", ("POST",), self._control_session_lost_signal)
        self.register_control("tasks", ("GET", "POST"), self._control_tasks)
        self.register_control("withdraw", ("POST",), lambda req: {"withdrawn": self.withdraw_task(
            **{k: v for k, v in request_json(req, default={}).items() if k in ("form_id", "bill_no")})})
        self._local = threading.local()  # the session of the request being answered

    # -- state and helpers ---------------------------------------------------------------

    def reset_state(self) -> None:
        """Forget data centres, users, sessions, bills, attachments and injections."""
        self.data_centers: dict[str, dict] = {}
        self.users: dict[tuple[str, str], GalaxyUser] = {}
        self.sessions: dict[str, tuple[str, str]] = {}
        self.bills: dict[tuple[str, int], Bill] = {}
        self.attachments: dict[str, Attachment] = {}
        self.business_errors: list[dict] = []
        self.data_center_encoding = "json"
        self.data_center_padding = 0  # trailing blanks after the JSON: an oversized or gzip-bomb answer
        self.session_lost_signal = "both"
        self.auto_create_bills = False
        self.chunk_mode = "file_id"  # or "separate": see the module docstring
        self.uploads: dict[str, bytearray] = {}  # FileId → parts received so far
        self.tasks: list[dict[str, Any]] = []
        self._next_task_id = 1
        self.login_count = 0
        self._next_user_id = 100010
        self._next_bill_id = 100001

    def add_data_center(self, id: str, name: str, number: str = "001", **extra: Any) -> dict:
        """Register a data centre (账套) as GetDataCenterList shows it; returns the item."""
        item = {
            "Id": id,
            "Number": number,
            "Name": name,
            "LocaleValueName": [{"Key": 2052, "Value": name}],
            "DBType": 2,
            "DataCenterType": 0,
            **extra,
        }
        with self.lock:
            self.data_centers[id] = item
        return item

    def add_user(self, acct_id: str, username: str, password: str, *, webapi_allowed: bool = True) -> GalaxyUser:
        """Register a user of a data centre; ``webapi_allowed=False`` keeps it off the WebAPI whitelist."""
        with self.lock:
            self._next_user_id += 1
            user = GalaxyUser(acct_id, username, password, webapi_allowed, self._next_user_id)
            self.users[(acct_id, username.lower())] = user
        return user

    def add_bill(self, form_id: str, id: int, number: str, status: str = "A", **fields: Any) -> Bill:
        """Register (or replace) a bill with internal id ``id`` and number ``number``."""
        bill = Bill(form_id, int(id), number, dict(fields), status)
        with self.lock:
            self.bills[(form_id.lower(), bill.id)] = bill
            self._next_bill_id = max(self._next_bill_id, bill.id + 1)
        return bill

    def add_task(self, form_id: str, bill_no: str, receiver_id: int, *, base_post: int = 0,
                 name: str = "影像审核", then: str = "C") -> dict[str, Any]:
        """Put a pending workflow task for bill ``bill_no`` into the receiver's to-do list.

        ``then`` is the bill status after the task is approved: ``C`` when it is the last node,
        ``B`` when later nodes follow (a processed task does not mean an audited bill).
        """
        with self.lock:
            task = {
                "FAssignId": uuid.uuid4().hex[:20], "FReceiverItem_FRECEIVERITEMID": self._next_task_id,
                "FInstCode": f"WF{self._next_task_id:06d}", "FBILLNUMBER": bill_no, "FObjectTypeId": form_id,
                "FASSIGNNAME": name, "FActivityStatus": "0", "FInstStatus": "2", "FReceiverId": receiver_id,
                "FStatus": "0", "FDisposition": "", "FResultName": "", "FBasePost": base_post,
                "FCompletedTime": None, "FCreateTime": datetime.now().isoformat(timespec="seconds"), "_then": then,
            }
            self._next_task_id += 1
            self.tasks.append(task)
        return task

    def withdraw_task(self, form_id: str, bill_no: str) -> int:
        """The submitter withdraws the bill (CancelAssign): its pending tasks end unprocessed."""
        count = 0
        with self.lock:
            for task in self._pending_tasks(form_id, bill_no):
                task.update(FStatus="2", FInstStatus="4", FResultName="撤销",
                            FCompletedTime=datetime.now().isoformat(timespec="seconds"))
                count += 1
            bill = self.get_bill(form_id, number=bill_no)
            if bill is not None and count:
                bill.status = "D"
        return count

    def _pending_tasks(self, form_id: str, bill_no: str, receiver_id: int | None = None) -> list[dict]:
        return [t for t in self.tasks
                if t["FObjectTypeId"].lower() == form_id.lower() and t["FBILLNUMBER"] == bill_no
                and t["FStatus"] == "0" and t["FActivityStatus"] == "0" and t["FInstStatus"] == "2"
                and (receiver_id is None or t["FReceiverId"] == receiver_id)]

    def get_bill(self, form_id: str, *, id: int | str | None = None, number: str | None = None) -> Bill | None:
        """Find a bill by internal id or by number."""
        with self.lock:
            if id not in (None, "", 0, "0"):
                try:
                    return self.bills.get((form_id.lower(), int(id)))
                except (TypeError, ValueError):
                    return None
            if number:
                for bill in self.bills.values():
                    if bill.form_id.lower() == form_id.lower() and bill.number == number:
                        return bill
        return None

    def list_attachments(self, form_id: str | None = None, inter_id: int | str | None = None,
                         bill_no: str | None = None) -> list[dict]:
        """Stored attachments (with md5 of their content), optionally filtered by bill."""
        with self.lock:
            items = list(self.attachments.values())
        return [
            a.as_dict()
            for a in items
            if (form_id is None or a.form_id.lower() == form_id.lower())
            and (inter_id is None or a.inter_id == int(inter_id))
            and (bill_no is None or a.bill_no == bill_no)
        ]

    def expire_sessions(self) -> int:
        """Drop every session, so the next business call gets MsgCode 1. Returns how many."""
        with self.lock:
            count = len(self.sessions)
            self.sessions.clear()
        return count

    def inject_business_error(self, op: str = "AttachmentUpLoad", *, count: int = 1,
                              message: str = "沙箱注入的业务错误", msg_code: int = 11,
                              field_name: str | None = None) -> None:
        """Make the next ``count`` calls of ``op`` answer IsSuccess false with ``message``."""
        with self.lock:
            self.business_errors.append(
                {"op": op.lower(), "count": count, "message": message, "msg_code": msg_code, "field_name": field_name}
            )

    def set_data_center_encoding(self, encoding: str, padding: int = 0) -> None:
        """How GetDataCenterList is sent: ``json``, ``gzip`` (raw), ``base64gzip`` (``H4sI…``) or
        ``content-gzip`` (gzip with ``Content-Encoding: gzip``).

        ``padding`` blanks follow the JSON (still valid JSON): with ``json`` an oversized answer,
        with a gzip encoding a small answer that inflates to that size (a gzip bomb).
        """
        if encoding not in ("json", "gzip", "base64gzip", "content-gzip"):
            raise ValueError(f"unknown encoding {encoding!r}")
        with self.lock:
            self.data_center_encoding = encoding
            self.data_center_padding = max(int(padding), 0)

    def set_session_lost_signal(self, signal: str) -> None:
        """How a call without a valid session is refused: ``both``, ``code`` or ``message``.

        ``both``: MsgCode 1 and 「会话信息已丢失，请重新登录」; ``code``: MsgCode 1 and no error
        message; ``message``: that message with MsgCode 0.
        """
        if signal not in SESSION_LOST_SIGNALS:
            raise ValueError(f"unknown session-lost signal {signal!r}")
        with self.lock:
            self.session_lost_signal = signal

    def _session_lost_reply(self) -> dict:
        with self.lock:
            signal = self.session_lost_signal
        if signal == "code":
            return {"Result": {"ResponseStatus": _status(False, msg_code=1)}}
        return _failure(MSG_SESSION_LOST, msg_code=1 if signal == "both" else 0)

    def summary(self) -> dict:
        """Counts and configuration, for the control API and debugging."""
        with self.lock:
            return {
                "data_centers": list(self.data_centers.values()),
                "users": [
                    {"acct_id": u.acct_id, "username": u.username, "webapi_allowed": u.webapi_allowed}
                    for u in self.users.values()
                ],
                "bills": len(self.bills),
                "attachments": len(self.attachments),
                "sessions": len(self.sessions),
                "login_count": self.login_count,
            }

    # -- control endpoints -------------------------------------------------------------------

    def _control_data_centers(self, request: Request) -> Any:
        if request.method == "GET":
            with self.lock:
                return list(self.data_centers.values())
        body = request_json(request, default={})
        extra = {k: v for k, v in body.items() if k not in ("Id", "Name", "Number")}
        return self.add_data_center(body["Id"], body["Name"], body.get("Number", "001"), **extra)

    def _control_users(self, request: Request) -> Any:
        body = request_json(request, default={})
        user = self.add_user(body["acct_id"], body["username"], body["password"],
                             webapi_allowed=bool(body.get("webapi_allowed", True)))
        return {"ok": True, "user_id": user.user_id}

    def _control_bills(self, request: Request) -> Any:
        if request.method == "GET":
            form_id = request.args.get("form_id")
            number = request.args.get("number")
            with self.lock:
                bills = list(self.bills.values())
            return [
                b.as_dict() for b in bills
                if (not form_id or b.form_id.lower() == form_id.lower()) and (not number or b.number == number)
            ]
        body = request_json(request, default={})
        bill = self.add_bill(body["form_id"], body["id"], body["number"], body.get("status", "A"),
                             **(body.get("fields") or {}))
        return bill.as_dict()

    def _control_tasks(self, request: Request) -> Any:
        if request.method == "GET":
            with self.lock:
                return [{k: v for k, v in t.items() if not k.startswith("_")} for t in self.tasks]
        body = request_json(request, default={})
        task = self.add_task(body["form_id"], body["bill_no"], int(body["receiver_id"]),
                             base_post=int(body.get("base_post") or 0), then=body.get("then", "C"))
        return {k: v for k, v in task.items() if not k.startswith("_")}

    def _control_attachments(self, request: Request) -> Any:
        return self.list_attachments(request.args.get("form_id"), request.args.get("inter_id"),
                                     request.args.get("bill_no"))

    def _control_business_errors(self, request: Request) -> Any:
        if request.method == "DELETE":
            with self.lock:
                self.business_errors.clear()
            return {"ok": True}
        body = request_json(request, default={})
        self.inject_business_error(body.get("op", "AttachmentUpLoad"), count=int(body.get("count", 1)),
                                   message=body.get("message", "沙箱注入的业务错误"),
                                   msg_code=int(body.get("msg_code", 11)), field_name=body.get("field_name"))
        return {"ok": True}

    def _control_session_lost_signal(self, request: Request) -> Any:
        self.set_session_lost_signal(request_json(request, default={})["signal"])
        return {"ok": True}

    def _control_encoding(self, request: Request) -> Any:
        body = request_json(request, default={})
        self.set_data_center_encoding(body["encoding"], int(body.get("padding") or 0))
        return {"ok": True}

    # -- protocol ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route ``…/<Service>.common.kdsvc`` to the emulated service."""
        segment = request.path.rstrip("/").rsplit("/", 1)[-1].lower()
        if not segment.endswith(_SERVICE_SUFFIX):
            raise NotFound()
        if request.method != "POST":
            raise MethodNotAllowed(valid_methods=["POST"])
        service = segment[: -len(_SERVICE_SUFFIX)]
        body = request_json(request, default={})
        if service == _DATA_CENTER_LIST:
            self.record_call(service="GetDataCenterList")
            return self._data_center_list()
        if service == _VALIDATE_USER:
            self.record_call(service="ValidateUser")
            return self._validate_user(body)
        if service.startswith(_DYNAMIC_FORM):
            return self._dynamic_form(request, service[len(_DYNAMIC_FORM):], body)
        raise NotFound()

    def _data_center_list(self) -> Response:
        with self.lock:
            items = list(self.data_centers.values())
            encoding = self.data_center_encoding
            padding = self.data_center_padding
        payload = json.dumps(items, ensure_ascii=False).encode("utf-8") + b" " * padding
        if encoding == "gzip":
            # Raw gzip without Content-Encoding, as some installations send it.
            return Response(gzip.compress(payload), content_type="application/octet-stream")
        if encoding == "base64gzip":
            return Response(base64.b64encode(gzip.compress(payload)), content_type="text/plain; charset=utf-8")
        if encoding == "content-gzip":
            return Response(gzip.compress(payload), content_type="application/json; charset=utf-8",
                            headers={"Content-Encoding": "gzip"})
        return Response(payload, content_type="application/json; charset=utf-8")

    def _validate_user(self, body: Any) -> Response:
        if isinstance(body, dict) and "parameters" in body:
            # Official SDK envelope: parameters = JSON array [acctid, username, password, lcid].
            params = json.loads(body["parameters"]) if isinstance(body["parameters"], str) else body["parameters"]
            body = dict(zip(("acctid", "username", "password", "lcid"), params, strict=False))
        body = {str(k).lower(): v for k, v in (body or {}).items()}
        acct_id = str(body.get("acctid") or "")
        username = str(body.get("username") or "")
        password = str(body.get("password") or "")
        lcid = body.get("lcid") or 2052

        def refuse(result_type: int, message: str) -> Response:
            return json_response({
                "Message": message, "MessageCode": "CheckPasswordPolicy" if result_type == 0 else None,
                "LoginResultType": result_type, "Context": None, "KDSVCSessionId": None,
                "IsSuccessByAPI": False,
            })

        with self.lock:
            data_center = self.data_centers.get(acct_id)
            user = self.users.get((acct_id, username.lower()))
            if data_center is None:
                return refuse(-1, MSG_NO_DATA_CENTER)
            if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
                return refuse(0, MSG_BAD_PASSWORD)
            if not user.webapi_allowed:
                return refuse(-1, MSG_NOT_WEBAPI_USER)
            session_id = uuid.uuid4().hex
            self.sessions[session_id] = (acct_id, user.username)
            self.login_count += 1
        reply = {
            "Message": None,
            "MessageCode": None,
            "LoginResultType": 1,
            "Context": {
                "UserLocale": "zh-CN", "LogLocale": "zh-CN", "DBid": acct_id, "DatabaseType": 3,
                "SessionId": session_id, "UserId": user.user_id, "UserName": user.username,
                "CustomName": data_center["Name"], "DataCenterNumber": data_center["Number"],
                "DataCenterName": data_center["Name"], "UserToken": uuid.uuid4().hex, "LCID": lcid,
            },
            "KDSVCSessionId": session_id,
            "FormId": None,
            "RedirectFormParam": None,
            "FormInputObject": None,
            "ErrorStackTrace": None,
            "Lcid": 0,
            "AccessToken": None,
            "KdAccessResult": None,
            "IsSuccessByAPI": True,
        }
        response = json_response(reply)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, path="/")
        response.set_cookie("ASP.NET_SessionId", secrets.token_hex(12), httponly=True, path="/")
        response.set_cookie("Theme", "standard", path="/")
        return response

    def _session_of(self, request: Request) -> tuple[str, str] | None:
        session_id = request.cookies.get(SESSION_COOKIE) or request.headers.get(SESSION_COOKIE)
        with self.lock:
            return self.sessions.get(session_id) if session_id else None

    def _take_business_error(self, op: str) -> dict | None:
        with self.lock:
            for injected in self.business_errors:
                if injected["op"] == op:
                    injected["count"] -= 1
                    if injected["count"] <= 0:
                        self.business_errors.remove(injected)
                    return injected
        return None

    def _dynamic_form(self, request: Request, op: str, body: Any) -> Response:
        session = self._session_of(request)
        self.record_call(service=op, authenticated=session is not None)
        if session is None:
            return json_response(self._session_lost_reply())
        injected = self._take_business_error(op)
        if injected is not None:
            return json_response(_failure(injected["message"], msg_code=injected["msg_code"],
                                          field_name=injected["field_name"]))
        handlers = {
            "view": self._view,
            "save": self._save,
            "submit": lambda f, d: self._set_status(f, d, "B"),
            "audit": lambda f, d: self._set_status(f, d, "C"),
            "executebillquery": self._bill_query,
            "workflowaudit": self._workflow_audit,
            "attachmentupload": self._attachment_upload,
            "attachmentdownload": self._attachment_download,
        }
        handler = handlers.get(op)
        try:
            if handler is None:
                raise _Refusal(f"沙箱未实现接口 DynamicFormService.{op}", msg_code=4)
            form_id, data = self._form_args(body)
            self._local.session = session
            return json_response(handler(form_id, data))
        except _Refusal as refusal:
            reply = _failure(refusal.message, msg_code=refusal.msg_code, field_name=refusal.field_name,
                             error_code=refusal.error_code)
            if op == "executebillquery":
                reply = [[reply]]  # ExecuteBillQuery nests its error envelope
            return json_response(reply)

    @staticmethod
    def _form_args(body: Any) -> tuple[str | None, dict]:
        """Pull (formid, data) out of either body style; ``data`` may be a JSON string."""
        body = body or {}
        if not isinstance(body, dict):
            raise _Refusal("请求参数格式不正确", msg_code=8)
        if "parameters" in body:
            params = json.loads(body["parameters"]) if isinstance(body["parameters"], str) else body["parameters"]
            if len(params) == 1:
                form_id, data = None, params[0]
            else:
                form_id, data = params[0], params[-1]
        else:
            form_id, data = body.get("formid") or body.get("FormId"), body.get("data", {})
        if isinstance(data, str):
            data = json.loads(data) if data.strip() else {}
        if not isinstance(data, dict):
            raise _Refusal("参数 data 格式不正确", msg_code=8)
        form_id = form_id or data.get("FormId")
        return form_id, data

    def _require_form(self, form_id: str | None) -> str:
        if not form_id:
            raise _Refusal("参数 formid 不能为空", msg_code=8)
        return form_id

    # -- operations ----------------------------------------------------------------------

    def _view(self, form_id: str | None, data: dict) -> dict:
        form_id = self._require_form(form_id)
        bill = self.get_bill(form_id, id=data.get("Id"), number=data.get("Number"))
        if bill is None:
            raise _Refusal("单据不存在或已被删除", msg_code=0)
        return {"Result": {"ResponseStatus": _status(True), "Result": bill.as_view()}}

    def _save(self, form_id: str | None, data: dict) -> dict:
        form_id = self._require_form(form_id)
        model = data.get("Model")
        if not isinstance(model, dict):
            raise _Refusal("参数 Model 不能为空", msg_code=8)
        fid = _as_int(model.get("FID") or 0, "FID")
        only = [k for k in data.get("NeedUpDateFields") or [] if isinstance(k, str)]
        new_values = {k: v for k, v in model.items() if k.upper() not in ("FID", "FBILLNO")}
        if only:
            wanted = {k.lower() for k in only}
            new_values = {k: v for k, v in new_values.items() if k.lower() in wanted}
        number = model.get("FBillNo")
        with self.lock:
            if fid:
                bill = self.get_bill(form_id, id=fid)
                if bill is None:
                    raise _Refusal(f"内码为 {fid} 的单据不存在或已被删除", msg_code=0)
            else:
                bill = None
            if number:
                clash = self.get_bill(form_id, number=number)
                if clash is not None and clash is not bill:
                    raise _Refusal(f"单据编号“{number}”已经存在", field_name="FBillNo")
            if bill is None:
                fid = self._next_bill_id
                if not number:
                    prefix = _NUMBER_PREFIX.get(form_id.lower(), "SB")
                    number = f"{prefix}{fid - 100000:04d}"
                bill = self.add_bill(form_id, fid, number)
            elif number:
                bill.number = number
            bill.fields.update(new_values)
        entity = {"Id": bill.id, "Number": bill.number, "DIndex": 0}
        return {"Result": {"ResponseStatus": _status(True, entities=[entity]), "Id": bill.id,
                           "Number": bill.number, "NeedReturnData": [{}]}}

    def _bills_named(self, form_id: str, data: dict) -> list[Bill]:
        numbers = data.get("Numbers") or []
        ids = [i for i in str(data.get("Ids") or "").split(",") if i.strip()]
        if not numbers and not ids:
            raise _Refusal("参数 Numbers 与 Ids 不能同时为空", msg_code=8)
        found = []
        for number in numbers:
            bill = self.get_bill(form_id, number=number)
            if bill is None:
                raise _Refusal(f"单据“{number}”不存在或已被删除", msg_code=0)
            found.append(bill)
        for id_text in ids:
            bill = self.get_bill(form_id, id=id_text.strip())
            if bill is None:
                raise _Refusal(f"内码为 {id_text.strip()} 的单据不存在或已被删除", msg_code=0)
            found.append(bill)
        return found

    def _set_status(self, form_id: str | None, data: dict, status: str) -> dict:
        form_id = self._require_form(form_id)
        with self.lock:
            bills = self._bills_named(form_id, data)
            for bill in bills:
                bill.status = status
        entities = [{"Id": b.id, "Number": b.number, "DIndex": i} for i, b in enumerate(bills)]
        return {"Result": {"ResponseStatus": _status(True, entities=entities)}}

    def _rows_of(self, form_id: str) -> list[Callable[[str], Any]]:
        """Row accessors (field name → value, case-insensitive) of a form or of the task tables."""
        lowered = form_id.lower()
        if lowered in (TASK_FORM.lower(), TASK_HISTORY_FORM.lower()):
            with self.lock:
                tasks = [dict(t) for t in self.tasks
                         if lowered == TASK_FORM.lower() or t["FStatus"] != "0"]
            return [(lambda t: lambda key: next((v for k, v in t.items() if k.lower() == key.lower()), None))(t)
                    for t in tasks]
        with self.lock:
            bills = sorted((b for b in self.bills.values() if b.form_id.lower() == lowered), key=lambda b: b.id)
        return [b.value for b in bills]

    def _bill_query(self, form_id: str | None, data: dict) -> list[list[Any]]:
        form_id = data.get("FormId") or form_id
        if not form_id:
            raise _Refusal("参数 FormId 不能为空", msg_code=8)
        keys = [k.strip() for k in str(data.get("FieldKeys") or "").split(",") if k.strip()]
        if not keys:
            raise _Refusal("参数 FieldKeys 不能为空", msg_code=8)
        try:
            keep = compile_filter(str(data.get("FilterString") or ""))
        except FilterSyntaxError as exc:
            raise _Refusal(str(exc), msg_code=4) from None
        rows = [row for row in self._rows_of(form_id) if keep(row)]
        order = str(data.get("OrderString") or "").strip()
        for part in reversed([p.split() for p in order.split(",") if p.strip()]):
            descending = len(part) > 1 and part[1].upper() == "DESC"
            rows.sort(key=lambda row, name=part[0]: _sort_key(row(name)), reverse=descending)
        start = _as_int(data.get("StartRow") or 0, "StartRow")
        limit = _as_int(data.get("Limit") or data.get("TopRowCount") or QUERY_LIMIT, "Limit")
        return [[row(k) for k in keys] for row in rows[start:start + min(limit, QUERY_LIMIT)]]

    def _workflow_audit(self, form_id: str | None, data: dict) -> dict:
        form_id = str(data.get("FormId") or form_id or "")
        if not form_id:
            raise _Refusal("参数 FormId 不能为空", msg_code=8, field_name="FormId")
        numbers = data.get("Numbers") or []
        if isinstance(numbers, str):
            numbers = [n for n in numbers.split(",") if n]
        ids = data.get("Ids") or []
        if isinstance(ids, str):
            ids = [i for i in ids.split(",") if i]
        try:
            approval = int(data.get("ApprovalType") or 0)
        except (TypeError, ValueError):
            approval = 0
        if approval not in (1, 2, 3):
            raise _Refusal("参数 ApprovalType 只能是 1（通过）、2（驳回）或 3（终止）", msg_code=8, field_name="ApprovalType")
        acct_id, username = self._local.session
        with self.lock:
            user = self.users.get((acct_id, username.lower()))
            wanted = data.get("UserId")
            if wanted not in (None, "", 0) and str(wanted) != str(user.user_id):
                raise _Refusal("UserId 与当前登录用户不一致", msg_code=12)
            bills = [self.get_bill(form_id, number=str(n)) for n in numbers]
            bills += [self.get_bill(form_id, id=i) for i in ids]
            if not bills:
                raise _Refusal("参数 Numbers 或 Ids 不能为空", msg_code=8, field_name="Numbers")
            errors, entities = [], []
            for index, bill in enumerate(bills):
                if bill is None:
                    errors.append({"FieldName": None, "Message": "单据不存在或已被删除", "DIndex": index})
                    continue
                tasks = self._pending_tasks(form_id, bill.number, user.user_id)
                if not tasks:
                    errors.append({"FieldName": None, "Message": MSG_NO_TASK.format(number=bill.number), "DIndex": index})
                    continue
                task = tasks[0]
                if task["FBasePost"] and str(data.get("PostId") or "") != str(task["FBasePost"]):
                    errors.append({"FieldName": "PostId", "Message": "该任务需要指定审批岗位（PostId）", "DIndex": index})
                    continue
                now = datetime.now().isoformat(timespec="seconds")
                task.update(FStatus="1", FDisposition=str(data.get("Disposition") or ""), FCompletedTime=now,
                            FResultName={1: "同意", 2: "驳回", 3: "终止"}[approval])
                bill.status = task["_then"] if approval == 1 else "D"
                entities.append({"Id": bill.id, "Number": bill.number, "DIndex": index})
        if errors:
            return {"Result": {"ResponseStatus": _status(False, errors=errors, msg_code=11, entities=entities)}}
        return {"Result": {"ResponseStatus": _status(True, entities=entities)}}

    def _attachment_upload(self, form_id: str | None, data: dict) -> dict:
        for name in ("FileName", "FormId", "InterId", "BillNO", "SendByte"):
            if data.get(name) in (None, ""):
                raise _Refusal(f"参数 {name} 不能为空", msg_code=8, field_name=name)
        form_id = str(data["FormId"])
        inter_id = _as_int(data["InterId"], "InterId")
        try:
            content = base64.b64decode(data["SendByte"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise _Refusal("参数 SendByte 不是有效的 base64", msg_code=8, field_name="SendByte") from None
        with self.lock:
            bill = self.get_bill(form_id, id=inter_id)
            if bill is None:
                if not self.auto_create_bills:
                    raise _Refusal(f"内码为 {inter_id} 的单据不存在或已被删除", msg_code=10)
                bill = self.add_bill(form_id, inter_id, str(data["BillNO"]))
            given = str(data.get("FileId") or "")
            if given and self.chunk_mode == "file_id":
                if given not in self.uploads:
                    raise _Refusal(f"附件上传标识 {given} 不存在或已结束", msg_code=10, field_name="FileId")
                file_id = given
                self.uploads[file_id] += content
            else:
                file_id = uuid.uuid4().hex
                self.uploads[file_id] = bytearray(content)
            # Like the real server, success without IsLast stores nothing yet (see reference A.6).
            if _as_bool(data.get("IsLast")):
                self.attachments[file_id] = Attachment(
                    file_id, str(data["FileName"]), form_id, inter_id, str(data["BillNO"]),
                    bytes(self.uploads.pop(file_id)), datetime.now().isoformat(timespec="seconds"),
                )
        entity = {"Id": bill.id, "Number": bill.number, "DIndex": 0}
        return {"Result": {"ResponseStatus": _status(True, entities=[entity]), "FileId": file_id,
                           "FileName": data["FileName"], "Message": None}}

    def _attachment_download(self, form_id: str | None, data: dict) -> dict:
        file_id = data.get("FileId") or data.get("FileID") or data.get("fileId")
        if not file_id:
            raise _Refusal("参数 FileId 不能为空", msg_code=8, field_name="FileId")
        with self.lock:
            attachment = self.attachments.get(str(file_id))
        if attachment is None:
            raise _Refusal(f"附件 {file_id} 不存在", msg_code=0)
        start = max(0, _as_int(data.get("StartIndex") or 0, "StartIndex"))
        chunk = attachment.content[start:start + self.download_chunk_size]
        end = start + len(chunk)
        return {"Result": {"ResponseStatus": _status(True), "FileName": attachment.file_name,
                           "FileSize": len(attachment.content), "FilePart": base64.b64encode(chunk).decode("ascii"),
                           "StartIndex": end, "IsLast": end >= len(attachment.content)}}


class GalaxySandbox(SandboxServer):
    """A running Galaxy emulator: ``SandboxServer`` plus shortcuts to its state."""

    app: GalaxyApp

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", seed: Callable[[GalaxyApp], None] | None = None,
                 quiet: bool = True) -> None:
        super().__init__(GalaxyApp(seed), host=host, port=port, name="galaxy", quiet=quiet)

    @property
    def base_url(self) -> str:
        """The prefix address as an ERP admin would type it (``…/k3cloud/``)."""
        return f"{self.url}/k3cloud/"

    def reset(self) -> None:
        """Back to the seeded state (sessions, bills, attachments, faults all forgotten)."""
        self.app.reset()

    def add_data_center(self, id: str, name: str, number: str = "001", **extra: Any) -> dict:
        """See :meth:`GalaxyApp.add_data_center`."""
        return self.app.add_data_center(id, name, number, **extra)

    def add_user(self, acct_id: str, username: str, password: str, *, webapi_allowed: bool = True) -> GalaxyUser:
        """See :meth:`GalaxyApp.add_user`."""
        return self.app.add_user(acct_id, username, password, webapi_allowed=webapi_allowed)

    def add_bill(self, form_id: str, id: int, number: str, status: str = "A", **fields: Any) -> Bill:
        """See :meth:`GalaxyApp.add_bill`."""
        return self.app.add_bill(form_id, id, number, status, **fields)

    def add_task(self, form_id: str, bill_no: str, receiver_id: int, **kwargs: Any) -> dict[str, Any]:
        """See :meth:`GalaxyApp.add_task`."""
        return self.app.add_task(form_id, bill_no, receiver_id, **kwargs)

    def withdraw_task(self, form_id: str, bill_no: str) -> int:
        """See :meth:`GalaxyApp.withdraw_task`."""
        return self.app.withdraw_task(form_id, bill_no)

    def get_bill(self, form_id: str, *, id: int | str | None = None, number: str | None = None) -> Bill | None:
        """See :meth:`GalaxyApp.get_bill`."""
        return self.app.get_bill(form_id, id=id, number=number)

    def attachments(self, form_id: str | None = None, inter_id: int | str | None = None,
                    bill_no: str | None = None) -> list[dict]:
        """See :meth:`GalaxyApp.list_attachments`."""
        return self.app.list_attachments(form_id, inter_id, bill_no)

    def expire_sessions(self) -> int:
        """See :meth:`GalaxyApp.expire_sessions`."""
        return self.app.expire_sessions()

    def set_session_lost_signal(self, signal: str) -> None:
        """See :meth:`GalaxyApp.set_session_lost_signal`."""
        self.app.set_session_lost_signal(signal)

    def inject_business_error(self, op: str = "AttachmentUpLoad", **kwargs: Any) -> None:
        """See :meth:`GalaxyApp.inject_business_error`."""
        self.app.inject_business_error(op, **kwargs)

    def inject_fault(self, **kwargs: Any) -> Any:
        """See :meth:`portal.sandbox.base.SandboxApp.inject_fault`."""
        return self.app.inject_fault(**kwargs)

    @property
    def login_count(self) -> int:
        """Successful ValidateUser calls since the last reset."""
        return self.app.login_count

    @property
    def calls(self) -> list[dict]:
        """Protocol calls since the last reset (``service``, ``authenticated``)."""
        with self.app.lock:
            return list(self.app.calls)
