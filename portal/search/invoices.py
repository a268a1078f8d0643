"""The invoice list (发票): filter parsing and the keyset-paged queries behind it.

Pages are keyset-paged on ``id`` (newest first), never OFFSET.  Queries are built
per enterprise and glued with ``UNION ALL``: each branch walks one of the
``(enterprise_id, ...)`` indexes of ``invoices`` and stops after a page, where a
single ``enterprise_id IN (...)`` query would have to sort every matching row of
all enterprises first.  "Planning" below says how the index is chosen; the count
is bounded both in rows (SMALL_CAP, COUNT_CAP) and in time (COUNT_BUDGET_MS).
"""
from __future__ import annotations

import math
import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy import Integer, Select, and_, exists, false, func, literal_column, or_, select, tuple_, union_all
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from ..errors import UserError
from ..extensions import db
from ..invoice_fields import parse_day, parse_money
from ..labels import INVOICE_TYPES
from ..labels import invoice_type_label as type_label
from ..models import VERIFICATION_BLOCKING, Bill, Invoice, InvoiceSeller, InvoiceVerification

PER_PAGE = 50
SMALL_CAP = 1_000  # counted first: cheap, and exact for most searches
COUNT_CAP = 10_000  # counted next, when time allows




def money(value: Decimal | None) -> str:
    """Two decimals with thousands separators; an unknown amount is a dash."""
    return "—" if value is None else f"{value:,.2f}"


def type_choices(selected: str = "") -> list[tuple[str, str]]:
    """(code, label) pairs for the type filter; an unknown selected code gets its own entry."""
    out = []
    for code, label in INVOICE_TYPES.items():
        # 08 and 20 share a name: the code tells the two options apart.
        out.append((code, f"{label}（{code}）" if code in ("08", "20") else label))
    if selected and selected not in INVOICE_TYPES:
        out.append((selected, type_label(selected)))
    return out


# --------------------------------------------------------------------------- filters

_TYPE = re.compile(r"[0-9A-Za-z]{1,8}")
_TAX_NO = re.compile(r"[0-9A-Z]{15,20}")
_NUMBER = re.compile(r"[0-9]{1,20}")
_CODE_AND_NUMBER = re.compile(r"([0-9]{10,12})[\s,，:：\-_/]+([0-9]{1,20})")
_ID = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() would let "²" through to int()
FIELDS = ("e", "date_from", "date_to", "type", "seller", "min_total", "max_total", "q", "dup", "vf")


