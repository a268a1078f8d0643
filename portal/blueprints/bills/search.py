"""The bills list's search: number, submitter, org, amount range and creation dates, and its sorting."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Mapping

from sqlalchemy import Select

from ...errors import UserError
from ...invoice_fields import parse_day, parse_money
from ...labels import BILL_STATUSES
from ...models import Bill
from .service import BEIJING

FIELDS = ("status", "q", "submitter", "org", "min_amount", "max_amount", "date_from", "date_to")
# What a column header may sort by; the id breaks ties (and is "newest first" by default).
SORT_COLUMNS = {
    "bill_no": Bill.bill_no,
    "submitter": Bill.submitter,
    "org": Bill.org,
    "amount": Bill.amount,
    "status": Bill.status,
    "created": Bill.id,
}


@dataclass
class BillFilters:
    """The list's filters, validated; ``errors`` holds what was ignored and why (in Chinese)."""

    status: str = ""
    q: str = ""
    submitter: str = ""
    org: str = ""
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    date_from: date | None = None
    date_to: date | None = None
    form: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """True when any filter narrows the list."""
        return bool(self.status or self.q or self.submitter or self.org or self.date_from or self.date_to
                    or self.min_amount is not None or self.max_amount is not None)

    def args(self) -> dict[str, str]:
        """The valid filters as query arguments (for pager and sort links)."""
        out = {
            "status": self.status, "q": self.q, "submitter": self.submitter, "org": self.org,
            "min_amount": str(self.min_amount) if self.min_amount is not None else "",
            "max_amount": str(self.max_amount) if self.max_amount is not None else "",
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
        }
        return {k: v for k, v in out.items() if v}


def parse_filters(args: Mapping[str, str]) -> BillFilters:
    """Read the filters from query arguments; a bad value is named in ``errors`` and ignored."""
    form = {k: (args.get(k) or "").strip() for k in FIELDS}
    f = BillFilters(form=form)
    f.status = form["status"] if form["status"] in BILL_STATUSES else ""
    f.q, f.submitter, f.org = form["q"][:64], form["submitter"][:100], form["org"][:200]
    for name, label in (("min_amount", "金额（最小）"), ("max_amount", "金额（最大）")):
        try:
            setattr(f, name, parse_money(form[name] or None, label))
        except UserError:
            f.errors.append(f"{label}不是有效的金额：{form[name]}，已忽略。")
    if f.min_amount is not None and f.max_amount is not None and f.min_amount > f.max_amount:
        f.errors.append("金额的最小值大于最大值，金额条件已忽略。")
        f.min_amount = f.max_amount = None
    for name, label in (("date_from", "创建日期（起）"), ("date_to", "创建日期（止）")):
        try:
            setattr(f, name, parse_day(form[name] or None, label))
        except UserError:
            f.errors.append(f"{label}不是有效的日期：{form[name]}，已忽略。")
    if f.date_from and f.date_to and f.date_from > f.date_to:
        f.errors.append("创建日期（起）晚于创建日期（止），日期条件已忽略。")
        f.date_from = f.date_to = None
    return f


def _utc_start(day: date) -> datetime:
    # Dates are what the user reads on the page: Beijing days; stored times are naive UTC.
    return datetime.combine(day, time()) - BEIJING


def apply(stmt: Select, f: BillFilters) -> Select:
    """``stmt`` narrowed by the filters (text matches are substrings; ``%`` and ``_`` are literal)."""
    if f.status:
        stmt = stmt.where(Bill.status == f.status)
    if f.q:
        stmt = stmt.where(Bill.bill_no.icontains(f.q, autoescape=True))
    if f.submitter:
        stmt = stmt.where(Bill.submitter.icontains(f.submitter, autoescape=True))
    if f.org:
        stmt = stmt.where(Bill.org.icontains(f.org, autoescape=True))
    if f.min_amount is not None:
        stmt = stmt.where(Bill.amount >= f.min_amount)
    if f.max_amount is not None:
        stmt = stmt.where(Bill.amount <= f.max_amount)
    if f.date_from:
        stmt = stmt.where(Bill.created_at >= _utc_start(f.date_from))
    if f.date_to:
        stmt = stmt.where(Bill.created_at < _utc_start(f.date_to + timedelta(days=1)))
    return stmt
