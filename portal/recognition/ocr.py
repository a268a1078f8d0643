"""Hook point for OCR, the last and slowest reader (off by default).

No OCR engine is bundled (one would cost 2–4.5 s per image and a large dependency).
A deployment that installs one replaces `read_image`; recognition calls it only when
`recognise(..., ocr=True)` was asked for and neither a structured source nor a QR code
gave number, date and amount for that page.
"""

from __future__ import annotations

from PIL import Image

from .model import Invoice


def read_image(image: Image.Image, *, page: int | None) -> list[Invoice]:
    """Invoices read by OCR from one page image (source "ocr"); [] while no engine is installed."""
    return []
