"""The invoice list (发票): every invoice recognised on the user's enterprises' images, read-only."""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, abort, current_app, request, url_for
from flask_login import login_required

from ... import verification
from ...web.access import visible_enterprises
from ...web.htmx import render, wants_fragment
from ...search import invoices as service

bp = Blueprint("invoices", __name__)


@bp.get("/")
@login_required
def index():
    """Newest first, keyset-paged (``after``/``before``), filtered by the query arguments.

    A targeted htmx request (the active search, the pager) gets only ``#invoice-results``.
    """
    filters = service.parse_filters(request.args)
    after, before, cursor_error = service.parse_cursor(request.args)
    enterprises = visible_enterprises()
    ids = [e.id for e in enterprises]
    if filters.enterprise_id is not None:
        if filters.enterprise_id not in ids:
            abort(404)  # another tenant's id: no hint that it exists
        ids = [filters.enterprise_id]
    errors = list(filters.errors.values()) + ([cursor_error] if cursor_error else [])
    search = service.Search(filters, ids)
    result = search.page(after=after, before=before)
    total = result.total if result.total is not None else search.count(
        budget_ms=current_app.config["INVOICES_COUNT_BUDGET_MS"])
    verification.prime(result.rows)  # the 查验 column: one query for the page
    return render("invoices/index.html", "invoices/_results.html",
                  filters=filters, errors=errors, enterprises=enterprises, page=result, total=total,
                  type_label=service.type_label, money=service.money, bill_href=_bill_href(len(enterprises) > 1),
                  type_choices=service.type_choices(filters.type),
                  verifying=any(e.verify_invoices for e in enterprises),
                  oob_errors=wants_fragment())


def _bill_href(several: bool):
    """``row -> URL`` of the row's bill page, naming the enterprise when the user sees several.

    The prefix is built once: url_for per row would be a tenth of the page's time.
    """
    prefix = url_for("bills.show", bill_no="-")[:-1]

    def href(row) -> str:
        url = prefix + quote(row.bill_no, safe="")
        return f"{url}?e={row.enterprise_id}" if several else url

    return href
