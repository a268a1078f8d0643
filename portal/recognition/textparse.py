"""Invoice fields from the printed text of a page (PDF text layer, OFD page text).

Layouts differ: legacy invoices print "发票号码:00008006" with label and value together,
数电 PDFs draw labels and values as separate text runs far apart in the content stream,
and some generators letter-space every character ("2 3 5 1 …"). The patterns below
therefore anchor on what is unmistakable — a label directly followed by its value, the
amount in words (大写) next to its figure, a ¥ pair that adds up to the total — and
leave a field None rather than take a value that merely sits nearby.

Input lines are NFKC-normalised; a tab separates runs the caller knows are far apart.
"""

from __future__ import annotations

import re
from decimal import Decimal

from .model import (
    Invoice,
    clean_digits,
    clean_tax_no,
    kind_code_from_name,
    parse_date,
    parse_money,
)

_YEN_MONEY = r"(-?)\s*[¥￥]\s*(-?\d[\d,]*\.\d{2})(?!\d)"

_CODE_RE = re.compile(r"发\s*票\s*代\s*码\s*[:：]?\s*(\d{10,12})(?!\d)")
_NUMBER_RE = re.compile(r"发\s*票\s*号\s*码\s*[:：]?\s*(\d{8,20})(?!\d)")
_CHECK_RE = re.compile(r"校\s*验\s*码\s*[:：]?\s*((?:\d[ \t]*){20})(?!\d)")
_DATE_LABEL_RE = re.compile(
    r"(?:开\s*票|填\s*开)\s*日\s*期\s*[:：]?\s*(\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日|\d{4}-\d{1,2}-\d{1,2})"
)
_DATE_CJK_RE = re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日")
_STANDALONE_20_RE = re.compile(r"(?:^|[\t\n ])(\d{20})(?=$|[\t\n ])")

_UPPER_CHARS = "零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆元角分整正负"
_WORDS_TOTAL_RE = re.compile(
    rf"([{_UPPER_CHARS}]{{2,}})[^¥￥\d]{{0,16}}?{_YEN_MONEY}"
)
_SMALL_TOTAL_RE = re.compile(rf"\(\s*小\s*写\s*\)\s*{_YEN_MONEY}")
_YEN_PAIR_RE = re.compile(rf"{_YEN_MONEY}\s*{_YEN_MONEY}")

_TAX_NO = r"([0-9A-Z]{15,20})(?![0-9A-Z])"
_TAX_NO_LABEL_RE = re.compile(rf"纳\s*税\s*人\s*识\s*别\s*号\s*[:：][ \t]*{_TAX_NO}")
_NAME_LABEL_RE = re.compile(r"名\s*称\s*[:：][ \t]*([^\t\n:：]{2,80})")
_USCC_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
_ORG_SUFFIX_RE = re.compile(r"(公司|分公司|店|部|厂|中心|院|所|局|行|社|校|馆|站|会|室|场|处|队|个人)$")
_PARTY_MARKS = {"购": "buyer", "买": "buyer", "销": "seller", "售": "seller"}


def collapse_spaced(line: str) -> str:
    """'2 0 2 3 年 0 1 月' → '2023年01月' when a line is letter-spaced throughout."""
    tokens = [t for t in line.split(" ") if t]
    if len(tokens) >= 3 and sum(len(t) == 1 for t in tokens) >= 0.8 * len(tokens):
        return "".join(tokens)
    return line


def words_to_amount(words: str) -> Decimal | None:
    """Value of an amount written in Chinese capitals (大写), e.g. 贰万伍仟贰佰伍拾肆圆陆角贰分."""
    digits = dict(zip("零壹贰叁肆伍陆柒捌玖", range(10)))
    small = {"拾": 10, "佰": 100, "仟": 1000}
    sign = -1 if words.startswith("负") else 1
    words = words.lstrip("负").rstrip("整正")
    m = re.match(r"^(.*?)[圆元](.*)$", words)
    integer_part, fraction = (m.group(1), m.group(2)) if m else ("", words)
    total = 0
    section = 0
    digit = 0
    for ch in integer_part:
        if ch in digits:
            digit = digits[ch]
        elif ch in small:
            section += (digit or 1) * small[ch]
            digit = 0
        elif ch == "万":
            total += (section + digit) * 10_000
            section = digit = 0
        elif ch == "亿":
            total = (total + section + digit) * 100_000_000
            section = digit = 0
        else:
            return None
    total += section + digit
    cents = 0
    pending = None
    for ch in fraction:
        if ch in digits:
            pending = digits[ch]
        elif ch == "角" and pending is not None:
            cents += pending * 10
            pending = None
        elif ch == "分" and pending is not None:
            cents += pending
            pending = None
        else:
            return None
    return sign * (Decimal(total) + Decimal(cents) / 100)


def _yen(sign: str, figure: str) -> Decimal | None:
    value = parse_money(figure)
    if value is not None and sign == "-" and value > 0:
        value = -value
    return value