@dataclass
class Filters:
    """The list's filters, validated; ``errors`` holds what was ignored and why."""

    enterprise_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    type: str = ""
    seller: str = ""
    min_total: Decimal | None = None
    max_total: Decimal | None = None
    q: str = ""
    dup: bool = False
    vf: bool = False  # only invoices whose 查验 failed (查验不符, 已作废/红冲)
    # What the user typed, to refill the form (invalid values included).
    form: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """True when any filter narrows the list."""
        return bool(self.enterprise_id or self.date_from or self.date_to or self.type or self.seller
                    or self.min_total is not None or self.max_total is not None or self.q or self.dup or self.vf)

    def args(self) -> dict[str, str]:
        """The valid filters as query arguments (for the pager links)."""
        out = {
            "e": str(self.enterprise_id) if self.enterprise_id else "",
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
            "type": self.type,
            "seller": self.seller,
            "min_total": str(self.min_total) if self.min_total is not None else "",
            "max_total": str(self.max_total) if self.max_total is not None else "",
            "q": self.q,
            "dup": "1" if self.dup else "",
            "vf": "1" if self.vf else "",
        }
        return {k: v for k, v in out.items() if v}


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Read the filters from query arguments; a bad value is reported in ``errors`` and ignored."""
    form = {k: (args.get(k) or "").strip() for k in FIELDS}
    f = Filters(form=form)

    if form["e"]:
        if _ID.fullmatch(form["e"]):
            f.enterprise_id = int(form["e"])
        else:
            f.errors["e"] = "企业参数无效，已忽略。"

    for name, label in (("date_from", "开票日期（起）"), ("date_to", "开票日期（止）")):
        try:
            setattr(f, name, parse_day(form[name] or None, label))
        except UserError:
            f.errors[name] = f"{label}不是有效的日期：{form[name]}，已忽略。"
    if f.date_from and f.date_to and f.date_from > f.date_to:
        f.errors["date_to"] = "开票日期（起）晚于开票日期（止），日期条件已忽略。"
        f.date_from = f.date_to = None

    if form["type"]:
        if _TYPE.fullmatch(form["type"]):
            f.type = form["type"]
        else:
            f.errors["type"] = f"发票类型无效：{form['type']}，已忽略。"

    f.seller = form["seller"][:100]

    for name, label in (("min_total", "价税合计（最小）"), ("max_total", "价税合计（最大）")):
        try:
            setattr(f, name, parse_money(form[name] or None, label))
        except UserError:
            f.errors[name] = f"{label}不是有效的金额：{form[name]}，已忽略。"
    if f.min_total is not None and f.max_total is not None and f.min_total > f.max_total:
        f.errors["max_total"] = "价税合计的最小值大于最大值，金额条件已忽略。"
        f.min_total = f.max_total = None

    if form["q"]:
        if _NUMBER.fullmatch(form["q"]) or _CODE_AND_NUMBER.fullmatch(form["q"]):
            f.q = form["q"]
        else:
            f.errors["q"] = "发票号码只能输入数字（或“发票代码 发票号码”），已忽略。"

    f.dup = form["dup"] in ("1", "on", "true")
    f.vf = form["vf"] in ("1", "on", "true")
    return f


def parse_cursor(args: Mapping[str, str]) -> tuple[int | None, int | None, str | None]:
    """``(after, before, error)``: the keyset cursor of the page; a bad one means the first page."""
    after, before = (args.get("after") or "").strip(), (args.get("before") or "").strip()
    for value in (after, before):
        if value and not _ID.fullmatch(value):
            return None, None, "翻页参数无效，已回到第一页。"
    if after:
        return int(after), None, None
    if before:
        return None, int(before), None
    return None, None, None


# --------------------------------------------------------------------------- planning
#
# SQLite keeps no statistics on value ranges, so it cannot tell a date filter that
# matches one day from one that matches three years: it picks an index and, for
# ORDER BY id, often sorts every matching row.  Each request therefore asks the
# candidate indexes how many entries their range holds (counted up to PROBE, from
# the index alone), drives the page by the narrowest one, and keeps SQLite off the
# other indexes with unary "+" (SQLite's documented way to disqualify a term).

PROBE = 10_000  # index entries a probe counts at most; a filter below the (size-dependent) limit is "narrow"
NAME_LIMIT = 500  # seller names a name fragment may expand into before it counts as broad
COUNT_BUDGET_MS = 8  # the count's share of a request; past it the count is abandoned


class unindexed(ColumnElement):
    """``+column`` on SQLite (same value, but no index may serve the term); the plain column elsewhere."""

    inherit_cache = True
    _traverse_internals = [("element", InternalTraversal.dp_clauseelement)]

    def __init__(self, element):
        self.element = element
        self.type = element.type


@compiles(unindexed)
def _unindexed_default(element, compiler, **kw):
    return compiler.process(element.element, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw):
    return "+" + compiler.process(element.element, **kw)


@compiles(unindexed, "postgresql")
def _unindexed_postgresql(element, compiler, **kw):
    # An integer column plus 0: the same value, but no index on the column serves it. Ordering a
    # narrow driver's rows by "id + 0" keeps PostgreSQL on the driver's index (then a small sort)
    # instead of walking the primary key backwards in the hope of meeting matches early.
    inner = compiler.process(element.element, **kw)
    return f"({inner} + 0)" if isinstance(element.type, Integer) else inner


@dataclass(frozen=True)
class NumberAlt:
    """One reading of the number search: a number prefix (or exact number), maybe with a code."""

    number: str
    exact: bool = False
    code: str | None = None

    def condition(self, indexed: bool):
        col = Invoice.number if indexed else unindexed(Invoice.number)
        if self.exact:
            terms = [col == self.number]
        else:
            terms = [col >= self.number, col.startswith(self.number, autoescape=True)]
            stem = self.number.rstrip("9")
            if stem:  # "1239" -> below "124"; all-nines has no upper bound among digit strings
                terms.append(col < stem[:-1] + chr(ord(stem[-1]) + 1))
        if self.code:
            terms.append(Invoice.code == self.code)
        return and_(*terms)


def number_alternatives(q: str) -> list[NumberAlt]:
    """The readings of ``q``: a number prefix; "code number"; 18/20 digits may be code and number glued."""
    m = _CODE_AND_NUMBER.fullmatch(q)
    if m:
        return [NumberAlt(m.group(2), code=m.group(1))]
    alts = [NumberAlt(q)]
    if len(q) in (18, 20):
        alts.append(NumberAlt(q[-8:], exact=True, code=q[:-8]))
    return alts


# Only what the page shows (and the bill it links to), the bill number joined in.
COLUMNS = (Invoice.id, Invoice.enterprise_id, Invoice.type, Invoice.code, Invoice.number, Invoice.date,
           Invoice.amount, Invoice.tax, Invoice.total, Invoice.seller_name, Invoice.buyer_name, Invoice.source,
           Invoice.duplicate, Invoice.bill_id, Invoice.invoice_key, Bill.bill_no)
# Drivers served by a per-enterprise index; the others are global single-column indexes.
PER_ENTERPRISE = ("id", "date", "total", "number", "seller", "verify")
# Seller names x enterprises walked as ordered branches at most (else one sorted read).
SELLER_BRANCHES = 40
# Enterprises walked one UNION ALL branch each; above this one statement covers them all
# (SQLite allows 500 terms in a compound SELECT, and each branch costs a few seeks).
MAX_BRANCHES = 100


@dataclass(frozen=True)
class Total:
    """A bounded count: ``n`` is exact while ``n <= cap``; above it means "more than cap"."""

    n: int
    cap: int

    @property
    def exact(self) -> bool:
        return self.n <= self.cap


class CountTimeout(Exception):
    """A statement ran past its time limit and was abandoned."""


@dataclass
class Page:
    """One page of rows (newest first) with the cursors of its neighbours."""

    rows: list[Any]
    next_after: int | None  # cursor of the next (older) page
    prev_before: int | None  # cursor of the previous (newer) page
    total: Total | None = None  # known without counting (a lone first page); else None


class Search:
    """One request's filters over the user's enterprises, planned onto one index.

    A fixed number of statements whatever the data: the seller names behind a name
    fragment, the index probes, a date range's id window (these run here), the page,
    and at most two counts.
    """

    def __init__(self, f: Filters, enterprise_ids: list[int]):
        self.f = f
        self.ids = list(enterprise_ids)
        seller = f.seller.upper()
        self.tax_no = seller if f.seller and _TAX_NO.fullmatch(seller) else None
        self.names: list[str] | None = None  # exact seller names behind a fragment; None when broad
        self.alts = number_alternatives(f.q) if f.q else []
        self.empty = not self.ids
        self.probes: dict[str, int] = {}
        self.driver = "id"
        self.date_window = False  # walk ids between the date range's lowest and highest (see _resolve_windows)
        self.windows: dict[int, tuple[int | None, int | None]] = {}
        self.count_ms = 0.0  # how long the last count statement ran
        self.seller_ordered = False  # the seller driver as one ordered branch per name and enterprise
        if not self.empty and f.seller and not self.tax_no:
            self._resolve_names()
        if not self.empty:
            self._plan()

    # ----------------------------------------------------------------- planning

    def _resolve_names(self) -> None:
        """Seller names containing the fragment, from the enterprises' seller names (``invoice_sellers``).

        One scan of a small table (a few thousand names per enterprise, kept by triggers on
        ``invoices``) instead of a LIKE over every invoice or a seek per distinct name.
        """
        found = list(db.session.scalars(
            select(InvoiceSeller.name).where(InvoiceSeller.enterprise_id.in_(self.ids),
                                             InvoiceSeller.name.contains(self.f.seller, autoescape=True))
            .distinct().order_by(InvoiceSeller.name).limit(NAME_LIMIT + 1)))
        if not found:
            self.empty = True
        elif len(found) <= NAME_LIMIT:
            self.names = found
            # (enterprise_id, seller_name, id) entries are in id order per name: a few
            # names (per enterprise) are walked as ordered branches, like the id index.
            self.seller_ordered = len(found) * len(self.ids) <= SELLER_BRANCHES

    def _driver_terms(self) -> dict[str, list]:
        """For each filter an index can serve: its terms in indexable form."""
        f, out = self.f, {}
        dates = [t for t in (Invoice.date >= f.date_from if f.date_from else None,
                             Invoice.date <= f.date_to if f.date_to else None) if t is not None]
        totals = [t for t in (Invoice.total >= f.min_total if f.min_total is not None else None,
                              Invoice.total <= f.max_total if f.max_total is not None else None) if t is not None]
        if dates:
            out["date"] = dates
        if totals:
            out["total"] = totals
        if self.alts:
            out["number"] = [self.alts[0].condition(indexed=True)]
        if self.names is not None:
            out["seller"] = [Invoice.seller_name.in_(self.names)]
        if f.dup:
            out["dup"] = [Invoice.duplicate.is_(True)]
        if f.vf:
            out["verify"] = []  # probed from the failed results themselves (see _plan)
        return out

    def _failed_verification(self, indexed: bool, enterprise_id: int | None = None):
        """The invoice's key failed 查验 in its own enterprise.

        Indexed: the keys that failed (few) are read first and their invoices looked up through
        ``(enterprise_id, invoice_key)`` — per enterprise as a plain IN, which SQLite also drives from
        the list; otherwise a per-row lookup of the invoice's result.
        """
        V = InvoiceVerification
        if indexed and enterprise_id is not None:
            return Invoice.invoice_key.in_(select(V.invoice_key).where(
                V.enterprise_id == enterprise_id, V.status.in_(VERIFICATION_BLOCKING)))
        if indexed:
            return tuple_(Invoice.enterprise_id, Invoice.invoice_key).in_(
                select(V.enterprise_id, V.invoice_key).where(V.enterprise_id.in_(self.ids),
                                                             V.status.in_(VERIFICATION_BLOCKING)))
        return exists().where(V.enterprise_id == Invoice.enterprise_id, V.invoice_key == Invoice.invoice_key,
                              V.status.in_(VERIFICATION_BLOCKING))

    def _plan(self) -> None:
        """Probe the candidate indexes (one statement) and pick the page's driver."""
        probes = {name: ([Invoice.enterprise_id.in_(self.ids)] if name in PER_ENTERPRISE else []) + terms
                  for name, terms in self._driver_terms().items()}
        if self.f.date_to:
            # How many invoices are dated after the range: walking ids from the newest
            # would have to step over all of them before the first match.
            probes["newer"] = [Invoice.enterprise_id.in_(self.ids), Invoice.date > self.f.date_to]
        if not probes:
            return
        columns = [select(func.max(Invoice.id)).scalar_subquery().label("rows")]  # ids are dense: ~ the row count
        for name, terms in probes.items():
            if name == "verify":
                # The failed results themselves (about one invoice each), not their invoices: no join.
                V = InvoiceVerification
                sub = (select(literal_column("1")).select_from(V)
                       .where(V.enterprise_id.in_(self.ids), V.status.in_(VERIFICATION_BLOCKING)).limit(PROBE))
            else:
                sub = select(literal_column("1")).select_from(Invoice).where(*terms).limit(PROBE)
            columns.append(select(func.count()).select_from(sub.subquery()).scalar_subquery().label(name))
        found = dict(db.session.execute(select(*columns)).one()._mapping)
        rows = found.pop("rows") or 0
        self.probes = found
        # A narrow index costs a table lookup per entry it holds (then a sort); the id
        # walk costs about rows / matches lookups per row of the page.  Measured, a
        # lookup costs about the same either way, so they break even near
        # sqrt(page x rows) matches: ~2,200 at 100k invoices, ~7,000 at 1M.
        limit = min(PROBE, max(500, int(math.sqrt(PER_PAGE * rows))))
        # Not so for 查验不符: the id walk checks each invoice's result on the way (a second lookup per
        # row), so reading the failed results and their invoices wins up to PROBE of them.
        narrow = sorted((n, name) for name, n in self.probes.items()
                        if n < (PROBE if name == "verify" else limit) and name != "newer")
        if narrow:
            self.driver = narrow[0][1]
        elif self.seller_ordered:
            self.driver = "seller"  # one branch per name: each walks its names' ids in order
        elif "dup" in self.probes:
            self.driver = "dup"  # its index lists duplicates in id order: a page never sorts
        wide_past = "date" in self.probes and self.probes["date"] >= limit and self.probes.get("newer", 0) >= limit
        # A wide range in the past: walk ids, but only those the range can hold.
        self.date_window = wide_past and self.driver in ("id", "seller") and len(self.ids) <= MAX_BRANCHES
        if self.date_window:
            self._resolve_windows()

    # ----------------------------------------------------------------- statements

    def _terms(self, driver: str) -> list:
        """Every filter's terms; only ``driver``'s may use an index."""
        f = self.f

        def col(column, name):
            return column if name == driver else unindexed(column)

        terms: list = []
        if f.date_from:
            terms.append(col(Invoice.date, "date") >= f.date_from)
        if f.date_to:
            terms.append(col(Invoice.date, "date") <= f.date_to)
        if f.type:
            terms.append(Invoice.type == f.type)
        if self.tax_no:
            terms.append(Invoice.seller_tax_no == self.tax_no)
        elif f.seller:
            if driver == "seller" and self.seller_ordered:
                pass  # each branch names its seller (see _branches)
            elif self.names is not None:
                terms.append(col(Invoice.seller_name, "seller").in_(self.names))
            else:
                terms.append(Invoice.seller_name.contains(f.seller, autoescape=True))
        if f.min_total is not None:
            terms.append(col(Invoice.total, "total") >= f.min_total)
        if f.max_total is not None:
            terms.append(col(Invoice.total, "total") <= f.max_total)
        if f.dup:
            terms.append(col(Invoice.duplicate, "dup").is_(True))
        if f.vf and driver != "verify":  # the verify driver's branches add it per enterprise
            terms.append(self._failed_verification(indexed=False))
        if self.alts and driver != "number":
            terms.append(or_(*(a.condition(indexed=False) for a in self.alts)))
        return terms

    def _branches(self, driver: str, cursor: list, order: str | None, limit: int | None) -> list[Select]:
        """One SELECT of ids per enterprise (and per number reading) walking ``driver``'s index."""
        terms = self._terms(driver)
        ordered = self._ordered(driver)  # the index itself yields ids in order
        id_col = Invoice.id if ordered else unindexed(Invoice.id)
        if driver == "seller" and self.seller_ordered:
            # (enterprise_id, seller_name, id): each branch reads one seller's ids in order.
            scopes = [(eid, Invoice.enterprise_id == eid) for eid in self.ids]
            alts = [Invoice.seller_name == name for name in self.names]
        else:
            if driver in PER_ENTERPRISE and len(self.ids) <= MAX_BRANCHES:
                scopes = [(eid, Invoice.enterprise_id == eid) for eid in self.ids]
            elif driver in PER_ENTERPRISE and driver != "id":
                scopes = [(None, Invoice.enterprise_id.in_(self.ids))]
            else:
                # A global index, or (deployment-wide ops over very many enterprises) the
                # table itself walked newest first.
                scopes = [(None, unindexed(Invoice.enterprise_id).in_(self.ids))]
            alts = [a.condition(indexed=True) for a in self.alts] if driver == "number" else [None]
        out = []
        for eid, scope in scopes:
            window = self._window(eid) if ordered else []
            if driver == "verify":  # the branch's own enterprise's failed results
                window = [*window, self._failed_verification(indexed=True, enterprise_id=eid)]
            for alt in alts:
                stmt = select(Invoice.id).where(scope, *terms, *window, *cursor)
                if alt is not None:
                    stmt = stmt.where(alt)
                if order:
                    stmt = stmt.order_by(id_col.desc() if order == "desc" else id_col.asc())
                if limit:
                    stmt = stmt.limit(limit)
                out.append(stmt)
        return out

    def _resolve_windows(self) -> None:
        """The lowest and highest id dated inside the range, per enterprise (exact, not a guess).

        For a wide range in the past.  The (enterprise_id, date, id) index gives each
        day's lowest and highest id in one seek, and a recursive CTE steps through the
        range's days, so the bounds cost two seeks per day however many invoices the
        range holds.  Walking ids between them finds the range's newest invoices at
        once instead of stepping over everything dated after it.  One statement.
        """
        f = self.f
        lower = [Invoice.date >= f.date_from] if f.date_from else []
        columns = []
        for eid in self.ids:
            days = (select(func.max(Invoice.date).label("d"))
                    .where(Invoice.enterprise_id == eid, *lower, Invoice.date <= f.date_to)
                    .cte(f"range_days_{eid}", recursive=True))
            earlier = (select(func.max(Invoice.date))
                       .where(Invoice.enterprise_id == eid, *lower, Invoice.date < days.c.d)
                       .correlate(days).scalar_subquery())
            days = days.union_all(select(earlier).where(days.c.d.is_not(None)))
            for edge, label in ((func.min, "lo"), (func.max, "hi")):
                per_day = (select(edge(Invoice.id)).where(Invoice.enterprise_id == eid, Invoice.date == days.c.d)
                           .correlate(days).scalar_subquery())
                columns.append(select(edge(per_day)).where(days.c.d.is_not(None)).scalar_subquery()
                               .label(f"{label}_{eid}"))
        row = db.session.execute(select(*columns)).one()._mapping
        self.windows = {eid: (row[f"lo_{eid}"], row[f"hi_{eid}"]) for eid in self.ids}

    def _window(self, eid: int | None) -> list:
        """Terms keeping a branch inside its enterprise's date window (nothing dated there: no rows)."""
        if eid is None or eid not in self.windows:
            return []
        lo, hi = self.windows[eid]
        if lo is None:
            return [false()]
        return [Invoice.id >= lo, Invoice.id <= hi]

    def _ordered(self, driver: str) -> bool:
        """True when ``driver``'s branches read ids in order (an equality, then the id)."""
        return driver in ("id", "dup") or (driver == "seller" and self.seller_ordered)

    def _cursor(self, driver: str, op: str, value: int) -> list:
        # Only an id-ordered index may use the cursor as a range; for the others it
        # would tempt SQLite into walking the whole table by rowid.
        column = Invoice.id if self._ordered(driver) else unindexed(Invoice.id)
        return [column < value] if op == "<" else [column > value]

    def page(self, after: int | None = None, before: int | None = None, per_page: int | None = None) -> Page:
        """One page newest (highest id) first; the bill number is joined in, so it is one statement."""
        per_page = per_page or PER_PAGE
        if self.empty:
            return Page([], None, None, total=Total(0, COUNT_CAP))
        if before is not None:
            branches = self._branches(self.driver, self._cursor(self.driver, ">", before), "asc", per_page + 1)
        else:
            cursor = self._cursor(self.driver, "<", after) if after is not None else []
            branches = self._branches(self.driver, cursor, "desc", per_page + 1)
        if len(branches) == 1:
            ids = branches[0]
        else:
            # SQLite allows ORDER BY/LIMIT only on a whole compound: wrap each branch.
            merged = union_all(*(select(b.subquery().c.id) for b in branches)).subquery()
            ids = select(merged.c.id).order_by(merged.c.id.asc() if before is not None else merged.c.id.desc())
            ids = ids.limit(per_page + 1)
        stmt = select(*COLUMNS).join(Bill, Bill.id == Invoice.bill_id).where(Invoice.id.in_(ids)).order_by(Invoice.id.desc())
        rows = list(db.session.execute(stmt))
        more = len(rows) > per_page
        if before is not None:
            rows = rows[-per_page:] if more else rows
            return Page(rows, rows[-1].id if rows else None, rows[0].id if (rows and more) else None)
        rows = rows[:per_page]
        first_page = after is None
        return Page(rows, rows[-1].id if (rows and more) else None, rows[0].id if (rows and not first_page) else None,
                    total=Total(len(rows), COUNT_CAP) if (first_page and not more) else None)

    def _count_driver(self) -> str:
        """The index the count walks: the page's, unless that is the id index and a better one exists."""
        if self.driver != "id":
            return self.driver
        families = [n for n in ("date", "total", "number") if n in self.probes]
        if len(families) == 1 and not (self.f.type or self.f.seller or self.f.dup or self.f.vf):
            return families[0]  # a lone date, amount or number filter is counted from its index alone
        for name in ("seller", "date"):  # fewer rows to read than every invoice of the enterprises
            if name in self.probes:
                return name
        return "id"

    def _count(self, cap: int) -> int:
        driver = self._count_driver()
        branches = self._branches(driver, [], "desc" if self._ordered(driver) else None, cap + 1)
        if len(branches) == 1:
            limited = select(literal_column("1")).select_from(branches[0].subquery())
        else:
            limited = union_all(*(select(literal_column("1")).select_from(b.subquery()) for b in branches))
            limited = select(literal_column("1")).select_from(limited.subquery()).limit(cap + 1)
        stmt = select(func.count()).select_from(limited.subquery())
        started = time.perf_counter()
        n = db.session.scalar(stmt)
        self.count_ms = (time.perf_counter() - started) * 1000
        return n

    def count(self, budget_ms: float | None = COUNT_BUDGET_MS) -> Total | None:
        """How many invoices match, bounded: exact up to SMALL_CAP, then up to COUNT_CAP if time allows.

        The small count is cheap and settles most searches; the large one runs only
        when there is more, within what is left of ``budget_ms``.  None when not even
        the small count finished in time.
        """
        if self.empty:
            return Total(0, COUNT_CAP)
        start = time.perf_counter()
        try:
            with time_limit(budget_ms):
                small = self._count(SMALL_CAP)
        except CountTimeout:
            return None
        if small <= SMALL_CAP:
            return Total(small, SMALL_CAP)
        if budget_ms:
            left = budget_ms - (time.perf_counter() - start) * 1000
            # Counting ten times as far takes up to ten times as long: do not start a
            # count that would only be abandoned.
            if self.count_ms * COUNT_CAP / SMALL_CAP > left:
                return Total(small, SMALL_CAP)
        else:
            left = None
        try:
            with time_limit(left):
                return Total(self._count(COUNT_CAP), COUNT_CAP)
        except CountTimeout:
            return Total(small, SMALL_CAP)  # shown as "SMALL_CAP+"


