"""``GET /healthz``: is this instance able to work? For load balancers and monitoring.

Answers 200 when the database answers and the file store takes a write, 503 otherwise, with the
job backlog (due write-back jobs, the oldest due one, jobs that gave up, pushed files still to fetch)
so a stalled job runner shows before users notice.  Counts only: nothing tenant-specific.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import func, select, text

from ... import bills, writeback
from ...extensions import db
from ...models import ExpectedInvoice, WritebackJob, utcnow

bp = Blueprint("health", __name__)

_OPEN = ("pending", "failed", "running")


def _database() -> str:
    db.session.execute(text("SELECT 1"))
    return "ok"


def _storage() -> str:
    bills.storage().check()  # the configured backend proves it takes a write: a probe file or object
    return "ok"


def _jobs() -> dict:
    now = utcnow()
    due = (WritebackJob.state.in_(_OPEN), WritebackJob.next_attempt_at <= now,
           WritebackJob.attempts < writeback.max_attempts())
    count, oldest = db.session.execute(
        select(func.count(), func.min(WritebackJob.next_attempt_at)).where(*due)).one()
    gave_up = db.session.scalar(select(func.count()).where(
        WritebackJob.state == "failed", WritebackJob.attempts >= writeback.max_attempts()))
    to_fetch = db.session.scalar(select(func.count()).where(
        ExpectedInvoice.download_url.is_not(None), ExpectedInvoice.fetched_image_id.is_(None)))
    return {
        "writeback_due": count,
        "oldest_due_at": oldest.isoformat() + "Z" if oldest else None,
        "oldest_due_seconds": int((now - oldest).total_seconds()) if oldest else 0,
        "writeback_gave_up": gave_up,
        "downloads_pending": to_fetch,
    }


@bp.get("/healthz")
def healthz():
    """Database, storage and job backlog in one JSON answer."""
    body: dict = {}
    healthy = True
    for name, check in (("database", _database), ("storage", _storage)):
        try:
            body[name] = check()
        except Exception as exc:  # a health check reports failures, it never raises them
            current_app.logger.warning("healthz: %s check failed: %s", name, exc)
            body[name] = "error"
            healthy = False
            db.session.rollback()
    if body["database"] == "ok":
        body["jobs"] = _jobs()
    body["status"] = "ok" if healthy else "error"
    resp = jsonify(body)
    resp.status_code = 200 if healthy else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp
