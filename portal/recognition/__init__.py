"""Invoice recognition: XML, OFD, PDF and image files → `Invoice` records.

A pure library (no Flask). Readers run cheapest and most exact first — structured XML,
OFD semantic data, the PDF text layer, the QR code, and OCR only when asked — and their
readings of one file are combined field by field, the more exact source winning.

    from portal.recognition import recognise, UnsafeFile
    invoices = recognise(data, "application/pdf")
"""

from __future__ import annotations

import io
import logging

from PIL import Image

from portal.files import limits
from portal.files.limits import UnsafeFile, open_image
from portal.files.limits import check_image as check_image_size

from . import ocr as ocr_hook
from .model import Invoice, merge_all
from .ofd import read_ofd
from .pdf import read_pdf
from .qr import parse_payload, scan_image
from .xmlinv import read_xml

__all__ = ["Invoice", "UnsafeFile", "recognise", "MEDIA_TYPES"]

log = logging.getLogger(__name__)

MEDIA_TYPES = (
    "application/xml",
    "application/ofd",
    "application/pdf",
    "image/jpeg",
    "image/png",
    "image/tiff",
)


def recognise(data: bytes, media_type: str, *, ocr: bool = False) -> list[Invoice]:
    """Every invoice recognised in one file, in the order found; [] when none is.

    `media_type` is the sniffed type (one of MEDIA_TYPES; anything else gives []).
    Money is Decimal to the cent and dates are datetime.date; a field the file does not
    carry is None, except that the third of amount/tax/total is computed when the other
    two are known. OCR runs only with `ocr=True`, and never for a page whose structured
    data or QR code already gave number, date and amount — except to fill, on an image, the seller,
    buyer and total that a complete QR reading lacks (``ocr.fill_from_ocr``: the QR's values never change).

    Malformed input gives [] (logged at debug level), never an exception, except
    `UnsafeFile` for bombs and over-limit files: its message is meant for the user.
    """
    reader = _READERS.get(media_type)
    if reader is None:
        return []
    try:
        readings = reader(data, media_type, ocr)
    except (UnsafeFile, MemoryError):
        raise  # a refusal, or the worker's memory budget: neither means "no invoice here"
    except Exception:
        # Untrusted bytes: any parser failure means "not recognisable", not a server error.
        log.debug("recognition failed for a %s file", media_type, exc_info=True)
        return []
    invoices = [inv for inv in readings if inv.is_useful]
    if any(inv.number for inv in invoices):
        # A page without a number next to numbered invoices is a list/continuation page.
        invoices = [inv for inv in invoices if inv.number]
    for inv in invoices:
        inv.complete_money()
    return invoices


def _read_xml(data: bytes, media_type: str, ocr_enabled: bool) -> list[Invoice]:
    return read_xml(data)


def _read_ofd(data: bytes, media_type: str, ocr_enabled: bool) -> list[Invoice]:
    return read_ofd(data, ocr_enabled=ocr_enabled)


def _read_pdf(data: bytes, media_type: str, ocr_enabled: bool) -> list[Invoice]:
    return read_pdf(data, ocr_enabled=ocr_enabled)


def _read_image(data: bytes, media_type: str, ocr_enabled: bool) -> list[Invoice]:
    """QR codes on each frame (TIFF scans may hold many pages), then optional OCR."""
    with open_image(data, media_type) as image:
        return _dedupe(_read_frames(image, data, ocr_enabled))


def _read_frames(image: Image.Image, data: bytes, ocr_enabled: bool) -> list[Invoice]:
    """QR readings of each frame; a multi-frame TIFF is decoded at full size, frame by frame."""
    frames = getattr(image, "n_frames", 1) or 1
    readings: list[Invoice] = []
    for index in range(min(frames, limits.current().max_pages)):
        if index:
            image.seek(index)
            check_image_size(image)
        page_readings = []
        size = image.size
        for payload in scan_image(image, data if frames == 1 else None):
            qr = parse_payload(payload)
            if qr is not None:
                qr.page = index
                page_readings.append(qr)
        if ocr_enabled and not any(r.is_complete for r in page_readings):
            page = _ocr_page(image, data, size)
            page_readings = merge_all(page_readings + ocr_hook.read_image(page, page=index))
        elif ocr_enabled and any(ocr_hook.wants_fill(r) for r in page_readings):
            # The QR gave the number but not the names or the total: OCR of the page may fill those.
            [read] = ocr_hook.read_image(_ocr_page(image, data, size), page=index) or [None]
            page_readings = [ocr_hook.fill_from_ocr(r, read) for r in page_readings]
        readings.extend(page_readings)
        limits.tick()
    return readings


def _ocr_page(image: Image.Image, data: bytes, size: tuple[int, int]) -> Image.Image:
    """The page in gray for OCR: a JPEG the QR scan decoded at a reduced scale is decoded again.

    The QR's draft scale (a quarter or an eighth of a phone photo) loses the strokes that tell 责 from 贵;
    OCR wants about ``ocr.MAX_SIDE`` pixels, which a draft at that size still saves decoding in full.
    """
    if image.size == size:
        return image.convert("L")
    full = Image.open(io.BytesIO(data), formats=["JPEG"])
    scale = ocr_hook.MAX_SIDE / max(size)
    if scale < 1:
        full.draft("L", (max(1, int(size[0] * scale)), max(1, int(size[1] * scale))))
    return full.convert("L")


def _dedupe(readings: list[Invoice]) -> list[Invoice]:
    """The same QR seen twice (two frames of one scan) is one invoice."""
    seen: set[tuple] = set()
    out = []
    for inv in readings:
        ident = (inv.code, inv.number)
        if ident in seen:
            continue
        seen.add(ident)
        out.append(inv)
    return out


_READERS = {
    "application/xml": _read_xml,
    "text/xml": _read_xml,
    "application/ofd": _read_ofd,
    "application/pdf": _read_pdf,
    "image/jpeg": _read_image,
    "image/png": _read_image,
    "image/tiff": _read_image,
}
