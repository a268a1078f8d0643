"""Content sniffing, page counting and page rendering for uploaded invoice files.

Everything here works on bytes and is decided by content (magic bytes), never by a file
name.  Accepted kinds: JPEG, PNG, TIFF photos/scans, PDF, OFD (the Chinese fixed-layout
format, a zip with ``OFD.xml``) and e-invoice XML.  Anything else sniffs to ``None``,
which the upload layer answers with 415.

Rendering produces one page at a time, scaled so that its longest side is at most
``max_side`` pixels; no function holds more than one page bitmap.  PDFs go through
pdfium (``pypdfium2``), OFDs through :mod:`portal.files.ofd`, rasters through Pillow,
and XML files become a small "card" listing their key fields.

pdfium is not thread-safe, not even across documents: every pdfium call in the process
must hold :data:`portal.files.limits.PDFIUM_LOCK`.

Caps (pages, pixel bytes, zip and XML sizes) come from :func:`portal.files.limits.current`,
the one limits set every reader and renderer shares; the guarded XML, zip and image
parsers are those of :mod:`portal.files.limits`.  These functions do the work in the calling
process; the app runs them in budgeted child processes (:mod:`portal.files.filework`).

No Flask imports.
"""

from __future__ import annotations

import io
import os
import re
import struct
from typing import BinaryIO
from xml.etree.ElementTree import Element

import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from portal.files import limits, ofd, pdf_fonts, pdf_legible
from portal.files.limits import PDFIUM_LOCK

__all__ = [
    "ACCEPTED",
    "EXTENSIONS",
    "MAX_SIDE_LIMIT",
    "MediaError",
    "page_count",
    "parse_xml",
    "render_image",
    "render_media_type",
    "render_page",
    "render_preview",
    "sniff",
    "sniff_file",
    "thumbnail",
    "xml_key_fields",
]

JPEG = "image/jpeg"
PNG = "image/png"
TIFF = "image/tiff"
PDF = "application/pdf"
OFD = "application/ofd"
XML = "application/xml"

ACCEPTED = frozenset({JPEG, PNG, TIFF, PDF, OFD, XML})
"""Media types the system stores; ``sniff`` returns one of these or None."""

EXTENSIONS = {JPEG: ".jpg", PNG: ".png", TIFF: ".tif", PDF: ".pdf", OFD: ".ofd", XML: ".xml"}
"""File-name extension to use when offering a stored file for download."""

MAX_SIDE_LIMIT = 8000
PDF_HEAD_WINDOW = 1024
SNIFF_HEAD_BYTES = 4096

MSG_CORRUPT = "文件已损坏或无法读取"
MSG_BOMB = "图片尺寸过大，已拒绝"
MSG_ENCRYPTED = "PDF 文件已加密，无法读取"
MSG_UNSUPPORTED = "不支持的文件类型"
MSG_PAGE_RANGE = "页码超出范围"
MSG_NO_PAGES = "文件中没有可显示的页面"


class MediaError(ValueError):
    """A file cannot be read or is refused; ``str(err)`` is a user-facing Chinese message."""


# --------------------------------------------------------------------------- sniffing

_PIL_FORMATS = {JPEG: "JPEG", PNG: "PNG", TIFF: "TIFF"}
_UTF8_BOM = b"\xef\xbb\xbf"
_DENIED_XML_ROOTS = {"html", "xhtml", "svg", "stylesheet", "transform"}  # browsers execute these
_KNOWN_XML_ROOTS = {"einvoice", "einvoicedata", "xbrl", "invoice", "fapiao", "ofd", "root", "data"}
_NAME = r"[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?"
_START_TAG = re.compile(rb"<(" + _NAME.encode() + rb")([^>]*)", re.DOTALL)


def _skip_prolog(text: bytes) -> bytes | None:
    """Strip whitespace, comments, processing instructions and a non-HTML DOCTYPE.

    Returns the text from the root start tag on, or None when the prolog shows HTML or
    cannot be followed within the given bytes.
    """
    pos = 0
    for _ in range(64):
        while pos < len(text) and text[pos : pos + 1] in b" \t\r\n":
            pos += 1
        rest = text[pos:]
        if rest.startswith(b"<?"):
            end = rest.find(b"?>")
            if end < 0:
                return None
            pos += end + 2
        elif rest.startswith(b"<!--"):
            end = rest.find(b"-->")
            if end < 0:
                return None
            pos += end + 3
        elif rest[:9].upper() == b"<!DOCTYPE":
            if re.match(rb"<!DOCTYPE\s+(html|svg)\b", rest, re.IGNORECASE):
                return None
            end = rest.find(b">")
            if end < 0 or b"[" in rest[:end]:  # internal subsets: entity tricks, refuse
                return None
            pos += end + 1
        else:
            return rest
    return None


