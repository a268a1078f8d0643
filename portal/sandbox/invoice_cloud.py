"""Emulator of Kingdee's invoice cloud (发票云, standard edition), for tests and the demo.

Covers what the portal talks to: the token endpoint ``POST /base/oauth/token`` with the
``md5(client_id + client_secret + timestamp)`` signature and the vendor's ``errcode`` /
``description`` replies, plus a static file server ``GET /files/<name>`` standing in for
the ``downloadUrl`` of invoices the receipt assistant pushes. ``GET /redirect?to=<url>``
answers a 302, for testing how downloads treat redirects. ``record`` and ``push_envelope`` build
pushes as the receipt assistant sends them: the cloud's own invoice records (§B.5), signed and
encrypted with a client's credentials.

Verification (查验, §A.9): ``POST /m13/bill/invoice/sys/check?access_token=…`` checks the fields
against the invoices the emulator knows (``add_invoice`` / ``POST /_sandbox/invoices``): a known
invoice answers ``0000`` with ``data.cancelMark`` ``N`` (``Y`` when registered ``void``); a wrong
date, amount or check code answers ``0006`` 发票信息不一致; an unknown invoice ``0009`` 查无此票;
missing fields ``1005``; a missing or expired token ``1003`` (our code). The amount accepted
follows the kind: the pre-tax amount for special / motor-vehicle / used-car invoices, the total
(in ``invoiceMoney`` or ``totalAmount``) for 数电, either of the two for other classic invoices
(the reference is unsure there). Stalls, HTTP 500 and malformed answers come from ``faults``
(``match`` ``sys/check``).

Errcodes: ``0000`` success; ``1200`` empty client_id (vendor text); ``1101`` unknown
client_id (vendor code, our wording); ``1102`` bad signature and ``1201`` missing
sign/timestamp (our codes: the vendor's are not public); ``0300`` expired licence;
``0400`` a body that is not a JSON object.

Control API (JSON, under ``/_sandbox/``): ``POST reset``; ``GET|POST clients``
``{client_id, client_secret, encrypt_key, tax_no, name, expired}``; ``GET|POST files``
``{name, content_b64, content_type, download_name}``; ``GET tokens``; ``POST|DELETE
faults``; ``GET|DELETE calls``. ``GET /files/<name>?chunked=1`` omits Content-Length;
``?drip=<seconds>`` declares the full length and then sends one byte every that many seconds
(a server that never times out a read yet never finishes).
"""

from __future__ import annotations

import base64
import json
import mimetypes
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from portal.sandbox.base import SandboxApp, json_response, request_json
from portal.sandbox.server import SandboxServer
from portal.signing import verify_sign

__all__ = ["CloudApp", "CloudClient", "CloudSandbox", "KnownInvoice", "TOKEN_LIFETIME"]

TOKEN_LIFETIME = 7200

MSG_OK = "操作成功"
MSG_EMPTY_CLIENT = "授权ID不能为空"
MSG_UNKNOWN_CLIENT = "授权ID（client_id）不存在，请检查发票云授权标识"
MSG_BAD_SIGN = "签名错误，请检查client_id与client_secret"
MSG_MISSING_SIGN = "签名参数不完整：sign 与 timestamp 不能为空"
MSG_EXPIRED = "【收票服务】许可已过期失效"
MSG_BAD_BODY = "请求参数格式错误，应为 JSON"
MSG_CHECK_OK = "查验成功"
MSG_BAD_TOKEN = "access_token无效或已过期"
MSG_CHECK_PARAMS = "查验参数不完整：发票号码、开票日期、金额不能为空"
MSG_NOT_FOUND = "查无此票"
MSG_MISMATCH = "发票信息不一致"

#: Kinds whose verification takes the pre-tax amount (reference §A.9).
PRE_TAX_KINDS = {"01", "08", "20", "03", "15"}


