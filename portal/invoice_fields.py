"""One invoice's fields: parse, validate and key them — shared by the push, the ERP API and the forms.

Pure functions below the domain modules (bills, push, the blueprints' filters), so none of
them has to import another to read a date or an amount. A refusal is a
:class:`portal.errors.UserError` naming the field, in Chinese.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from .cloud_records import normalise as normalise_cloud_record
from .errors import UserError


def invoice_key(code: str | None, number: str | None) -> str | None:
    """The duplicate key: ``":<number>"`` for 数电 (20 digits), ``"<code>:<number>"`` otherwise."""
    if not number:
        return None
    number = number.strip()
    if len(number) == 20 and number.isdigit():
        return f":{number}"
    return f"{(code or '').strip()}:{number}"


def parse_money(value: Any, field: str) -> Decimal | None:
    """A decimal with at most two places; raises UserError naming ``field`` otherwise."""
    if value is None or value == "":
        return None
    try:
        d = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise UserError(f"{field} 不是有效的金额：{value}") from None
    if not d.is_finite() or d.as_tuple().exponent < -2 or abs(d) >= Decimal("1e14"):
        raise UserError(f"{field} 不是有效的金额（最多两位小数）：{value}")
    return d.quantize(Decimal("0.01"))


def parse_day(value: Any, field: str) -> date | None:
    """A date from ``YYYY-MM-DD`` or ``yyyyMMdd``; raises UserError naming ``field`` otherwise."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text[:10])
    except ValueError:
        raise UserError(f"{field} 不是有效的日期：{value}") from None


def _text(item: dict, name: str, limit: int) -> str | None:
    value = item.get(name)
    if value is None or value == "":
        return None
    return str(value)[:limit]


def invoice_row(enterprise_id: int, item: Any, index: int, *, origin: str, bill_no: str | None = None) -> dict[str, Any]:
    """Validate one invoice in the push protocol's field names into an ``expected_invoices`` row (a dict).

    Raises :class:`portal.errors.UserError` naming the invoice by its position
    (``第 3 张发票…``). The row's ``dedup_key`` is ``s:<serialNo>``, else
    ``k:<invoice key>``; :func:`portal.bills.expected_from_push` builds its ORM
    row from this, so the ERP's expected invoices follow exactly the same rules.
    """
    if not isinstance(item, dict):
        raise UserError(f"第 {index + 1} 张发票格式错误：应为对象")
    item = normalise_cloud_record(item)  # the cloud's own record shape, read into our field names
    number = str(item.get("invoiceNo") or "").strip() or None
    code = str(item.get("invoiceCode") or "").strip() or None
    serial = str(item.get("serialNo") or "").strip() or None
    if not number:
        raise UserError(f"第 {index + 1} 张发票缺少 invoiceNo")
    try:
        # isascii: full-width or other Unicode digits pass isdigit() but would make a different key.
        if not (number.isascii() and number.isdigit()) or len(number) > 20:
            raise UserError(f"invoiceNo 无效：{number}")
        if code and (not (code.isascii() and code.isdigit()) or len(code) > 12):
            raise UserError(f"invoiceCode 无效：{code}")
        if serial and len(serial) > 64:
            # Cutting it would make two different serial numbers one dedup key.
            raise UserError("serialNo 过长（最多 64 个字符）")
        day = parse_day(item.get("invoiceDate"), "invoiceDate")
        amount = parse_money(item.get("amount"), "amount")
        tax = parse_money(item.get("taxAmount"), "taxAmount")
        total = parse_money(item.get("totalAmount"), "totalAmount")
    except UserError as exc:
        # The position is only spelled out for a refusal: this runs 10,000 times a second.
        raise UserError(f"第 {index + 1} 张发票的 {exc.message}") from None
    if len(number) == 20:
        key = f":{number}"  # 数电: the number alone is the key (same as invoice_key)
    else:
        key = f"{code or ''}:{number}"
    bill = item.get("billNo")
    return {
        "enterprise_id": enterprise_id,
        "origin": origin,
        "dedup_key": f"s:{serial}" if serial else f"k:{key}",
        "bill_no": str(bill).strip()[:64] if bill else bill_no,
        "serial_no": serial,
        "type": _text(item, "invoiceType", 8),
        "code": code,
        "number": number,
        "date": day,
        "amount": amount,
        "tax": tax,
        "total": total,
        "check_code": _text(item, "checkCode", 32),
        "seller_name": _text(item, "salerName", 200),
        "seller_tax_no": _text(item, "salerTaxNo", 20),
        "buyer_name": _text(item, "buyerName", 200),
        "buyer_tax_no": _text(item, "buyerTaxNo", 20),
        "invoice_key": key,
        "download_url": _text(item, "downloadUrl", 1000),
        "cloud_type": _text(item, "cloudType", 8),
        "cloud": item.get("cloud"),
        "extra": item.get("extra"),
    }
