"""Users: create, bind to enterprises and scan points, reset, disable."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from ... import audit
from ...errors import UserError
from ...extensions import db
from ...models import Enterprise, Role, ScanPoint, User, WebSession


#: Shown when a bound ops tries to change a user who reaches beyond the editor's enterprises.
NOT_MANAGEABLE = "该用户还绑定了您管理范围以外的企业，只能查看；请由全部企业的运维或同时管理这些企业的运维修改。"


def hash_password(password: str) -> str:
    """Hash with scrypt (werkzeug's default parameters unless configured), salted per user."""
    return generate_password_hash(password, method=current_app.config.get("PASSWORD_HASH_METHOD", "scrypt"))


def snapshot(user: User) -> dict:
    """Fields for the audit log."""
    return {
        "username": user.username,
        "role": user.role,
        "active": user.active,
        "enterprises": sorted(e.tax_no for e in user.enterprises),
        "scan_points": sorted(p.code for p in user.scan_points),
    }


def manageable_by(editor: User, target: User) -> bool:
    """True when ``editor`` may change ``target`` (role, bindings, password, enabled state).

    A deployment-wide ops manages everyone. A bound ops manages only users whose every binding
    lies within the editor's own enterprises: changing a user bound to A and B would hand the
    editor of A the keys to B (DESIGN §10). Deployment-wide accounts are out of a bound ops' reach.
    """
    if editor.is_global:
        return True
    own = {e.id for e in editor.enterprises}
    theirs = {e.id for e in target.enterprises}
    return bool(theirs) and theirs <= own


def create_user(username: str, role: str, password: str, *, display_name: str = "",
                enterprises: list[Enterprise] = (), scan_points: list[ScanPoint] = (), actor: str | None = None) -> User:
    """Create a user; raises UserError (naming the ``field`` at fault) on bad input."""
    if role not in tuple(Role):
        raise UserError(f"未知角色：{role}", field="role")
    # The CLI reaches this without the web form's validators; the columns hold 64 characters.
    if len(username) > 64:
        raise UserError("用户名不能超过 64 个字符", field="username")
    if len(display_name or "") > 64:
        raise UserError("姓名不能超过 64 个字符", field="display_name")
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise UserError(f"用户名 {username} 已存在", field="username")
    if role != "ops" and not enterprises:
        raise UserError("扫描岗和查看用户必须绑定至少一个企业", field="enterprises")
    user = User(username=username, role=role, display_name=display_name, password_hash=hash_password(password))
    user.enterprises = list(enterprises)
    user.scan_points = [p for p in scan_points if p.enterprise_id in {e.id for e in enterprises}]
    db.session.add(user)
    db.session.flush()
    audit.record("create", "user", user.id, summary=f"新增用户 {username}（{role}）", after=snapshot(user), actor=actor)
    return user


def reset_password(user: User, password: str) -> None:
    """Set a new password and end the user's sessions."""
    user.password_hash = hash_password(password)
    user.session_version += 1
    audit.record("reset_password", "user", user.id, summary=f"重置用户 {user.username} 的密码")


def change_own_password(user: User, current: str, new: str, keep_session: str | None) -> None:
    """Set ``user``'s password after checking the current one; every other session of theirs ends.

    Raises UserError (field ``current`` or ``password``) when ``current`` is wrong or ``new`` equals
    it; nothing is changed then.
    The caller's own session (``keep_session``) stays, so the person who changed it keeps working.
    """
    if not check_password_hash(user.password_hash, current):
        raise UserError("当前密码不正确", field="current")
    if current == new:
        raise UserError("新密码不能与当前密码相同", field="password")
    user.password_hash = hash_password(new)
    db.session.execute(delete(WebSession).where(WebSession.user_id == user.id, WebSession.id != (keep_session or "")))
    audit.record("change_password", "user", user.id, summary=f"用户 {user.username} 修改了自己的密码")
