"""发票查验: invoices verified with the invoice cloud (reference §A.9, §B.5), per enterprise setting.

Enterprises with ``verify_invoices`` on have each recognised (uploaded) and pushed invoice verified
through the invoice cloud with the enterprise's own authorization: a token, then
``POST /m13/bill/invoice/sys/check`` (:meth:`portal.integration.invoice_cloud.InvoiceCloudClient.check_invoice`).
The job (:func:`verify_due`, run by both job executors) never runs inside a request.

Results are kept per enterprise and invoice key (:class:`~portal.models.InvoiceVerification`), so a
re-upload or a push of the same invoice reuses them:

* ``verified`` 查验通过 — errcode ``0000`` and ``cancelMark`` ``N``;
* ``void`` 已作废/红冲 — errcode ``0000`` with any other cancel mark;
* ``failed`` 查验不符 — one of the definite refusal codes (:data:`DEFINITE_FAILURES`), the cloud's
  code and description kept;
* ``unverified`` 未查验 — no usable answer (unreachable, timeout, 5xx, garbage, token refused, any
  other code): tried again after a growing wait, at most ``VERIFY_MAX_ATTEMPTS`` times.

Internally ``skipped`` marks an invoice that cannot be verified (a kind the cloud does not verify,
or a fact the request needs is missing); it is shown as 未查验 with the reason and looked at again
only when an invoice with its key is corrected or added. A settled result is not asked again
within ``VERIFY_INTERVAL``; after it, a new upload or push of the key verifies it once more (when
that call gets no answer the earlier result stands and is asked again after ``VERIFY_RETRY_MAX``).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from flask import current_app, g
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import bills
from .crypto import decrypt
from .extensions import db
from .integration.errors import IntegrationError, RemoteRefused
from .integration.http import timeout_from_config
from .integration.invoice_cloud import InvoiceCloudClient
from .labels import VERIFICATION_STATUSES
from .models import VERIFICATION_BLOCKING, Bill, BillStatus, Enterprise, ExpectedInvoice, Invoice, InvoiceVerification, utcnow

log = logging.getLogger("portal.verification")

VERIFIED, FAILED, VOID, UNVERIFIED, SKIPPED = "verified", "failed", "void", "unverified", "skipped"
SETTLED = (VERIFIED, FAILED, VOID)

#: errcodes after which asking again will not change the answer (reference §A.9).
DEFINITE_FAILURES = frozenset({"1200", "1214", "1301", "0006", "0009", "1005", "1008", "1009", "0313", "0314"})

#: Kinds whose verification takes the pre-tax amount (paper/electronic special, motor vehicle, used car);
#: other classic VAT kinds take the total (§A.9), 数电 always the total (§B.5 ``totalAmount``).
PRE_TAX_KINDS = frozenset({"01", "08", "20", "03", "15"})
#: Kinds that are not VAT invoices: the cloud's field verification does not apply to them.
NOT_VERIFIABLE = frozenset({"taxi", "train", "air", "quota", "bus", "toll", "ship", "other"})


# --------------------------------------------------------------------------- settings

def _cfg(key: str, default: float) -> float:
    return float(current_app.config.get(key, default))


def interval() -> dt.timedelta:
    """``VERIFY_INTERVAL``: how long a settled result of one key stands before it may be asked again."""
    return dt.timedelta(seconds=_cfg("VERIFY_INTERVAL", 30 * 24 * 3600))


def max_attempts() -> int:
    """``VERIFY_MAX_ATTEMPTS``: calls without a usable answer before an invoice is left 未查验."""
    return max(1, int(_cfg("VERIFY_MAX_ATTEMPTS", 6)))


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th call without an answer: doubling, capped."""
    base, cap = _cfg("VERIFY_RETRY_BASE", 300), _cfg("VERIFY_RETRY_MAX", 6 * 3600)
    return min(cap, base * 2 ** min(max(attempts - 1, 0), 30))


# --------------------------------------------------------------------------- the request

def _money(value: Any) -> str | None:
    return None if value is None else f"{Decimal(value):.2f}"


