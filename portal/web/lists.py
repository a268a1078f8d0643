"""List pages: one clamped page of a query, and the ``?sort=&dir=`` order."""
from __future__ import annotations

from flask import request
from sqlalchemy import Select

from ..extensions import db

# Past this a page number only names "the last page": it keeps LIMIT/OFFSET within 64 bits.
_PAGE_CAP = 1_000_000


def paginate(stmt: Select, per_page: int):
    """One page of ``stmt`` for the request's ``?page``, clamped to 1..last page.

    A number that is not a positive integer means the first page; one past the end (however
    large) means the last page, so the pager never says 第 999 / 4 页 and the database never
    sees an offset it cannot hold.
    """
    raw = request.args.get("page", "").strip()
    if raw.isascii() and raw.isdigit():
        # Thousands of digits would not even parse (int's digit limit): they too mean "the end".
        wanted = min(int(raw), _PAGE_CAP) if len(raw) <= 9 else _PAGE_CAP
    else:
        wanted = 1
    page = db.paginate(stmt, page=max(wanted, 1), per_page=per_page, error_out=False)
    if page.page > max(page.pages, 1):
        page = db.paginate(stmt, page=page.pages, per_page=per_page, error_out=False)
    return page


def sort_order(columns: dict, default: str, default_desc: bool = True, tiebreak=None):
    """``(key, desc, order_by)`` for the request's ``?sort=<key>&dir=asc|desc``.

    ``columns`` maps the keys a list offers to their columns; an unknown key means ``default``.
    ``tiebreak`` (usually the id) follows in the same direction, so equal values keep a stable
    order from page to page.
    """
    key = request.args.get("sort", "")
    if key not in columns:
        key, desc = default, default_desc
    else:
        direction = request.args.get("dir", "")
        desc = direction == "desc" if direction in ("asc", "desc") else default_desc
    column = columns[key]
    order = [column.desc() if desc else column.asc()]
    if getattr(getattr(column, "expression", column), "nullable", False):
        # Empty values sort as SQLite sorts them, on PostgreSQL too: first going up, last going down
        # (only on nullable columns: NULLS LAST on the id would keep PostgreSQL off its index).
        order = [order[0].nulls_last() if desc else order[0].nulls_first()]
    if tiebreak is not None and tiebreak is not column:
        order.append(tiebreak.desc() if desc else tiebreak.asc())
    return key, desc, order
