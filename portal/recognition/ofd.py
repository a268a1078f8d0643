"""OFD invoices (GB/T 33190, a zip of XML parts).

Order, most exact first: the invoice XML/XBRL attached under `Doc_N/Attachs/`; the
issuer's semantic data (`OFD.xml` CustomData name/value pairs and the `Tags/CustomTag.xml`
map from field names to text objects on the page); the page text itself; and last the
QR bitmaps under `Res/` (JBIG2 QR images cannot be decoded with Pillow and are skipped).
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable
from typing import TypeVar
from xml.etree.ElementTree import Element

from portal.files import limits
from portal.files.limits import SafeZip, UnsafeFile, local_name, open_image, parse_xml

from .model import (
    Invoice,
    clean_digits,
    clean_tax_no,
    clean_text,
    merge_all,
    parse_date,
    parse_money,
)
from .qr import parse_payload, scan_small_qr_image
from .textparse import parse_text
from .xmlinv import read_xml

log = logging.getLogger(__name__)
T = TypeVar("T")

_ATTACHMENT_RE = re.compile(r"^Doc_\d+/Attachs/(?!Attachments\.xml$)[^/]+\.xml$", re.I)
_PAGE_RE = re.compile(r"^Doc_\d+/Pages/Page_(\d+)/Content\.xml$", re.I)
_TAG_RE = re.compile(r"^Doc_\d+/Tags/(?!CustomTags\.xml$)[^/]+\.xml$", re.I)
_RES_IMAGE_RE = re.compile(r"^Doc_\d+/Res/[^/]+\.(png|jpe?g|tiff?)$", re.I)
MAX_QR_IMAGES = 20

# OFD.xml <CustomData Name="…"> keys written by the tax authority's OFD generators.
_CUSTOM_DATA = {
    "发票代码": "code",
    "发票号码": "number",
    "开票日期": "date",
    "合计金额": "amount",
    "合计税额": "tax",
    "价税合计": "total",
    "校验码": "check_code",
    "购买方名称": "buyer_name",
    "购买方纳税人识别号": "buyer_tax_no",
    "销售方名称": "seller_name",
    "销售方纳税人识别号": "seller_tax_no",
}

# CustomTag element names (lower-cased) → invoice field. Line items are left out.
_CUSTOM_TAG = {
    "invoicecode": "code",
    "invoiceno": "number",
    "issuedate": "date",
    "invoicecheckcode": "check_code",
    "buyername": "buyer_name",
    "buyertaxid": "buyer_tax_no",
    "sellername": "seller_name",
    "sellertaxid": "seller_tax_no",
    "taxexclusivetotalamount": "amount",
    "taxtotalamount": "tax",
    "taxinclusivetotalamount": "total",
}


def read_ofd(data: bytes | SafeZip, *, ocr_enabled: bool = False) -> list[Invoice]:
    """Invoices found in an OFD file (bytes, or the archive already opened); [] when none.

    Raises UnsafeFile for zip bombs, too many members or over-size parts.
    `ocr_enabled` has no effect yet: OFD pages are not rendered to images here.
    """
    archive = data if isinstance(data, SafeZip) else SafeZip(data)
    names = archive.names()

    readings: list[Invoice] = []
    for name in names:
        if _ATTACHMENT_RE.match(name):
            readings.extend(_safe(lambda n=name: read_xml(archive.read(n, limits.current().max_xml_bytes) or b""), name))
    if any(r.is_complete for r in readings):
        return merge_all(readings)

    custom = _custom_data(archive)
    if custom is not None:
        readings.append(custom)
    texts, page_lines = _page_texts(archive, names)
    readings.extend(_custom_tags(archive, names, texts))
    for page, lines in page_lines:
        readings.append(parse_text(lines, source="ofd", page=page))
    merged = [r for r in merge_all(readings) if r.is_useful]
    # Complete text without a kind (数电 OFDs print the title in a template) still reads
    # the embedded QR bitmap: a few milliseconds for the exact type code.
    if any(r.is_complete for r in merged) and all(r.type for r in merged if r.is_complete):
        return merged

    qr_readings = []
    for name in [n for n in names if _RES_IMAGE_RE.match(n)][:MAX_QR_IMAGES]:
        for payload in _safe(lambda n=name: _scan_resource(archive.read(n) or b""), name):
            qr = parse_payload(payload)
            if qr is not None:
                qr_readings.append(qr)
    return [r for r in merge_all(merged + qr_readings) if r.is_useful]


def _safe(read: Callable[[], list[T]], name: str) -> list[T]:
    """Run one part's reader; a broken part is skipped, an unsafe one refuses the file."""
    try:
        return read()
    except UnsafeFile:
        raise
    except Exception:
        log.debug("unreadable OFD part %s", name, exc_info=True)
        return []


