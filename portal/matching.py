"""What happens after a bill is submitted, per image mode (DESIGN §1 step 4, §5).

* basic 基础模式 and sync 影像同步提单人: the submitted bill is complete, and is written back;
* match 影像匹配: the bill is recognised, then its expected invoices (the ERP's and the
  receipt assistant's pushes naming the bill) are compared with the invoices recognised on
  its live images — the system first review (系统初审). ``matched`` is written back;
  ``match_failed`` waits for a rescan or for a scanner's manual :func:`confirm`.

Every round's result is kept: in ``bill.match_result`` (the latest) and in the detail of
the bill's ``match`` history event (all rounds).
"""
from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from typing import Any

from flask import current_app, has_request_context
from sqlalchemy import and_, or_, select

from . import audit, bills, verification
from .config import match_amount_tolerance
from .extensions import db
from .models import Bill, Enterprise, ExpectedInvoice, Image, Invoice, utcnow

log = logging.getLogger("portal.matching")

# Item statuses of a match result.
MATCHED = "matched"
MISSING_IMAGE = "missing_image"
AMOUNT_MISMATCH = "amount_mismatch"
UNEXPECTED_IMAGE = "unexpected_image"
DUPLICATE = "duplicate"
DUPLICATE_IN_BILL = "duplicate_in_bill"
VERIFY_FAILED = "verify_failed"  # 发票查验: 查验不符 or 已作废/红冲 (enterprises with verify_invoices on)
# The key of the bill-level item comparing the bill's amount with its invoices' total.
BILL_AMOUNT_KEY = "bill_amount"

ITEM_LABELS = {
    MATCHED: "匹配成功",
    MISSING_IMAGE: "缺少影像",
    AMOUNT_MISMATCH: "金额不一致",
    UNEXPECTED_IMAGE: "非应收发票",
    DUPLICATE: "重复报销",
    DUPLICATE_IN_BILL: "单据内重复",
    VERIFY_FAILED: "查验未通过",
}

SECOND_PERSON_RULE = ("本企业的人工确认需他人复核：您上传了本单据的影像，"
                      "请由运维人员或其他扫描岗确认通过")


# --------------------------------------------------------------------------- entry points

def after_submit(bill: Bill, actor: str) -> None:
    """Run the checks of the bill's image mode on a just-submitted bill and move it on.

    Called by :func:`portal.bills.submit` with the bill already ``submitted``;
    works inside the caller's transaction.
    """
    mode = bill.enterprise.image_mode
    if mode == "match":
        bills.event(bill, "recognise", actor, to="recognised")
        result = evaluate(bill)
        bill.match_result = result
        bills.event(bill, "match", actor, to=result["result"], detail=result)
        if result["result"] == MATCHED:
            write_back(bill, actor)
        return
    # basic, sync (and any mode we do not know): images are only stored.
    bills.event(bill, "complete", actor, to="completed")
    write_back(bill, actor)


def confirm(bill: Bill, reason: str, actor: str, *, role: str = "scanner") -> None:
    """A scanner or ops user accepts a failed match by hand, with a reason: the bill becomes ``matched``.

    Raises BillError 422 without a reason, 409 unless the bill is ``match_failed``, and 403
    when the enterprise wants a second person (人工确认需他人复核) and ``actor`` is a
    non-ops user who uploaded one of the bill's images. The confirmation is audited and
    the bill is written back.
    """
    reason = (reason or "").strip()
    if bill.status != "match_failed":
        raise bills.BillError(f"单据当前状态为“{bill.status_label}”，只有匹配失败的单据可以人工确认", 409)
    if not may_confirm(bill, actor, role):
        raise bills.BillError(SECOND_PERSON_RULE, 403)
    if not reason:
        raise bills.BillError("请填写人工确认的理由")
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
    from . import writeback  # imported here: writeback imports bills, which imports this module lazily

    writeback.enqueue_bill(bill, actor)


def _audit_actor(actor: str) -> str | None:
    """None (audit takes the logged-in user, with its id) when the actor is that user."""
    if has_request_context():
        from flask_login import current_user

        if current_user and current_user.is_authenticated and current_user.username == actor:
            return None
    return actor


# --------------------------------------------------------------------------- the comparison

