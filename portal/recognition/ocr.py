"""OCR, the last and slowest reader: printed text of a paper invoice where no structured source or QR code helped.

The engine is ``rapidocr-onnxruntime`` (its models ship inside the wheel; nothing is downloaded), an optional
dependency (``pip install '.[ocr]'``): without it :func:`available` is False and :func:`read_image` finds
nothing. Recognition calls OCR only when asked (``recognise(..., ocr=True)``) and only for a page on which
no cheaper reader gave number, date and amount.

Every value read here is checked on its own before it is kept, and left empty when the check fails — never
guessed: tax numbers by their check character (18-character codes) or shape, the total by its written
capitals (大写) against its figures (小写), amount + tax against the total, dates against the calendar.
"""

from __future__ import annotations

import math
import statistics
import threading
from dataclasses import dataclass, replace

from PIL import Image

from .model import Invoice
from .ocr_fields import extract_fields

__all__ = ["Line", "available", "extract", "fill_from_ocr", "read_image", "read_lines", "use_threads", "wants_fill"]

MAX_SIDE = 1600  # longest side OCR sees: more pixels cost seconds and read no better on an invoice
_ENGINE = None
_ENGINE_LOCK = threading.Lock()
# onnxruntime session options for the three models (RapidOCR's global parameters). One intra-op thread:
# measured with bench/bench_ocr.py on the 2-core box while it was busy, one thread read every page faster
# than onnxruntime's default, one per core (median 3.3 s vs 11.0 s a page at load ~11), and it
# leaves the other core to the web process beside the job runner. The OCR job's child sets it from the
# config ``OCR_THREADS`` (:func:`use_threads`). Measured again: on a quiet box 2 threads read a page in ~60 % of
# the time for ~12 % more CPU, at load 4–6 they took twice as long as 1; the default stays 1 (see README).
ENGINE_PARAMS: dict[str, int] = {"intra_op_num_threads": 1}


@dataclass(frozen=True)
class Line:
    """One piece of text OCR found: the top-left corner, height and width of its box (page upright)."""

    text: str
    x: float
    y: float
    height: float = 16.0
    width: float = 0.0


def available() -> bool:
    """True when the OCR engine is installed."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _engine():
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            from rapidocr_onnxruntime import RapidOCR

            _ENGINE = RapidOCR(**ENGINE_PARAMS)
        return _ENGINE


def set_engine_params(**params: int) -> None:
    """Use these onnxruntime options (``intra_op_num_threads``…) from the next read on."""
    global _ENGINE
    with _ENGINE_LOCK:
        ENGINE_PARAMS.clear()
        ENGINE_PARAMS.update(params)
        _ENGINE = None


def use_threads(threads: int) -> None:
    """Run the engine with ``threads`` onnxruntime intra-op threads (config ``OCR_THREADS``; 0 = keep as is).

    The loaded engine is kept when the setting is unchanged: a file-work child keeps it between jobs.
    """
    if threads and ENGINE_PARAMS.get("intra_op_num_threads") != threads:
        set_engine_params(**{**ENGINE_PARAMS, "intra_op_num_threads": threads})


def read_lines(image: Image.Image) -> list[Line]:
    """The text pieces on one page image (empty when no engine is installed)."""
    if not available():
        return []
    import numpy as np

    image = image.convert("RGB")
    scale = min(1.0, MAX_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    # The engine works in OpenCV's BGR order: red invoice print read as RGB would look blue to it.
    result, _elapsed = _engine()(np.ascontiguousarray(np.asarray(image)[:, :, ::-1]))
    return _upright([(box, str(text)) for box, text, _score in result or []])


def _upright(found: list[tuple[list, str]]) -> list[Line]:
    """Text boxes turned back by the page's tilt, so that one printed row shares one band of heights.

    A photo is rarely square to the page: a few degrees over a page's width put the two ends of a row
    dozens of pixels apart. The tilt is the median slope of the wide boxes' top edges.
    """
    slopes = [math.atan2(box[1][1] - box[0][1], box[1][0] - box[0][0]) for box, text in found
              if box[1][0] - box[0][0] > 2 * abs(box[3][1] - box[0][1])]
    angle = statistics.median(slopes) if slopes else 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    lines = []
    for box, text in found:
        points = [(x * cos + y * sin, -x * sin + y * cos) for x, y in ((float(p[0]), float(p[1])) for p in box)]
        left, top = min(p[0] for p in points), min(p[1] for p in points)
        lines.append(Line(text, left, top, max(p[1] for p in points) - top, max(p[0] for p in points) - left))
    return lines


def read_image(image: Image.Image, *, page: int | None) -> list[Invoice]:
    """Invoices read by OCR from one page image (source ``ocr``); [] when nothing checkable was found."""
    reading = extract(read_lines(image), page=page)
    return [reading] if reading is not None else []


# --------------------------------------------------------------------------- field extraction


def extract(lines: list[Line], *, page: int | None = None) -> Invoice | None:
    """The invoice fields that OCR text carries and that pass their own checks; None when there are none.

    One extractor per paper kind (:mod:`portal.recognition.ocr_fields`).
    """
    return extract_fields(lines, page=page)


# Fields OCR may add to a QR reading of the same page: the QR carries none of them (or, for legacy
# invoices, the amount before tax but not the total).
FILLABLE = ("seller_name", "seller_tax_no", "buyer_name", "buyer_tax_no", "total")
# A complete reading lacking one of these is worth an OCR pass of its page to fill them.
WANTED = ("seller_name", "buyer_name", "total")


def wants_fill(reading) -> bool:
    """True when a reading (a QR's, usually) lacks the seller's or buyer's name or the total."""
    return any(getattr(reading, name) is None for name in WANTED)


def fill_from_ocr(reading: Invoice, ocr_reading: Invoice | None) -> Invoice:
    """A QR (or other) reading completed with what OCR of the same page read and checked.

    Only the fields in :data:`FILLABLE` that the reading lacks are taken, and only when the two readings are
    of one invoice: OCR's number (when it read one) and code and date must equal the reading's, and OCR must
    have read at least the number or the date to tie it to the page's invoice at all. A total must be at
    least the reading's pre-tax amount, and equal amount + tax when both are known. The reading's own
    fields never change. The fields taken are listed in ``raw["ocr_fields"]``: their source is ``ocr``.
    """
    if ocr_reading is None:
        return reading
    for name in ("number", "code", "date"):
        mine, theirs = getattr(reading, name), getattr(ocr_reading, name)
        if mine is not None and theirs is not None and mine != theirs:
            return reading
    if not ((ocr_reading.number and ocr_reading.number == reading.number)
            or (ocr_reading.date is not None and ocr_reading.date == reading.date)):
        return reading
    filled = replace(reading, raw=dict(reading.raw))
    taken = []
    for name in FILLABLE:
        value = getattr(ocr_reading, name)
        if value is None or getattr(reading, name) is not None:
            continue
        if name == "total" and not _total_fits(reading, value):
            continue
        setattr(filled, name, value)
        taken.append(name)
    if taken:
        filled.raw["ocr_fields"] = sorted(set(filled.raw.get("ocr_fields", [])) | set(taken))
    return filled


def _total_fits(reading: Invoice, total) -> bool:
    if reading.amount is not None and reading.tax is not None:
        return reading.amount + reading.tax == total
    if reading.amount is not None:
        return total >= reading.amount
    return True
