"""Which uploaded images wait for background OCR (识别中): the rule an upload applies, below the bills module.

An upload recognises its file with the fast readers only. :func:`mark` sets an image's ``ocr_state`` to
``queued`` when an image frame (or, for a PDF, the whole file) gave no complete invoice and OCR is installed
— or to ``unavailable`` when it is not — and remembers the image in the session, so that the job model
(:mod:`portal.jobs`) can put it on the RQ queue once the upload commits. The job itself is
:mod:`portal.ocr_jobs`.
"""
from __future__ import annotations

import importlib.util
from typing import Iterable

from flask import current_app
from sqlalchemy.orm import Session

from .extensions import db
from .models import Image, utcnow
from .recognition import Invoice as Reading

__all__ = ["PENDING", "enabled", "installed", "mark", "needs_ocr", "take_marked"]

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
    """Background OCR is on (``OCR_BACKGROUND``) and not already done in the request (``RECOGNITION_OCR``)."""
    cfg = current_app.config
    return bool(cfg.get("OCR_BACKGROUND", True)) and not cfg.get("RECOGNITION_OCR")


def needs_ocr(media_type: str, pages: int, readings: Iterable[Reading]) -> bool:
    """True when an image frame (or, for a PDF, the whole file) gave no complete invoice."""
    readings = list(readings)
    if media_type in IMAGE_TYPES:
        complete = {r.page or 0 for r in readings if r.is_complete}
        return any(page not in complete for page in range(max(1, pages)))
    if media_type == PDF:  # a scan without a text layer; list pages next to invoices need no OCR
        return not any(r.is_complete for r in readings)
    return False


def mark(image: Image, media_type: str, pages: int, readings: Iterable[Reading]) -> None:
    """Mark a freshly attached image for OCR when it needs it (识别中), or say that OCR is not installed."""
    if not enabled() or not needs_ocr(media_type, pages, readings):
        image.ocr_state = None
        return
    if not installed():
        image.ocr_state = "unavailable"
        return
    image.ocr_state, image.ocr_due_at, image.ocr_attempts = "queued", utcnow(), 0
    image.ocr_error = image.ocr_lease_until = image.ocr_token = image.ocr_finished_at = None
    db.session.flush()
    db.session.info.setdefault(_MARKED, set()).add(image.id)


def take_marked(session: Session) -> set[int]:
    """The ids of the images marked in ``session``'s transaction (forgotten once taken)."""
    return session.info.pop(_MARKED, None) or set()