def expected_invoices(bill: Bill) -> list[ExpectedInvoice]:
    """The invoices the bill should carry: the ERP's for this bill and the pushes naming its number.

    An invoice given by both (same invoice key) counts once; the ERP's row wins.
    """
    rows = db.session.scalars(
        select(ExpectedInvoice).where(
            ExpectedInvoice.enterprise_id == bill.enterprise_id,
            or_(and_(ExpectedInvoice.origin == "erp", ExpectedInvoice.dedup_key.startswith(f"b:{bill.id}:", autoescape=True)),
                and_(ExpectedInvoice.origin == "push", ExpectedInvoice.bill_no == bill.bill_no)))
        .order_by(ExpectedInvoice.id))
    out: dict[str, ExpectedInvoice] = {}
    for row in sorted(rows, key=lambda r: (r.origin != "erp", r.id)):
        out.setdefault(row.invoice_key or row.dedup_key, row)
    return sorted(out.values(), key=lambda r: r.id)


def evaluate(bill: Bill) -> dict[str, Any]:
    """Compare expected and recognised invoices; return the JSON-safe match result (nothing is changed).

    ``{"result": "matched"|"match_failed", "round", "reasons": [中文…],
    "items": [{"key", "status", "expected", "found"}]}``. Legacy invoices compare the
    pre-tax amount (what their QR carries), 数电 invoices the total.
    """
    expected = expected_invoices(bill)
    found: dict[str, Invoice] = {}
    # The same invoice on two images of one bill (e.g. its PDF and a photo) is compared once,
    # but the bill counts it twice: it is reported as 单据内重复 below.
    repeated: dict[str, list[Invoice]] = {}
    for inv in bills.bill_invoices(bill):
        if not inv.invoice_key:
            continue
        if inv.invoice_key in found:
            repeated.setdefault(inv.invoice_key, [found[inv.invoice_key]]).append(inv)
        else:
            found[inv.invoice_key] = inv
    items: list[dict[str, Any]] = []
    reasons: list[str] = []
    filenames = _filenames(found.values())

    expected_keys = set()
    for exp in expected:
        key = exp.invoice_key or exp.dedup_key
        expected_keys.add(key)
        inv = found.get(key)
        label = _label(exp.number)
        if inv is None:
            items.append(_item(key, MISSING_IMAGE, exp, None, filenames))
            reasons.append(f"发票 {label} 缺少影像")
            continue
        mismatch = _amount_mismatch(exp, inv)
        if mismatch is None:
            items.append(_item(key, MATCHED, exp, inv, filenames))
        else:
            field, want, got = mismatch
            items.append(_item(key, AMOUNT_MISMATCH, exp, inv, filenames))
            reasons.append(f"发票 {label} 金额不一致：应为 {want}，识别为 {got}（{field}）")
    for key, inv in found.items():
        if key not in expected_keys:
            items.append(_item(key, UNEXPECTED_IMAGE, None, inv, filenames))
            reasons.append(f"影像中的发票 {_label(inv.number)} 不在应收发票中")
    others = bills.duplicate_bills(bill.enterprise_id, bill.id, found.keys())
    for key, inv in found.items():
        if others.get(key):
            item = _item(key, DUPLICATE, None, inv, filenames)
            item["other_bills"] = others[key]
            items.append(item)
            reasons.append(f"发票 {_label(inv.number)} 重复报销（单据 {'、'.join(others[key])}）")
    for key, copies in repeated.items():
        names = _filenames(copies)
        item = _item(key, DUPLICATE_IN_BILL, None, copies[0], names)
        item["images"] = [names.get(c.image_id) or f"影像 {c.image_id}" for c in copies]
        items.append(item)
        reasons.append(f"发票 {_label(copies[0].number)} 在本单据中出现 {len(copies)} 次（单据内重复：{'、'.join(item['images'])}）")
    items_v, reasons_v = _verification_items(bill, found, filenames)
    items.extend(items_v)
    reasons.extend(reasons_v)
    bill_item = _bill_amount_item(bill, found.values())
    if bill_item is not None:
        items.append(bill_item)
        reasons.append(f"单据金额 {bill_item['expected']['total']} 与发票价税合计 {bill_item['found']['total']} "
                       f"不一致（相差 {bill_item['difference']}，允许误差 {bill_item['tolerance']}）")
    ok = all(i["status"] == MATCHED for i in items)
    return {"result": MATCHED if ok else "match_failed", "round": bill.round, "reasons": reasons, "items": items,
            "expected": len(expected), "recognised": len(found), "at": utcnow().isoformat() + "Z"}


