"""PDF invoices: embedded XML attachments, then each page's text layer, then its QR code.

pypdfium2 (PDFium) does the parsing. Pages are handled one at a time and closed, so a
50-page scan batch never holds more than one rendered page in memory.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import pypdfium2 as pdfium

from portal.files import limits
from portal.files.limits import PDFIUM_LOCK, UnsafeFile

from . import ocr as ocr_hook
from .model import Invoice, combine, merge_all
from .qr import parse_payload, scan_gray
from .textparse import parse_text
from .xmlinv import read_xml

log = logging.getLogger(__name__)

# Rendered page size for the QR scan, as the long side in pixels: ~4.5 px per QR module
# on an A5 invoice page (the scan ladder magnifies the corners if that is not enough).
RENDER_LONG_SIDE = 1400
MAX_RENDER_PIXELS = 8_000_000
MAX_ATTACHMENTS = 10
# A party name as printed: CJK, Latin letters, digits, brackets and the middle dot; a glyph box of a page
# whose text matrix is odd gives fragments like ". 监", which are no name.
_NAME_SHAPE = re.compile(r"^(?=.*[\u4e00-\u9fff]{2})[\u4e00-\u9fffA-Za-z0-9（）()·]{2,80}$")


def read_pdf(data: bytes, *, ocr_enabled: bool = False) -> list[Invoice]:
    """Invoices found in a PDF, one or more per page; [] when nothing is recognisable.

    Raises UnsafeFile when the file or its page count is over the limit.
    """
    cap = limits.current()
    if len(data) > cap.max_file_bytes:
        raise UnsafeFile("PDF 文件过大，已拒绝")
    # PDFium is not thread-safe: every pdfium call in the process holds one lock.
    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(data)
        try:
            if len(pdf) > cap.max_pages:
                raise UnsafeFile(f"PDF 超过 {cap.max_pages} 页，请拆分后上传")
            readings = _attachments(pdf)
            if any(r.is_complete for r in readings):
                # An embedded invoice XML is exact; the pages only repeat it.
                return merge_all(readings)
            for index in range(len(pdf)):
                readings.extend(_read_page(pdf, index, ocr_enabled))
                limits.tick()
        finally:
            pdf.close()
    return _merge_pages(readings)


def _attachments(pdf: pdfium.PdfDocument) -> list[Invoice]:
    """Invoice XML/XBRL files embedded in the PDF (some 数电 platforms attach them)."""
    found: list[Invoice] = []
    for i in range(min(pdf.count_attachments(), MAX_ATTACHMENTS)):
        attachment = pdf.get_attachment(i)
        name = attachment.get_name() or ""
        if not name.lower().endswith(".xml"):
            continue
        blob = bytes(attachment.get_data())
        if len(blob) > limits.current().max_xml_bytes:
            raise UnsafeFile("PDF 附件过大，已拒绝")
        try:
            found.extend(read_xml(blob))
        except UnsafeFile:
            raise
        except Exception:
            log.debug("unreadable PDF attachment %r", name, exc_info=True)
    return found


def _page_lines(page: pdfium.PdfPage) -> list[str]:
    """Text lines of a page, NFKC-normalised (CJK compatibility glyphs like ⼦ → 子).

    Letter-spaced lines are collapsed; where two runs on one line are far apart (the
    buyer and seller columns of a 数电 invoice) a tab keeps them apart.
    """
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
        count = textpage.count_chars()
        lines: list[str] = []
        start = 0
        for raw_line in text.split("\n"):
            line = raw_line.rstrip("\r")
            if count == len(text) and _is_spaced(line):
                line = _split_far_runs(textpage, start, line)
            lines.append(unicodedata.normalize("NFKC", line))
            start += len(raw_line) + 1
        return lines
    finally:
        textpage.close()


def _is_spaced(line: str) -> bool:
    tokens = [t for t in line.split(" ") if t]
    return len(tokens) >= 3 and sum(len(t) == 1 for t in tokens) >= 0.8 * len(tokens)


def _split_far_runs(textpage: pdfium.PdfTextPage, start: int, line: str) -> str:
    """Join a letter-spaced line, putting a tab where the gap is many glyphs wide."""
    glyphs = [(ch, textpage.get_charbox(start + offset)) for offset, ch in enumerate(line) if ch != " "]
    # The tallest glyph approximates the font size; '.' or ':' boxes are far smaller.
    size = max((top - bottom for _, (_, bottom, _, top) in glyphs), default=1.0) or 1.0
    out: list[str] = []
    previous_right = None
    for ch, (left, _, right, _) in glyphs:
        if previous_right is not None and left - previous_right > 4 * size:
            out.append("\t")
        out.append(ch)
        previous_right = right
    return "".join(out)


def _names_by_position(page: pdfium.PdfPage, inv: Invoice) -> None:
    """Party names a generator wrote out of reading order, read again from where the glyphs sit.

    Some legacy e-invoice PDFs draw the buyer's name long before its "名 称:" label in the content stream, so
    the text layer puts the label beside the cipher area's "密" and the name lines away. Rebuilt as printed
    rows, the name follows its label again. A name is taken only when this reading agrees with the first on
    every party field both carry, so two readings that see the page differently never mix.
    """
    again = parse_text(_positional_lines(page), source="pdf_text", page=inv.page)
    for field in ("number", "code", "total", "buyer_name", "seller_name", "buyer_tax_no", "seller_tax_no"):
        mine, theirs = getattr(inv, field), getattr(again, field)
        if mine is not None and theirs is not None and mine != theirs:
            return
    for field in ("buyer_name", "seller_name"):
        name = getattr(again, field)
        if getattr(inv, field) is None and name is not None and _NAME_SHAPE.match(name):
            setattr(inv, field, name)


def _positional_lines(page: pdfium.PdfPage) -> list[str]:
    """The page's glyphs grouped into rows by their boxes, left to right; a wide gap becomes a tab."""
    textpage = page.get_textpage()
    try:
        glyphs = []
        for i in range(min(textpage.count_chars(), 20_000)):
            ch = textpage.get_text_range(i, 1)
            if not ch.strip():
                continue
            left, bottom, right, top = textpage.get_charbox(i)
            glyphs.append((unicodedata.normalize("NFKC", ch), left, right, bottom, top))
    finally:
        textpage.close()
    rows: list[list[tuple]] = []
    for glyph in sorted(glyphs, key=lambda g: -(g[3] + g[4]) / 2):
        middle, height = (glyph[3] + glyph[4]) / 2, glyph[4] - glyph[3]
        row = rows[-1] if rows else None
        if row is not None and abs((row[0][3] + row[0][4]) / 2 - middle) <= 0.4 * max(height, row[0][4] - row[0][3]):
            row.append(glyph)
        else:
            rows.append([glyph])
    lines = []
    for row in rows:
        row.sort(key=lambda g: g[1])
        size = max(g[4] - g[3] for g in row) or 1.0
        out, previous = [], None
        for ch, left, right, _, _ in row:
            if previous is not None and left - previous > 4 * size:
                out.append("\t")
            elif previous is not None and left - previous > 0.6 * size:
                out.append(" ")
            out.append(ch)
            previous = right
        lines.append("".join(out))
    return lines