@contextmanager
def time_limit(ms: float | None):
    """Abandon a statement run inside once ``ms`` milliseconds have passed: raise CountTimeout.

    SQLite calls the progress handler every few thousand VM steps; a non-zero answer
    interrupts the statement (a read only: nothing to roll back).  PostgreSQL runs it
    under ``SET LOCAL statement_timeout`` in a savepoint (see _pg_time_limit).  Other
    databases run without the limit.
    """
    conn = db.session.connection()
    if ms and conn.dialect.name == "postgresql":
        with _pg_time_limit(conn, ms):
            yield
        return
    raw = conn.connection.dbapi_connection
    if not ms or not isinstance(raw, sqlite3.Connection):
        yield
        return
    deadline = time.perf_counter() + ms / 1000
    expired = []

    def check() -> int:
        if time.perf_counter() > deadline:
            expired.append(True)
            return 1
        return 0

    raw.set_progress_handler(check, 20_000)
    try:
        yield
    except OperationalError:
        if expired:
            raise CountTimeout() from None
        raise
    finally:
        raw.set_progress_handler(None, 0)


@contextmanager
def _pg_time_limit(conn, ms: float):
    """PostgreSQL's form of time_limit: a savepoint with ``SET LOCAL statement_timeout = ms``.

    Rolling back to the savepoint afterwards (the statements inside only read) undoes both a
    cancelled statement's abort and the SET LOCAL, so the rest of the request's transaction runs
    as before. Two round trips in all, each with two statements.
    """
    # 0 would mean "no limit": a budget under a millisecond is one millisecond.
    conn.exec_driver_sql(f"SAVEPOINT portal_time_limit; SET LOCAL statement_timeout = {max(1, math.ceil(ms))}")
    try:
        yield
    except OperationalError as exc:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT portal_time_limit; RELEASE SAVEPOINT portal_time_limit")
        if getattr(exc.orig, "sqlstate", None) == "57014":  # query_canceled
            raise CountTimeout() from None
        raise
    except BaseException:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT portal_time_limit; RELEASE SAVEPOINT portal_time_limit")
        raise
    conn.exec_driver_sql("ROLLBACK TO SAVEPOINT portal_time_limit; RELEASE SAVEPOINT portal_time_limit")
