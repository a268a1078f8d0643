"""The pass that both executors share: what is due now, run in-process or put on the RQ queues.

``flask --app portal jobs run [--loop SECONDS]`` (and the demo) call :func:`one_pass`. Without
``REDIS_URL`` it runs the job functions here, in this process; with ``REDIS_URL`` it dispatches the
same work by id to the queues and ``flask --app portal worker`` runs it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import housekeeping, ocr_jobs
from .. import writeback as writeback_jobs
from ..extensions import db
from . import connection_ids, fetch_downloads, log, pull_connection, redis_url, verify_invoices

__all__ = ["PassResult", "loop", "one_pass"]


@dataclass
class PassResult:
    """What one pass did: in-process counts, or how many jobs it put on the queues."""

    executor: str  # "runner" or "rq"
    opened: int = 0
    fetched: int = 0
    verified: int = 0
    writeback: dict[str, int] = field(default_factory=dict)
    recognised: dict[str, int] = field(default_factory=dict)
    enqueued: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line in Chinese for the console."""
        if self.executor == "rq":
            return ("已排队到 Redis：拉取星空待办 {pull_connection}，同步下载 {fetch_downloads}，"
                    "发票查验 {verify_invoices}，回写 {writeback}，OCR 识别 {recognise_image}，存储清理 {clean_storage}".format(
                        **{k: self.enqueued.get(k, 0) for k in ("pull_connection", "fetch_downloads", "verify_invoices",
                                                                "writeback", "recognise_image", "clean_storage")}))
        line = (f"拉取星空待办：新开单据 {self.opened}；同步下载：{self.fetched}；发票查验：{self.verified}；"
                "回写：完成 {done}，失败 {failed}，等待附件 {waiting}，跳过 {skipped}，被其他进程处理 {taken}"
                .format(**self.writeback))
        if any(self.recognised.values()):
            line += "；OCR 识别：完成 {done}，待重试 {retry}，失败 {failed}".format(**self.recognised)
        return line


def one_pass(limit: int = 50) -> PassResult:
    """Do (or, with ``REDIS_URL``, dispatch) everything that is due now, once; log one line."""
    if redis_url():
        from . import redis_queue  # only a deployment with Redis needs the rq package

        result = PassResult("rq", enqueued=redis_queue.dispatch(limit, clean=_cleaning_due()))
        log.info("pass: enqueued %s", ", ".join(f"{k} {v}" for k, v in sorted(result.enqueued.items())))
        return result
    housekeeping.clean_if_due()  # at start-up, then every STORAGE_CLEAN_EVERY seconds
    # Bills waiting at the ERP's workflow node come in first, so this pass can already write back.
    opened = sum(pull_connection(conn_id)["opened"] for conn_id in connection_ids())
    fetched = fetch_downloads()
    # The same per-job step an RQ worker runs (writeback.run_job), batched: one ERP login per connection.
    counts = writeback_jobs.run_due(limit=limit)
    recognised = ocr_jobs.run_due(limit)
    # Last: a slow invoice cloud (up to VERIFY_RUN_BUDGET) must not hold up the ERP write-back.
    verified = verify_invoices()
    log.info("pass: opened %d bills from ERP tasks; fetched %d pushed files; verified %d invoices; write-back "
             "done %d, failed %d, waiting %d, skipped %d, taken %d", opened, fetched, verified, counts["done"],
             counts["failed"], counts["waiting"], counts["skipped"], counts["taken"])
    return PassResult("runner", opened=opened, fetched=fetched, verified=verified, writeback=counts,
                      recognised=recognised)


def _cleaning_due(now: float | None = None) -> bool:
    """True on the first dispatching pass of this app and then every ``STORAGE_CLEAN_EVERY`` seconds."""
    return housekeeping.cleaning_due(now, key="portal_jobs_clean")


def loop(every: float, limit: int = 50, echo=None, stop=None) -> None:
    """Run :func:`one_pass` every ``every`` seconds until ``stop`` (a threading.Event) is set.

    A failing pass is logged and the loop goes on: the jobs keep their own errors.
    """
    while True:
        try:
            result = one_pass(limit)
            if echo is not None:
                echo(result.summary())
        except Exception:
            log.exception("job pass failed")
            db.session.rollback()
        if stop is not None:
            if stop.wait(max(every, 0.1)):
                return
        else:
            time.sleep(max(every, 0.1))
