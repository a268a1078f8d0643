"""ERP write-back (回写星空): a bill's images as Galaxy attachments, then its image status.

Every step is a :class:`~portal.models.WritebackJob` row, kept until it succeeds (DESIGN §5:
"write-back failures are kept and retried, never lost"):

* ``enqueue_bill`` queues the jobs inside the caller's transaction when a bill is submitted
  (and, in match mode, matched or confirmed): one ``attachment`` job per live image not yet
  in the ERP, plus one ``status`` job when the docking connection names a status field.
* ``run_due`` processes the due jobs. Each job is claimed with one conditional UPDATE, so two
  runners never work on the same job; the claim also counts the attempt and leases the job
  for ``WRITEBACK_LEASE`` seconds (``next_attempt_at`` holds the lease expiry while it runs), so a
  job whose runner crashed or was killed becomes due again by itself. :func:`run_job` does the
  same for one job id: what an RQ worker runs (see :mod:`portal.jobs`).
* Nothing is uploaded twice where we can help it: an image uploaded in an earlier round is not
  queued again, the remote FileId is committed the moment Galaxy returns it, and a retry of a
  job that already has one first downloads that file and compares md5 before uploading again.

Remote failures keep the ERP's own message in ``last_error`` and are retried with exponential
backoff up to ``WRITEBACK_MAX_ATTEMPTS``; after that the job waits for a person
(:func:`retry_now`, the ops page ``/writeback``).
"""
from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import audit
from .bills import event, live_images, storage
from .crypto import decrypt
from .erp_pull import TASK_FORM, TASK_KEYS, pending_task_filter
from .errors import UserError
from .extensions import db
from .files import media
from .files.storage import BlobNotFound
from .integration.errors import IntegrationError, RemoteRefused, RemoteUnavailable
from .integration.galaxy import GalaxyClient
from .integration.http import allowed_hosts_from_config, timeout_from_config
from .labels import WRITEBACK_KINDS, WRITEBACK_STATES
from .models import Bill, Blob, DockingConnection, Enterprise, Image, WritebackJob, utcnow

log = logging.getLogger("portal.writeback")

__all__ = [
    "claim",
    "due_ids",
    "enqueue_bill",
    "max_attempts",
    "needs_attention",
    "retry_now",
    "run_due",
    "run_job",
    "upload_name",
]


#: Backoff: 30 s × 2^(attempts−1), at most an hour, plus up to 10 % jitter so jobs that failed
#: together (ERP down) do not all come back in the same second.
BACKOFF_BASE = 30.0
BACKOFF_CAP = 3600.0
#: A status job whose attachments are not all done yet looks again after this long at the latest.
WAIT_FOR_ATTACHMENTS = timedelta(seconds=30)

ACTOR = "writeback"  # the actor of the runner's bill events
APPROVABLE = ("completed", "matched")  # bill statuses whose workflow task is approved


def max_attempts() -> int:
    """Attempts after which a failed job stops retrying by itself (``WRITEBACK_MAX_ATTEMPTS``)."""
    return int(current_app.config.get("WRITEBACK_MAX_ATTEMPTS", 12))


def lease() -> timedelta:
    """How long a claimed job may run before another runner may take it over (``WRITEBACK_LEASE`` seconds).

    A runner or worker killed mid-job leaves the job ``running``; once the lease is over it is due again.
    """
    return timedelta(seconds=float(current_app.config.get("WRITEBACK_LEASE", 600)))


