"""The scan desk (扫描工作台): the scanner's queue and opening a bill by number or cover-sheet barcode."""
from __future__ import annotations

from flask import Blueprint, redirect, request
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from ...extensions import db
from ...models import Bill
from ...web.access import roles_required, scope
from ...web.lists import paginate, sort_order
from ...web.htmx import is_htmx, render
from ..bills import service

bp = Blueprint("scan", __name__)

PER_PAGE = 50


# Columns the queue sorts by (the id breaks ties; "created" newest first is the default).
SORT_COLUMNS = {"bill_no": Bill.bill_no, "submitter": Bill.submitter, "amount": Bill.amount, "status": Bill.status,
                "created": Bill.id}


def _queue_stmt(order=None):
    """Bills waiting for the desk: a scanner's scan points (and unassigned bills); ops: all of theirs."""
    stmt = (scope(select(Bill), Bill.enterprise_id)
            .where(Bill.status.in_(service.QUEUE_STATUSES))
            .options(joinedload(Bill.scan_point), joinedload(Bill.enterprise))
            .order_by(*(order or [Bill.id.desc()])))
    if current_user.role == "scanner":
        mine = [p.id for p in current_user.scan_points]
        # Bills the ERP opened without a scan point belong to no other desk, so every desk sees them.
        stmt = stmt.where(or_(Bill.scan_point_id.in_(mine), Bill.scan_point_id.is_(None)))
    return stmt


@bp.get("/")
@roles_required("scanner", "ops")
def queue():
    """The queue, newest first or by a column, with the open-by-number box (``#scan-queue`` refreshes itself)."""
    sort, desc, order = sort_order(SORT_COLUMNS, "created", tiebreak=Bill.id)
    page = paginate(_queue_stmt(order), PER_PAGE)
    return render("scan/queue.html", "scan/_queue.html", page=page, bill_no="", error=None, choices=[],
                  many=service.sees_many_enterprises(), sort=sort, desc=desc,
                  sort_args={"sort": sort, "dir": "desc" if desc else "asc"})


@bp.get("/open")
@roles_required("scanner", "ops")
def open_bill():
    """Open a bill by its number (typed, or a barcode gun's digits and Enter).

    Found: htmx gets ``HX-Redirect``, a plain form a 303.  Unknown: 422 with the box
    and a message, nothing navigates.  The same number in two enterprises: a choice.
    """
    bill_no = request.args.get("bill_no", "").strip()
    if not bill_no:
        return _box(bill_no, "请输入或扫描单据编号", 422)
    found = service.find_bills(bill_no[:64], ignore_case=True)
    if not found:
        return _box(bill_no, f"没有找到单据 {bill_no}，请核对编号，或确认 ERP 已开启该单据的影像任务。", 422)
    if len(found) > 1:
        return _box(bill_no, None, 200, choices=found)
    target = service.bill_url("bills.show", found[0])
    if is_htmx():
        return render("_empty.html", headers={"HX-Redirect": target})
    return redirect(target, code=303)


def _box(bill_no: str, error: str | None, status: int, choices: list[Bill] | None = None):
    """The open-by-number box with a message or a choice (the whole desk page without htmx)."""
    if is_htmx():
        return render("scan/_open.html", status=status, bill_no=bill_no, error=error, choices=choices or [])
    page = db.paginate(_queue_stmt(), page=1, per_page=PER_PAGE, error_out=False)
    return render("scan/queue.html", status=status, page=page, bill_no=bill_no, error=error, choices=choices or [],
                  many=service.sees_many_enterprises(), sort="created", desc=True, sort_args={})
