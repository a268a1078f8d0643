"""A bill's review: submit → the checks of its image mode → (manual confirm) → queue the write-back.

DESIGN §1 step 4, §5, per the enterprise's image mode:

* basic 基础模式 and sync 影像同步提单人: the submitted bill is complete, and is written back;
* match 影像匹配: the bill is recognised, then compared by :func:`portal.matching.evaluate` —
  the system first review (系统初审). ``matched`` is written back; ``match_failed`` waits for
  a rescan or for a scanner's manual :func:`confirm`.

Every round's result is kept: in ``bill.match_result`` (the latest) and in the detail of
the bill's ``match`` history event (all rounds). This module sits above :mod:`portal.bills`
(the bill's own rules), :mod:`portal.matching` (the comparison) and :mod:`portal.writeback`
(the queue), so each of those stays free of the others.
"""
from __future__ import annotations

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import select

from . import audit, bills, matching, verification, writeback
from .errors import UserError
from .extensions import db
from .models import Bill, Enterprise, Image, utcnow

SECOND_PERSON_RULE = ("本企业的人工确认需他人复核：您上传了本单据的影像，"
                      "请由运维人员或其他扫描岗确认通过")


def submit(bill: Bill, actor: str) -> None:
    """Submit the bill's images: run the checks of its enterprise's image mode and move it on."""
    if bill.status not in ("uploaded", "returned", "match_failed"):
        if bill.status == "pending":
            raise UserError("还没有上传影像，不能提交", 409)
        raise UserError(f"单据当前状态为“{bill.status_label}”，不能提交", 409)
    if not bills.live_images(bill):
        raise UserError("还没有上传影像，不能提交", 409)
    bills.check_ocr_done(bill)
    bills.event(bill, "submit", actor, to="submitted")
    bill.submitted_at = utcnow()
    bill.return_reason = None
    after_submit(bill, actor)


def after_submit(bill: Bill, actor: str) -> None:
    """Run the checks of the bill's image mode on a just-submitted bill and move it on.

    Called by :func:`submit` with the bill already ``submitted``; works inside the
    caller's transaction.
    """
    mode = bill.enterprise.image_mode
    if mode == "match":
        bills.event(bill, "recognise", actor, to="recognised")
        invoices = bills.bill_invoices(bill)
        others = bills.duplicate_bills(bill.enterprise_id, bill.id, matching.found_keys(invoices))
        checks = (verification.results(bill.enterprise_id, matching.found_keys(invoices))
                  if bill.enterprise.verify_invoices else None)
        result = matching.evaluate(bill, invoices, others, checks)
        bill.match_result = result
        bills.event(bill, "match", actor, to=result["result"], detail=result)
        if result["result"] == matching.MATCHED:
            write_back(bill, actor)
        return
    # basic, sync (and any mode we do not know): images are only stored.
    bills.event(bill, "complete", actor, to="completed")
    write_back(bill, actor)


def confirm(bill: Bill, reason: str, actor: str, *, role: str = "scanner") -> None:
    """A scanner or ops user accepts a failed match by hand, with a reason: the bill becomes ``matched``.

    Raises UserError 422 without a reason, 409 unless the bill is ``match_failed``, and 403
    when the enterprise wants a second person (人工确认需他人复核) and ``actor`` is a
    non-ops user who uploaded one of the bill's images. The confirmation is audited and
    the bill is written back.
    """
    reason = (reason or "").strip()
    if bill.status != "match_failed":
        raise UserError(f"单据当前状态为“{bill.status_label}”，只有匹配失败的单据可以人工确认", 409)
    if not may_confirm(bill, actor, role):
        raise UserError(SECOND_PERSON_RULE, 403)
    if not reason:
        raise UserError("请填写人工确认的理由")
    reason = reason[:500]
    # A new dict, not an in-place change: the JSON column only notices reassignment.
    result = dict(bill.match_result or {"round": bill.round, "reasons": [], "items": []})
    result.update(result="confirmed", confirmed_by=actor, reason=reason, confirmed_at=utcnow().isoformat() + "Z")
    bill.match_result = result
    bills.event(bill, "confirm", actor, to="matched", detail={"reason": reason})
    audit.record("confirm", "bill", bill.id, enterprise_id=bill.enterprise_id,
                 summary=f"人工确认单据 {bill.bill_no} 的匹配结果：{reason[:100]}",
                 after={"status": "matched", "reason": reason}, actor=_audit_actor(actor))
    write_back(bill, actor)


def may_confirm(bill: Bill, actor: str, role: str) -> bool:
    """Whether ``actor`` (with ``role``) may pass the bill's failed match by hand.

    With the enterprise's 人工确认需他人复核 on (the default), the person who scanned the
    bill cannot also wave its failed match through: ops may, and so may a scanner who
    uploaded none of the bill's live images.
    """
    ent = bill.enterprise or db.session.get(Enterprise, bill.enterprise_id)
    if not ent.confirm_needs_second or role == "ops":
        return True
    uploaded = db.session.scalar(select(Image.id).where(
        Image.bill_id == bill.id, Image.removed.is_(False), Image.uploaded_by == actor).limit(1))
    return uploaded is None


def write_back(bill: Bill, actor: str) -> None:
    """Queue the bill's ERP write-back (:func:`portal.writeback.enqueue_bill`)."""
    writeback.enqueue_bill(bill, actor)


def _audit_actor(actor: str) -> str | None:
    """None (audit takes the logged-in user, with its id) when the actor is that user."""
    if has_request_context():
        if current_user and current_user.is_authenticated and current_user.username == actor:
            return None
    return actor
