"""Invoice push from the receipt assistant (收票助手 → us, DESIGN §4): verify, decrypt, validate, store once.

The hot path of the whole product (DESIGN §9: ≥ 10,000 invoices/s in batches of
100), so it is written for speed: one query for the enterprise, one
``INSERT … ON CONFLICT DO NOTHING`` statement for the whole batch (on PostgreSQL
with the batch as one JSON parameter, see :func:`_pg_insert_statement`), plain dicts
instead of ORM objects. It is also all-or-nothing: every invoice of
a push is validated before anything is written, and a refused push stores
nothing (the caller rolls the session back on :class:`PushError`).

Downloads of the pushed files (sync mode) never happen here; :mod:`portal.sync`
does them later from the job runner.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import delete, insert, select, text

from . import audit, signing
from .crypto import decrypt
from .errors import UserError
from .extensions import db
from .invoice_fields import invoice_row
from .models import Enterprise, ExpectedInvoice, PushReceipt, utcnow

# --------------------------------------------------------------------------- answers

#: errcode → (HTTP status, meaning). "0000" is success, as in the invoice cloud's own answers.
ERRCODES: dict[str, tuple[int, str]] = {
    "0000": (200, "成功"),
    "1001": (400, "参数缺失"),
    "1002": (403, "企业未授权"),
    "1003": (401, "签名错误"),
    "1004": (401, "时间戳无效或已过期"),
    "1005": (400, "解密失败"),
    "1006": (400, "数据格式错误"),
    "1007": (422, "发票数据无效"),
    "1008": (413, "请求体过大"),
    "1009": (403, "只接受加密推送"),
    "9999": (500, "服务器内部错误"),
}

#: Upper bound of one push's body when the deployment sets no ``PUSH_MAX_BYTES``.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class PushError(UserError):
    """A refused push: a :class:`UserError` with the protocol's ``errcode`` (the status follows from it)."""

    def __init__(self, errcode: str, description: str):
        super().__init__(description, ERRCODES[errcode][0])
        self.errcode = errcode
        self.description = description

    def as_json(self) -> dict[str, Any]:
        """The answer body: ``{"errcode", "description"}``."""
        return {"errcode": self.errcode, "description": self.description}


@dataclass
class Received:
    """The outcome of an accepted push."""

    enterprise_id: int
    accepted: int  # newly stored
    duplicates: int  # already known (earlier push, or twice in this one)

    def as_json(self) -> dict[str, Any]:
        return {"errcode": "0000", "description": "成功", "accepted": self.accepted, "duplicates": self.duplicates}


# --------------------------------------------------------------------------- envelope

# Decrypted client secrets and encrypt keys by (data key, stored token). Fernet costs
# about half a millisecond per secret — a tenth of a push's whole budget. A token is
# unique to one value (random IV), so a rotated secret is a new entry, never a stale hit.
_CREDENTIALS: dict[tuple[str, bytes], str] = {}
_CREDENTIALS_MAX = 1024


def _credential(token: bytes) -> str:
    key = (current_app.config["DATA_KEY"], bytes(token))
    value = _CREDENTIALS.get(key)
    if value is None:
        value = decrypt(token)
        if len(_CREDENTIALS) >= _CREDENTIALS_MAX:
            _CREDENTIALS.clear()
        _CREDENTIALS[key] = value
    return value


_REQUIRED = ("taxNo", "client_id", "timestamp", "sign", "data")


_TIMESTAMP_FORMS = "timestamp 格式无效：应为 Unix 秒或毫秒数，或北京时间 yyyyMMddHHmmss（可带 3–4 位小数秒）"
# Beijing time has no daylight saving: a fixed offset.
_BEIJING = dt.timezone(dt.timedelta(hours=8))


