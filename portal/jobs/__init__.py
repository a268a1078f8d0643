"""One job model for the periodic work, with two executors.

The work: pull the image user's pending tasks from each ERP connection, fetch the pushed files of
sync-mode bills, verify due invoices with the invoice cloud (发票查验), run each due write-back job,
clean the file store. The database rows
(``writeback_jobs``, ``expected_invoices.fetch_*``, ``docking_connections.pull_*``) are the source
of truth for what is due, running, failed (with the message) and how many attempts it took.

* Without ``REDIS_URL`` the :mod:`~portal.jobs.runner` executes the work in-process, one pass at a
  time (``flask --app portal jobs run [--loop SECONDS]``, the demo).
* With ``REDIS_URL`` the same pass only *dispatches*: it puts the ids of the due work on named RQ
  queues (:data:`QUEUES`), and ``flask --app portal worker`` processes, with an app context, each
  RQ job by calling the job functions below. RQ carries ids only; a worker killed mid-job loses
  nothing, because the job function is idempotent and the DB lease makes the work due again.

The functions in this module are what both executors run; they take ids or plain numbers, so an
RQ job is a dotted name plus arguments.
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from .. import erp_pull, housekeeping, ocr_jobs, sync, verification
from .. import writeback as writeback_jobs
from ..extensions import db
from ..models import DockingConnection, Enterprise

log = logging.getLogger("portal.jobs")

#: Which RQ queue carries which job function (``flask worker --queues`` picks some).
QUEUES = {"pull_connection": "erp", "writeback": "erp", "fetch_downloads": "cloud", "verify_invoices": "cloud",
          "clean_storage": "housekeeping", "recognise_image": "recognise"}
#: Every queue a worker listens to by default; ``recognise`` carries upload recognition and OCR.
QUEUE_NAMES = ("erp", "cloud", "recognise", "housekeeping")

__all__ = ["QUEUES", "QUEUE_NAMES", "clean_storage", "connection_ids", "fetch_downloads", "pull_connection",
           "recognise_image", "redis_url", "verify_invoices", "writeback"]


def redis_url() -> str:
    """The configured ``REDIS_URL`` (empty: the in-process runner executes the jobs)."""
    return str(current_app.config.get("REDIS_URL") or "").strip()


def connection_ids() -> list[int]:
    """Docking connections that an enterprise uses (the others have nobody to pull for)."""
    return list(db.session.scalars(select(DockingConnection.id).where(
        DockingConnection.id.in_(select(Enterprise.docking_id))).order_by(DockingConnection.id)))


def pull_connection(conn_id: int) -> dict[str, int]:
    """Pull the pending ERP tasks of one docking connection; the outcome is kept on the connection."""
    conn = db.session.get(DockingConnection, conn_id)
    if conn is None:
        return {"tasks": 0, "opened": 0}
    result = erp_pull.pull_connection(conn)
    return {"tasks": result.tasks, "opened": result.opened}


def fetch_downloads(limit: int = 100) -> int:
    """Fetch the due pushed files of sync-mode bills; return how many were attached."""
    return sync.fetch_pending(limit)


def verify_invoices(limit: int = 100) -> int:
    """Verify the due invoices of enterprises with 发票查验 on; return how many calls got a result."""
    counts = verification.verify_due(limit)
    return sum(counts[s] for s in ("verified", "failed", "void"))


def writeback(job_id: int) -> str:
    """Run one due write-back job (claimed once, idempotent against the ERP); return its outcome."""
    return writeback_jobs.run_job(job_id)


def clean_storage() -> tuple[int, int, int]:
    """Remove part files of killed uploads, blobs no row refers to and dead login rows; return the counts."""
    done = housekeeping.clean_storage()
    return done.temp_files, done.orphan_blobs, housekeeping.clean_logins()


def recognise_image(image_id: int) -> str:
    """OCR one uploaded image that the fast readers could not complete (idempotent; see portal.ocr_jobs)."""
    return ocr_jobs.run(image_id)
