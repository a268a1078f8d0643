"""Background OCR of uploaded images (识别中 → values, 待确认) and the confirmation of OCR'd invoices.

An upload recognises its file in the request with the fast readers (structured data, PDF text, QR).
When an image or page gives no complete invoice (number, date, amount or total) and OCR is installed,
:func:`portal.ocr_state.mark` sets the image's ``ocr_state`` to ``queued`` (shown as 识别中) and the
request answers at once. The job :func:`run` — ``portal.jobs.recognise_image``, run by the in-process
runner's pass or by an RQ worker on queue ``recognise`` — claims the image with a lease and a token, reads
the file again with OCR in a file-work pool of its own (:class:`portal.files.filework.Pool`: a budgeted child
process, never the web process), and stores
the readings (source ``ocr``), replacing the upload's, only while its token still holds: a worker killed
mid-job leaves ``running`` with a lease that runs out, the next pass makes it due again, and whichever
claim finishes stores one set of readings. Failures are retried with backoff and kept
(``ocr_attempts``, ``ocr_error``); after ``OCR_MAX_ATTEMPTS`` the image is 识别失败.

Every invoice whose values came from OCR is ``needs_confirm`` (待确认) until a scanner confirms it
(:func:`confirm_invoice`, audited) or corrects it; a bill with images 识别中 or unconfirmed invoices
is not submitted (:func:`portal.bills.check_ocr_done`).
"""
from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from . import audit, bills, ocr_state
from .files import filework
from .files import limits as limits_mod
from .extensions import db
from .models import Bill, Image, Invoice, utcnow
from .recognition import Invoice as Reading
from .files.storage import StorageError

log = logging.getLogger("portal.ocr_jobs")

__all__ = ["ACTOR", "confirm_invoice", "due_ids", "job_id", "job_rows", "run", "run_due"]

ACTOR = "ocr"  # the actor of the job's bill events
SIGNATURE = ("type", "code", "number", "date", "amount", "tax", "total", "check_code", "seller_name",
             "seller_tax_no", "buyer_name", "buyer_tax_no")


def _seconds(name: str, default: float) -> float:
    return float(current_app.config.get(name) or default)


def job_id(image_id: int) -> str:
    """The RQ job id of an image's OCR (one waiting job per image)."""
    return f"portal-recognise-{image_id}"


# --------------------------------------------------------------------------- the job

def due_ids(now=None, limit: int = 50) -> list[int]:
    """Images whose OCR is due: queued and due, or running with a lease that ran out (its worker died)."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(Image.id).where(Image.removed.is_(False), or_(
            and_(Image.ocr_state == "queued", Image.ocr_due_at <= now),
            and_(Image.ocr_state == "running", Image.ocr_lease_until < now)))
        .order_by(Image.ocr_due_at, Image.id).limit(limit)))


def run_due(limit: int = 50) -> dict[str, int]:
    """The runner's share of a pass: OCR due images in turn; counts per outcome.

    No new image is started after ``OCR_PASS_SECONDS`` (one always is): the pass's other work (write-backs, ERP pulls)
    is not held up by a pile of scans; the rest is due on the next pass.
    """
    counts = {"done": 0, "retry": 0, "failed": 0, "skipped": 0}
    ends = time.monotonic() + _seconds("OCR_PASS_SECONDS", 60)
    for n, image_id in enumerate(due_ids(limit=limit)):
        if n and time.monotonic() > ends:  # one at least, however long the last pass took
            break
        counts[run(image_id)] += 1
    return counts


def _claim(image_id: int) -> str | None:
    """Take the image's OCR for this process (a lease and a fresh token), committed; None when not due."""
    now = utcnow()
    token = secrets.token_hex(16)
    claimed = db.session.execute(
        update(Image).where(Image.id == image_id, Image.removed.is_(False), or_(
            and_(Image.ocr_state == "queued", Image.ocr_due_at <= now),
            and_(Image.ocr_state == "running", Image.ocr_lease_until < now)))
        .values(ocr_state="running", ocr_attempts=Image.ocr_attempts + 1, ocr_token=token,
                ocr_lease_until=now + timedelta(seconds=_seconds("OCR_LEASE", 300))),
        execution_options={"synchronize_session": False}).rowcount
    db.session.commit()
    return token if claimed else None


_ocr_pool: filework.Pool | None = None
_ocr_pool_key: tuple | None = None
_ocr_pool_lock = threading.Lock()


