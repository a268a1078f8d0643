"""The audit log page (ops only)."""
from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import select

from ...models import AuditEvent
from ...web.access import roles_required, scope, visible_enterprise_ids
from ...web.lists import paginate
from ...web.htmx import render
from . import present
from .present import ACTIONS

bp = Blueprint("audit", __name__)


@bp.get("/")
@roles_required("ops")
def index():
    """Newest events first; filter by action and object type."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc())
    if visible_enterprise_ids() is not None:
        stmt = scope(stmt, AuditEvent.enterprise_id)
    action = request.args.get("action", "")
    obj = request.args.get("object_type", "")
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if obj:
        stmt = stmt.where(AuditEvent.object_type == obj)
    page = paginate(stmt, 50)
    return render("audit/index.html", "audit/_rows.html", page=page, action=action, object_type=obj, ACTIONS=ACTIONS,
                  OBJECT_TYPES=present.OBJECT_TYPES, names=present.Page(page.items), present=present)