def _read_page(pdf: pdfium.PdfDocument, index: int, ocr_enabled: bool) -> list[Invoice]:
    page = pdf[index]
    try:
        readings = [parse_text(_page_lines(page), source="pdf_text", page=index)]
        if readings[0].buyer_name is None or readings[0].seller_name is None:
            _names_by_position(page, readings[0])
        if readings[0].is_complete:
            return readings
        image = _render(page)
        for payload in scan_gray(image):
            qr = parse_payload(payload)
            if qr is not None:
                qr.page = index
                readings.append(qr)
        merged = [r for r in merge_all(readings) if r.is_useful]
        if ocr_enabled and not any(r.is_complete for r in merged):
            merged = merge_all(merged + ocr_hook.read_image(image, page=index))
        return merged
    finally:
        page.close()


def _render(page: pdfium.PdfPage):
    width, height = page.get_size()
    scale = RENDER_LONG_SIDE / max(width, height, 1.0)
    # A page may declare absurd dimensions; bound the bitmap, not just the scale.
    if width * height * scale * scale > MAX_RENDER_PIXELS:
        scale = (MAX_RENDER_PIXELS / (width * height)) ** 0.5
    bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=False)
    try:
        return bitmap.to_pil().convert("L")
    finally:
        bitmap.close()


def _merge_pages(readings: list[Invoice]) -> list[Invoice]:
    """One invoice per number across pages (an invoice's list pages repeat its number)."""
    numbered = [r for r in readings if r.number]
    unnumbered = [r for r in readings if not r.number and r.is_useful]
    result: list[Invoice] = []
    for inv in numbered:
        for idx, have in enumerate(result):
            if have.number == inv.number and (not have.code or not inv.code or have.code == inv.code):
                result[idx] = combine(have, inv)
                break
        else:
            result.append(inv)
    return result or unnumbered