@dataclass
class CloudClient:
    """An enterprise's invoice-cloud credentials (client_id/secret, 16-char encrypt_key)."""

    client_id: str
    client_secret: str
    encrypt_key: str = ""
    tax_no: str = ""
    name: str = ""
    expired: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Control-API representation (this is a sandbox: secrets included)."""
        return dict(self.__dict__)


@dataclass
class _StoredFile:
    content: bytes
    content_type: str
    download_name: str | None


@dataclass
class KnownInvoice:
    """An invoice the emulated tax authority knows, for 查验."""

    number: str
    date: str  # yyyyMMdd
    amount: str | None = None  # pre-tax
    total: str | None = None  # tax included
    code: str = ""
    check_code: str = ""
    kind: str = ""  # tax-bureau kind code (01 special, 04 ordinary, 31/32 数电 ...)
    void: bool = False
    seller_name: str = ""
    buyer_name: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _push_timestamp(style: str) -> int | str:
    """The current time in one of the timestamp forms a push may be signed with (see push_envelope)."""
    now = time.time()
    if style == "ms":
        return int(now * 1000)
    if style == "s":
        return int(now)
    if style == "written":
        beijing = datetime.fromtimestamp(now, timezone(timedelta(hours=8)))
        return beijing.strftime("%Y%m%d%H%M%S") + f"{beijing.microsecond // 100:04d}"
    raise ValueError(f"unknown timestamp style: {style}")


class CloudApp(SandboxApp):
    """The invoice-cloud emulator (WSGI). Thread-safe; state lives in memory."""

    name = "invoice-cloud"

    def __init__(self, seed: Callable[[CloudApp], None] | None = None) -> None:
        super().__init__(seed)
        self.register_control("clients", ("GET", "POST"), self._control_clients)
        self.register_control("files", ("GET", "POST"), self._control_files)
        self.register_control("tokens", ("GET",), self._control_tokens)
        self.register_control("invoices", ("GET", "POST"), self._control_invoices)

    # -- state and helpers ---------------------------------------------------------------

    def reset_state(self) -> None:
        """Forget clients, issued tokens and files."""
        self.clients: dict[str, CloudClient] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.files: dict[str, _StoredFile] = {}
        self.invoices: dict[tuple[str, str], KnownInvoice] = {}

    def add_client(self, client_id: str, client_secret: str, encrypt_key: str = "", *, tax_no: str = "",
                   name: str = "", expired: bool = False) -> CloudClient:
        """Register (or replace) a client the token endpoint will accept."""
        client = CloudClient(client_id, client_secret, encrypt_key, tax_no, name, expired)
        with self.lock:
            self.clients[client_id] = client
        return client

    def add_file(self, name: str, content: bytes, content_type: str | None = None,
                 download_name: str | None = None) -> str:
        """Serve ``content`` at ``/files/<name>``; returns that path.

        ``download_name`` adds a ``Content-Disposition`` filename (RFC 5987 for non-ASCII).
        """
        if content_type is None:
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        with self.lock:
            self.files[name] = _StoredFile(content, content_type, download_name)
        return f"/files/{quote(name)}"

    def add_invoice(self, number: str, date: str, *, amount: Any = None, total: Any = None, code: str = "",
                    check_code: str = "", kind: str = "", void: bool = False, seller_name: str = "",
                    buyer_name: str = "") -> KnownInvoice:
        """Make an invoice known to 查验 (``date`` as yyyyMMdd or yyyy-MM-dd; amounts as text or numbers)."""
        inv = KnownInvoice(str(number), str(date).replace("-", ""), None if amount is None else str(amount),
                           None if total is None else str(total), code or "", check_code or "", kind or "",
                           bool(void), seller_name, buyer_name)
        with self.lock:
            self.invoices[(inv.code, inv.number)] = inv
        return inv

    def record(self, n: int = 1, **fields: Any) -> dict[str, Any]:
        """One invoice as the cloud keeps it (reference §B.5): its own type enum and field names."""
        rec = {
            "serialNo": f"cloud-{n:08d}", "fid": f"fid{n}", "recognitionSerialNo": f"rec{n}",
            "invoiceType": "4", "invoiceCode": "5100191160", "invoiceNo": f"{n:08d}", "invoiceDate": "20190614",
            "checkCode": "", "machineNo": "661616257386",
            "amount": "1456.31", "invoiceAmount": "1456.31", "invoiceMoney": "1456.31",
            "taxAmount": "43.69", "totalTaxAmount": "43.69", "totalAmount": "1500.00", "totalAmountCn": "壹仟伍佰元整",
            "taxRate": "0.030000", "salerName": "成都某某商贸有限公司", "salerTaxNo": "91510100MA61234567",
            "buyerName": "演示企业", "buyerTaxNo": "91330100MADEM0001N", "cancelMark": "N", "isRepeat": False,
            "invoiceStatus": "0", "cyjg": "1", "warningCode": "1", "errorLevel": "0", "pixel": "4032,3024",
            "verifyResult": [{"key": "verifyBuyerName", "name": "购方名称", "config": "3", "result": "1",
                              "msg": "购方名称与企业名称一致"}],
            "downloadUrl": "", "snapshotUrl": "", "localUrl": "", "ofdUrl": "", "attachCount": 0,
        }
        rec.update(fields)
        return rec

    def push_envelope(self, client_id: str, records: list[dict], *, encrypt: bool = True,
                      timestamp: int | str | None = None, timestamp_style: str = "ms") -> dict[str, Any]:
        """The signed body the receipt assistant posts to the image system's push address.

        Signed with the client's secret (md5 of client_id + secret + timestamp) and, with ``encrypt``,
        the record list AES-encrypted with the client's encrypt_key. The reference does not say which
        timestamp the assistant signs; its clients use each of these (§B.1), picked by
        ``timestamp_style``: ``ms`` (Unix milliseconds, a number), ``s`` (Unix seconds, a number) or
        ``written`` (Beijing time as the text ``yyyyMMddHHmmssffff``).
        """
        from portal.signing import aes_ecb_encrypt, sign

        with self.lock:
            client = self.clients[client_id]
        stamp = _push_timestamp(timestamp_style) if timestamp is None else timestamp
        body: dict[str, Any] = {"taxNo": client.tax_no, "client_id": client_id, "timestamp": stamp,
                                "sign": sign(client_id, client.client_secret, stamp, 0)}
        text = json.dumps(records, ensure_ascii=False)
        if encrypt:
            body["encrypt"] = True
            body["data"] = aes_ecb_encrypt(text.encode("utf-8"), client.encrypt_key)
        else:
            body["data"] = records
        return body

    def token_owner(self, access_token: str) -> str | None:
        """The client_id a still-valid token was issued to, else None."""
        with self.lock:
            entry = self.tokens.get(access_token)
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]

    # -- control endpoints -----------------------------------------------------------------

    def _control_clients(self, request: Request) -> Any:
        if request.method == "GET":
            with self.lock:
                return [c.as_dict() for c in self.clients.values()]
        body = request_json(request, default={})
        client = self.add_client(body["client_id"], body["client_secret"], body.get("encrypt_key", ""),
                                 tax_no=body.get("tax_no", ""), name=body.get("name", ""),
                                 expired=bool(body.get("expired", False)))
        return client.as_dict()

    def _control_files(self, request: Request) -> Any:
        if request.method == "GET":
            with self.lock:
                return [{"name": n, "size": len(f.content), "content_type": f.content_type}
                        for n, f in self.files.items()]
        body = request_json(request, default={})
        path = self.add_file(body["name"], base64.b64decode(body["content_b64"]), body.get("content_type"),
                             body.get("download_name"))
        return {"ok": True, "path": path}

    def _control_tokens(self, request: Request) -> Any:
        with self.lock:
            return [{"access_token": t, "client_id": c, "expires_at": e} for t, (c, e) in self.tokens.items()]

    def _control_invoices(self, request: Request) -> Any:
        if request.method == "GET":
            with self.lock:
                return [i.as_dict() for i in self.invoices.values()]
        body = request_json(request, default={})
        fields = {k: body[k] for k in ("amount", "total", "code", "check_code", "kind", "void", "seller_name",
                                       "buyer_name") if k in body}
        return self.add_invoice(body["number"], body["date"], **fields).as_dict()

    # -- protocol ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route the token endpoint, the file server and the redirect helper."""
        path = request.path
        if path.rstrip("/") == "/base/oauth/token":
            if request.method != "POST":
                raise MethodNotAllowed(valid_methods=["POST"])
            self.record_call(service="token")
            return self._token(request)
        if path.rstrip("/") == "/m13/bill/invoice/sys/check":
            if request.method != "POST":
                raise MethodNotAllowed(valid_methods=["POST"])
            return self._check(request)
        if path.startswith("/files/"):
            if request.method not in ("GET", "HEAD"):
                raise MethodNotAllowed(valid_methods=["GET", "HEAD"])
            self.record_call(service="file", name=path[len("/files/"):])
            return self._file(request, path[len("/files/"):])
        if path == "/redirect":
            return redirect(request.args.get("to", "/"), code=302)
        raise NotFound()

    def _token(self, request: Request) -> Response:
        def refuse(errcode: str, description: str) -> Response:
            return json_response({"errcode": errcode, "description": description})

        try:
            body = request_json(request, default={})
        except ValueError:
            return refuse("0400", MSG_BAD_BODY)
        if not isinstance(body, dict):
            return refuse("0400", MSG_BAD_BODY)
        client_id = str(body.get("client_id") or "").strip()
        if not client_id:
            return refuse("1200", MSG_EMPTY_CLIENT)
        with self.lock:
            client = self.clients.get(client_id)
        if client is None:
            return refuse("1101", MSG_UNKNOWN_CLIENT)
        timestamp, given = body.get("timestamp"), body.get("sign")
        if timestamp in (None, "") or not given:
            return refuse("1201", MSG_MISSING_SIGN)
        if not verify_sign(client.client_id, client.client_secret, timestamp, given, body.get("encType", 0)):
            return refuse("1102", MSG_BAD_SIGN)
        if client.expired:
            return refuse("0300", MSG_EXPIRED)
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = (client_id, time.time() + TOKEN_LIFETIME)
        return json_response({"errcode": "0000", "description": MSG_OK, "access_token": token,
                              "token_type": "bearer", "expires_in": TOKEN_LIFETIME})

    def _check(self, request: Request) -> Response:
        def answer(errcode: str, description: str, data: dict | None = None) -> Response:
            body: dict[str, Any] = {"errcode": errcode, "description": description}
            if data is not None:
                body["data"] = data
            return json_response(body)

        owner = self.token_owner(request.args.get("access_token", ""))
        try:
            body = request_json(request, default={})
        except ValueError:
            body = None
        self.record_call(service="check", client_id=owner,
                         **({k: body.get(k) for k in ("invoiceCode", "invoiceNo", "invoiceDate", "invoiceMoney",
                                                       "totalAmount", "checkCode")} if isinstance(body, dict) else {}))
        if owner is None:
            return answer("1003", MSG_BAD_TOKEN)
        if not isinstance(body, dict):
            return answer("0400", MSG_BAD_BODY)
        code = str(body.get("invoiceCode") or "").strip()
        number = str(body.get("invoiceNo") or "").strip()
        date = str(body.get("invoiceDate") or "").strip()
        money = [body.get("invoiceMoney"), body.get("totalAmount")]
        if not number or not date or all(m in (None, "") for m in money):
            return answer("1005", MSG_CHECK_PARAMS)
        with self.lock:
            known = self.invoices.get((code, number))
        if known is None:
            return answer("0009", MSG_NOT_FOUND)
        if date != known.date:
            return answer("0006", f"{MSG_MISMATCH}：开票日期不符")
        if not self._amount_fits(known, body):
            return answer("0006", f"{MSG_MISMATCH}：金额不符")
        if known.check_code and str(body.get("checkCode") or "") not in ("", known.check_code[-6:]):
            return answer("0006", f"{MSG_MISMATCH}：校验码不符")
        return answer("0000", MSG_CHECK_OK, {
            "invoiceCode": known.code, "invoiceNo": known.number, "invoiceDate": known.date,
            "invoiceMoney": known.amount, "totalAmount": known.total, "checkCode": known.check_code,
            "salerName": known.seller_name, "buyerName": known.buyer_name,
            "cancelMark": "Y" if known.void else "N"})

    @staticmethod
    def _amount_fits(known: KnownInvoice, body: dict) -> bool:
        """Whether the request's amount is the one the invoice's kind is verified with (see the module doc)."""
        def same(value: Any, want: str | None) -> bool:
            if want is None or value in (None, ""):
                return False
            try:
                return Decimal(str(value)) == Decimal(want)
            except InvalidOperation:
                return False

        given = body.get("invoiceMoney")
        if not known.code and len(known.number) == 20:  # 数电: the total
            return same(given, known.total) or same(body.get("totalAmount"), known.total)
        if known.kind in PRE_TAX_KINDS:
            return same(given, known.amount)
        return same(given, known.amount) or same(given, known.total)

    def _file(self, request: Request, name: str) -> Response:
        with self.lock:
            stored = self.files.get(name)
        if stored is None:
            raise NotFound()
        headers = {}
        if stored.download_name:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(stored.download_name)}"
        drip = request.args.get("drip", type=float)
        if drip:
            def trickle(data: bytes = stored.content, every: float = drip) -> Iterator[bytes]:
                for start in range(len(data)):
                    time.sleep(every)
                    yield data[start:start + 1]

            headers["Content-Length"] = str(len(stored.content))
            return Response(trickle(), content_type=stored.content_type, headers=headers)
        if request.args.get("chunked"):
            # No Content-Length: the client must enforce its size cap while reading.
            def pieces(data: bytes = stored.content) -> Iterator[bytes]:
                for start in range(0, len(data), 16 * 1024):
                    yield data[start:start + 16 * 1024]

            return Response(pieces(), content_type=stored.content_type, headers=headers)
        return Response(stored.content, content_type=stored.content_type, headers=headers)