def _find_total(text: str) -> Decimal | None:
    for m in _WORDS_TOTAL_RE.finditer(text):
        figure = _yen(m.group(2), m.group(3))
        in_words = words_to_amount(m.group(1))
        # The amount in words is printed beside the figure; when both parse they must agree.
        if figure is not None and (in_words is None or in_words == figure):
            return figure
    m = _SMALL_TOTAL_RE.search(text)
    if m:
        return _yen(m.group(1), m.group(2))
    return None


def _find_amount_tax(text: str, total: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """The 合计 pair '¥amount ¥tax'; when the total is known the pair must add up to it."""
    first = None
    for m in _YEN_PAIR_RE.finditer(text):
        amount, tax = _yen(m.group(1), m.group(2)), _yen(m.group(3), m.group(4))
        if amount is None or tax is None:
            continue
        if total is not None:
            if amount + tax == total:
                return amount, tax
        elif first is None:
            first = (amount, tax)
    return first if first is not None else (None, None)


def _party_before(text: str, pos: int) -> str | None:
    """Whether a label belongs to the buyer or the seller block: the nearest 购/买/销/售 before it."""
    window = text[max(0, pos - 60):pos]
    for ch in reversed(window):
        if ch in _PARTY_MARKS:
            return _PARTY_MARKS[ch]
    return None


def _find_parties(text: str, lines: list[str], inv: Invoice) -> None:
    """Buyer and seller names and tax numbers, only where the text makes the side certain."""
    labelled_ids = [(m.start(), clean_tax_no(m.group(1))) for m in _TAX_NO_LABEL_RE.finditer(text)]
    labelled_ids = [(p, v) for p, v in labelled_ids if v]
    names = []
    for m in _NAME_LABEL_RE.finditer(text):
        value = m.group(1).strip()
        # The value must look like a name, not the next label or a single stray glyph.
        if len(value) >= 2 and not re.search(r"名称|纳税人|识别号|地址|电话|开户|密码", value):
            names.append((m.start(), value))
    for field, found in (("tax_no", labelled_ids), ("name", names)):
        if len(found) == 2 and found[0][1] != found[1][1]:
            # Both parties printed: the buyer block always comes first.
            setattr(inv, f"buyer_{field}", found[0][1])
            setattr(inv, f"seller_{field}", found[1][1])
            continue
        for pos, value in found:
            side = _party_before(text, pos)
            if side and getattr(inv, f"{side}_{field}") is None:
                setattr(inv, f"{side}_{field}", value)
    # 数电 layout: the two parties side by side, left buyer, right seller, without labels.
    for line in lines:
        segments = [s.strip() for s in line.replace("\t", "  ").split("  ") if s.strip()]
        if len(segments) == 1 and " " in segments[0]:
            segments = segments[0].split()
        if len(segments) != 2:
            continue
        if inv.buyer_tax_no is None and inv.seller_tax_no is None and all(_USCC_RE.match(s) for s in segments):
            inv.buyer_tax_no, inv.seller_tax_no = segments
        elif (
            inv.buyer_name is None and inv.seller_name is None
            and all(_ORG_SUFFIX_RE.search(s) and not re.search(r"[\d:：]", s) for s in segments)
        ):
            inv.buyer_name, inv.seller_name = segments


def parse_text(lines: list[str], *, source: str, page: int | None) -> Invoice:
    """Invoice fields found in the lines of one page; missing fields stay None."""
    lines = [collapse_spaced(line) for line in lines]
    text = "\n".join(lines)
    inv = Invoice(source=source, page=page)
    m = _CODE_RE.search(text)
    inv.code = m.group(1) if m else None
    m = _CHECK_RE.search(text)
    inv.check_code = clean_digits(m.group(1)) if m else None
    m = _NUMBER_RE.search(text)
    if m:
        inv.number = m.group(1)
    elif inv.code is None:
        # 数电 PDFs print the 20-digit number away from its label; it is the only bare
        # 20-digit token on the page (the check code of legacy invoices is labelled).
        candidates = {c for c in _STANDALONE_20_RE.findall(text) if c != inv.check_code}
        if len(candidates) == 1:
            inv.number = candidates.pop()
    m = _DATE_LABEL_RE.search(text) or _DATE_CJK_RE.search(text)
    if m:
        inv.date = parse_date(m.group(m.lastindex or 0))
    inv.total = _find_total(text)
    inv.amount, inv.tax = _find_amount_tax(text, inv.total)
    _find_parties(text, lines, inv)
    # The title names the kind ("电子发票(增值税专用发票)", "贵州增值税电子专用发票").
    title = next((line for line in lines if "发票" in line and kind_code_from_name(line)), None)
    inv.type = kind_code_from_name(title, digital=inv.is_digital)
    inv.raw = {source: {"chars": len(text)}}
    return inv