def needs_attention(job: WritebackJob) -> bool:
    """True for a failed job that used up its automatic retries (only a person retries it now)."""
    return job.state == "failed" and job.attempts >= max_attempts()


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` tries (≥ 1), jitter included."""
    delay = min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_CAP)
    return timedelta(seconds=delay * (1 + random.uniform(0, 0.1)))


def upload_name(filename: str | None, media_type: str | None, sha256: str) -> str:
    """The attachment's file name in Galaxy: the original name with the extension its content has.

    A name without the right extension gets it appended (Galaxy and the user's viewer go by the
    extension); no name at all becomes ``<sha256[:16]><ext>``.
    """
    ext = media.EXTENSIONS.get(media_type or "", "")
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        return f"{sha256[:16]}{ext}"
    if ext and not name.lower().endswith(ext) and not (ext == ".jpg" and name.lower().endswith(".jpeg")) \
            and not (ext == ".tif" and name.lower().endswith(".tiff")):
        name = f"{name}{ext}"
    return name[:255]


# --------------------------------------------------------------------------- queueing

def enqueue_bill(bill: Bill, actor: str) -> int:
    """Queue the ERP write-back of ``bill``; return how many jobs were newly queued.

    Runs inside the caller's transaction and does not commit. Without a docking connection on
    the enterprise or an ERP id on the bill it records a ``writeback`` bill event saying why
    and returns 0. Otherwise it creates one ``attachment`` job per live image (round =
    ``bill.round``) that is not already in the ERP or on its way there from an earlier round,
    plus one ``status`` job when the connection names a ``status_field``. Calling it again is
    safe: existing jobs are never duplicated (unique key, ``ON CONFLICT DO NOTHING``); a status
    job that already wrote an older status is armed again, which counts as queued.
    """
    ent = bill.enterprise or db.session.get(Enterprise, bill.enterprise_id)
    conn = ent.docking if ent is not None else None
    if conn is None:
        event(bill, "writeback", actor, detail={"result": "skipped", "reason": "no_docking",
                                                "message": "企业未配置对接业务系统，不回写 ERP"})
        return 0
    if not bill.erp_id:
        event(bill, "writeback", actor, detail={"result": "skipped", "reason": "no_erp_id",
                                                "message": "单据没有 ERP 内码（erp_id），无法回写附件和状态"})
        return 0
    db.session.flush()
    now = utcnow()
    # In the ERP already (done with a FileId), or still on its way from an earlier round.
    covered = set(db.session.scalars(
        select(WritebackJob.sha256).where(
            WritebackJob.bill_id == bill.id,
            WritebackJob.kind == "attachment",
            or_(and_(WritebackJob.state == "done", WritebackJob.remote_file_id.is_not(None)),
                and_(WritebackJob.state != "done", WritebackJob.round < bill.round)))))
    rows = []
    for image in live_images(bill):
        if image.sha256 in covered:
            continue
        covered.add(image.sha256)
        rows.append(_row(bill, "attachment", image.sha256, now,
                         {"image_id": image.id, "filename": image.filename}))
    attachments = _insert_ignoring_duplicates(rows)
    # Once the images are in the ERP, the image user's workflow task is approved so the bill moves on;
    # only a finished bill is approved (basic/sync: completed; match: matched or confirmed).
    approvals = 0
    if bill.status in APPROVABLE:
        approvals = _insert_ignoring_duplicates([_row(bill, "approve", "", now, {})])
    statuses = 0
    if conn.status_field:
        statuses = _insert_ignoring_duplicates([_row(bill, "status", "", now, {"field": conn.status_field})])
        statuses = statuses or _rearm_status(bill, now)
    created = attachments + approvals + statuses
    if created:
        what = "、".join(part for part in (f"{attachments} 个影像附件" if attachments else "",
                                           "工作流审批" if approvals else "", "影像状态" if statuses else "") if part)
        event(bill, "writeback", actor, detail={"result": "queued", "jobs": created,
                                                "message": f"已排队回写 ERP：{what}"})
    return created


def _row(bill: Bill, kind: str, sha256: str, now: datetime, payload: dict) -> dict[str, Any]:
    # Every column is given: multi-row INSERTs must not depend on per-row Python defaults.
    return {"bill_id": bill.id, "enterprise_id": bill.enterprise_id, "kind": kind, "sha256": sha256,
            "round": bill.round, "state": "pending", "attempts": 0, "next_attempt_at": now,
            "last_error": None, "remote_file_id": None, "payload": payload, "created_at": now, "updated_at": now}


def _insert_ignoring_duplicates(rows: list[dict[str, Any]]) -> int:
    """Insert job rows; a row whose (bill, kind, sha256, round) exists is skipped. Returns inserted."""
    if not rows:
        return 0
    dialect = db.session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        created = 0
        for start in range(0, len(rows), 500):  # stay far below the bound-parameter limits
            stmt = insert(WritebackJob.__table__).values(rows[start:start + 500]).on_conflict_do_nothing(
                index_elements=["bill_id", "kind", "sha256", "round"]).returning(WritebackJob.__table__.c.id)
            # Counted from RETURNING: psycopg reports rowcount -1 for this statement on PostgreSQL.
            created += len(db.session.execute(stmt).all())
        return created
    created = 0
    for row in rows:  # other databases: one savepoint per row
        try:
            with db.session.begin_nested():
                db.session.add(WritebackJob(**row))
            created += 1
        except IntegrityError:
            pass
    return created


def _rearm_status(bill: Bill, now: datetime) -> int:
    """Arm this round's done status job again when the bill moved on since it wrote (e.g. matched)."""
    job = db.session.scalar(select(WritebackJob).where(
        WritebackJob.bill_id == bill.id, WritebackJob.kind == "status", WritebackJob.sha256 == "",
        WritebackJob.round == bill.round))
    if job is None or job.state != "done" or (job.payload or {}).get("written") == bill.status:
        return 0  # pending/failed jobs write the current status when they run; running ones re-check
    job.state, job.attempts, job.next_attempt_at, job.last_error = "pending", 0, now, None
    return 1


# --------------------------------------------------------------------------- claiming

def claim(job_id: int, now: datetime | None = None) -> bool:
    """Take a due job for this runner; True only for the one runner whose UPDATE matched.

    Due means pending/failed with ``next_attempt_at <= now`` and attempts left, or running
    with an expired lease (its runner died). The claim counts the attempt and sets the lease.
    Commits.
    """
    now = now or utcnow()
    result = db.session.execute(
        update(WritebackJob)
        .where(WritebackJob.id == job_id,
               WritebackJob.state.in_(("pending", "failed", "running")),
               WritebackJob.next_attempt_at <= now,
               WritebackJob.attempts < max_attempts())
        .values(state="running", attempts=WritebackJob.attempts + 1, next_attempt_at=now + lease(),
                updated_at=utcnow())
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def due_ids(now: datetime, limit: int, seen: set[int] = frozenset()) -> list[int]:
    """Ids of up to ``limit`` due jobs not in ``seen``, attachments before status and approval jobs."""
    stmt = (select(WritebackJob.id)
            .where(WritebackJob.state.in_(("pending", "failed", "running")),
                   WritebackJob.next_attempt_at <= now,
                   WritebackJob.attempts < max_attempts())
            # Attachments first: a bill's status waits for its attachments.
            .order_by(case((WritebackJob.kind == "status", 1), else_=0), WritebackJob.id)
            .limit(limit + len(seen)))
    return [i for i in db.session.scalars(stmt) if i not in seen][:limit]


# --------------------------------------------------------------------------- running

class _Mismatch(IntegrationError):
    """The file Galaxy holds is not the file we sent."""


@dataclass
class _Connection:
    """One Galaxy conversation per docking connection per run; remembers a dead ERP."""

    client: GalaxyClient
    logged_in: bool = False
    broken: IntegrationError | None = None

    def ready(self) -> GalaxyClient:
        if self.broken is not None:
            raise self.broken
        if not self.logged_in:
            try:
                self.client.login()
            except IntegrationError as exc:
                # Wrong password or ERP down: the other jobs of this run would fail the same way.
                self.broken = exc
                raise
            self.logged_in = True
        return self.client

    def note(self, exc: IntegrationError) -> None:
        if isinstance(exc, RemoteUnavailable) and exc.unreachable:
            self.broken = exc


@dataclass
class _Run:
    now: datetime
    connections: dict[int, _Connection] = field(default_factory=dict)

    def connection(self, conn: DockingConnection) -> _Connection:
        if conn.id not in self.connections:
            try:
                password = decrypt(conn.password_enc)
            except RuntimeError:
                raise IntegrationError("无法解密对接业务系统的密码（数据密钥已更换），请在“对接业务系统”中重新填写密码") from None
            client = GalaxyClient(conn.base_url, conn.acct_id, conn.username, password,
                                  timeout=timeout_from_config(current_app.config),
                                  allowed_hosts=allowed_hosts_from_config(current_app.config, "ERP_ALLOWED_HOSTS"),
                                  max_reply=current_app.config["ERP_MAX_REPLY_BYTES"])
            self.connections[conn.id] = _Connection(client)
        return self.connections[conn.id]

    def close(self) -> None:
        for c in self.connections.values():
            c.client.close()


def run_due(now: datetime | None = None, limit: int = 50) -> dict[str, int]:
    """Process up to ``limit`` due jobs; return counts ``done / failed / waiting / skipped / taken``.

    ``done``: succeeded (or verified already present); ``failed``: the ERP refused or could not
    be reached (kept with its message and a backoff); ``waiting``: status jobs whose bill still
    has attachments to upload; ``skipped``: nothing left to do (image removed, bill deleted);
    ``taken``: another runner claimed the job first. Commits after each job.
    """
    now = now or utcnow()
    counts = {"done": 0, "failed": 0, "waiting": 0, "skipped": 0, "taken": 0}
    run = _Run(now)
    seen: set[int] = set()
    try:
        while len(seen) < limit:
            ids = due_ids(now, limit - len(seen), seen)
            if not ids:
                break  # (a status job freed by its last attachment is found by the next query)
            for job_id in ids:
                seen.add(job_id)
                counts[_process(job_id, run)] += 1
    finally:
        run.close()
        db.session.rollback()  # nothing may stay open after a run
    return counts


def run_job(job_id: int, now: datetime | None = None) -> str:
    """Process one job if it is due; return its outcome (a key of :func:`run_due`'s counts).

    What an RQ worker runs for each job id. Safe to call twice or from a retry after a killed worker:
    the claim lets one caller in, and the attachment and workflow steps check the ERP before
    sending anything again. Commits.
    """
    run = _Run(now or utcnow())
    try:
        return _process(job_id, run)
    finally:
        run.close()
        db.session.rollback()


def _process(job_id: int, run: _Run) -> str:
    job = db.session.get(WritebackJob, job_id)
    if job is None:
        return "taken"
    if job.kind in ("status", "approve"):
        blockers = _blocking_attachments(job)
        if blockers:
            return _wait(job, blockers, run.now)
    if not claim(job_id, run.now):
        return "taken"
    job = db.session.get(WritebackJob, job_id)
    bill = db.session.get(Bill, job.bill_id)
    label = f"job {job.id} bill {bill.bill_no} ({job.kind})"
    try:
        if bill.status == "deleted":
            return _finish(job, bill, None, note="单据已被 ERP 删除，不再回写")
        ent = db.session.get(Enterprise, job.enterprise_id)
        conn = ent.docking if ent is not None else None
        if conn is None:
            raise IntegrationError("企业未配置对接业务系统，无法回写 ERP")
        if not bill.erp_id:
            raise IntegrationError("单据没有 ERP 内码（erp_id），无法回写")
        connection = run.connection(conn)
        if job.kind == "attachment":
            return _run_attachment(job, bill, connection, label, run.now)
        if job.kind in ("approve", "reject"):
            return _run_workflow(job, bill, connection)
        return _run_status(job, bill, conn, connection, label)
    except IntegrationError as exc:
        return _fail(job_id, run.now, exc.message, label)
    except Exception as exc:  # a bug or a missing file must not stop the other jobs
        log.exception("writeback %s: unexpected error", label)
        return _fail(job_id, run.now, f"内部错误：{type(exc).__name__}", label)


def _blocking_attachments(job: WritebackJob) -> list[WritebackJob]:
    return list(db.session.scalars(select(WritebackJob).where(
        WritebackJob.bill_id == job.bill_id, WritebackJob.kind == "attachment",
        WritebackJob.round <= job.round, WritebackJob.state != "done")))


def _wait(job: WritebackJob, blockers: list[WritebackJob], now: datetime) -> str:
    """Put a status job back until its attachments are done; this is not an attempt."""
    # Look again when the first blocker is due (the runner also wakes it when the last one is done).
    later = [b.next_attempt_at for b in blockers if b.next_attempt_at > now]
    when = max(min(later), now + WAIT_FOR_ATTACHMENTS) if later else now + WAIT_FOR_ATTACHMENTS
    result = db.session.execute(
        update(WritebackJob)
        .where(WritebackJob.id == job.id, WritebackJob.state.in_(("pending", "failed")))
        .values(next_attempt_at=when, payload={**(job.payload or {}), "waiting": len(blockers)})
        .execution_options(synchronize_session=False))
    db.session.commit()
    return "waiting" if result.rowcount else "taken"


def _content_of(job: WritebackJob) -> tuple[bytes, str]:
    """The original bytes and the name to upload them under."""
    image = db.session.scalar(select(Image).where(Image.bill_id == job.bill_id, Image.sha256 == job.sha256))
    blob = db.session.get(Blob, job.sha256)
    try:
        data = storage().read(job.sha256)
    except BlobNotFound:
        raise IntegrationError(f"影像文件在本系统的存储中缺失（sha256 {job.sha256[:16]}…），请检查存储目录") from None
    name = upload_name(image.filename if image else (job.payload or {}).get("filename"),
                       blob.media_type if blob else None, job.sha256)
    return data, name


def _run_attachment(job: WritebackJob, bill: Bill, connection: _Connection, label: str, now: datetime) -> str:
    image_live = db.session.scalar(select(Image.id).where(
        Image.bill_id == job.bill_id, Image.sha256 == job.sha256, Image.removed.is_(False)))
    if image_live is None:
        return _finish(job, bill, None, note="影像已从单据移除，不再上传")
    content, name = _content_of(job)
    digest = hashlib.md5(content, usedforsecurity=False).hexdigest()
    job_id, known_file, form_id, erp_id, bill_no = job.id, job.remote_file_id, bill.form_id, bill.erp_id, bill.bill_no
    db.session.commit()  # no transaction stays open while we wait for the ERP
    galaxy = connection.ready()
    try:
        if known_file:
            # An earlier try got a FileId but did not finish: if Galaxy holds the right bytes,
            # the upload happened and must not be repeated.
            try:
                held = galaxy.attachment_download(known_file)
            except RemoteRefused:
                held = None  # not there (any more): upload again
            if held is not None and hashlib.md5(held, usedforsecurity=False).hexdigest() == digest:
                log.info("writeback %s: file %s already in the ERP, not uploading again", label, known_file)
                outcome = _finish(db.session.get(WritebackJob, job_id), bill, known_file, name=name,
                                  verified_earlier=True)
                _wake_status(bill.id, now)
                return outcome
        file_id = galaxy.attachment_upload(name, form_id, erp_id, bill_no, content)
        # Committed at once, so a crash before "done" cannot make the next try upload blindly.
        db.session.execute(update(WritebackJob).where(WritebackJob.id == job_id)
                           .values(remote_file_id=file_id).execution_options(synchronize_session=False))
        db.session.commit()
        held = galaxy.attachment_download(file_id)
        held_digest = hashlib.md5(held, usedforsecurity=False).hexdigest()
        if held_digest != digest:
            # The FileId stays on the job: the retry checks that file again before uploading anew.
            raise _Mismatch(f"星空中的附件与原文件不一致（MD5 {held_digest} ≠ {digest}，{len(held)} / "
                            f"{len(content)} 字节），稍后重试")
    except IntegrationError as exc:
        connection.note(exc)
        raise
    outcome = _finish(db.session.get(WritebackJob, job_id), db.session.get(Bill, bill.id), file_id, name=name)
    _wake_status(bill.id, now)
    return outcome


def _wake_status(bill_id: int, now: datetime) -> None:
    """A status or approval job waiting for this bill's attachments may look again at once. Commits."""
    db.session.execute(update(WritebackJob)
                       .where(WritebackJob.bill_id == bill_id, WritebackJob.kind.in_(("status", "approve")),
                              WritebackJob.state == "pending", WritebackJob.next_attempt_at > now)
                       .values(next_attempt_at=now).execution_options(synchronize_session=False))
    db.session.commit()


def _run_workflow(job: WritebackJob, bill: Bill, connection: _Connection) -> str:
    """Approve (``approve`` job) or reject (``reject`` job) the image user's workflow task once. Commits.

    A workflow write is never blindly retried: every try first re-reads the pending task. No task
    means it was processed already — by our earlier try whose answer was lost, or by a person in the
    ERP — and nothing is sent again.
    """
    job_id, bill_id, form_id, bill_no, post = job.id, bill.id, bill.form_id, bill.bill_no, bill.task_post_id
    sent_before = bool((job.payload or {}).get("sent"))
    if job.kind == "reject":
        approval, disposition = 2, f"影像退回重扫：{(job.payload or {}).get('reason', '')}"[:500]
    else:
        if bill.status not in APPROVABLE and not sent_before:
            return _finish(job, bill, None, note=f"单据当前状态为“{bill.status_label}”，不在星空审批")
        images = live_images(bill)
        invoices = sum(len(image.invoices) for image in images)
        approval, disposition = 1, f"影像审核通过：{len(images)} 个影像，{invoices} 张发票"
    db.session.commit()
    galaxy = connection.ready()
    try:
        tasks = galaxy.bill_query(TASK_FORM, TASK_KEYS, pending_task_filter(galaxy.user_id, [form_id], bill_no))
        if not tasks:
            job = db.session.get(WritebackJob, job_id)
            if sent_before:
                return _finish(job, db.session.get(Bill, bill_id), None, approved=disposition)
            return _finish(job, db.session.get(Bill, bill_id), None,
                           note="星空中没有该单据的待审批任务（可能已在星空中处理），未重复处理")
        post = int(tasks[0][2] or 0) or post
        # Recorded before sending: if the answer is lost, the next try re-reads the task first.
        db.session.execute(update(WritebackJob).where(WritebackJob.id == job_id)
                           .values(payload={**(job.payload or {}), "sent": True})
                           .execution_options(synchronize_session=False))
        db.session.commit()
        galaxy.workflow_audit(form_id, bill_no, approval, disposition, post_id=post)
    except IntegrationError as exc:
        connection.note(exc)
        raise
    return _finish(db.session.get(WritebackJob, job_id), db.session.get(Bill, bill_id), None, approved=disposition)


def _run_status(job: WritebackJob, bill: Bill, conn: DockingConnection, connection: _Connection, label: str) -> str:
    field_key = conn.status_field or (job.payload or {}).get("field")
    if not field_key:
        return _finish(job, bill, None, note="对接业务系统未配置状态字段，不回写状态")
    try:
        fid = int(str(bill.erp_id).strip())
    except ValueError:
        raise IntegrationError(f"单据的 ERP 内码不是数字：{bill.erp_id}") from None
    status, form_id, job_id, bill_id = bill.status, bill.form_id, job.id, bill.id
    value = status  # a code (completed, matched …) that an ERP-side rule can test; labels change with the UI
    db.session.commit()
    galaxy = connection.ready()
    try:
        galaxy.save(form_id, {"IsDeleteEntry": "false", "NeedUpDateFields": [field_key],
                              "Model": {"FID": fid, field_key: value}})
    except IntegrationError as exc:
        connection.note(exc)
        raise
    job = db.session.get(WritebackJob, job_id)
    payload = {k: v for k, v in (job.payload or {}).items() if k != "waiting"}
    job.payload = {**payload, "field": field_key, "written": status, "value": value}
    outcome = _finish(job, db.session.get(Bill, bill_id), None, field=field_key, value=value)
    # The bill may have moved on (e.g. matched) while we were writing: write again.
    bill = db.session.get(Bill, bill_id)
    if bill.status != status:
        db.session.execute(update(WritebackJob).where(WritebackJob.id == job_id, WritebackJob.state == "done")
                           .values(state="pending", attempts=0, next_attempt_at=utcnow())
                           .execution_options(synchronize_session=False))
        db.session.commit()
    return outcome


def _finish(job: WritebackJob, bill: Bill, file_id: str | None, *, note: str | None = None, name: str | None = None,
            field: str | None = None, value: str | None = None, verified_earlier: bool = False,
            approved: str | None = None) -> str:
    """Mark the job done (or skipped with ``note``) and tell the bill's history. Commits."""
    job.state, job.last_error = "done", None
    if file_id:
        job.remote_file_id = file_id
    job.next_attempt_at = utcnow()
    if note:
        job.payload = {**(job.payload or {}), "note": note}
        event(bill, "writeback", ACTOR, detail={"result": "skipped", "kind": job.kind, "job_id": job.id,
                                                "message": note})
        db.session.commit()
        log.info("writeback job %s bill %s: skipped (%s)", job.id, bill.bill_no, note)
        return "skipped"
    if job.kind == "attachment":
        message = f"已上传附件 {name} 到星空" + ("（核对到上次已上传的文件）" if verified_earlier else "")
        detail = {"result": "done", "kind": "attachment", "job_id": job.id, "file_id": file_id, "filename": name,
                  "message": message}
    elif job.kind in ("approve", "reject"):
        verb = "审批通过" if job.kind == "approve" else "驳回"
        detail = {"result": "done", "kind": job.kind, "job_id": job.id,
                  "message": f"已在星空{verb}影像审核任务（{approved}）"}
    else:
        detail = {"result": "done", "kind": "status", "job_id": job.id, "field": field, "value": value,
                  "message": f"已回写影像状态 {value} 到星空字段 {field}"}
    event(bill, "writeback", ACTOR, detail=detail)
    db.session.commit()
    log.info("writeback job %s bill %s: %s", job.id, bill.bill_no, detail["message"])
    return "done"


def _fail(job_id: int, now: datetime, message: str, label: str) -> str:
    """Keep the ERP's message and schedule the next try (or wait for a person). Commits."""
    db.session.rollback()
    job = db.session.get(WritebackJob, job_id)
    job.state = "failed"
    job.last_error = message
    job.next_attempt_at = now + backoff(job.attempts)
    exhausted = job.attempts >= max_attempts()
    if exhausted:
        bill = db.session.get(Bill, job.bill_id)
        event(bill, "writeback", ACTOR, detail={
            "result": "failed", "kind": job.kind, "job_id": job.id, "error": message,
            "message": f"回写 ERP 失败 {job.attempts} 次，已停止自动重试，需人工处理：{message}"})
    db.session.commit()
    log.warning("writeback %s failed (attempt %s%s): %s", label, job.attempts,
                ", giving up until retried by hand" if exhausted else "", message)
    return "failed"


# --------------------------------------------------------------------------- by hand

def retry_now(job: WritebackJob, actor: str | None) -> None:
    """Make ``job`` due now (state pending) and audit it; does not commit.

    A job that used up its automatic attempts gets exactly one more; a done job or one that
    a runner holds (unexpired lease) is refused with a 409 UserError. ``actor`` None means the
    logged-in user.
    """
    now = utcnow()
    if job.state == "done":
        raise UserError("任务已完成，无需重试", 409)
    if job.state == "running" and job.next_attempt_at > now:
        raise UserError("任务正在处理中，请稍后再试", 409)
    before = {"state": job.state, "attempts": job.attempts, "next_attempt_at": job.next_attempt_at.isoformat()}
    job.state = "pending"
    job.next_attempt_at = now
    job.attempts = min(job.attempts, max_attempts() - 1)
    bill = job.bill or db.session.get(Bill, job.bill_id)
    audit.record("retry", "writeback", job.id, enterprise_id=job.enterprise_id,
                 summary=f"立即重试回写任务 #{job.id}（单据 {bill.bill_no}，{WRITEBACK_KINDS.get(job.kind, job.kind)}）",
                 before=before, after={"state": "pending", "attempts": job.attempts}, actor=actor)


def state_counts(enterprise_ids: list[int] | None) -> dict[str, int]:
    """Jobs per state (all four keys present), within ``enterprise_ids`` (None = everywhere)."""
    stmt = select(WritebackJob.state, func.count()).group_by(WritebackJob.state)
    if enterprise_ids is not None:
        stmt = stmt.where(WritebackJob.enterprise_id.in_(enterprise_ids))
    counts = dict.fromkeys(WRITEBACK_STATES, 0)
    counts.update(dict(db.session.execute(stmt).all()))
    return counts