def _xml_verdict(head: bytes) -> bool:
    """True when ``head`` (after BOM/whitespace) looks like a non-HTML XML document."""
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    stripped = head.lstrip(b" \t\r\n")
    declared = stripped.startswith(b"<?xml")
    body = _skip_prolog(stripped)
    if body is None:
        return False
    match = _START_TAG.match(body)
    if match is None:
        return False
    qname = match.group(1).decode("ascii", "replace")
    local = qname.rsplit(":", 1)[-1].lower()
    if local in _DENIED_XML_ROOTS:
        return False
    if declared:
        return True
    # Without an XML declaration a bare "<div>" could be an HTML fragment: only accept
    # roots we know from invoice formats, or namespaced (clearly XML) documents.
    return local in _KNOWN_XML_ROOTS or ":" in qname or b"xmlns" in match.group(2)


def _looks_like_markup(head: bytes) -> bool:
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    return head.lstrip(b" \t\r\n")[:1] == b"<"


def sniff(head: bytes) -> str | None:
    """Media type of a file from its first bytes, or None when not accepted.

    ``head`` should be at least the first 1 KiB.  OFD can only be recognised when
    ``head`` is the complete file (the zip directory sits at its end); use
    :func:`sniff_file` for a definitive answer, which also checks XML well-formedness.
    """
    if not head:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if head.startswith(b"PK\x03\x04"):
        return OFD if ofd.is_ofd(head) else None
    if _looks_like_markup(head):
        return XML if _xml_verdict(head[:SNIFF_HEAD_BYTES]) else None
    window = head[:PDF_HEAD_WINDOW]
    at = window.find(b"%PDF-")
    if at >= 0:
        return PDF
    return None


def sniff_file(source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO) -> str | None:
    """Definitive media type of a whole file (path, bytes or seekable binary file object).

    Opens zips to look for ``OFD.xml`` and parses XML (DTDs refused) to make sure it is
    well-formed and not HTML.  A file object is left at the position it had.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            return sniff_file(fh)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data.startswith(b"PK\x03\x04"):
            return OFD if ofd.is_ofd(data) else None
        kind = sniff(data[:SNIFF_HEAD_BYTES])
        if kind == XML:
            return XML if _xml_well_formed(data) else None
        return kind
    start = source.tell()
    try:
        head = source.read(SNIFF_HEAD_BYTES)
        if head.startswith(b"PK\x03\x04"):
            source.seek(start)
            return OFD if ofd.is_ofd(source) else None
        kind = sniff(head)
        if kind == XML:
            source.seek(start)
            return XML if _xml_well_formed(source.read()) else None
        return kind
    finally:
        source.seek(start)


def parse_xml(data: bytes) -> Element:
    """Parse XML safely (no DTD, no entities, size cap); GBK/GB18030 documents are transcoded.

    Raises :class:`MediaError` when the bytes are not a well-formed XML document or
    are over the XML size limit.
    """
    try:
        return limits.parse_xml(data)
    except limits.UnsafeFile as exc:
        raise MediaError(str(exc)) from exc
    except Exception as exc:  # ParseError, unknown or wrong encodings, ...
        raise MediaError(MSG_CORRUPT) from exc


def _xml_well_formed(data: bytes) -> bool:
    if len(data) > limits.current().max_xml_bytes:
        # Its head already looked like XML; page_count refuses it with the size message,
        # which tells the uploader more than "unsupported type" would.
        return True
    try:
        root = parse_xml(data)
    except MediaError:
        return False
    return _local(root.tag).lower() not in _DENIED_XML_ROOTS


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


# --------------------------------------------------------------------------- raster helpers


# What Pillow raises on broken files.  ``Warning`` is included because Pillow reports
# some structural damage (e.g. "Corrupt EXIF data" in a TIFF IFD) as a warning; where
# warnings are errors (our tests) that means a broken file, and must read as one.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, Warning)


def _open_raster(data: bytes, media_type: str) -> Image.Image:
    """Open a JPEG/PNG/TIFF with only its own decoder, refusing bombs and broken files."""
    try:
        im = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[media_type]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(MSG_BOMB) from exc
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise MediaError(MSG_CORRUPT) from exc
    _check_pixels(im)
    return im


def _check_pixels(im: Image.Image) -> None:
    """Refuse an empty frame, or one whose decoded bytes (mode, bit depth) exceed the budget."""
    width, height = im.size
    if width <= 0 or height <= 0:
        raise MediaError(MSG_CORRUPT)
    try:
        limits.check_image(im)
    except limits.UnsafeFile as exc:
        raise MediaError(str(exc)) from exc


def _flatten_to_rgb(im: Image.Image) -> Image.Image:
    """RGB copy of any Pillow mode; transparency goes onto white (scans, stamps)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v * (1 / 256)).convert("L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGB", rgba.size, "white")
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return im.convert("RGB")


