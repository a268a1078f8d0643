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

import datetime as dt
import re
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from PIL import Image

from .. import taxno
from .model import Invoice
from .textparse import words_to_amount

__all__ = ["Line", "available", "extract", "read_image", "read_lines"]

MAX_SIDE = 1600  # longest side OCR sees: more pixels cost seconds and read no better on an invoice
_ENGINE = None
_ENGINE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Line:
    """One piece of text OCR found, with the top-left corner of its box."""

    text: str
    x: float
    y: float
    height: float = 16.0


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

            _ENGINE = RapidOCR()
        return _ENGINE


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
    lines = []
    for box, text, _score in result or []:
        top = min(p[1] for p in box)
        lines.append(Line(str(text), float(min(p[0] for p in box)), float(top), float(max(p[1] for p in box) - top)))
    return lines


def read_image(image: Image.Image, *, page: int | None) -> list[Invoice]:
    """Invoices read by OCR from one page image (source ``ocr``); [] when nothing checkable was found."""
    reading = extract(read_lines(image), page=page)
    return [reading] if reading is not None else []


# --------------------------------------------------------------------------- field extraction

_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_MONEY = re.compile(r"[￥¥]\s*(-?\d[\d,]*\.\d{2})")
_CHECK_CODE = re.compile(r"校验码[:：]?\s*((?:\d\s*){20})")
_NAME = re.compile(r"名\s*称[:：]\s*(\S.*)")
_TAX_NO = re.compile(r"(?:纳税人识别号|统一社会信用代码)[^:：]*[:：]?\s*([0-9A-Z]{15,20})")
_TAX_NO_ALONE = re.compile(r"^[0-9A-Z]{15,20}$")
_CAPITALS = re.compile(r"([零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆元角分整正]{2,})")


def _rows(lines: list[Line]) -> list[tuple[float, str]]:
    """Text pieces joined into printed rows (close tops), left to right: (top, text)."""
    rows: list[list[Line]] = []
    for line in sorted(lines, key=lambda ln: (ln.y, ln.x)):
        if rows and abs(line.y - rows[-1][0].y) <= max(6.0, 0.45 * rows[-1][0].height):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [(row[0].y, " ".join(piece.text for piece in sorted(row, key=lambda ln: ln.x))) for row in rows]


def _day(text: str) -> dt.date | None:
    m = _DATE.search(text)
    if not m:
        return None
    try:
        day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None  # an impossible date is a misread, not a date
    return day if dt.date(1990, 1, 1) <= day <= dt.date.today() else None


def _money(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def _tax_no(value: str | None) -> str | None:
    """A tax number that passes its own check, else None."""
    if not value:
        return None
    return value if taxno.validate(value) is None else None


def _kind(text: str) -> str | None:
    if "电子发票" in text and ("专用发票" in text or "增值税专用" in text):
        return "31"
    if "电子发票" in text and "普通发票" in text:
        return "32"
    if "铁路电子客票" in text:
        return "51"
    if "航空运输电子客票行程单" in text:
        return "61"
    if "定额发票" in text:
        return "quota"
    if re.search(r"出租|的士|客运汽车", text) and "发票" in text:
        return "taxi"
    if re.search(r"增值税[专支]用发票", text):  # 专 is misread as 支 often enough to accept both
        return "01"
    if "增值税普通发票" in text:
        return "04"
    return None


def extract(lines: list[Line], *, page: int | None = None) -> Invoice | None:
    """The invoice fields that OCR text carries and that pass their own checks; None when there are none."""
    if not lines:
        return None
    rows = _rows(lines)
    text = "\n".join(row for _, row in rows)
    inv = Invoice(source="ocr", page=page)
    inv.type = _kind(text)

    digital = re.search(r"(?<!\d)(\d{20})(?!\d)", text.replace(" ", "")) if inv.type in ("31", "32", "51", "61") else None
    if digital:
        inv.number = digital.group(1)
    else:
        number = re.search(r"No\.?\s*[:：]?\s*(\d{8})(?!\d)", text) or re.search(r"发票号码[:：]?\s*(\d{8})(?!\d)", text)
        if number:
            inv.number = number.group(1)
        codes = re.findall(r"(?<!\d)(\d{10}|\d{12})(?!\d)", text)
        # The code is printed twice (top left and beside the number): one seen twice is trusted first.
        repeated = [c for c in codes if codes.count(c) > 1]
        code = (repeated or codes or [None])[0]
        labelled = re.search(r"发票代码[:：]?\s*(\d{10}|\d{12})(?!\d)", text)
        inv.code = labelled.group(1) if labelled else code
        if inv.number is None and inv.code:
            # The number is printed beside the code: an 8-digit figure other than the code's digits.
            eights = [n for n in re.findall(r"(?<!\d)(\d{8})(?!\d)", text) if n not in (inv.code or "")]
            inv.number = eights[0] if eights else None
    inv.date = _day(text)
    check = _CHECK_CODE.search(text)
    if check:
        inv.check_code = re.sub(r"\s+", "", check.group(1))

    total_row = next((i for i, (_, row) in enumerate(rows) if "价税合计" in row), None)
    if total_row is not None:
        row = rows[total_row][1]
        figures = [_money(m) for m in _MONEY.findall(row)]
        capitals = _CAPITALS.search(row.split("小写")[0])
        written = words_to_amount(capitals.group(1)) if capitals else None
        figure = figures[-1] if figures else None
        # Figures and capitals must agree; one of them alone is not trusted.
        if figure is not None and written is not None and figure == written:
            inv.total = figure
        sums = next(([_money(m) for m in _MONEY.findall(r)] for _, r in reversed(rows[:total_row])
                     if len(_MONEY.findall(r)) >= 2), None)
        if sums and inv.total is not None and sums[0] is not None and sums[-1] is not None \
                and sums[0] + sums[-1] == inv.total:
            inv.amount, inv.tax = sums[0], sums[-1]

    # Names and tax numbers above the 价税合计 row belong to the buyer, below it to the seller.
    split = rows[total_row][0] if total_row is not None else None
    parties: dict[str, dict[str, str]] = {"buyer": {}, "seller": {}}
    for i, (top, row) in enumerate(rows):
        side = "buyer" if split is None or top < split else "seller"
        name = _NAME.search(row)
        if name and "name" not in parties[side]:
            # Pieces on the same printed row follow after a space (the cipher area, 备注): keep the name only.
            parties[side]["name"] = name.group(1).split()[0]
        tax = _TAX_NO.search(row.replace(" ", "")) if "纳税人识别号" in row or "统一社会信用代码" in row else None
        if "纳税人识别号" in row and "tax_no" not in parties[side]:
            value = tax.group(1) if tax else None
            if value is None and i + 1 < len(rows):  # printed just below its label
                alone = rows[i + 1][1].split()
                value = next((t for t in alone if _TAX_NO_ALONE.match(t)), None)
            if value:
                parties[side]["tax_no"] = value
    inv.buyer_name = parties["buyer"].get("name") or None
    inv.seller_name = parties["seller"].get("name") or None
    inv.buyer_tax_no = _tax_no(parties["buyer"].get("tax_no"))
    inv.seller_tax_no = _tax_no(parties["seller"].get("tax_no"))
    found = [inv.number, inv.date, inv.total, inv.amount, inv.seller_name, inv.buyer_name]
    return inv if any(v is not None for v in found) else None
