"""The RQ executor: due work goes by id onto named Redis queues; ``flask worker`` runs it.

The database stays the source of truth. :func:`dispatch` puts one RQ job per docking connection
(ERP pull), one for the sync downloads, one for 发票查验, one per due write-back job and, when due, one storage
cleaning; an RQ job whose work is already waiting on a queue is not queued twice. A worker
(:class:`PortalWorker`) runs each job in a fresh app context. A worker killed mid-job loses nothing:
RQ retries the job with backoff (:func:`retry_policy`) once it sees the worker gone, and sooner than that the
next dispatch finds the write-back job due again (its DB lease, ``WRITEBACK_LEASE``, ran out) and
queues it anew; the job function checks the ERP before it uploads or approves anything again.
"""
from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, current_app
from redis import Redis
from rq import Queue, Retry, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from .. import ocr_jobs
from .. import writeback as writeback_jobs
from ..extensions import db
from ..models import utcnow
from . import QUEUE_NAMES, QUEUES, connection_ids, redis_url

__all__ = ["PortalWorker", "connect", "dispatch", "enqueue", "job_timeout", "queues", "retry_policy"]

#: RQ's own retry (a job function that crashed, a worker that died): after 10 s, 1 min, 5 min.
RETRY_INTERVALS = [10, 60, 300]
#: Finished jobs are kept in Redis for a day, failed ones for a week (the DB keeps the history).
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
#: Statuses in which a job's work is still ahead of it: queueing it again would run it twice.
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def retry_policy() -> Retry:
    """RQ's retry policy of every portal job (a fresh object per job)."""
    return Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS)


def connect(url: str | None = None) -> Redis:
    """A Redis client for ``url`` (default: the configured ``REDIS_URL``)."""
    return Redis.from_url(url or redis_url())


def queues(conn: Redis, names: Iterable[str] = QUEUE_NAMES) -> list[Queue]:
    """The named queues on ``conn``, in the order given."""
    return [Queue(name, connection=conn) for name in names]


def job_timeout(function: str) -> int:
    """Seconds RQ lets one job of ``function`` run before it stops it.

    A write-back job gets its lease (after that another worker may take the job over); the sync
    downloads get their run budget plus one file's deadline, so RQ never cuts a run the budget allows.
    """
    cfg = current_app.config
    if function == "fetch_downloads":
        return int(float(cfg.get("FETCH_RUN_BUDGET", 300)) + float(cfg.get("FETCH_DEADLINE", 120))) + 60
    if function == "verify_invoices":
        # The run budget plus one token call (outbound timeouts) and one check call (its deadline).
        connect, read = float(cfg.get("OUTBOUND_CONNECT_TIMEOUT", 5)), float(cfg.get("OUTBOUND_READ_TIMEOUT", 30))
        return int(float(cfg.get("VERIFY_RUN_BUDGET", 120)) + connect + read + float(cfg.get("VERIFY_DEADLINE", 30))) + 60
    if function == "recognise_image":  # the claim's lease: after that another worker may take the image over
        return max(60, int(float(cfg.get("OCR_LEASE", 300))))
    return max(60, int(float(cfg.get("WRITEBACK_LEASE", 600))))


def enqueue(conn: Redis, function: str, *args, job_id: str, rerun_started: bool = False) -> bool:
    """Queue ``portal.jobs.<function>(*args)`` as RQ job ``job_id`` on its queue; False if already waiting.

    A job that is ``started`` counts as waiting too, unless ``rerun_started``: the caller knows from the
    database that the worker holding it is gone (its lease ran out).
    """
    try:
        status = Job.fetch(job_id, connection=conn).get_status(refresh=False)
    except NoSuchJobError:
        status = None
    if status in WAITING or (status == JobStatus.STARTED and not rerun_started):
        return False
    Queue(QUEUES[function], connection=conn).enqueue(
        f"portal.jobs.{function}", *args, job_id=job_id, job_timeout=job_timeout(function),
        retry=retry_policy(), result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL, description=f"{function}{args!r}")
    return True


def dispatch(limit: int = 50, clean: bool = False) -> dict[str, int]:
    """Queue what is due now; return how many jobs were queued per job function. Commits nothing."""
    conn = connect()
    counts = dict.fromkeys(QUEUES, 0)
    try:
        for conn_id in connection_ids():
            counts["pull_connection"] += enqueue(conn, "pull_connection", conn_id, job_id=f"portal-pull-{conn_id}")
        counts["fetch_downloads"] += enqueue(conn, "fetch_downloads", job_id="portal-fetch-downloads")
        counts["verify_invoices"] += enqueue(conn, "verify_invoices", job_id="portal-verify-invoices")
        for job_id in writeback_jobs.due_ids(utcnow(), limit):
            # Due while RQ still says "started": its worker died holding it (the DB lease ran out).
            counts["writeback"] += enqueue(conn, "writeback", job_id, job_id=f"portal-writeback-{job_id}",
                                           rerun_started=True)
        for image_id in ocr_jobs.due_ids(utcnow(), limit):
            # Queued, or running with a lease that ran out: its worker died holding it.
            counts["recognise_image"] += enqueue(conn, "recognise_image", image_id, job_id=ocr_jobs.job_id(image_id),
                                                 rerun_started=True)
        if clean:
            counts["clean_storage"] += enqueue(conn, "clean_storage", job_id="portal-clean-storage")
    finally:
        db.session.rollback()  # only reads: nothing stays open between passes
        conn.close()
    return counts


class PortalWorker(SimpleWorker):
    """An RQ worker that runs each job in a fresh app context of ``app`` (own DB session).

    It does not fork: the job shares the worker's process, so the app, its engine pool and the
    loaded modules are reused, and killing the worker kills its job (which the lease and RQ's retry
    then bring back).
    """

    def __init__(self, queues: list[Queue], *, app: Flask, **kwargs) -> None:
        super().__init__(queues, **kwargs)
        self.app = app

    def perform_job(self, job: Job, queue: Queue, *args, **kwargs) -> bool:
        """Run ``job`` inside its own app context and drop the DB session afterwards."""
        with self.app.app_context():
            try:
                return super().perform_job(job, queue, *args, **kwargs)
            finally:
                db.session.remove()
