"""Sync mode (影像同步提单人): the pushed invoice files become the bill's images.

The push receiver only stores the invoices (fast, no outbound call); the files
named by their ``downloadUrl`` are fetched here, by the job runner calling
:func:`fetch_pending` (or ``flask --app portal sync run``). Each file is fetched
through :func:`portal.integration.download.fetch_file` (timeouts, size cap, host
allow-list, deadline), attached and recognised like any upload, and committed on its own,
so one bad file never costs the others. A bill whose pushed files are all
attached is submitted automatically, which completes it and writes it back.
"""
from __future__ import annotations

import datetime as dt
import logging
import time

from flask import current_app
from sqlalchemy import and_, or_, select

from . import bills, review
from .errors import UserError
from .extensions import db
from .integration.download import fetch_file
from .integration.errors import IntegrationError
from .integration.http import DEFAULT_DOWNLOAD_DEADLINE, timeout_from_config
from .models import Bill, Enterprise, ExpectedInvoice, utcnow

log = logging.getLogger("portal.sync")

ACTOR = "sync"
# Bills that may still receive images (a returned bill takes the files of a new push too).
FETCHABLE = ("pending", "uploaded", "returned")


def _fetch_options() -> dict:
    cfg = current_app.config
    hosts = [h.strip() for h in str(cfg.get("FETCH_ALLOWED_HOSTS") or "").split(",") if h.strip()]
    return {
        "max_bytes": int(cfg["FETCH_MAX_BYTES"]),
        "allowed_hosts": hosts or None,  # empty = any public host
        "timeout": timeout_from_config(cfg),
        "deadline": float(cfg.get("FETCH_DEADLINE", DEFAULT_DOWNLOAD_DEADLINE)),
    }


