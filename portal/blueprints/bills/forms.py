"""Forms of the bill page: invoice correction and manual entry, return for rescan, manual confirmation.

CSRF is checked for every POST by the app-wide ``CSRFProtect`` (htmx sends the token
as a header), so these forms do not carry their own token field.  Money, date and
number formats are checked by :func:`portal.bills.correct_invoice` and
:func:`portal.bills.add_manual_invoice`, which name the field in their message; the
forms only bound lengths.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from ...models import Invoice


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class _NoCsrf(FlaskForm):
    class Meta:
        csrf = False


def _text(label: str, max_len: int) -> StringField:
    return StringField(label, validators=[Optional(), Length(max=max_len, message=f"{label}不能超过 {max_len} 个字符")],
                       filters=[_strip])


class InvoiceForm(_NoCsrf):
    """The recognised fields of one invoice, as the scanner corrects them."""

    type = _text("发票类型", 8)
    code = _text("发票代码", 20)
    number = _text("发票号码", 32)
    date = _text("开票日期", 10)
    amount = _text("金额（不含税）", 20)
    tax = _text("税额", 20)
    total = _text("价税合计", 20)
    check_code = _text("校验码", 32)
    seller_name = _text("销方名称", 200)
    seller_tax_no = _text("销方税号", 20)
    buyer_name = _text("购方名称", 200)
    buyer_tax_no = _text("购方税号", 20)

    FIELDS = ("type", "code", "number", "date", "amount", "tax", "total", "check_code",
              "seller_name", "seller_tax_no", "buyer_name", "buyer_tax_no")

    @classmethod
    def for_invoice(cls, inv: Invoice) -> "InvoiceForm":
        """The form filled with the invoice's stored values (money with two places)."""
        form = cls(formdata=None)
        for name in cls.FIELDS:
            value = getattr(inv, name)
            form[name].data = "" if value is None else (value.isoformat() if name == "date" else str(value))
        return form

    def values(self) -> dict[str, str]:
        """Submitted values for :func:`portal.bills.correct_invoice` (empty clears a field)."""
        return {name: self[name].data or "" for name in self.FIELDS}


class ManualInvoiceForm(InvoiceForm):
    """An invoice the scanner types in for an image (e.g. a paper invoice without a QR code).

    The same twelve fields, labels and lengths as the correction form; only the number is required.
    """

    number = StringField("发票号码", validators=[DataRequired("请填写发票号码"), Length(max=32, message="发票号码不能超过 32 个字符")],
                         filters=[_strip])

    def values(self) -> dict[str, str]:
        """Submitted values for :func:`portal.bills.add_manual_invoice`."""
        return {name: self[name].data or "" for name in self.FIELDS}


class ReturnForm(_NoCsrf):
    """Returning a bill for rescan needs a reason; the scanner reads it on the scan desk."""

    reason = TextAreaField("退回原因", validators=[DataRequired("请填写退回原因"), Length(max=500, message="退回原因不能超过 500 个字符")],
                           filters=[_strip])


class ConfirmForm(_NoCsrf):
    """Passing a failed match by hand needs a reason for the audit trail."""

    reason = TextAreaField("确认原因", validators=[DataRequired("请填写确认原因"), Length(max=500, message="确认原因不能超过 500 个字符")],
                           filters=[_strip])
