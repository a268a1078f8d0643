"""The one invoice shape every reader produces, and the rules for combining readers.

Values are never guessed: a field the source does not carry stays None. The only derived
values are exact arithmetic on the three money fields (see `Invoice.complete_money`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")

# Readers ranked by exactness: a field from a better source wins when readers disagree.
SOURCE_RANK = {"xml": 0, "ofd": 1, "pdf_text": 2, "qr": 3, "ocr": 4}

MONEY_FIELDS = ("amount", "tax", "total")
TEXT_FIELDS = (
    "type", "code", "number", "check_code",
    "seller_name", "seller_tax_no", "buyer_name", "buyer_tax_no",
)


@dataclasses.dataclass
class Invoice:
    """One invoice found in a file.

    `amount` is the pre-tax sum, `tax` the tax, `total` the tax-included sum (价税合计).
    `source` names the reader that supplied the invoice number (`xml`, `ofd`, `pdf_text`,
    `qr`; `ocr` is reserved for the OCR hook); `page` is the 0-based page or frame where
    it was found, None when the whole file is the source (XML, OFD semantic data).
    `type` is the QR kind code ("01", "04", "10", "20", "31", "32", "61", …).
    `raw` keeps a small JSON-serialisable record of what each reader saw.
    """

    source: str
    type: str | None = None
    code: str | None = None
    number: str | None = None
    date: dt.date | None = None
    amount: Decimal | None = None
    tax: Decimal | None = None
    total: Decimal | None = None
    check_code: str | None = None
    seller_name: str | None = None
    seller_tax_no: str | None = None
    buyer_name: str | None = None
    buyer_tax_no: str | None = None
    page: int | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_digital(self) -> bool:
        """True for a 数电 (fully digital) invoice: 20-digit number and no invoice code."""
        return not self.code and bool(self.number) and len(self.number) == 20 and self.number.isdigit()

    @property
    def key(self) -> tuple[str, str] | None:
        """Identity of the invoice: ("", number) for 数电, (code, number) for legacy ones.

        None when there is no number, and also for an 8-digit legacy number whose code is
        unknown: such numbers repeat across invoice codes, so they identify nothing alone.
        """
        if not self.number:
            return None
        if self.code:
            return (self.code, self.number)
        if len(self.number) == 8:
            return None
        return ("", self.number)

    @property
    def is_complete(self) -> bool:
        """Number, date and a money figure known: no cheaper reader needs to look further."""
        return bool(self.number) and self.date is not None and (
            self.amount is not None or self.total is not None
        )

    @property
    def is_useful(self) -> bool:
        """Worth returning: a number, or at least a date with a money figure."""
        return bool(self.number) or (
            self.date is not None and (self.amount is not None or self.total is not None)
        )

    def complete_money(self) -> None:
        """Fill the third money field when the other two are known.

        This is arithmetic on exact figures, not a guess: total = amount + tax,
        tax = total - amount, amount = total - tax.
        """
        a, t, s = self.amount, self.tax, self.total
        if s is None and a is not None and t is not None:
            self.total = a + t
        elif t is None and a is not None and s is not None:
            self.tax = s - a
        elif a is None and t is not None and s is not None:
            self.amount = s - t

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (dates as ISO strings, money as strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, dt.date):
                v = v.isoformat()
            elif isinstance(v, Decimal):
                v = str(v)
            out[f.name] = v
        return out


def numbers_agree(a: Invoice, b: Invoice) -> bool:
    """Whether two partial readings can describe the same invoice."""
    if a.number and b.number and a.number != b.number:
        return False
    if a.code and b.code and a.code != b.code:
        return False
    return True


def combine(better: Invoice, other: Invoice) -> Invoice:
    """Merge two readings of the same invoice field by field; the better source wins.

    The caller checks `numbers_agree` first. `source` and `page` follow whichever reading
    supplied the number.
    """
    if SOURCE_RANK.get(other.source, 9) < SOURCE_RANK.get(better.source, 9):
        better, other = other, better
    merged = dataclasses.replace(better, raw={**other.raw, **better.raw})
    for name in TEXT_FIELDS + MONEY_FIELDS + ("date",):
        if getattr(merged, name) is None and getattr(other, name) is not None:
            setattr(merged, name, getattr(other, name))
    if not better.number and other.number:
        merged.source = other.source
        merged.page = other.page
    elif merged.page is None and not better.number:
        merged.page = other.page
    return merged


def merge_all(readings: list[Invoice]) -> list[Invoice]:
    """Fold readings into distinct invoices: same number (or no number yet) → one invoice.

    Readings are taken best source first so a reading without a number joins the best
    invoice it agrees with, never creating a second copy of it.
    """
    ordered = sorted(readings, key=lambda i: SOURCE_RANK.get(i.source, 9))
    result: list[Invoice] = []
    for inv in ordered:
        for idx, have in enumerate(result):
            same = (inv.number and have.number == inv.number) or not inv.number or not have.number
            if same and numbers_agree(have, inv):
                result[idx] = combine(have, inv)
                break
        else:
            result.append(inv)
    return result


# --- value parsing shared by the readers -------------------------------------------------

_MONEY_RE = re.compile(r"^-?\d{1,15}(?:\.\d{1,8})?$")
_DATE_PATTERNS = (
    re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"),
    re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
    re.compile(r"(\d{4})\s+(\d{1,2})\s+(\d{1,2})"),
)


def parse_money(text: str | None) -> Decimal | None:
    """Decimal rounded to the cent from '¥1,234.50', 'CNY 620', '-12.3'; None if not money."""
    if text is None:
        return None
    s = re.sub(r"[\s,¥￥元]|CNY|RMB", "", str(text))
    if s.startswith("(") and s.endswith(")"):
        s = "-" + s[1:-1]
    if not _MONEY_RE.match(s):
        return None
    try:
        return Decimal(s).quantize(CENT)
    except InvalidOperation:
        return None


def parse_date(text: str | None) -> dt.date | None:
    """A date from '2022年05月05日', '2024-05-28', '2024-05-28 10:11:12' or '20220505'."""
    if not text:
        return None
    s = str(text).strip()
    for pattern in _DATE_PATTERNS:
        m = pattern.search(s)
        if m:
            try:
                d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
            # Chinese VAT invoices start in 1994; a far-future date is a misread.
            if 1990 <= d.year <= 2100:
                return d
    return None


def clean_text(text: str | None, limit: int = 200) -> str | None:
    """Trimmed single-line text, None when empty; long values are cut to `limit`."""
    if text is None:
        return None
    s = re.sub(r"\s+", " ", str(text)).strip()
    return s[:limit] or None


def clean_digits(text: str | None) -> str | None:
    """The digits of a code/number/check code when the value is only digits and spaces."""
    if text is None:
        return None
    s = re.sub(r"\s+", "", str(text))
    return s if s.isdigit() and len(s) <= 32 else None


_TAX_NO_RE = re.compile(r"^[0-9A-Z]{15,20}$")


def clean_tax_no(text: str | None) -> str | None:
    """A taxpayer number / unified social credit code (15–20 upper-case alphanumerics)."""
    if text is None:
        return None
    s = re.sub(r"\s+", "", str(text)).upper()
    return s if _TAX_NO_RE.match(s) else None


# Invoice kind names → the QR type code, only where the corpus or the tax convention is
# unambiguous (see the reference D.1 and the corpus MANIFEST). Longest names first so the
# 数电 "电子发票（…）" names win over their legacy substrings.
_KIND_BY_NAME = (
    ("电子发票(增值税专用发票)", "31"),
    ("电子发票(普通发票)", "32"),
    ("电子发票(航空运输电子客票行程单)", "61"),
    ("增值税电子专用发票", "20"),
    ("增值税电子普通发票", "10"),
    ("增值税专用发票", "01"),
    ("增值税普通发票", "04"),
)


def kind_code_from_name(name: str | None, *, digital: bool = False) -> str | None:
    """QR type code for an invoice kind name; None unless the mapping is certain.

    `digital` says the name comes from a 数电 document, where 专用/普通 mean 31/32.
    """
    if not name:
        return None
    s = re.sub(r"\s+", "", unicodedata.normalize("NFKC", name))
    if digital:
        if "专用发票" in s:
            return "31"
        if "普通发票" in s:
            return "32"
    for kind, code in _KIND_BY_NAME:
        if kind in s:
            return code
    return None