def _timestamp(value: Any) -> tuple[str, float]:
    """The timestamp as signed (its decimal text) and as Unix seconds.

    Clients of the invoice cloud sign with Unix seconds, milliseconds, or a Beijing time written
    ``yyyyMMddHHmmssffff`` (reference §B.1). The forms do not overlap: 14, 17 and 18 digits would be
    the years 2286 and later as milliseconds and are read as the written time; up to 13 digits are
    Unix seconds or, from 1e11 (1973 in milliseconds, 5138 in seconds), milliseconds.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PushError("1004", _TIMESTAMP_FORMS)
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise PushError("1004", _TIMESTAMP_FORMS)
    if len(text) in (14, 17, 18):
        try:
            written = dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=_BEIJING)
        except ValueError:
            raise PushError("1004", _TIMESTAMP_FORMS) from None
        return text, written.timestamp() + int(text[14:] or 0) / 10 ** (len(text) - 14)
    if len(text) > 13:
        raise PushError("1004", _TIMESTAMP_FORMS)
    n = int(text)
    return text, (n / 1000.0 if n >= 100_000_000_000 else float(n))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


#: Deepest JSON nesting a push may have. The real shape needs 3 (envelope → data → invoice);
#: 100k-deep arrays overflowed the parser's recursion and answered 500.
MAX_JSON_DEPTH = 32

# Everything but brackets, quotes and backslashes: dropped before the nesting is measured.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"\\')
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_LEAF_PAIR = re.compile(rb"\[\]|\{\}")
_OPEN_RUN = re.compile(rb"[\[{]{%d}" % (MAX_JSON_DEPTH + 1))


def _too_deep(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than ``limit``, measured before parsing.

    Only the skeleton is looked at (brackets outside strings, found with C-speed translate and
    replace): each pass removes the innermost empty pairs, so a text of depth d empties in d
    passes. Unbalanced text is left for the parser to refuse.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if b"[" not in raw and raw.find(b"{", raw.find(b"{") + 1) == -1:
        return False  # the encrypted envelope: one object around a base64 string (memchr-fast)
    skeleton = raw.translate(None, _NOT_STRUCTURE)
    if b"\\" not in skeleton:
        # Without escapes quotes alternate open/close: dropping adjacent pairs keeps every
        # bracket that sits inside a string inside one (the usual push has none left after this).
        skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = _JSON_STRING.sub(b"", skeleton)
    if len(skeleton) <= limit:
        return False  # depth never exceeds the number of brackets
    for _ in range(limit):
        if _OPEN_RUN.search(skeleton):
            return True
        skeleton, removed = _LEAF_PAIR.subn(b"", skeleton)
        if not skeleton or not removed:
            return False
    return bool(skeleton)


def _too_deep_error(what: str) -> PushError:
    return PushError("1006", f"{what}的 JSON 嵌套层数过多（最多 {MAX_JSON_DEPTH} 层）")


def _parse_list(text: str | bytes, what: str) -> list:
    if _too_deep(text):
        raise _too_deep_error(what.strip())
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PushError("1006", f"{what}不是有效的 JSON") from None
    if not isinstance(value, list):
        raise PushError("1006", f"{what}应为发票数组")
    return value


def _invoices(body: dict, encrypt_key_enc: bytes) -> list:
    data = body["data"]
    if _truthy(body.get("encrypt")):
        if not isinstance(data, str):
            raise PushError("1005", "解密失败：encrypt 为 true 时 data 应为 base64 密文")
        try:
            plain = signing.aes_ecb_decrypt(data, _credential(encrypt_key_enc))
        except ValueError as exc:
            raise PushError("1005", str(exc) if str(exc).startswith("解密失败") else f"解密失败：{exc}") from None
        return _parse_list(plain, "解密后的 data ")
    if isinstance(data, list):
        return data
    if isinstance(data, str):
        return _parse_list(data, "data ")
    raise PushError("1006", "data 应为发票数组（或其 JSON 文本）")


def parse_body(raw: bytes | str) -> dict:
    """The push's JSON object; PushError 1006 when the body is not one (or nests too deep)."""
    if _too_deep(raw):
        raise _too_deep_error("请求体")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: malformed and deep
        raise PushError("1006", "请求体不是有效的 JSON") from None
    if not isinstance(body, dict):
        raise PushError("1006", "请求体应为 JSON 对象")
    return body


# --------------------------------------------------------------------------- ingest

_INSERTS: dict[str, Any] = {}


def _insert_statement(dialect: str):
    """``INSERT … ON CONFLICT (enterprise_id, dedup_key) DO NOTHING RETURNING dedup_key``, built once per dialect."""
    stmt = _INSERTS.get(dialect)
    if stmt is None:
        table = ExpectedInvoice.__table__
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            dialect_insert = None
        if dialect_insert is not None:
            stmt = (dialect_insert(table).on_conflict_do_nothing(index_elements=["enterprise_id", "dedup_key"])
                    .returning(table.c.dedup_key))
        else:  # no portable "skip duplicates": rows are pre-filtered, a race surfaces as IntegrityError
            stmt = insert(table)
        _INSERTS[dialect] = stmt
    return stmt