class CloudSandbox(SandboxServer):
    """A running invoice-cloud emulator: ``SandboxServer`` plus shortcuts to its state."""

    app: CloudApp

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", seed: Callable[[CloudApp], None] | None = None,
                 quiet: bool = True) -> None:
        super().__init__(CloudApp(seed), host=host, port=port, name="invoice-cloud", quiet=quiet)

    def reset(self) -> None:
        """Back to the seeded state."""
        self.app.reset()

    def add_client(self, client_id: str, client_secret: str, encrypt_key: str = "", **kwargs: Any) -> CloudClient:
        """See :meth:`CloudApp.add_client`."""
        return self.app.add_client(client_id, client_secret, encrypt_key, **kwargs)

    def add_file(self, name: str, content: bytes, content_type: str | None = None,
                 download_name: str | None = None) -> str:
        """Serve ``content`` and return its absolute URL (usable as an invoice ``downloadUrl``)."""
        return self.url + self.app.add_file(name, content, content_type, download_name)

    def file_url(self, name: str) -> str:
        """Absolute URL of a registered file."""
        return f"{self.url}/files/{quote(name)}"

    def add_invoice(self, number: str, date: str, **kwargs: Any) -> KnownInvoice:
        """See :meth:`CloudApp.add_invoice`."""
        return self.app.add_invoice(number, date, **kwargs)

    def record(self, n: int = 1, **fields: Any) -> dict[str, Any]:
        """See :meth:`CloudApp.record`."""
        return self.app.record(n, **fields)

    def push_envelope(self, client_id: str, records: list[dict], **kwargs: Any) -> dict[str, Any]:
        """See :meth:`CloudApp.push_envelope`."""
        return self.app.push_envelope(client_id, records, **kwargs)

    def token_owner(self, access_token: str) -> str | None:
        """See :meth:`CloudApp.token_owner`."""
        return self.app.token_owner(access_token)

    def inject_fault(self, **kwargs: Any) -> Any:
        """See :meth:`portal.sandbox.base.SandboxApp.inject_fault`."""
        return self.app.inject_fault(**kwargs)

    @property
    def calls(self) -> list[dict]:
        """Protocol calls since the last reset."""
        with self.app.lock:
            return list(self.app.calls)