def request_fields(facts: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The check request for an invoice (or pushed invoice), or ``(None, 中文原因)`` when it cannot be verified.

    ``invoiceMoney`` is the pre-tax amount for special / motor-vehicle / used-car invoices and the
    total (价税合计) for the others (their pre-tax amount when the total is unknown); 数电 also send
    ``totalAmount``. ``checkCode`` is the last six
    characters of the check code (普票); the date goes as ``yyyyMMdd``.
    """
    kind, code, number = facts.type or "", (facts.code or "").strip(), (facts.number or "").strip()
    if kind in NOT_VERIFIABLE:
        return None, "该票种不支持发票查验"
    if not number:
        return None, "缺少发票号码，无法查验"
    if facts.date is None:
        return None, "缺少开票日期，无法查验"
    total = facts.total
    if total is None and facts.amount is not None and facts.tax is not None:
        total = Decimal(facts.amount) + Decimal(facts.tax)
    shudian = len(number) == 20 and not code
    if shudian:
        if total is None:
            return None, "缺少价税合计，无法查验"
        money = _money(total)
        fields = {"invoiceCode": "", "invoiceNo": number, "invoiceDate": facts.date.strftime("%Y%m%d"),
                  "invoiceMoney": money, "totalAmount": money, "checkCode": "", "isCreateUrl": False}
        return fields, None
    if not code:
        return None, "缺少发票代码，无法查验"
    if kind in PRE_TAX_KINDS:
        if facts.amount is None:
            return None, "缺少不含税金额，无法查验"
        money = _money(facts.amount)
    else:
        # §A.9 says the total; §B.5 the pre-tax amount: the total when known, else the pre-tax amount
        # (a QR carries only that one). The check code is what the cloud leans on for these kinds.
        if total is None and facts.amount is None:
            return None, "缺少金额，无法查验"
        money = _money(total if total is not None else facts.amount)
    check = (facts.check_code or "").strip()
    fields = {"invoiceCode": code, "invoiceNo": number, "invoiceDate": facts.date.strftime("%Y%m%d"),
              "invoiceMoney": money, "checkCode": check[-6:], "isCreateUrl": False}
    return fields, None


def interpret(reply: dict) -> tuple[str, str | None, str]:
    """(status, errcode, message) of a check reply that came back as a JSON object with an errcode."""
    errcode = str(reply.get("errcode") or "")
    description = str(reply.get("description") or "").strip()[:400]
    if errcode == "0000":
        data = reply.get("data") if isinstance(reply.get("data"), dict) else {}
        mark = str(data.get("cancelMark") or "").strip().upper()
        if mark == "N":
            return VERIFIED, errcode, description or "查验通过"
        if mark:
            return VOID, errcode, f"发票已作废或红冲（作废标志 {mark}）"
        return UNVERIFIED, errcode, "发票云的查验应答缺少作废标志，稍后重试"
    if errcode in DEFINITE_FAILURES:
        return FAILED, errcode, description or f"发票云查验不通过（errcode={errcode}）"
    return UNVERIFIED, errcode or None, f"发票云暂未给出查验结果：{description or '无说明'}（errcode={errcode or '无'}），稍后重试"


# --------------------------------------------------------------------------- what the pages and the API read

def enabled(enterprise_id: int) -> bool:
    """Whether the enterprise has 发票查验 on."""
    ent = db.session.get(Enterprise, enterprise_id)
    return bool(ent and ent.verify_invoices)


def results(enterprise_id: int, keys: Iterable[str | None]) -> dict[str, InvoiceVerification]:
    """The verification rows of ``keys`` (one query)."""
    keys = sorted({k for k in keys if k})
    if not keys:
        return {}
    rows = db.session.scalars(select(InvoiceVerification).where(
        InvoiceVerification.enterprise_id == enterprise_id, InvoiceVerification.invoice_key.in_(keys)))
    return {r.invoice_key: r for r in rows}


def as_json(row: InvoiceVerification | None) -> dict[str, Any]:
    """The API shape ``{"status", "code", "message", "checked_at"}``; no row yet = 未查验."""
    if row is None:
        return {"status": UNVERIFIED, "code": None, "message": None, "checked_at": None}
    checked = row.checked_at.replace(microsecond=0).isoformat() + "Z" if row.checked_at else None
    return {"status": UNVERIFIED if row.status == SKIPPED else row.status, "code": row.code,
            "message": row.message, "checked_at": checked}


def shown(row: InvoiceVerification | None) -> dict[str, Any]:
    """What a badge shows: ``status``, Chinese ``label`` and ``title`` (the hover text)."""
    data = as_json(row)
    label = VERIFICATION_STATUSES[data["status"]]
    title = label
    if data["status"] == FAILED:
        title = f"{label}：{data['message'] or ''}（{data['code']}）"
    elif data["message"]:
        title = f"{label}：{data['message']}"
    return {**data, "label": label, "title": title}


def blocking(row: InvoiceVerification | None) -> bool:
    """A result that fails a match (查验不符, 已作废/红冲)."""
    return row is not None and row.status in VERIFICATION_BLOCKING


def _page_cache() -> dict:
    return g.setdefault("_verifications", {"ents": {}, "bills": set(), "rows": {}})


def prime(rows: Iterable[Any]) -> None:
    """Load the verifications of listed invoices (anything with enterprise_id, bill_id, invoice_key) at once.

    :func:`verification_of` then answers from memory: a list page costs two queries, not one per bill.
    """
    rows = list(rows)
    cache = _page_cache()
    ents = {r.enterprise_id for r in rows} - set(cache["ents"])
    if ents:
        on = set(db.session.scalars(select(Enterprise.id).where(Enterprise.id.in_(ents),
                                                                Enterprise.verify_invoices.is_(True))))
        cache["ents"].update({e: e in on for e in ents})
    wanted = {(r.enterprise_id, r.invoice_key) for r in rows if cache["ents"][r.enterprise_id] and r.invoice_key}
    if wanted:
        found = db.session.scalars(select(InvoiceVerification).where(
            InvoiceVerification.enterprise_id.in_({e for e, _ in wanted}),
            InvoiceVerification.invoice_key.in_({k for _, k in wanted})))
        cache["rows"].update({(r.enterprise_id, r.invoice_key): r for r in found})
    cache["bills"].update(r.bill_id for r in rows)


def verification_of(inv: Any) -> dict[str, Any] | None:
    """Template helper: the badge data (:func:`shown`) of an invoice or pushed invoice, None when its
    enterprise has 查验 off.

    The first invoice of a bill loads the verifications of the whole bill (one query).
    """
    cache = _page_cache()
    eid = inv.enterprise_id
    if eid not in cache["ents"]:
        cache["ents"][eid] = enabled(eid)
    if not cache["ents"][eid]:
        return None
    bill_id = getattr(inv, "bill_id", None)
    if bill_id is None:  # a pushed invoice: looked up by its key alone
        if inv.invoice_key and (eid, inv.invoice_key) not in cache["rows"]:
            cache["rows"].update({(eid, k): r for k, r in results(eid, [inv.invoice_key]).items()})
    elif bill_id not in cache["bills"]:
        cache["bills"].add(bill_id)
        found = db.session.scalars(select(InvoiceVerification).where(
            InvoiceVerification.enterprise_id == eid,
            InvoiceVerification.invoice_key.in_(select(Invoice.invoice_key).where(Invoice.bill_id == inv.bill_id))))
        cache["rows"].update({(r.enterprise_id, r.invoice_key): r for r in found})
    return shown(cache["rows"].get((eid, inv.invoice_key)))


def given_up(enterprise_id: int) -> int:
    """How many of the enterprise's keys are left 未查验 after ``VERIFY_MAX_ATTEMPTS`` calls without an answer."""
    V = InvoiceVerification
    return db.session.scalar(select(func.count()).select_from(V).where(
        V.status == UNVERIFIED, V.enterprise_id == enterprise_id, V.attempts >= max_attempts())) or 0


def retry_given_up(enterprise_id: int, now: dt.datetime | None = None) -> int:
    """Make the keys :func:`given_up` counts due again with a fresh set of attempts (the caller commits).

    For after an outage of the invoice cloud longer than the retries last (about 2.5 hours with the
    defaults): the next pass asks the cloud again. Returns how many keys were rescheduled.
    """
    V = InvoiceVerification
    return db.session.execute(update(V).where(
        V.status == UNVERIFIED, V.enterprise_id == enterprise_id, V.attempts >= max_attempts())
        .values(attempts=0, next_try_at=now or utcnow())).rowcount


# --------------------------------------------------------------------------- the job

#: Rows changed this long before the last complete scan are looked at again: a transaction that
#: stamped its rows before the scan but committed after it, or another machine's clock running behind.
SCAN_OVERLAP = dt.timedelta(minutes=15)

#: The rows that carry invoice keys, and the column that says when each last changed.
_SOURCES = ((Invoice, Invoice.updated_at), (ExpectedInvoice, ExpectedInvoice.received_at))


def _due(model, changed, now: dt.datetime):
    """The condition under which a row of ``model`` makes its key due (see the module docstring)."""
    V = InvoiceVerification
    record = and_(V.enterprise_id == model.enterprise_id, V.invoice_key == model.invoice_key)
    return or_(
        ~exists().where(record),
        exists().where(record, V.status == UNVERIFIED, V.attempts < max_attempts(),
                       or_(V.next_try_at.is_(None), V.next_try_at <= now)),
        # A settled result older than the interval: asked again once the key arrives anew.
        exists().where(record, V.status.in_(SETTLED), V.checked_at < now - interval(), changed > V.checked_at,
                       or_(V.next_try_at.is_(None), V.next_try_at <= now)),
        # Not verifiable when last looked at: a correction or a new copy may have the missing fact.
        exists().where(record, V.status == SKIPPED, changed > V.updated_at),
    )


def _rows(model, enterprise_id: int, *terms):
    stmt = select(model.invoice_key).where(model.enterprise_id == enterprise_id, model.invoice_key.is_not(None), *terms)
    return stmt.where(ExpectedInvoice.origin == "push") if model is ExpectedInvoice else stmt


def _due_keys(limit: int, now: dt.datetime) -> tuple[list[tuple[int, str]], set[int]]:
    """(enterprise id, invoice key) due for verification in enterprises with the setting on, and the
    enterprises whose changed rows were all looked at (their scan mark may move on).

    Per enterprise, only rows changed since its last complete scan (``verify_scanned_at``, less
    :data:`SCAN_OVERLAP`) are read, through ``(enterprise_id, updated_at)`` / ``(enterprise_id,
    received_at)``; a never-scanned enterprise (new, or 查验 just switched on) is read whole once.
    Keys due again later without any row changing — a retry after no answer, a result past
    ``VERIFY_INTERVAL`` for a key that arrived again meanwhile — wait in ``next_try_at`` and are found
    through ``ix_invoice_verifications_due``. At 1M invoices a pass reading every row took ~4.7 s of
    PostgreSQL time even with nothing due.
    """
    # Switched off: forget the scan, so switching on again reads the rows written meanwhile.
    db.session.execute(Enterprise.__table__.update().where(
        Enterprise.verify_invoices.is_(False), Enterprise.verify_scanned_at.is_not(None)).values(verify_scanned_at=None))
    out: dict[tuple[int, str], None] = {}
    complete: set[int] = set()
    # Least recently scanned first (never scanned before all), each with an equal share of the run: one
    # enterprise's backlog (查验 just switched on over a million invoices) does not hold up the others'.
    # What the others leave of the run goes to those with more to do; an enterprise left out when the run
    # is full is older than the rest at the next pass.
    ents = db.session.execute(select(Enterprise.id, Enterprise.verify_scanned_at)
                              .where(Enterprise.verify_invoices.is_(True))
                              .order_by(Enterprise.verify_scanned_at.asc().nulls_first(), Enterprise.id)).all()
    share = -(-limit // max(len(ents), 1))
    for rounds in (1, 2):
        for ent_id, scanned_at in ents:
            if ent_id in complete:
                continue
            taken = sum(1 for e, _ in out if e == ent_id)
            room = min(share if rounds == 1 else limit, taken + limit - len(out))
            if room <= taken:
                continue
            keys, exhausted = _due_of(ent_id, scanned_at, room, now)
            for key in keys:
                if len(out) < limit:
                    out.setdefault((ent_id, key), None)
            if exhausted:
                complete.add(ent_id)
        if len(out) >= limit:
            break
    return list(out), complete


def _due_of(ent_id: int, scanned_at: dt.datetime | None, room: int, now: dt.datetime) -> tuple[list[str], bool]:
    """Up to ``room`` due keys of one enterprise, and whether its changed rows were all looked at."""
    V = InvoiceVerification
    since = None if scanned_at is None else scanned_at - SCAN_OVERLAP
    found: list[str] = []
    exhausted = True
    for model, changed in _SOURCES:
        window = [changed > since] if since is not None else []
        _schedule_reasks(model, changed, ent_id, window, now)
        wanted = room - len(found)
        keys = list(db.session.scalars(_rows(model, ent_id, *window, _due(model, changed, now))
                                       .distinct().order_by(model.invoice_key).limit(wanted + 1)))
        exhausted = exhausted and len(keys) <= wanted
        found += keys[:wanted]
    # Waiting keys whose time has come (the rows themselves unchanged).
    waiting = list(db.session.scalars(select(V.invoice_key).where(
        V.enterprise_id == ent_id, V.next_try_at <= now,
        or_(and_(V.status == UNVERIFIED, V.attempts < max_attempts()), V.status.in_(SETTLED)))
        .order_by(V.next_try_at).limit(room)))
    for model, changed in _SOURCES:
        if waiting:
            found += db.session.scalars(_rows(model, ent_id, model.invoice_key.in_(waiting),
                                              _due(model, changed, now)).distinct())
    return list(dict.fromkeys(found))[:room], exhausted


def _schedule_reasks(model, changed, ent_id: int, window: list, now: dt.datetime) -> None:
    """A key that arrived again while its result is still fresh is due again when the result turns stale:
    note that time in ``next_try_at``, since no row will change then."""
    V = InvoiceVerification
    # Driven by the changed rows (few), each looking up its key's result by (enterprise_id, invoice_key).
    arrived_again = (_rows(model, ent_id, *window).with_only_columns(V.id).select_from(model)
                     .join(V, and_(V.enterprise_id == model.enterprise_id, V.invoice_key == model.invoice_key))
                     .where(V.status.in_(SETTLED), V.next_try_at.is_(None), V.checked_at >= now - interval(),
                            changed > V.checked_at))
    for row in db.session.scalars(select(V).where(V.id.in_(arrived_again))):
        row.next_try_at = row.checked_at + interval()


def _mark_scanned(enterprise_ids: set[int], started: dt.datetime) -> None:
    """Move the scan mark of ``enterprise_ids`` to ``started``: their changed rows until then are handled."""
    if enterprise_ids:
        db.session.execute(Enterprise.__table__.update().where(
            Enterprise.id.in_(enterprise_ids), Enterprise.verify_invoices.is_(True)).values(verify_scanned_at=started))
    db.session.commit()


def _facts(enterprise_id: int, key: str) -> list[Any]:
    """Rows carrying ``key``, best first: corrected by hand, read from a file, pushed, OCR last."""
    invoices = list(db.session.scalars(select(Invoice).where(
        Invoice.enterprise_id == enterprise_id, Invoice.invoice_key == key).order_by(Invoice.id.desc())))
    pushed = list(db.session.scalars(select(ExpectedInvoice).where(
        ExpectedInvoice.enterprise_id == enterprise_id, ExpectedInvoice.origin == "push",
        ExpectedInvoice.invoice_key == key).order_by(ExpectedInvoice.id.desc())))
    manual = [i for i in invoices if i.source == "manual"]
    read = [i for i in invoices if i.source not in ("manual", "ocr")]
    ocr = [i for i in invoices if i.source == "ocr"]
    return [*manual, *read, *pushed, *ocr]


def _record(enterprise_id: int, key: str) -> InvoiceVerification:
    row = db.session.scalar(select(InvoiceVerification).where(
        InvoiceVerification.enterprise_id == enterprise_id, InvoiceVerification.invoice_key == key))
    if row is None:
        row = InvoiceVerification(enterprise_id=enterprise_id, invoice_key=key, status=UNVERIFIED, attempts=0)
        db.session.add(row)
    return row


def _store(row: InvoiceVerification, status: str, code: str | None, message: str, now: dt.datetime,
           fields: dict | None) -> None:
    if status == UNVERIFIED and row.status in SETTLED:
        # Asked again after the interval and no answer: the earlier result stands, tried later.
        row.next_try_at = now + dt.timedelta(seconds=_cfg("VERIFY_RETRY_MAX", 6 * 3600))
        return
    row.request = fields
    row.code = code
    row.message = (message or "")[:500] or None
    if status == UNVERIFIED:
        row.attempts = (row.attempts or 0) + 1
        row.next_try_at = now + dt.timedelta(seconds=retry_delay(row.attempts))
        row.status = UNVERIFIED
        return
    row.status = status
    row.next_try_at = None
    row.updated_at = now
    if status != SKIPPED:
        row.attempts = (row.attempts or 0) + 1
        row.checked_at = now


def _client() -> InvoiceCloudClient:
    cfg = current_app.config
    return InvoiceCloudClient(cfg["INVOICE_CLOUD_URL"], timeout=timeout_from_config(cfg))


def verify_due(limit: int = 100, now: dt.datetime | None = None) -> dict[str, int]:
    """Verify up to ``limit`` due invoice keys; return counts per outcome.

    One token per enterprise and run; each key is committed on its own, so one bad answer never
    costs the others. No further call starts after ``VERIFY_RUN_BUDGET`` seconds. ``now`` (naive
    UTC, default the clock) decides which waits are over.
    """
    now = now or utcnow()
    started = utcnow()  # the scan's edge is the clock's, whatever ``now`` says about waits
    counts = dict.fromkeys((VERIFIED, FAILED, VOID, UNVERIFIED, SKIPPED), 0)
    due, complete = _due_keys(limit, now)
    db.session.commit()  # the scheduled re-asks; no transaction stays open across the calls
    if not due:
        _mark_scanned(complete, started)
        return counts
    client = _client()
    ends_at = time.monotonic() + _cfg("VERIFY_RUN_BUDGET", 120.0)
    tokens: dict[int, str | IntegrationError] = {}
    for n, (ent_id, key) in enumerate(due):
        if time.monotonic() > ends_at:
            # The keys not reached have no result yet: their enterprises' marks stay, so they are found again.
            complete -= {e for e, _ in due[n:]}
            break
        try:
            status = _verify_one(client, tokens, ent_id, key, now)
        except IntegrityError:  # another runner stored this key first: its answer stands
            db.session.rollback()
            continue
        counts[status] += 1
    _mark_scanned(complete, started)
    log.info("verification: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def _token(client: InvoiceCloudClient, tokens: dict, ent: Enterprise) -> str:
    """The run's access token of ``ent`` (fetched once per run; a refusal is remembered too)."""
    if ent.id not in tokens:
        try:
            tokens[ent.id] = client.fetch_token(ent.client_id, decrypt(ent.client_secret_enc))["access_token"]
        except IntegrationError as exc:
            tokens[ent.id] = exc
    token = tokens[ent.id]
    if isinstance(token, IntegrationError):
        raise token
    return token


def _verify_one(client: InvoiceCloudClient, tokens: dict, ent_id: int, key: str,
                now: dt.datetime) -> str:
    ent = db.session.get(Enterprise, ent_id)
    fields, reason = None, "未找到该发票"
    for facts in _facts(ent_id, key):
        fields, reason = request_fields(facts)
        if fields is not None:
            break
    row = _record(ent_id, key)
    was_blocking = blocking(row)
    if fields is None:
        _store(row, SKIPPED, None, reason or "无法查验", now, None)
        db.session.commit()
        return SKIPPED
    try:
        reply = client.check_invoice(_token(client, tokens, ent), fields, deadline=_cfg("VERIFY_DEADLINE", 30.0))
        status, code, message = interpret(reply)
    except RemoteRefused as exc:  # the token was refused: credentials or licence
        status, code, message = UNVERIFIED, str(exc.code) if exc.code else None, f"发票云拒绝了令牌申请：{exc.message}"
    except IntegrationError as exc:
        status, code, message = UNVERIFIED, None, f"未能完成查验：{exc.message}"
    _store(row, status, code, message, now, fields)
    if blocking(row) and not was_blocking:
        _note_on_submitted_bills(ent_id, key, row)
    db.session.commit()
    return status


#: Bills past the scan desk: a failed 查验 that lands now no longer stops them, so it goes on their history.
AFTER_SUBMIT = (BillStatus.SUBMITTED, BillStatus.RECOGNISED, BillStatus.MATCHED, BillStatus.MATCH_FAILED,
                BillStatus.COMPLETED)


def _note_on_submitted_bills(enterprise_id: int, key: str, row: InvoiceVerification) -> None:
    """Record on every submitted bill carrying ``key`` that its 查验 failed after it left the desk.

    Such a result reopens nothing (the ERP may have approved the bill already); the bill's history says
    so, and the invoice list's 只看查验不符 finds the invoice.
    """
    bills_with_key = db.session.scalars(select(Bill).where(
        Bill.enterprise_id == enterprise_id, Bill.status.in_(AFTER_SUBMIT),
        Bill.id.in_(select(Invoice.bill_id).where(Invoice.enterprise_id == enterprise_id, Invoice.invoice_key == key))))
    number = key.lstrip(":").replace(":", " ")
    detail = f"发票 {number} {VERIFICATION_STATUSES[row.status]}：{row.message or ''}" + (f"（{row.code}）" if row.code else "")
    for bill in bills_with_key:
        bills.event(bill, "verify_late", "system:查验", detail={"message": detail})