def receive(body: dict | bytes | str, *, now: float | None = None, max_skew: int = 600) -> Received:
    """Verify and store one push; return how many invoices were new and how many already known.

    Order of checks: parameters (1001) → timestamp format (1004) → enterprise by
    ``client_id`` and its ``taxNo`` (1002) → signature, constant time (1003) →
    clock skew (1004) → plain data where the enterprise accepts only encrypted
    pushes (1009) → replay of the same timestamp and sign with another body (1004)
    → decryption (1005) → JSON shape and depth (1006) → every invoice (1007, naming
    its position). Nothing is committed here: the replay receipt, the rows and one
    audit event are added to the session; the caller commits, or rolls back a refusal.
    """
    if not isinstance(body, dict):
        body = parse_body(body)
    missing = [k for k in _REQUIRED if body.get(k) in (None, "")]
    if missing:
        raise PushError("1001", f"参数缺失：{', '.join(missing)}")
    client_id = body["client_id"]
    tax_no = body["taxNo"]
    sign = body["sign"]
    if not isinstance(client_id, str) or not isinstance(tax_no, str) or not isinstance(sign, str):
        raise PushError("1001", "参数格式错误：taxNo、client_id、sign 应为字符串")
    ts_text, ts_seconds = _timestamp(body["timestamp"])

    ent = db.session.execute(
        select(Enterprise.id, Enterprise.tax_no, Enterprise.client_secret_enc, Enterprise.encrypt_key_enc,
               Enterprise.encrypted_push_only)
        .where(Enterprise.client_id == client_id)).first()
    if ent is None or ent.tax_no.upper() != tax_no.strip().upper():
        raise PushError("1002", f"企业未授权：税号 {tax_no[:20]} 与 client_id 不对应任何企业授权")
    enc_type = body.get("encType", 0)
    if enc_type not in (None, "") and str(enc_type).strip() not in ("0", "1", "2"):
        raise PushError("1003", f"签名错误：不支持的签名方式 encType={str(enc_type)[:8]}")
    if not signing.verify_sign(client_id, _credential(ent.client_secret_enc), ts_text, sign, enc_type):
        raise PushError("1003", "签名错误：sign 与 client_id、client_secret、timestamp 不符")
    now = time.time() if now is None else now
    if abs(now - ts_seconds) > max_skew:
        raise PushError("1004", f"时间戳无效或已过期：与服务器时间相差超过 {max_skew} 秒")
    if ent.encrypted_push_only and not _truthy(body.get("encrypt")):
        # The sign does not cover the data: only encrypted data proves the sender holds the encrypt_key.
        raise PushError("1009", "该企业只接受加密推送：请以 encrypt=true 推送用 encrypt_key 加密的 data")
    _remember(client_id, ts_text, sign, _body_digest(body), ts_seconds + max_skew, now)

    items = _invoices(body, ent.encrypt_key_enc)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            row = invoice_row(ent.id, item, index, origin="push")
        except UserError as exc:
            raise PushError("1007", f"发票数据无效：{exc.message}") from None
        if row["dedup_key"] not in seen:  # the same invoice twice in one push is stored once
            seen.add(row["dedup_key"])
            rows.append(row)

    accepted = _store(rows) if rows else 0
    received = Received(ent.id, accepted, len(items) - accepted)
    audit.record("push", "expected_invoice", None, enterprise_id=ent.id,
                 summary=f"收票助手推送发票 {len(items)} 张：新增 {accepted} 张，重复 {received.duplicates} 张",
                 after={"received": len(items), "accepted": accepted, "duplicates": received.duplicates},
                 actor=f"push:{client_id[:64]}")
    return received