def _pool() -> filework.Pool:
    """This process's file-work pool for OCR: the upload pool's isolation, with OCR's memory budget.

    The OCR engine maps well over a gigabyte of address space (its models and thread arenas), which the
    upload pool's ``FILE_WORK_MEMORY`` would refuse (the engine then silently reads nothing); a separate
    pool keeps that budget for the uploads and keeps the loaded engine in its child between jobs.
    """
    global _ocr_pool, _ocr_pool_key
    cfg = current_app.config
    key = (int(cfg.get("OCR_WORKERS") or 1), int(cfg.get("OCR_WORKERS") or 1), int(cfg.get("OCR_WORK_MEMORY") or 0))
    with _ocr_pool_lock:
        if _ocr_pool is None or _ocr_pool_key != key:
            if _ocr_pool is not None:
                _ocr_pool.close()
            _ocr_pool, _ocr_pool_key = filework.Pool(*key), key
        return _ocr_pool


def _limits() -> limits_mod.Limits:
    """The file-work limits with OCR's longer time budgets (1–3 s a page, more when the engine loads)."""
    lim = limits_mod.from_config(current_app.config)
    return dataclasses.replace(
        lim, work_seconds=max(lim.work_seconds, _seconds("OCR_PAGE_SECONDS", 30)),
        work_total_seconds=max(lim.work_total_seconds, _seconds("OCR_TOTAL_SECONDS", 300)))


def run(image_id: int) -> str:
    """OCR one image if it is due; ``done``, ``retry``, ``failed`` or ``skipped`` (not due, or taken over)."""
    token = _claim(image_id)
    if token is None:
        return "skipped"
    image = db.session.get(Image, image_id)
    sha, attempts = image.sha256, image.ocr_attempts
    fill = ocr_state.fill_only(image)
    tenant = db.session.scalar(select(Bill.enterprise_id).where(Bill.id == image.bill_id))
    db.session.commit()  # no transaction stays open while OCR runs
    if attempts > int(current_app.config.get("OCR_MAX_ATTEMPTS") or 3):
        return _failed(image_id, token, "识别多次中断，已停止重试", final=True)
    try:
        data = bills.storage().read(sha)
        found = _pool().run(
            "inspect", (data, True, int(current_app.config.get("OCR_THREADS") or 0)), limits=_limits(),
            tenant=tenant, wait=_seconds("OCR_QUEUE_SECONDS", 120))
    except filework.Refused as exc:
        return _failed(image_id, token, exc.message)
    except StorageError as exc:
        return _failed(image_id, token, f"读取文件失败：{exc}")
    if fill:
        return _store_fill(image_id, token, found.readings)
    return _store(image_id, token, found.readings)


def _mine(image_id: int, token: str, **values: Any) -> bool:
    """Set ``values`` on the image if this claim still holds it (one atomic UPDATE; takes its row lock)."""
    return bool(db.session.execute(
        update(Image).where(Image.id == image_id, Image.ocr_state == "running", Image.ocr_token == token,
                            Image.removed.is_(False))  # taken off the bill meanwhile: its result is not wanted
        .values(**values), execution_options={"synchronize_session": False}).rowcount)


def _failed(image_id: int, token: str, message: str, *, final: bool = False) -> str:
    image = db.session.get(Image, image_id)
    attempts = image.ocr_attempts
    if not final and attempts < int(current_app.config.get("OCR_MAX_ATTEMPTS") or 3):
        wait = _seconds("OCR_RETRY_BASE", 30) * 2 ** (attempts - 1)
        ok = _mine(image_id, token, ocr_state="queued", ocr_error=message, ocr_lease_until=None,
                   ocr_due_at=utcnow() + timedelta(seconds=wait))
        outcome = "retry"
    else:
        ok = _mine(image_id, token, ocr_state="failed", ocr_error=message, ocr_lease_until=None,
                   ocr_finished_at=utcnow())
        outcome = "failed"
    db.session.commit()
    log.warning("OCR of image %s: %s (attempt %d): %s", image_id, outcome, attempts, message)
    return outcome if ok else "skipped"


def _signature(inv: Any) -> tuple:
    return tuple(getattr(inv, f) for f in SIGNATURE)


def _store(image_id: int, token: str, readings: list[Reading]) -> str:
    """Replace the image's recognised invoices by the OCR run's, once (the claim's token must still hold)."""
    if not _mine(image_id, token, ocr_state="done", ocr_error=None, ocr_lease_until=None,
                 ocr_finished_at=utcnow()):
        db.session.rollback()
        return "skipped"  # the lease ran out and another claim took the image over
    image = db.session.get(Image, image_id)
    db.session.refresh(image, ["invoices"])
    bill = db.session.get(Bill, image.bill_id)
    old = list(image.invoices)
    # What the upload's readers saw is not OCR: an identical reading stays confirmed.
    structured = {_signature(i) for i in old if i.source != "manual"}
    manual_keys = {i.invoice_key for i in old if i.source == "manual" and i.invoice_key}
    keys = {i.invoice_key for i in old if i.invoice_key}
    db.session.execute(Invoice.__table__.delete().where(Invoice.image_id == image_id, Invoice.source != "manual"))
    # An invoice the scanner typed in (or corrected) meanwhile wins over the OCR reading of it.
    fresh = [r for r in readings if bills.invoice_key(r.code, r.number) not in manual_keys
             or not bills.invoice_key(r.code, r.number)]
    keys |= bills._store_readings(bill, image, fresh)
    db.session.refresh(image, ["invoices"])
    confirm = 0
    for inv in image.invoices:
        if inv.source != "manual":
            inv.needs_confirm = _signature(inv) not in structured
            confirm += inv.needs_confirm
    db.session.flush()
    bills.refresh_duplicates(bill.enterprise_id, keys)
    bills.event(bill, "ocr", ACTOR, detail={"image_id": image_id, "filename": image.filename,
                                            "invoices": len(fresh), "to_confirm": confirm})
    db.session.commit()
    return "done"


