"""Which uploaded images wait for background OCR (识别中): the rule an upload applies, below the bills module.

An upload recognises its file with the fast readers only. :func:`mark` sets an image's ``ocr_state`` to
``queued`` when an image frame (or, for a PDF, the whole file) gave no complete invoice and OCR is installed,
or when a photo's QR gave the invoice without seller, buyer or total (a fill-only job, which does not hold up
submit) — or to ``unavailable`` when it is not — and remembers the image in the session, so that the job model
(:mod:`portal.jobs`) can put it on the RQ queue once the upload commits. The job itself is
:mod:`portal.ocr_jobs`.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Iterable

from flask import current_app
from sqlalchemy.orm import Session

from .extensions import db
from .models import Image, utcnow
from .recognition import Invoice as Reading

__all__ = ["PENDING", "enabled", "fill_only", "installed", "mark", "needs_fill", "needs_ocr", "take_marked"]

#: States in which the image is still being recognised (the card polls, submit waits).
PENDING = ("queued", "running")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/tiff")
PDF = "application/pdf"
_MARKED = "portal_ocr_marked"  # session.info key: images marked in this transaction
_installed: bool | None = None


def installed() -> bool:
    """Whether the OCR engine is installed (found, not imported: the web process never loads it)."""
    global _installed
    if _installed is None:
        _installed = importlib.util.find_spec("rapidocr_onnxruntime") is not None
    return _installed


def enabled() -> bool:
    """Background OCR is on (``OCR_BACKGROUND``)."""
    return bool(current_app.config.get("OCR_BACKGROUND", True))


def _complete(r: Any) -> bool:
    """A reading or a stored invoice with number, date and a money figure (``Reading.is_complete``)."""
    return bool(r.number) and r.date is not None and (r.amount is not None or r.total is not None)


def needs_ocr(media_type: str, pages: int, readings: Iterable[Reading]) -> bool:
    """True when an image frame (or, for a PDF, the whole file) gave no complete invoice."""
    readings = list(readings)
    if media_type in IMAGE_TYPES:
        complete = {r.page or 0 for r in readings if _complete(r)}
        return any(page not in complete for page in range(max(1, pages)))
    if media_type == PDF:  # a scan without a text layer; list pages next to invoices need no OCR
        return not any(_complete(r) for r in readings)
    return False


def needs_fill(media_type: str, readings: Iterable[Reading]) -> bool:
    """True when a photo or scan's complete (QR) reading lacks the seller's or buyer's name or the total.

    OCR of the same page may fill those (``ocr.fill_from_ocr``). Only images: a PDF, OFD or XML e-invoice
    whose QR or text gave the invoice never goes to OCR.
    """
    return media_type in IMAGE_TYPES and any(
        _complete(r) and any(getattr(r, name) is None for name in ("seller_name", "buyer_name", "total"))
        for r in readings)


def fill_only(image: Image) -> bool:
    """Whether the image's OCR only fills names and total: its stored invoices are complete already.

    Such a job does not hold up submitting the bill (the invoice is known); a fill that finds the bill
    submitted stores nothing (:mod:`portal.ocr_jobs`).
    """
    stored = [inv for inv in image.invoices]
    return bool(stored) and not needs_ocr(image.blob.media_type, image.blob.pages, stored)


def mark(image: Image, media_type: str, pages: int, readings: Iterable[Reading]) -> None:
    """Mark a freshly attached image for OCR when it needs it (识别中), or say that OCR is not installed."""
    readings = list(readings)
    full = needs_ocr(media_type, pages, readings)
    if not enabled() or not (full or needs_fill(media_type, readings)):
        image.ocr_state = None
        return
    if not installed():  # a fill is a bonus: without the engine the QR's invoice simply stays as read
        image.ocr_state = "unavailable" if full else None
        return
    image.ocr_state, image.ocr_due_at, image.ocr_attempts = "queued", utcnow(), 0
    image.ocr_error = image.ocr_lease_until = image.ocr_token = image.ocr_finished_at = None
    db.session.flush()
    db.session.info.setdefault(_MARKED, set()).add(image.id)


def take_marked(session: Session) -> set[int]:
    """The ids of the images marked in ``session``'s transaction (forgotten once taken)."""
    return session.info.pop(_MARKED, None) or set()