def max_attempts() -> int:
    """How many times one pushed file is tried before it is given up (``FETCH_MAX_ATTEMPTS``)."""
    return max(1, int(current_app.config.get("FETCH_MAX_ATTEMPTS", 8)))


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failure: doubling from FETCH_RETRY_BASE, capped at FETCH_RETRY_MAX."""
    cfg = current_app.config
    base, cap = float(cfg.get("FETCH_RETRY_BASE", 60)), float(cfg.get("FETCH_RETRY_MAX", 3600))
    return min(cap, base * 2 ** min(max(attempts - 1, 0), 30))


def _pending_rows(limit: int, now: dt.datetime) -> list[tuple[int, int]]:
    """(expected invoice id, bill id) of files due to fetch: fresh ones first, then earlier failures whose wait is over."""
    return [tuple(r) for r in db.session.execute(pending_statement(limit, now)).all()]


def pending_statement(limit: int, now: dt.datetime):
    """The statement of :func:`_pending_rows`; it reads the partial index of files still to fetch
    (``ix_expected_invoices_to_fetch``), not every pushed invoice."""
    return (
        select(ExpectedInvoice.id, Bill.id)
        .join(Enterprise, Enterprise.id == ExpectedInvoice.enterprise_id)
        .join(Bill, and_(Bill.enterprise_id == ExpectedInvoice.enterprise_id, Bill.bill_no == ExpectedInvoice.bill_no))
        .where(Enterprise.image_mode == "sync", ExpectedInvoice.origin == "push",
               ExpectedInvoice.download_url.is_not(None), ExpectedInvoice.fetched_image_id.is_(None),
               ExpectedInvoice.fetch_attempts < max_attempts(),
               or_(ExpectedInvoice.fetch_next_at.is_(None), ExpectedInvoice.fetch_next_at <= now),
               Bill.status.in_(FETCHABLE))
        # A file that failed before waits behind every fresh one, so broken links never starve new pushes.
        .order_by(ExpectedInvoice.fetch_error.is_not(None), ExpectedInvoice.id)
        .limit(limit)
    )


def fetch_pending(limit: int = 100, now: dt.datetime | None = None) -> int:
    """Fetch up to ``limit`` due pushed files of sync-mode bills; return how many were attached.

    A failure (unreachable, HTTP error, host not allowed, too large, too slow, unreadable
    file) is stored in ``fetch_error`` and tried again after a growing wait (see
    :func:`retry_delay`), at most ``FETCH_MAX_ATTEMPTS`` times; it never stops the others.
    ``now`` (naive UTC, default the clock) decides which waits are over. No new download
    starts once ``FETCH_RUN_BUDGET`` seconds are spent. Commits after every file.
    """
    now = now or utcnow()
    rows = _pending_rows(limit, now)
    db.session.commit()  # no transaction stays open across the downloads
    if not rows:
        return 0
    options = _fetch_options()
    # The job loop also runs every tenant's write-back: a run starts no new download once
    # FETCH_RUN_BUDGET seconds are spent (the file under way keeps its own deadline); the rest
    # stay due and come first in the next run.
    budget_ends = time.monotonic() + float(current_app.config.get("FETCH_RUN_BUDGET", 300))
    attached = 0
    touched: list[int] = []
    for row_id, bill_id in rows:
        if time.monotonic() >= budget_ends:
            log.info("sync: run budget spent, the remaining files wait for the next run")
            break
        row = db.session.get(ExpectedInvoice, row_id)
        if row is None or row.fetched_image_id is not None:
            continue  # fetched meanwhile by another runner
        url = row.download_url
        db.session.commit()
        try:
            data, name = fetch_file(url, **options)
        except IntegrationError as exc:
            _failed(row_id, exc.message, now)
            continue
        try:
            attached += _attach(row_id, bill_id, data, name)
        except UserError as exc:
            db.session.rollback()
            _failed(row_id, exc.message, now)
            continue
        except Exception:  # one bad file must not stop the run; the trace goes to the log
            db.session.rollback()
            log.exception("sync: attaching pushed file of expected invoice %s failed", row_id)
            _failed(row_id, "附加文件时发生内部错误，请联系运维", now)
            continue
        if bill_id not in touched:
            touched.append(bill_id)
    for bill_id in touched:
        _submit_when_complete(bill_id)
    return attached


def _attach(row_id: int, bill_id: int, data: bytes, name: str | None) -> int:
    """Attach one downloaded file to its bill (recognised like an upload) and commit; 1 when attached."""
    row = db.session.get(ExpectedInvoice, row_id)
    bill = db.session.get(Bill, bill_id)
    if row is None or bill is None or row.fetched_image_id is not None:
        return 0
    if bill.status not in FETCHABLE:
        db.session.rollback()
        return 0  # submitted or deleted while we were downloading: the row waits for a return
    filename = name or f"发票{row.number or row.id}"
    added = bills.add_file(bill, data, filename, actor=ACTOR, origin="push")
    row.fetched_image_id = added.image.id
    row.fetch_error = None
    row.fetch_next_at = None
    db.session.commit()
    log.info("sync: attached %s to bill %s (image %s)", filename, bill.bill_no, added.image.id)
    return 1


def _failed(row_id: int, message: str, now: dt.datetime) -> None:
    """Keep the error, count the attempt and set the next try (or give up at the cap)."""
    row = db.session.get(ExpectedInvoice, row_id)
    if row is None:
        return
    row.fetch_attempts = (row.fetch_attempts or 0) + 1
    if row.fetch_attempts >= max_attempts():
        # Given up: the row is no longer due; the error says so, for the bill page and the log.
        row.fetch_next_at = None
        suffix = f"（已尝试 {row.fetch_attempts} 次，不再自动下载）"
        row.fetch_error = message[:500 - len(suffix)] + suffix
    else:
        row.fetch_next_at = now + dt.timedelta(seconds=retry_delay(row.fetch_attempts))
        row.fetch_error = message[:500]
    db.session.commit()
    log.warning("sync: fetching pushed file of expected invoice %s failed (attempt %s): %s",
                row_id, row.fetch_attempts, message)


def _submit_when_complete(bill_id: int) -> None:
    """Submit an ``uploaded`` sync-mode bill once every pushed file naming it is attached."""
    bill = db.session.get(Bill, bill_id)
    if bill is None or bill.status != "uploaded" or bill.enterprise.image_mode != "sync":
        return
    waiting = db.session.scalar(select(ExpectedInvoice.id).where(
        ExpectedInvoice.enterprise_id == bill.enterprise_id, ExpectedInvoice.origin == "push",
        ExpectedInvoice.bill_no == bill.bill_no, ExpectedInvoice.download_url.is_not(None),
        ExpectedInvoice.fetched_image_id.is_(None)).limit(1))
    if waiting is not None:
        return
    try:
        review.submit(bill, ACTOR)
        db.session.commit()
    except UserError as exc:
        db.session.rollback()
        log.warning("sync: automatic submit of bill %s refused: %s", bill_id, exc.message)
    except Exception:
        db.session.rollback()
        log.exception("sync: automatic submit of bill %s failed", bill_id)
