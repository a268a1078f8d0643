"""Invoice fields from OCR text, kind by kind, each value kept only when it passes its own check.

OCR gives text pieces with positions (:class:`portal.recognition.ocr.Line`, already deskewed). A :class:`Page`
groups them into printed rows and answers "the value after this label" or "the figure under this column
heading". Each paper kind has its extractor; what one of them cannot check it leaves empty, never guesses:

- tax numbers: 18-character codes by their check character, legacy ones by shape (:mod:`portal.taxno`);
- totals: the capitals (大写) must say the same as the figures (小写); amount + tax must make the total; the
  fare columns of an air itinerary must add up to its 合计;
- dates: a real calendar day, not before 1990 and not in the future;
- numbers and codes: the length the kind prints (8-digit number with a 10/12-digit code, 20 digits for 数电).

Kinds are the project's invoice kinds (``labels.INVOICE_TYPES``): 01/04 VAT paper, 31/32 数电, 61 数电 air
itinerary, ``air`` the older itinerary, 51 the railway e-ticket (电子发票（铁路电子客票）), ``taxi``, ``quota``.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from .. import taxno
from .model import Invoice
from .textparse import words_to_amount

if TYPE_CHECKING:
    from .ocr import Line

__all__ = ["Page", "extract_fields", "kind_of"]

_CAPITAL_CHARS = "零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆元角分整正"
_CAPITALS = re.compile(rf"[{_CAPITAL_CHARS}]{{2,}}")
_FIGURE = r"(-?\d[\d,]*\.\d{2})(?!\d)"
_YEN = re.compile(r"[￥¥Y]\s*" + _FIGURE)
_DATE_CJK = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_DATE_ISO = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_TAX_NO = re.compile(r"([0-9A-Z]{15,20})(?![0-9A-Z])")
# A party name as printed: CJK, letters, digits, brackets, the middle dot. OCR noise (stray punctuation,
# a label glued on) does not fit.
_NAME_SHAPE = re.compile(r"^(?=.*[\u4e00-\u9fff]{2})[\u4e00-\u9fffA-Za-z0-9（）()·]{2,80}$")
_NOT_A_NAME = re.compile(r"名称|纳税人|识别号|信用代码|地址|电话|开户|密码|购买方|销售方|规格|型号|单位|数量|单价")
EARLIEST = dt.date(1990, 1, 1)


def kind_of(text: str) -> str | None:
    """The invoice kind the printed title names; None when the page names none the extractors know."""
    flat = re.sub(r"\s+", "", text)
    if "铁路电子客票" in flat:
        return "51"  # the 数电 kind code its QR carries, as 61 for the air itinerary
    if "航空运输电子客票行程单" in flat:
        return "61" if "电子发票" in flat else "air"
    if "电子发票" in flat and "增值税专用发票" in flat:
        return "31"
    if "电子发票" in flat and "普通发票" in flat:
        return "32"
    if "定额发票" in flat:
        return "quota"
    if re.search(r"出租|的士", flat) and "发票" in flat:
        return "taxi"
    if re.search(r"增值税[专支]用发票", flat):  # 专 is misread as 支 often enough to accept both
        return "01"
    if "增值税普通发票" in flat:
        return "04"
    return None


# --------------------------------------------------------------------------- the page


@dataclass(frozen=True)
class Row:
    y: float
    pieces: tuple  # the Lines of the row, left to right

    @property
    def text(self) -> str:
        return " ".join(piece.text for piece in self.pieces)


class Page:
    """OCR pieces grouped into printed rows (pieces whose boxes share a band), top to bottom."""

    def __init__(self, lines: list[Line]):
        self.lines = lines
        rows: list[list[Line]] = []
        for line in sorted(lines, key=lambda ln: (ln.y + ln.height / 2, ln.x)):
            middle = line.y + line.height / 2
            if rows:
                last = rows[-1]
                band = sum(p.y + p.height / 2 for p in last) / len(last)
                if abs(middle - band) <= max(6.0, 0.4 * min(line.height, last[0].height)):
                    last.append(line)
                    continue
            rows.append([line])
        self.rows = [Row(sum(p.y for p in r) / len(r), tuple(sorted(r, key=lambda p: p.x))) for r in rows]
        self.text = "\n".join(row.text for row in self.rows)
        xs = [ln.x for ln in lines] + [ln.x + ln.width for ln in lines]
        self.middle_x = (min(xs) + max(xs)) / 2 if xs else 0.0

    def after(self, label: str, value: str) -> list[tuple[Row, str]]:
        """Each value printed after its label on one row (``label`` and ``value`` are regex fragments)."""
        pattern = re.compile(rf"(?:{label})\s*[:：]?\s*({value})")
        found = []
        for row in self.rows:
            for m in pattern.finditer(row.text):
                found.append((row, m.group(1)))
        return found

    def after_or_below(self, label: str, value: str) -> list[tuple[Row, str]]:
        """Values after their label, and for a label printed alone, the value set just below it.

        Dot-matrix printers put a value where the paper lies, often half a row under its label: the piece
        taken then starts right of the label's start, within a few label widths, on the next row down.
        """
        found = self.after(label, value)
        whole = re.compile(rf"^(?:{value})$")
        bare = re.compile(rf"(?:{label})\s*[:：]?\s*$")
        for index, row in enumerate(self.rows):
            heads = [p for p in row.pieces if bare.search(p.text)]
            if len(heads) != 1 or any(r is row for r, _ in found):
                continue
            head = heads[0]
            for below in self.rows[index + 1:index + 2]:
                if below.y - row.y > 2 * max(head.height, 16.0):
                    break
                hits = [p.text for p in below.pieces if whole.match(p.text.replace(" ", ""))
                        and head.x <= p.x <= head.x + 3 * max(head.width, 4 * head.height)]
                if len(hits) == 1:
                    found.append((below, hits[0].replace(" ", "")))
        return found

    def first_after(self, label: str, value: str) -> str | None:
        found = self.after(label, value)
        return found[0][1] if found else None

    def under(self, heading: str) -> str | None:
        """The text printed under a column heading (the nearest piece below that overlaps it across)."""
        heads = [ln for ln in self.lines if re.sub(r"\s+", "", ln.text) == heading]
        if len(heads) != 1:
            return None
        head = heads[0]
        centre = head.x + max(head.width, 1.0) / 2
        below = [ln for ln in self.lines if head.y + 0.5 * head.height < ln.y < head.y + 3.5 * max(head.height, 16.0)
                 and ln.x - 0.5 * head.height <= centre <= ln.x + max(ln.width, 1.0) + 0.5 * head.height]
        return min(below, key=lambda ln: ln.y).text if below else None


# --------------------------------------------------------------------------- checks


def _day(value: str | None) -> dt.date | None:
    """A real calendar day between 1990 and today, else None (an impossible date is a misread)."""
    if not value:
        return None
    m = _DATE_CJK.search(value) or _DATE_ISO.search(value)
    if not m:
        return None
    try:
        day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return day if EARLIEST <= day <= dt.date.today() else None


def _money(value: str | None) -> Decimal | None:
    if not value:
        return None
    m = re.search(_FIGURE, value.replace(" ", ""))
    if not m:
        return None
    try:
        return Decimal(m.group(1).replace(",", ""))
    except InvalidOperation:
        return None


def _tax_no(value: str | None) -> str | None:
    """A tax number that passes its own check, else None."""
    if not value:
        return None
    value = taxno.normalise(value)
    return value if taxno.validate(value) is None else None


def _name(value: str | None) -> str | None:
    if not value:
        return None
    value = value.split()[0] if value.split() else ""
    return value if _NAME_SHAPE.match(value) and not _NOT_A_NAME.search(value) else None


def _digits(value: str | None, *lengths: int) -> str | None:
    value = re.sub(r"\s+", "", value or "")
    return value if value.isdigit() and len(value) in lengths else None


def _capitals_total(page: Page) -> Decimal | None:
    """The total that the capitals (大写) and the figures (小写) both state; None unless they agree."""
    written = {words_to_amount(m.group(0)) for m in _CAPITALS.finditer(page.text)
               if re.search("[圆元角分]", m.group(0))}
    written.discard(None)
    figures = [_money(m.group(1)) for m in re.finditer(r"小\s*写\s*[）)]?\s*[￥¥Y]?\s*" + _FIGURE, page.text)]
    if not figures:  # a denomination (定额发票) is printed as a bare ¥ figure
        figures = [_money(m.group(1)) for m in _YEN.finditer(page.text)]
    agreed = {f for f in figures if f is not None and f in written}
    return agreed.pop() if len(agreed) == 1 else None


def _amount_and_tax(page: Page, total: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """The 合计 pair of ¥ figures that adds up to the total (exactly one such pair, else nothing)."""
    if total is None:
        return None, None
    figures = [_money(m.group(1)) for m in _YEN.finditer(page.text)]
    figures = [f for f in figures if f is not None and f != total]
    pairs = {(a, t) for a in figures for t in figures if a >= t and a + t == total}
    return pairs.pop() if len(pairs) == 1 else (None, None)


def _labelled_date(page: Page, *labels: str) -> dt.date | None:
    date = r"\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    for label in labels:
        found = {_day(v) for _, v in page.after(label, date)}
        if found:
            return found.pop() if len(found) == 1 else None
    return None


# --------------------------------------------------------------------------- parties

# The colon is part of the label: the item table's heading "项目名称 规格型号…" has none.
_NAME_LABEL = r"名\s*称\s*[:：]"
_TAX_LABEL = r"纳税人识别号|统一社会信用代码(?:/纳税人识别号)?"


def _party_values(page: Page, rows_and_values: list[tuple[Row, str]], side_of) -> dict[str, str]:
    out: dict[str, str] = {}
    for row, value in rows_and_values:
        side = side_of(row, value)
        if side and side not in out:
            out[side] = value
    return out


def _parties(page: Page, inv: Invoice, side_of) -> None:
    names = _party_values(page, page.after(_NAME_LABEL, r"\S+"), side_of)
    numbers = _party_values(page, page.after_or_below(_TAX_LABEL, r"[0-9A-Z]{15,20}(?![0-9A-Z])"), side_of)
    inv.buyer_name, inv.seller_name = _name(names.get("buyer")), _name(names.get("seller"))
    inv.buyer_tax_no, inv.seller_tax_no = _tax_no(numbers.get("buyer")), _tax_no(numbers.get("seller"))


def _piece_x(row: Row, value: str) -> float:
    piece = next((p for p in row.pieces if value in p.text), row.pieces[0])
    return piece.x


# --------------------------------------------------------------------------- the kinds


def _vat_paper(page: Page, inv: Invoice) -> None:
    """增值税专用/普通发票 on paper: code and No. top right, buyer above the 价税合计 row, seller below."""
    codes = (10,) if inv.type == "01" else (10, 12)
    labelled = page.first_after(r"发票代码", r"\d{10,12}(?!\d)")
    bare = re.findall(r"(?<!\d)(\d{10}|\d{12})(?!\d)", page.text)
    # The code is printed twice (top left and beside the number): one seen twice is trusted next.
    repeated = [c for c in bare if bare.count(c) > 1]
    inv.code = _digits(labelled or (repeated[0] if repeated else None), *codes)
    number = page.first_after(r"发票号码|No\.?|№", r"\d{8}(?!\d)")
    inv.number = _digits(number, 8)
    inv.date = _labelled_date(page, r"开票日期") or _day(page.text)
    check = page.first_after(r"校\s*验\s*码", r"(?:\d\s*){20}")
    inv.check_code = _digits(check, 20)
    inv.total = _capitals_total(page)
    inv.amount, inv.tax = _amount_and_tax(page, inv.total)
    split = next((row.y for row in page.rows if "价税合计" in row.text), None)

    def side_of(row: Row, value: str) -> str | None:
        if split is None:
            return None
        return "buyer" if row.y < split else "seller"

    _parties(page, inv, side_of)


def _digital(page: Page, inv: Invoice) -> None:
    """数电 invoice printed on paper: 20-digit number without a code, buyer on the left, seller on the right."""
    inv.number = _digits(page.first_after(r"发票号码", r"\d{20}(?!\d)"), 20)
    inv.date = _labelled_date(page, r"开票日期")
    inv.total = _capitals_total(page)
    inv.amount, inv.tax = _amount_and_tax(page, inv.total)

    def side_of(row: Row, value: str) -> str:
        return "buyer" if _piece_x(row, value) < page.middle_x else "seller"

    _parties(page, inv, side_of)


def _buyer_only(page: Page, inv: Invoice) -> None:
    """Travel documents name the buyer only: 购买方名称, 统一社会信用代码."""
    inv.buyer_name = _name(page.first_after(r"购买方名称", r"\S+"))
    inv.buyer_tax_no = _tax_no(page.first_after(_TAX_LABEL, r"[0-9A-Z]{15,20}(?![0-9A-Z])"))


def _railway(page: Page, inv: Invoice) -> None:
    """电子发票（铁路电子客票）: 20-digit number, 开票日期 (not the ride date), 票价 as the total."""
    inv.number = _digits(page.first_after(r"发票号码", r"\d{20}(?!\d)"), 20)
    inv.date = _labelled_date(page, r"开票日期")
    fares = {_money(v) for _, v in page.after(r"票\s*价", r"[￥¥Y]\s*" + _FIGURE)}
    fares.discard(None)
    inv.total = fares.pop() if len(fares) == 1 else None
    _buyer_only(page, inv)


_FARE_COLUMNS = ("票价", "燃油附加费", "增值税税额", "民航发展基金", "其他税费")


def _air(page: Page, inv: Invoice) -> None:
    """航空运输电子客票行程单: fare columns over CNY figures; their sum must be the 合计."""
    if inv.type == "61":
        inv.number = _digits(page.first_after(r"发票号码", r"\d{20}(?!\d)"), 20)
    else:
        inv.number = _digits(page.first_after(r"电子客票号码", r"\d{13}(?!\d)"), 13)
    inv.date = _labelled_date(page, r"填开日期", r"开票日期")

    def column(heading: str) -> Decimal | None:
        value = page.under(heading)
        if value is None:
            value = page.first_after(heading, r"(?:CNY|[￥¥])\s*" + _FIGURE)
        return _money(value) if value and re.search(r"CNY|[￥¥]", value) else None

    total = column("合计")
    parts = {heading: column(heading) for heading in _FARE_COLUMNS}
    present = [v for v in parts.values() if v is not None]
    if total is not None and parts["票价"] is not None and sum(present) == total:
        inv.total = total
        inv.tax = parts["增值税税额"]
        inv.raw["ocr_fares"] = {k: str(v) for k, v in parts.items() if v is not None}
    _buyer_only(page, inv)


def _taxi(page: Page, inv: Invoice) -> None:
    """出租汽车发票: one label and value per line; 金额 is what the ride cost."""
    inv.code = _digits(page.first_after(r"发票代码", r"\d{12}(?!\d)"), 12)
    inv.number = _digits(page.first_after(r"发票号码", r"\d{8}(?!\d)"), 8)
    inv.date = _labelled_date(page, r"日\s*期")
    amounts = {_money(v) for _, v in page.after(r"金\s*额|实收金额", r"[￥¥Y]?\s*" + _FIGURE)}
    amounts.discard(None)
    inv.total = amounts.pop() if len(amounts) == 1 else None


def _quota(page: Page, inv: Invoice) -> None:
    """定额发票: no date; the denomination printed in capitals and in figures, which must agree."""
    inv.code = _digits(page.first_after(r"发票代码", r"\d{12}(?!\d)"), 12)
    inv.number = _digits(page.first_after(r"发票号码", r"\d{8}(?!\d)"), 8)
    inv.total = _capitals_total(page)


_EXTRACTORS = {"01": _vat_paper, "04": _vat_paper, "31": _digital, "32": _digital, "51": _railway,
               "61": _air, "air": _air, "taxi": _taxi, "quota": _quota}


def extract_fields(lines: list[Line], *, page: int | None = None) -> Invoice | None:
    """The invoice fields that OCR text carries and that pass their own checks; None when there are none."""
    if not lines:
        return None
    sheet = Page(lines)
    inv = Invoice(source="ocr", page=page)
    inv.type = kind_of(sheet.text)
    _EXTRACTORS.get(inv.type, _vat_paper)(sheet, inv)
    if inv.amount is not None and inv.tax is not None and inv.total is not None \
            and inv.amount + inv.tax != inv.total:
        inv.amount = inv.tax = None
    found = [inv.number, inv.date, inv.total, inv.amount, inv.seller_name, inv.buyer_name]
    return inv if any(v is not None for v in found) else None