def _fit(im: Image.Image, max_side: int) -> Image.Image:
    """Shrink (never enlarge) so that the longest side is at most ``max_side``."""
    if max(im.size) > max_side:
        im = im.copy() if im.readonly else im
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return im


def _exact(im: Image.Image, max_side: int) -> Image.Image:
    """Resize a vector render whose rounding left it a pixel off ``max_side``."""
    longest = max(im.size)
    if longest == max_side:
        return im
    factor = max_side / longest
    size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
    return im.resize(size, Image.Resampling.LANCZOS)


def _render_raster(data: bytes, media_type: str, page: int, max_side: int) -> Image.Image:
    im = _open_raster(data, media_type)
    try:
        if media_type == TIFF:
            frames = _tiff_frames(im)
            if not 0 <= page < frames:
                raise MediaError(MSG_PAGE_RANGE)
            try:
                im.seek(page)
            except _DECODE_ERRORS as exc:
                raise MediaError(MSG_CORRUPT) from exc
            _check_pixels(im)
        elif page != 0:
            raise MediaError(MSG_PAGE_RANGE)
        if media_type == JPEG:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a 12 Mpx photo becomes a
            # thumbnail without ever holding the full bitmap.
            factor = max_side / max(im.size)
            if factor < 1:
                im.draft(None, (max(1, int(im.width * factor)), max(1, int(im.height * factor))))
        try:
            im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise MediaError(MSG_BOMB) from exc
        except _DECODE_ERRORS as exc:
            raise MediaError(MSG_CORRUPT) from exc
        try:
            oriented = ImageOps.exif_transpose(im) or im
        except Exception:
            oriented = im  # broken EXIF must not make a readable photo unreadable
        if oriented.mode == "1":
            oriented = oriented.convert("L")  # downscale bilevel scans with grey levels
        result = _flatten_to_rgb(_fit(oriented, max_side))
        return result.copy() if result is im else result  # ``im`` is closed below
    finally:
        im.close()


def _tiff_frames(im: Image.Image) -> int:
    try:
        return int(getattr(im, "n_frames", 1))
    except _DECODE_ERRORS as exc:
        raise MediaError(MSG_CORRUPT) from exc


# --------------------------------------------------------------------------- PDF


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    """Open a PDF; caller holds PDFIUM_LOCK and closes the document."""
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise MediaError(MSG_ENCRYPTED) from exc
        raise MediaError(MSG_CORRUPT) from exc


def _pdf_page_count(data: bytes) -> int:
    with PDFIUM_LOCK:
        doc = _open_pdf(data)
        try:
            return len(doc)
        finally:
            doc.close()