def _scan_resource(blob: bytes) -> list[str]:
    media = "image/png" if blob[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    if blob[:4] in (b"II*\x00", b"MM\x00*"):
        media = "image/tiff"
    return scan_small_qr_image(open_image(blob, media))


def _custom_data(archive: SafeZip) -> Invoice | None:
    root = _safe_parse(archive, "OFD.xml")
    if root is None:
        return None
    values: dict[str, str] = {}
    for elem in root.iter():
        if local_name(elem.tag) == "CustomData":
            field = _CUSTOM_DATA.get((elem.get("Name") or "").strip())
            if field and elem.text and field not in values:
                values[field] = elem.text
    if not values:
        return None
    inv = _invoice_from_values(values)
    inv.raw = {"ofd": {"custom_data": sorted(values)}}
    return inv


def _invoice_from_values(values: dict[str, str], page: int | None = None) -> Invoice:
    return Invoice(
        source="ofd",
        page=page,
        code=clean_digits(values.get("code")),
        number=clean_digits(values.get("number")),
        date=parse_date(values.get("date")),
        amount=parse_money(values.get("amount")),
        tax=parse_money(values.get("tax")),
        total=parse_money(values.get("total")),
        check_code=clean_digits(values.get("check_code")),
        buyer_name=clean_text(values.get("buyer_name")),
        buyer_tax_no=clean_tax_no(values.get("buyer_tax_no")),
        seller_name=clean_text(values.get("seller_name")),
        seller_tax_no=clean_tax_no(values.get("seller_tax_no")),
    )


def _safe_parse(archive: SafeZip, name: str) -> Element | None:
    """The parsed part, None when it is absent or broken; UnsafeFile still propagates."""
    try:
        blob = archive.read(name, limits.current().max_xml_bytes)
        return parse_xml(blob) if blob else None
    except UnsafeFile:
        raise
    except Exception:
        log.debug("unreadable OFD part %s", name, exc_info=True)
        return None


def _page_texts(archive: SafeZip, names: list[str]) -> tuple[dict[str, str], list[tuple[int, list[str]]]]:
    """Text of every TextObject by ID, and each page's text lines in drawing order."""
    by_id: dict[str, str] = {}
    pages: list[tuple[int, list[str]]] = []
    page_parts = sorted(
        ((int(m.group(1)), n) for n in names if (m := _PAGE_RE.match(n))), key=lambda p: p[0]
    )
    for page, name in page_parts[:limits.current().max_pages]:
        root = _safe_parse(archive, name)
        if root is None:
            continue
        lines = []
        for elem in root.iter():
            if local_name(elem.tag) != "TextObject":
                continue
            text = "".join(
                (code.text or "") for code in elem.iter() if local_name(code.tag) == "TextCode"
            )
            if elem.get("ID"):
                by_id[elem.get("ID")] = text
            if text.strip():
                lines.append(text)
        pages.append((page, lines))
    return by_id, pages


# Tag files are not always well-formed XML (one issuer writes `<:eInvoice xmlns:="">`),
# so they are tokenised rather than parsed. Entities are never expanded this way.
_TOKEN_RE = re.compile(r"<(/?)([^\s<>/!?]*)[^<>]*?(/?)>|([^<>]+)")


def _custom_tags(archive: SafeZip, names: list[str], texts: dict[str, str]) -> list[Invoice]:
    """Invoice fields from the CustomTag maps (field name → IDs of text objects)."""
    found: list[Invoice] = []
    for name in names:
        if not _TAG_RE.match(name):
            continue
        try:
            blob = archive.read(name, limits.current().max_xml_bytes) or b""
        except (zipfile.BadZipFile, OSError, EOFError):
            log.debug("unreadable OFD part %s", name, exc_info=True)
            continue
        refs: dict[str, list[str]] = {}
        stack: list[str] = []
        for m in _TOKEN_RE.finditer(blob.decode("utf-8", "replace")):
            closing, tag, selfclosing, text = m.groups()
            if text is not None:
                if stack and stack[-1] == "objectref" and text.strip():
                    owner = next((t for t in reversed(stack) if t != "objectref"), "")
                    if "goodsinfo" not in stack:
                        refs.setdefault(owner, []).append(text.strip())
                continue
            tag = tag.rsplit(":", 1)[-1].lower()
            if not tag:
                continue  # the XML declaration or a malformed tag
            if closing:
                if tag in stack:
                    del stack[len(stack) - 1 - stack[::-1].index(tag):]
            elif not selfclosing:
                stack.append(tag)
        values: dict[str, str] = {}
        for tag, ids in refs.items():
            field = _CUSTOM_TAG.get(tag)
            if field and field not in values:
                values[field] = "".join(texts.get(i, "") for i in ids)
        if values:
            inv = _invoice_from_values(values)
            inv.raw = {"ofd": {"custom_tag": sorted(values)}}
            found.append(inv)
    return found