# Fields the match and the duplicate check use: an invoice with one of them from OCR is 待确认.
KEY_FIELDS = ("code", "number", "date", "amount", "total")


def _store_fill(image_id: int, token: str, readings: list[Reading]) -> str:
    """Add what OCR filled (names, tax numbers, total) to the image's stored QR invoices, in place.

    The QR's values never change, nor does an invoice a scanner corrected (source ``manual``), nor a bill
    that has left the scan desk meanwhile (a fill-only job does not hold up submit). The filled fields are
    listed in ``raw["ocr_fields"]``; the invoice is 待确认 only when one of :data:`KEY_FIELDS` came from OCR
    (the QR's number, date and amount are trusted; names are shown as read by OCR).
    """
    if not _mine(image_id, token, ocr_state="done", ocr_error=None, ocr_lease_until=None,
                 ocr_finished_at=utcnow()):
        db.session.rollback()
        return "skipped"
    image = db.session.get(Image, image_id)
    db.session.refresh(image, ["invoices"])
    bill = db.session.get(Bill, image.bill_id)
    filled = {(r.page or 0, r.code, r.number): r for r in readings if r.raw and r.raw.get("ocr_fields")}
    changed, confirm = 0, 0
    if bill.status in bills.EDITABLE:
        for inv in image.invoices:
            r = filled.get((inv.page or 0, inv.code, inv.number))
            if inv.source == "manual" or r is None:
                continue
            taken = [name for name in r.raw["ocr_fields"] if getattr(inv, name) is None]
            if not taken:
                continue
            for name in taken:
                setattr(inv, name, getattr(r, name))
            if inv.amount is not None and inv.total is not None and inv.tax is None and "total" in taken:
                inv.tax = inv.total - inv.amount
            inv.raw = {**(inv.raw or {}), "ocr_fields": sorted(set((inv.raw or {}).get("ocr_fields", [])) | set(taken))}
            if set(taken) & set(KEY_FIELDS):
                inv.needs_confirm = True
                confirm += 1
            changed += 1
    db.session.flush()
    bills.event(bill, "ocr", ACTOR, detail={"image_id": image_id, "filename": image.filename,
                                            "invoices": changed, "to_confirm": confirm, "fill": True})
    db.session.commit()
    return "done"


# --------------------------------------------------------------------------- 待确认

def confirm_invoice(inv: Invoice, actor: str) -> None:
    """A scanner confirms an OCR'd invoice as read (待确认 → confirmed); audited. Commits nothing."""
    bill = db.session.get(Bill, inv.bill_id)
    bills.require_editable(bill)
    if not inv.needs_confirm:
        return
    inv.needs_confirm = False
    inv.confirmed_by, inv.confirmed_at = actor, utcnow()
    label = inv.number or f"#{inv.id}"
    bills.event(bill, "confirm_invoice", actor, detail={"invoice_id": inv.id, "number": inv.number})
    audit.record("confirm", "invoice", inv.id, enterprise_id=inv.enterprise_id,
                 summary=f"确认单据 {bill.bill_no} 的 OCR 识别发票 {label}", after={"needs_confirm": False},
                 actor=actor)


def job_rows(visible: Any, limit: int = 50) -> tuple[list[tuple[Image, Bill]], dict[str, int]]:
    """For the jobs page: OCR jobs queued, running or failed (newest first) and their count per state.

    ``visible`` narrows a select on Bill to the user's enterprises (``portal.web.access.scope``).
    """
    states = ("queued", "running", "failed")
    base = visible(select(Image, Bill).join(Bill, Image.bill_id == Bill.id), Bill.enterprise_id).where(
        Image.ocr_state.in_(states), Image.removed.is_(False))
    rows = [tuple(r) for r in db.session.execute(base.order_by(Image.uploaded_at.desc(), Image.id.desc()).limit(limit))]
    counted = visible(select(Image.ocr_state, func.count()).join(Bill, Image.bill_id == Bill.id), Bill.enterprise_id)
    counts = dict(db.session.execute(counted.where(Image.ocr_state.in_(states), Image.removed.is_(False))
                                     .group_by(Image.ocr_state)).all())
    return rows, counts
