"""Write-back jobs (回写任务): what went to the ERP, what failed and why, retry by hand (ops only)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from sqlalchemy import case, func, select
from sqlalchemy.orm import joinedload

from ... import ocr_jobs, writeback
from ...errors import UserError
from ...jobs import redis_url
from ...extensions import db
from ...labels import OCR_JOB_STATES, WRITEBACK_KINDS, WRITEBACK_STATES
from ...models import Bill, WritebackJob
from ...web.access import roles_required, scope, visible_enterprise_ids
from ...web.lists import paginate
from ...web.htmx import is_htmx, render, toast

bp = Blueprint("writeback", __name__)

# Filter values of the list; "" = every job, the ones still to do first.
FILTERS = {"": "全部", "pending": "待处理", "running": "处理中", "failed": "失败", "attention": "需人工处理",
           "done": "已完成"}
_ORDER = case((WritebackJob.state == "failed", 0), (WritebackJob.state == "pending", 1),
              (WritebackJob.state == "running", 2), else_=3)


def _filters() -> tuple[str, str]:
    state = request.values.get("state", "")
    return (state if state in FILTERS else ""), request.values.get("q", "").strip()[:64]


def _jobs_stmt(state: str, q: str):
    stmt = scope(select(WritebackJob), WritebackJob.enterprise_id).options(
        joinedload(WritebackJob.bill).joinedload(Bill.enterprise))
    if state == "attention":
        stmt = stmt.where(WritebackJob.state == "failed", WritebackJob.attempts >= writeback.max_attempts())
    elif state:
        stmt = stmt.where(WritebackJob.state == state)
    if q:
        stmt = stmt.where(WritebackJob.bill_id.in_(
            scope(select(Bill.id), Bill.enterprise_id).where(Bill.bill_no.startswith(q, autoescape=True))))
    order = [WritebackJob.id.desc()] if state else [_ORDER, WritebackJob.id.desc()]
    return stmt.order_by(*order)


def _context(state: str, q: str) -> dict:
    page = paginate(_jobs_stmt(state, q), 50)
    counts = writeback.state_counts(visible_enterprise_ids())
    counts["attention"] = db.session.scalar(
        scope(select(func.count()).select_from(WritebackJob), WritebackJob.enterprise_id)
        .where(WritebackJob.state == "failed", WritebackJob.attempts >= writeback.max_attempts()))
    ocr_rows, ocr_counts = ocr_jobs.job_rows(scope)
    return {"ocr_rows": ocr_rows, "ocr_counts": ocr_counts, "ocr_executor": "RQ 队列 recognise" if redis_url() else "进程内任务",
            "OCR_STATES": OCR_JOB_STATES,
            "page": page, "state": state, "q": q, "FILTERS": FILTERS, "KINDS": WRITEBACK_KINDS,
            "STATES": WRITEBACK_STATES, "counts": counts,
            "max_attempts": writeback.max_attempts(), "needs_attention": writeback.needs_attention}


def _job_or_404(job_id: int) -> WritebackJob:
    job = db.session.scalar(scope(select(WritebackJob), WritebackJob.enterprise_id).where(WritebackJob.id == job_id))
    if job is None:
        abort(404)
    return job


@bp.get("/")
@roles_required("ops")
def index():
    """Jobs of the user's enterprises, filtered by state and bill number; to-do first by default."""
    state, q = _filters()
    return render("writeback/index.html", "writeback/_list.html", **_context(state, q))


@bp.post("/<int:job_id>/retry")
@roles_required("ops")
def retry(job_id: int):
    """Make one failed or pending job due now (audited); htmx gets the row back with a toast."""
    job = _job_or_404(job_id)
    try:
        writeback.retry_now(job, None)
    except UserError as exc:
        if is_htmx():
            return render("_error_fragment.html", message=exc.message, status=exc.status, headers=toast(exc.message, "error"))
        flash(exc.message, "warning")
        return redirect(url_for(".index"), code=303)
    db.session.commit()
    message = f"已安排立即重试：单据 {job.bill.bill_no}，{WRITEBACK_KINDS.get(job.kind, job.kind)}"
    if is_htmx():
        return render("writeback/_row.html", job=job, headers=toast(message), KINDS=WRITEBACK_KINDS,
                      STATES=WRITEBACK_STATES, max_attempts=writeback.max_attempts(),
                      needs_attention=writeback.needs_attention)
    flash(message, "success")
    return redirect(url_for(".index"), code=303)


@bp.post("/retry-failed")
@roles_required("ops")
def retry_failed():
    """Make every failed job the user may see due now (each one audited)."""
    jobs = list(db.session.scalars(scope(select(WritebackJob), WritebackJob.enterprise_id)
                                   .where(WritebackJob.state == "failed").order_by(WritebackJob.id)))
    for job in jobs:
        writeback.retry_now(job, None)
    db.session.commit()
    message = f"已安排立即重试 {len(jobs)} 个失败的回写任务" if jobs else "没有失败的回写任务"
    state, q = _filters()
    if is_htmx():
        return render("writeback/_list.html", headers=toast(message, "success" if jobs else "info"),
                      **_context(state, q))
    flash(message, "success")
    return redirect(url_for(".index", state=state or None, q=q or None), code=303)
