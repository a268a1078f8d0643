"""The audit log page (ops only)."""
from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import select

from ...models import AuditEvent
from ...views import paginate, render, roles_required, scope, visible_enterprise_ids

bp = Blueprint("audit", __name__)

ACTIONS = {"create": "新增", "update": "修改", "delete": "删除", "test": "测试", "login": "登录",
           "reset_password": "重置密码", "push": "推送", "upload": "上传", "submit": "提交", "return": "退回",
           "confirm": "人工确认", "correct": "修正", "retry": "重试"}


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
    return render("audit/index.html", "audit/_rows.html", page=page, action=action, object_type=obj, ACTIONS=ACTIONS)
