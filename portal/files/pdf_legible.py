"""Preview scale of a PDF page chosen from the size of its text.

Some PDFs draw their text small on a large page: the 数电 converter behind
``shudian_vat_special_sichuan_…pdf`` scaled the positions of an OFD to a 1653 × 1100 pt
page but kept 8–20 pt glyphs, so a preview sized by the page alone draws most glyphs
8–9 px tall, and the viewer fitting that page into its box shrinks them to 3–5 px.  The
preview of such a page is rendered larger, so that its typical glyph (the median height
of the glyph boxes in pdfium's text page) is at least :data:`LEGIBLE_TEXT_PX` pixels tall;
the viewer's 100 % zoom then shows it readable.  Pages whose text is already that tall at
the asked size keep that size, and a page without text (a scan inside a PDF) too.

The caller holds :data:`portal.files.limits.PDFIUM_LOCK`.  No Flask imports.
"""
from __future__ import annotations

import math
import statistics

import pypdfium2 as pdfium

# Pixel height of a median glyph box in a preview: 13 px keeps a Song-style Chinese
# character's strokes apart on screen.
LEGIBLE_TEXT_PX = 13
# A legible preview is never larger than this (longest side, pixels) ...
MAX_PREVIEW_SIDE = 4000
# ... nor than this many pixels (~64 MB as pdfium's 4-byte bitmap).
MAX_PREVIEW_PIXELS = 16_000_000
# Enough characters for a stable median; a page drawing more is sampled evenly.
MAX_SAMPLED_CHARS = 4000


def text_height(page: pdfium.PdfPage) -> float | None:
    """Median height in points of the glyph boxes of the page's visible characters; None without text."""
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        if count <= 0:
            return None
        step = max(1, count // MAX_SAMPLED_CHARS)
        # On a page shown turned by a quarter (/Rotate 90 or 270) its text runs across the boxes' width.
        across = page.get_rotation() in (90, 270)
        heights = []
        for i in range(0, count, step):
            char = pdfium.raw.FPDFText_GetUnicode(textpage, i)
            if char <= 0x20 or chr(char).isspace():
                continue
            left, bottom, right, top = textpage.get_charbox(i)
            size = right - left if across else top - bottom
            if size > 0:
                heights.append(size)
        return statistics.median(heights) if heights else None
    finally:
        textpage.close()


def preview_scale(page: pdfium.PdfPage, width: float, height: float, scale: float, max_pixels: int) -> float:
    """The scale to render ``page`` (``width`` × ``height`` pt) at: ``scale`` or larger so its text is legible.

    Capped by :data:`MAX_PREVIEW_SIDE`, :data:`MAX_PREVIEW_PIXELS` and ``max_pixels``
    (the pixel budget of one bitmap); never smaller than ``scale``.
    """
    glyph = text_height(page)
    if glyph is None or glyph * scale >= LEGIBLE_TEXT_PX:
        return scale
    wanted = LEGIBLE_TEXT_PX / glyph
    cap = min(MAX_PREVIEW_SIDE / max(width, height), math.sqrt(min(MAX_PREVIEW_PIXELS, max_pixels) / (width * height)))
    return max(scale, min(wanted, cap))