def _render_pdf(data: bytes, page: int, max_side: int, legible: bool = False) -> Image.Image:
    with PDFIUM_LOCK:
        pdf_fonts.install()  # Chinese faces for CJK fonts a PDF names but does not embed
        doc = _open_pdf(data)
        try:
            if not 0 <= page < len(doc):
                raise MediaError(MSG_PAGE_RANGE)
            try:
                doc.init_forms()  # form fields and signature widgets carry invoice seals
                pg = doc[page]
            except pdfium.PdfiumError as exc:
                raise MediaError(MSG_CORRUPT) from exc
            try:
                width, height = pg.get_size()
                if not (width > 0 and height > 0):
                    raise MediaError(MSG_CORRUPT)
                # Scale from the page size so the bitmap is only as big as asked for.
                scale = max_side / max(width, height)
                if legible:  # small text on a large page: a larger preview (see pdf_legible)
                    scale = pdf_legible.preview_scale(pg, width, height, scale, limits.current().max_pixel_bytes // 4)
                    max_side = min(MAX_SIDE_LIMIT, round(scale * max(width, height)))
                bitmap = pg.render(scale=scale)
                try:
                    im = bitmap.to_pil().convert("RGB")  # copy out of pdfium's buffer
                finally:
                    bitmap.close()
            except pdfium.PdfiumError as exc:
                raise MediaError(MSG_CORRUPT) from exc
            finally:
                pg.close()
        finally:
            doc.close()
    return _exact(im, max_side)


# --------------------------------------------------------------------------- OFD


def _ofd_page_count(data: bytes) -> int:
    try:
        return ofd.page_count(data)
    except ofd.OFDError as exc:
        raise MediaError(str(exc)) from exc


def _render_ofd(data: bytes, page: int, max_side: int) -> Image.Image:
    try:
        doc = ofd.OFDDocument(data)
    except ofd.OFDError as exc:
        raise MediaError(str(exc)) from exc
    try:
        if not 0 <= page < len(doc):
            raise MediaError(MSG_PAGE_RANGE if len(doc) else MSG_NO_PAGES)
        # Embedded images get the same byte budget as uploaded ones (4 bytes a pixel).
        return doc.render(page, max_side=max_side, max_pixels=limits.current().max_pixel_bytes // 4)
    except ofd.OFDError as exc:
        raise MediaError(str(exc)) from exc
    finally:
        doc.close()


# --------------------------------------------------------------------------- XML card

# Labels and the element names (local part) that carry them in the formats we meet:
# the 2019 edrm e-invoice XML, the MoF XBRL invoice and the 数电 EInvoice XML.
_XML_FIELDS = [
    ("发票代码", ("InvoiceCode", "CodeOfInvoice")),
    ("发票号码", ("EIid", "InvoiceNumber", "InvoiceNo", "NumberOfInvoice", "UniqueCodeOfInvoice")),
    ("开票日期", ("IssueDate", "IssueTime", "DateOfIssue", "RequestTime")),
    ("金额", ("TaxExclusiveTotalAmount", "TotalAmountExcludingTax", "TotalAmWithoutTax")),
    ("税额", ("TaxTotalAmount", "TotalTaxAmount", "TotalTaxAm")),
    ("价税合计", ("TaxInclusiveTotalAmount", "TaxIncludedAmountInFigures", "TotalTax-includedAmount")),
    ("销售方", ("SellerName", "NameOfSeller", "SalerName")),
    ("购买方", ("BuyerName", "NameOfPurchaser")),
]
_XML_TITLE_FIELDS = ("TypeOfInvoice", "InvoiceTypeName", "LabelName")


def xml_key_fields(root: Element) -> tuple[str | None, list[tuple[str, str]]]:
    """(title, [(label, value), ...]) of the invoice fields found in an XML document."""
    first: dict[str, str] = {}
    for el in root.iter():
        name = _local(el.tag)
        if name and name not in first and el.text and el.text.strip():
            first[name] = " ".join(el.text.split())
    rows = []
    for label, names in _XML_FIELDS:
        value = next((first[n] for n in names if n in first), None)
        if value:
            rows.append((label, value[:60]))
    title = next((first[n] for n in _XML_TITLE_FIELDS if n in first), None)
    return title, rows


def _render_xml_card(data: bytes, page: int, max_side: int) -> Image.Image:
    if page != 0:
        raise MediaError(MSG_PAGE_RANGE)
    title, rows = xml_key_fields(parse_xml(data))
    width = max_side
    height = max(1, round(max_side * 2 / 3))
    card = Image.new("RGB", (width, height), (250, 250, 247))
    draw = ImageDraw.Draw(card)
    margin = max(2, width // 20)
    border = max(1, width // 300)
    draw.rectangle((border, border, width - 1 - border, height - 1 - border), outline=(156, 82, 35), width=border)
    title_px = max(6, width // 24)
    row_px = max(5, width // 34)
    title_font = ofd.get_font("黑体", title_px)
    row_font = ofd.get_font("宋体", row_px)
    heading = title or ("XML 电子发票" if rows else "XML 文件")
    draw.text((margin, margin), heading, font=title_font, fill=(156, 82, 35))
    y = margin + title_px * 2
    label_w = row_px * 5
    for label, value in rows:
        if y + row_px > height - margin:
            break
        draw.text((margin, y), f"{label}:", font=row_font, fill=(110, 110, 110))
        draw.text((margin + label_w, y), value, font=row_font, fill=(20, 20, 20))
        y += round(row_px * 1.6)
    note_px = max(5, width // 48)
    note = "由 XML 数据生成的预览，原件请下载查看"
    draw.text((margin, height - margin - note_px), note, font=ofd.get_font("黑体", note_px), fill=(150, 150, 150))
    return card


# --------------------------------------------------------------------------- public API


def _check_max_side(max_side: int) -> None:
    if not isinstance(max_side, int) or not 1 <= max_side <= MAX_SIDE_LIMIT:
        raise ValueError(f"max_side must be an int in 1..{MAX_SIDE_LIMIT}")


def page_count(data: bytes | limits.SafeZip, media_type: str, *, max_pages: int | None = None) -> int:
    """Number of pages (PDF pages, TIFF frames, OFD pages; 1 for JPEG/PNG/XML).

    Also proves the file is readable: raises :class:`MediaError` for corrupt, encrypted
    or oversized files and when the count exceeds ``max_pages`` (default: the limits'
    ``max_pages``).  An OFD may come as the :class:`~portal.files.limits.SafeZip` another
    reader already opened.
    """
    if max_pages is None:
        max_pages = limits.current().max_pages
    if media_type == PDF:
        count = _pdf_page_count(data)
    elif media_type == OFD:
        count = _ofd_page_count(data)
    elif media_type == TIFF:
        im = _open_raster(data, TIFF)
        try:
            count = _tiff_frames(im)
        finally:
            im.close()
    elif media_type in (JPEG, PNG):
        _open_raster(data, media_type).close()
        count = 1
    elif media_type == XML:
        parse_xml(data)
        count = 1
    else:
        raise MediaError(MSG_UNSUPPORTED)
    if count < 1:
        raise MediaError(MSG_NO_PAGES)
    if count > max_pages:
        raise MediaError(f"文件页数超过上限（{max_pages} 页），已拒绝")
    return count


def render_image(data: bytes, media_type: str, page: int, *, max_side: int) -> Image.Image:
    """Page ``page`` (0-based) as an RGB Pillow image, longest side at most ``max_side``.

    Vector formats (PDF, OFD, XML card) come out at exactly ``max_side``; rasters are
    only ever shrunk.  Raises :class:`MediaError` for unreadable files or a bad page.
    """
    _check_max_side(max_side)
    if media_type == PDF:
        return _render_pdf(data, page, max_side)
    if media_type == OFD:
        return _render_ofd(data, page, max_side)
    if media_type in _PIL_FORMATS:
        return _render_raster(data, media_type, page, max_side)
    if media_type == XML:
        return _render_xml_card(data, page, max_side)
    raise MediaError(MSG_UNSUPPORTED)


def render_media_type(media_type: str) -> str:
    """Media type of what :func:`render_page` returns for a file of ``media_type``."""
    return PNG if media_type == XML else JPEG


def _encode(im: Image.Image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    if fmt == "PNG":
        im.save(out, "PNG", compress_level=6)
    else:
        im.save(out, "JPEG", quality=quality)
    return out.getvalue()


def render_page(data: bytes, media_type: str, page: int, *, max_side: int) -> bytes:
    """Encoded render of one page: JPEG, or PNG for the XML card (see render_media_type)."""
    im = render_image(data, media_type, page, max_side=max_side)
    fmt = "PNG" if render_media_type(media_type) == PNG else "JPEG"
    return _encode(im, fmt, quality=85)


def render_preview(data: bytes, media_type: str, page: int, *, max_side: int) -> bytes:
    """Like :func:`render_page`, for the viewer: a PDF page with small text comes out larger
    than ``max_side``, so that its text is legible at 100 % (:mod:`portal.files.pdf_legible`)."""
    if media_type != PDF:
        return render_page(data, media_type, page, max_side=max_side)
    _check_max_side(max_side)
    return _encode(_render_pdf(data, page, max_side, legible=True), "JPEG", quality=85)


def thumbnail(data: bytes, media_type: str, *, max_side: int = 320) -> bytes:
    """JPEG of the first page, longest side at most ``max_side`` (always JPEG)."""
    im = render_image(data, media_type, 0, max_side=max_side)
    return _encode(im, "JPEG", quality=80)