def _verification_items(bill: Bill, found: dict[str, Invoice], filenames: dict[int, str]) -> tuple[list, list]:
    """``verify_failed`` items of invoices the invoice cloud found 查验不符 or 已作废/红冲 (setting on only)."""
    ent = bill.enterprise or db.session.get(Enterprise, bill.enterprise_id)
    if not ent.verify_invoices:
        return [], []
    checks = verification.results(bill.enterprise_id, found.keys())
    items, reasons = [], []
    for key, inv in found.items():
        row = checks.get(key)
        if not verification.blocking(row):
            continue
        item = _item(key, VERIFY_FAILED, None, inv, filenames)
        item["verification"] = verification.as_json(row)
        items.append(item)
        if row.status == verification.VOID:
            reasons.append(f"发票 {_label(inv.number)} 已作废/红冲（发票云查验）")
        else:
            reasons.append(f"发票 {_label(inv.number)} 查验不符：{row.message or '—'}（{row.code}）")
    return items, reasons


def amount_tolerance() -> Decimal:
    """``MATCH_AMOUNT_TOLERANCE`` of the running app, as a decimal (checked at start-up)."""
    return match_amount_tolerance(current_app.config.get("MATCH_AMOUNT_TOLERANCE"))


def _invoice_total(inv: Invoice) -> Decimal | None:
    if inv.total is not None:
        return Decimal(inv.total)
    if inv.amount is not None and inv.tax is not None:
        return Decimal(inv.amount) + Decimal(inv.tax)
    return None


def _bill_amount_item(bill: Bill, invoices) -> dict | None:
    """The bill-level ``amount_mismatch`` item when the bill's amount and its invoices' total differ
    by more than :func:`amount_tolerance`; None when they agree or cannot be compared (no bill
    amount, no invoice, or an invoice whose total is unknown, e.g. a QR carrying only the pre-tax amount).
    """
    invoices = list(invoices)
    if bill.amount is None or not invoices:
        return None
    totals = [_invoice_total(inv) for inv in invoices]
    if any(t is None for t in totals):
        return None
    want, got = Decimal(bill.amount), sum(totals, Decimal("0"))
    tolerance = amount_tolerance()
    if abs(want - got) <= tolerance:
        return None
    return {"key": BILL_AMOUNT_KEY, "status": AMOUNT_MISMATCH, "expected": {"total": _money(want)},
            "found": {"total": _money(got)}, "difference": _money(got - want), "tolerance": _money(tolerance)}


def _is_shudian(number: str | None, code: str | None) -> bool:
    return bool(number) and len(number) == 20 and not code


def _amount_mismatch(exp: ExpectedInvoice, inv: Invoice) -> tuple[str, str, str] | None:
    """(field label, expected, recognised) when the amounts differ; None when equal or not comparable.

    The primary amount is the one the invoice's QR carries: the total for 数电, the
    pre-tax amount otherwise. When either side lacks it the other amount is compared;
    when no amount is on both sides the invoice key alone decides.
    """
    pairs = [("total", "价税合计"), ("amount", "不含税金额")]
    if not _is_shudian(exp.number, exp.code):
        pairs.reverse()
    for field, label in pairs:
        want, got = getattr(exp, field), getattr(inv, field)
        if want is None or got is None:
            continue
        if Decimal(want) != Decimal(got):
            return label, _money(want), _money(got)
        return None
    return None


def _filenames(invoices) -> dict[int, str]:
    ids = {i.image_id for i in invoices if i.image_id}
    if not ids:
        return {}
    return dict(db.session.execute(select(Image.id, Image.filename).where(Image.id.in_(ids))).all())


def _item(key: str, status: str, exp: ExpectedInvoice | None, inv: Invoice | None, filenames: dict[int, str]) -> dict:
    return {
        "key": key,
        "status": status,
        "expected": None if exp is None else {
            "origin": exp.origin, "serial_no": exp.serial_no, "type": exp.type, "code": exp.code,
            "number": exp.number, "date": _day(exp.date), "amount": _money(exp.amount), "tax": _money(exp.tax),
            "total": _money(exp.total),
        },
        "found": None if inv is None else {
            "image_id": inv.image_id, "filename": filenames.get(inv.image_id), "source": inv.source,
            "type": inv.type, "code": inv.code, "number": inv.number, "date": _day(inv.date),
            "amount": _money(inv.amount), "tax": _money(inv.tax), "total": _money(inv.total),
        },
    }


def _label(number: str | None) -> str:
    return number or "（无号码）"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{Decimal(value):.2f}"


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
