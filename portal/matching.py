"""The system first review (系统初审) of 影像匹配: expected invoices against the recognised ones.

A bill's expected invoices (the ERP's and the receipt assistant's pushes naming the bill)
are compared with the invoices recognised on its live images; :func:`evaluate` returns the
JSON-safe result and changes nothing. What happens with the result — history, status,
write-back — is :mod:`portal.review`'s business.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select

from . import verification
from .config import match_amount_tolerance
from .extensions import db
from .models import Bill, ExpectedInvoice, Image, Invoice, utcnow

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


def found_keys(invoices: Iterable[Invoice]) -> set[str]:
    """The invoice keys among ``invoices`` (the ones :func:`evaluate` compares)."""
    return {inv.invoice_key for inv in invoices if inv.invoice_key}


def evaluate(bill: Bill, invoices: Iterable[Invoice], others: dict[str, list[str]],
             verifications: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compare expected and recognised invoices; return the JSON-safe match result (nothing is changed).

    ``invoices`` are the ones recognised on the bill's live images, ``others`` maps an
    invoice key to the other bills that already carry it (重复报销), ``verifications`` the
    发票查验 results by invoice key (None: the enterprise does not verify).
    ``{"result": "matched"|"match_failed", "round", "reasons": [中文…],
    "items": [{"key", "status", "expected", "found"}]}``. Legacy invoices compare the
    pre-tax amount (what their QR carries), 数电 invoices the total.
    """
    expected = expected_invoices(bill)
    found: dict[str, Invoice] = {}
    # The same invoice on two images of one bill (e.g. its PDF and a photo) is compared once,
    # but the bill counts it twice: it is reported as 单据内重复 below.
    repeated: dict[str, list[Invoice]] = {}
    for inv in invoices:
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
    items_v, reasons_v = _verification_items(verifications or {}, found, filenames)
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


def _verification_items(checks: dict[str, Any], found: dict[str, Invoice], filenames: dict[int, str]) -> tuple[list, list]:
    """``verify_failed`` items of invoices the invoice cloud found 查验不符 or 已作废/红冲."""
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