def _body_digest(body: dict) -> str:
    """A hash of what a push asks to store: its data with the fields that decide how it is read."""
    data = body["data"]
    if not isinstance(data, str):
        data = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    head = json.dumps([body.get("taxNo"), _truthy(body.get("encrypt")), str(body.get("encType", ""))])
    digest = hashlib.sha256(head.encode())
    digest.update(data.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def utc_from_unix(seconds: float) -> dt.datetime:
    """Unix seconds as the naive-UTC datetime the database stores."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(tzinfo=None)


_RECEIPT_INSERTS: dict[str, Any] = {}
_PURGE_EVERY = 60.0
_purged_at = 0.0


def _remember(client_id: str, ts_text: str, sign: str, digest: str, valid_until: float, now: float) -> None:
    """Record an accepted (client_id, timestamp, sign) with its body hash; refuse it with another body.

    The sign covers only client_id, secret and timestamp, so a captured one could carry a forged
    body for the whole timestamp window. The same triple with the same body is a harmless repeat
    (the dedup keys store nothing twice). The row is written in the push's transaction: a push
    refused later leaves no receipt. Receipts past their window are purged now and then.
    """
    global _purged_at
    table = PushReceipt.__table__
    dialect = db.session.get_bind().dialect.name
    stmt = _RECEIPT_INSERTS.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(table).on_conflict_do_nothing(
            index_elements=["client_id", "timestamp", "sign"]).returning(table.c.id)
        _RECEIPT_INSERTS[dialect] = stmt
    key = {"client_id": client_id, "timestamp": ts_text, "sign": sign.strip().lower()}
    expires = utc_from_unix(valid_until)
    # Core statements on the session's connection (same transaction): the ORM layer would double the cost.
    conn = db.session.connection()
    if now - _purged_at > _PURGE_EVERY:
        _purged_at = now
        conn.execute(delete(table).where(table.c.expires_at < utc_from_unix(now)))
    if conn.execute(stmt, {**key, "body_sha256": digest, "expires_at": expires}).first() is not None:
        return
    known = db.session.scalar(select(PushReceipt.body_sha256).where(
        PushReceipt.client_id == key["client_id"], PushReceipt.timestamp == key["timestamp"],
        PushReceipt.sign == key["sign"]))
    if known is not None and known != digest:
        raise PushError("1004", "重放的推送：该 timestamp 与 sign 已用于另一份推送内容，请用新的时间戳重新签名")


def _store(rows: list[dict[str, Any]]) -> int:
    """Insert the rows that are new in one statement; return how many were inserted."""
    stamp = utcnow()
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return _store_postgresql(rows, stamp)
    for row in rows:
        row["received_at"] = stamp
    stmt = _insert_statement(dialect)
    if dialect == "sqlite":
        # executemany + RETURNING: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues").
        return len(db.session.execute(stmt, rows).all())
    known = set(db.session.scalars(select(ExpectedInvoice.dedup_key).where(
        ExpectedInvoice.enterprise_id == rows[0]["enterprise_id"],
        ExpectedInvoice.dedup_key.in_([r["dedup_key"] for r in rows]))))
    fresh = [r for r in rows if r["dedup_key"] not in known]
    if fresh:
        db.session.execute(stmt, fresh)
    return len(fresh)


# --------------------------------------------------------------------------- PostgreSQL

#: The per-invoice columns of a push and their SQL types, as read back from the JSON of the batch.
#: ``enterprise_id``, ``origin`` and ``received_at`` are the same for the whole batch: one parameter each.
_PG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dedup_key", "text"), ("bill_no", "text"), ("serial_no", "text"), ("type", "text"),
    ("code", "text"), ("number", "text"), ("date", "date"), ("amount", "numeric"),
    ("tax", "numeric"), ("total", "numeric"), ("check_code", "text"), ("seller_name", "text"),
    ("seller_tax_no", "text"), ("buyer_name", "text"), ("buyer_tax_no", "text"),
    ("invoice_key", "text"), ("download_url", "text"), ("cloud_type", "text"), ("cloud", "json"), ("extra", "json"),
)

_PG_INSERT = None


def _pg_insert_statement():
    """``INSERT … SELECT … FROM json_to_recordset(:rows) ON CONFLICT DO NOTHING``, answering the count of new rows.

    Why not the executemany of :func:`_insert_statement` (measured, 100 invoices
    a push): SQLAlchemy renders the batch as one ``VALUES`` list of 2,000
    placeholders, and psycopg converts any query over 4 KiB / 50 parameters
    again on every execution (its query cache skips them) — about half of a
    22–27 ms push — and the server parses and plans 2,000 parameters each time.
    This text is short and constant, with four parameters whatever the batch
    size, so psycopg's cache and prepared statements apply. One array parameter
    per column (``unnest``) was measured too: psycopg dumps 1,700 array
    elements a push in Python, ~2 ms slower than ``json.dumps`` in C.
    ``WITH ORDINALITY … ORDER BY`` keeps the push's order for the ids.
    """
    global _PG_INSERT
    if _PG_INSERT is None:
        table = ExpectedInvoice.__table__.name
        columns = ", ".join(f'"{name}"' for name, _ in _PG_COLUMNS)
        typed = ", ".join(f'"{name}" {kind}' for name, kind in _PG_COLUMNS)
        selected = ", ".join(f'r."{name}"' for name, _ in _PG_COLUMNS)
        _PG_INSERT = text(
            f'WITH stored AS (INSERT INTO "{table}" (enterprise_id, origin, received_at, {columns}) '
            "SELECT CAST(:enterprise_id AS integer), CAST(:origin AS text), CAST(:received_at AS timestamp), "
            f"{selected} "
            f"FROM ROWS FROM (json_to_recordset(CAST(:rows AS json)) AS ({typed})) "
            f"WITH ORDINALITY AS r({columns}, position) ORDER BY r.position "
            "ON CONFLICT (enterprise_id, dedup_key) DO NOTHING RETURNING 1) "
            "SELECT count(*) FROM stored")
    return _PG_INSERT


def _json_value(value: Any) -> str:
    """``json.dumps`` fallback: Decimal and date as their exact text (PostgreSQL reads them back typed)."""
    if isinstance(value, (Decimal, dt.date)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _store_postgresql(rows: list[dict[str, Any]], stamp: dt.datetime) -> int:
    """Insert a push's rows (one enterprise, one origin) in one statement; return how many were new."""
    first = rows[0]
    return db.session.execute(_pg_insert_statement(), {
        "enterprise_id": first["enterprise_id"], "origin": first["origin"], "received_at": stamp,
        "rows": json.dumps(rows, ensure_ascii=False, default=_json_value),
    }).scalar_one()
