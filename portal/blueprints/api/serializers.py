"""JSON shapes of the ERP API: bills, images and invoices.

Money is a decimal string with two places, dates are ``YYYY-MM-DD``, and a value
the source does not carry is ``null``.  :func:`bill_json` answers with a fixed
number of queries however many images and invoices the bill has.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Iterable

from ... import bills, verification
from ...models import Bill, Image, Invoice


def money(value: Decimal | None) -> str | None:
    """``Decimal('24519.05')`` → ``"24519.05"``; None stays None."""
    return None if value is None else f"{value:.2f}"


def day(value: date | None) -> str | None:
    """A date as ``YYYY-MM-DD``; None stays None."""
    return None if value is None else value.isoformat()


def image_json(image: Image) -> dict[str, Any]:
    """One image: id, content hash, sniffed media type, page count, original file name."""
    return {
        "id": image.id,
        "sha256": image.sha256,
        "media_type": image.blob.media_type,
        "pages": image.blob.pages,
        "filename": image.filename,
        # Background OCR: null (not needed), queued/running (识别中), done, failed (with the error), unavailable.
        "recognition": image.ocr_state and {"state": image.ocr_state, "attempts": image.ocr_attempts,
                                            "error": image.ocr_error},
    }


def invoices_json(enterprise_id: int, bill_id: int, invoices: Iterable[Invoice]) -> list[dict[str, Any]]:
    """Invoices of one bill, each with the other live bills that carry the same invoice (one query)
    and, when the enterprise has 发票查验 on, its verification (one more; ``null`` when off)."""
    invoices = list(invoices)
    dups = bills.duplicate_bills(enterprise_id, bill_id, (i.invoice_key for i in invoices if i.invoice_key))
    verifying = verification.enabled(enterprise_id)
    checks = verification.results(enterprise_id, (i.invoice_key for i in invoices)) if verifying else {}
    return [
        {
            "image_id": inv.image_id,
            "type": inv.type,
            "code": inv.code,
            "number": inv.number,
            "date": day(inv.date),
            "amount": money(inv.amount),  # before tax
            "tax": money(inv.tax),
            "total": money(inv.total),  # tax included
            "check_code": inv.check_code,
            "seller_name": inv.seller_name,
            "seller_tax_no": inv.seller_tax_no,
            "buyer_name": inv.buyer_name,
            "buyer_tax_no": inv.buyer_tax_no,
            "source": inv.source,
            "needs_confirmation": bool(inv.needs_confirm),  # 待确认: read by OCR, not yet confirmed or corrected
            # Fields OCR added to another source's reading (a QR without names and total); [] when none.
            "ocr_fields": list((inv.raw or {}).get("ocr_fields") or []) if inv.source != "manual" else [],
            "duplicate_bills": dups.get(inv.invoice_key, []) if inv.invoice_key else [],
            "verification": verification.as_json(checks.get(inv.invoice_key)) if verifying else None,
        }
        for inv in invoices
    ]


def bill_json(bill: Bill) -> dict[str, Any]:
    """The bill as the ERP sees it: fields, status, live images in order and their invoices.

    Queries: the images (blob joined), their invoices (selectin), the duplicate
    lookup and at most one for the scan point — independent of the bill's size.
    Later features extend the shape (e.g. ``match`` once matching has run).
    """
    images = bills.live_images(bill)
    invoices = [inv for img in images for inv in img.invoices]
    point = bill.scan_point
    out: dict[str, Any] = {
        "bill_no": bill.bill_no,
        "status": bill.status,
        "status_label": bill.status_label,
        "amount": money(bill.amount),
        "form_id": bill.form_id,
        "erp_id": bill.erp_id,
        "submitter": bill.submitter,
        "org": bill.org,
        "scan_point": point.code if point is not None else None,
        "return_reason": bill.return_reason,
        "images": [image_json(img) for img in images],
        "invoices": invoices_json(bill.enterprise_id, bill.id, invoices),
    }
    if bill.match_result:
        out["match"] = bill.match_result
    return out
