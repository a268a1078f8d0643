"""Housekeeping: part files of killed uploads, blobs no row refers to, and dead login rows.

A process killed while an upload streams into ``tmp/`` leaves a ``put-*.part`` file; one
killed after the file was stored but before its row committed leaves a blob nobody refers
to. :func:`clean_storage` removes both once they are older than ``STORAGE_CLEAN_AGE``, which
is what keeps it from touching an upload in progress (its part file is written to all the
time) or a blob whose row is about to commit (stored or touched a moment ago). It runs from
``flask --app portal storage clean`` and, through :func:`clean_if_due`, when a job runner
starts and then every ``STORAGE_CLEAN_EVERY`` seconds.

:func:`clean_logins` runs on the same schedule: server-side sessions past their idle or absolute
lifetime (a user who never logs in again would keep them for ever) and login-throttle rows whose
window has passed (one per made-up user name or address a guesser tried).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, or_, select

from . import bills
from .extensions import db
from .models import Blob, LoginFailure, WebSession, WritebackJob, utcnow

log = logging.getLogger("portal.housekeeping")

BATCH = 500


@dataclass
class Cleaned:
    """What one cleaning removed."""

    temp_files: int
    orphan_blobs: int
    logins: int = 0  # expired sessions and login-throttle rows (clean_if_due only)


def clean_storage(older_than: float | None = None) -> Cleaned:
    """Remove part files and unreferenced blobs untouched for ``older_than`` seconds (default: config)."""
    age = float(current_app.config["STORAGE_CLEAN_AGE"] if older_than is None else older_than)
    store = bills.storage()
    temp = store.cleanup_temp(age)
    orphans = 0
    batch: list[str] = []
    for sha in store.blobs_older_than(age):
        batch.append(sha)
        if len(batch) >= BATCH:
            orphans += _drop_unreferenced(store, batch, age)
            batch = []
    if batch:
        orphans += _drop_unreferenced(store, batch, age)
    if temp or orphans:
        log.info("storage cleaned: %d part files, %d blobs without a row", temp, orphans)
    return Cleaned(temp, orphans)


def _drop_unreferenced(store, keys: list[str], age: float) -> int:
    referenced = set(db.session.scalars(select(Blob.sha256).where(Blob.sha256.in_(keys))))
    # A write-back job names its file by sha256 too; it never outlives its blob row, but costs nothing to honour.
    referenced |= set(db.session.scalars(select(WritebackJob.sha256).where(WritebackJob.sha256.in_(keys))))
    # Checked again file by file: a put() of the same content touches the blob after the listing.
    return sum(1 for sha in keys if sha not in referenced and store.delete_unless_recent(sha, age))


def clean_logins() -> int:
    """Delete expired web sessions and login-throttle rows past their window; return how many (committed).

    Both would be refused or reset when next read, so deleting them changes no outcome: a session
    past ``SESSION_IDLE_LIFETIME`` / ``SESSION_ABSOLUTE_LIFETIME`` no longer logs anyone in, and a
    throttle row past ``LOGIN_THROTTLE_WINDOW`` starts a new window on the next attempt.
    """
    cfg = current_app.config
    now = utcnow()
    idle = timedelta(seconds=cfg["SESSION_IDLE_LIFETIME"])
    absolute = timedelta(seconds=cfg["SESSION_ABSOLUTE_LIFETIME"])
    window = timedelta(seconds=cfg["LOGIN_THROTTLE_WINDOW"])
    sessions = db.session.execute(delete(WebSession).where(
        or_(WebSession.last_seen_at <= now - idle, WebSession.created_at <= now - absolute))).rowcount
    failures = db.session.execute(delete(LoginFailure).where(LoginFailure.window_start <= now - window)).rowcount
    db.session.commit()
    if sessions or failures:
        log.info("logins cleaned: %d expired sessions, %d login-throttle rows", sessions, failures)
    return sessions + failures


def cleaning_due(now: float | None = None, *, key: str = "portal_storage_clean") -> bool:
    """True on the first call of this app (per ``key``) and then every ``STORAGE_CLEAN_EVERY`` seconds."""
    now = time.monotonic() if now is None else now
    state = current_app.extensions.setdefault(key, {})
    last = state.get("last")
    if last is not None and now - last < float(current_app.config["STORAGE_CLEAN_EVERY"]):
        return False
    state["last"] = now
    return True


def clean_if_due(now: float | None = None) -> Cleaned | None:
    """Run :func:`clean_storage` on the first call of this app and then every ``STORAGE_CLEAN_EVERY`` seconds.

    For job runners: call it on every pass; a failure is logged and never stops the runner.
    """
    if not cleaning_due(now):
        return None
    try:
        done = clean_storage()
        done.logins = clean_logins()
        return done
    except Exception:  # housekeeping must never take the job runner down
        log.exception("storage cleaning failed")
        db.session.rollback()
        return None
