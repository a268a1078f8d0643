"""User management (ops): add users, set role and enterprises, reset passwords, disable."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy import delete, select

from ... import audit
from ...errors import UserError, fail
from ...extensions import db
from ...forms import choices
from ...models import Enterprise, LoginFailure, ScanPoint, User, user_enterprises
from ...web.access import roles_required, visible_enterprise_ids, visible_enterprises
from ...web.lists import sort_order
from ...web.htmx import is_htmx, render, toast
from ..auth.routes import _count_attempt as count_login_attempt
from . import service
from .forms import OwnPasswordForm, PasswordResetForm, UserEditForm, UserForm

bp = Blueprint("users", __name__)


# Columns the user list sorts by (the user name breaks ties; by name A→Z is the default).
SORT_COLUMNS = {"username": User.username, "display_name": User.display_name, "role": User.role,
                "active": User.active, "created": User.created_at}


def _users(order=None):
    stmt = select(User).order_by(*(order or [User.username]))
    ids = visible_enterprise_ids()
    if ids is not None:
        stmt = stmt.where(User.id.in_(select(user_enterprises.c.user_id).where(user_enterprises.c.enterprise_id.in_(ids))))
    return list(db.session.scalars(stmt))


def _list_context() -> dict:
    """The user list plus what the page may show of each: only the viewer's own enterprises and
    scan points are named, and users bound beyond them are listed read-only (no edit link)."""
    sort, desc, order = sort_order(SORT_COLUMNS, "username", default_desc=False, tiebreak=User.username)
    users = _users(order)
    visible = visible_enterprise_ids()
    return {"users": users, "visible": None if visible is None else set(visible),
            "manageable": {u.id for u in users if service.manageable_by(current_user, u)}, "sort": sort, "desc": desc}


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    ids = visible_enterprise_ids()
    if user is None or (ids is not None and (user.is_global or not {e.id for e in user.enterprises} & set(ids))):
        abort(404)
    return user


def _manageable_or_403(user: User) -> User:
    """Refuse (403, nothing changed) a user the current ops may see but not manage."""
    if not service.manageable_by(current_user, user):
        fail(403, service.NOT_MANAGEABLE)
    return user


def _choices(form) -> None:
    ents = visible_enterprises()
    form.enterprises.choices = choices((e.id, f"{e.name}（{e.tax_no}）") for e in ents)
    ids = [e.id for e in ents]
    points = db.session.scalars(select(ScanPoint).where(ScanPoint.enterprise_id.in_(ids)).order_by(ScanPoint.code)) if ids else []
    form.scan_points.choices = choices((p.id, f"{p.code} {p.name}（{p.enterprise.name}）") for p in points)


def _picked(form):
    ents = list(db.session.scalars(select(Enterprise).where(Enterprise.id.in_(form.enterprises.data or []))))
    points = list(db.session.scalars(select(ScanPoint).where(ScanPoint.id.in_(form.scan_points.data or []))))
    return ents, points


@bp.get("/")
@roles_required("ops")
def index():
    """Users sharing an enterprise with the current user (all for deployment-wide ops)."""
    form = UserForm()
    _choices(form)
    return render("users/index.html", **_list_context(), form=form)


@bp.post("/")
@roles_required("ops")
def create():
    """Add a user; bound ops users must bind new users to their enterprises."""
    form = UserForm(request.form)
    _choices(form)
    if form.validate():
        ents, points = _picked(form)
        if not ents and not current_user.is_global:
            form.enterprises.errors.append("请至少选择一个企业")
        else:
            try:
                user = service.create_user(form.username.data, form.role.data, form.password.data,
                                           display_name=form.display_name.data or "", enterprises=ents, scan_points=points)
            except UserError as exc:
                (form.username if exc.field == "username" else form.enterprises).errors.append(exc.message)
            else:
                db.session.commit()
                if is_htmx():
                    return render("_empty.html", headers={**toast(f"已新增用户 {user.username}"), "HX-Redirect": url_for(".index")})
                return redirect(url_for(".index"), code=303)
    return render("users/index.html", "users/_form.html", status=422, **_list_context(), form=form)


@bp.route("/<int:user_id>/edit", methods=["GET", "POST"])
@roles_required("ops")
def edit(user_id: int):
    """Change role, enterprises, scan points, enabled state."""
    user = _manageable_or_403(_user_or_404(user_id))
    form = UserEditForm(request.form if request.method == "POST" else None, obj=None if request.method == "POST" else user)
    _choices(form)
    if request.method == "GET":
        form.enterprises.data = [e.id for e in user.enterprises]
        form.scan_points.data = [p.id for p in user.scan_points]
    pw_form = PasswordResetForm()
    if request.method == "POST" and form.validate():
        # The user lies wholly inside the editor's enterprises (checked above) and the form offers
        # only those, so the bindings picked here are the user's whole set.
        ents, points = _picked(form)
        if user.id == current_user.id and (form.role.data != user.role or not form.active.data):
            form.role.errors.append("不能修改自己的角色或停用自己")
        elif form.role.data != "ops" and not ents:
            form.enterprises.errors.append("扫描岗和查看用户必须绑定至少一个企业")
        elif not ents and not current_user.is_global:
            form.enterprises.errors.append("请至少选择一个企业")
        else:
            before = service.snapshot(user)
            user.display_name = form.display_name.data or ""
            user.role = form.role.data
            user.enterprises = ents
            user.scan_points = [p for p in points if p.enterprise_id in {e.id for e in user.enterprises}]
            if user.active and not form.active.data:
                user.session_version += 1  # a disabled account is logged out everywhere
            user.active = form.active.data
            audit.record("update", "user", user.id, summary=f"修改用户 {user.username}", before=before, after=service.snapshot(user))
            db.session.commit()
            return redirect(url_for(".index"), code=303)
        return render("users/edit.html", status=422, user=user, form=form, pw_form=pw_form)
    status = 422 if request.method == "POST" else 200
    return render("users/edit.html", status=status, user=user, form=form, pw_form=pw_form)


def _edit_form_for(user: User) -> UserEditForm:
    form = UserEditForm(formdata=None, obj=user)
    _choices(form)
    form.enterprises.data = [e.id for e in user.enterprises]
    form.scan_points.data = [p.id for p in user.scan_points]
    return form


@bp.post("/<int:user_id>/password")
@roles_required("ops")
def reset_password(user_id: int):
    """Reset a user's password; their open sessions end."""
    user = _manageable_or_403(_user_or_404(user_id))
    pw_form = PasswordResetForm()
    if not pw_form.validate():
        if not is_htmx():
            return render("users/edit.html", status=422, user=user, form=_edit_form_for(user), pw_form=pw_form)
        return render("users/_password.html", status=422, user=user, pw_form=pw_form)
    service.reset_password(user, pw_form.password.data)
    db.session.commit()
    if not is_htmx():
        from flask import flash

        flash(f"已重置 {user.username} 的密码。", "info")
        return redirect(url_for(".edit", user_id=user.id), code=303)
    return render("users/_password.html", user=user, pw_form=PasswordResetForm(formdata=None), done=True,
                  headers=toast(f"已重置 {user.username} 的密码"))


@bp.route("/me/password", methods=["GET", "POST"])
@login_required
def own_password():
    """修改我的密码, for every role: the current password, the same rules as a reset; the
    user's other sessions end, this one stays."""
    form = OwnPasswordForm()
    if request.method == "POST" and form.validate():
        # Guesses at the current password count against the same per-account cap as the login
        # form: a borrowed session must not become an unthrottled password oracle.
        key = f"user:{current_user.username.lower()}"
        within = count_login_attempt(key, current_app.config["LOGIN_THROTTLE_LIMIT"])
        db.session.commit()
        if not within:
            minutes = max(1, -(-current_app.config["LOGIN_THROTTLE_WINDOW"] // 60))
            form.current.errors.append(f"密码错误次数过多，请 {minutes} 分钟后再试。")
            return render("users/own_password.html", status=429, form=form)
        try:
            service.change_own_password(current_user, form.current.data, form.password.data, session.get("sid"))
        except UserError as exc:
            target = form.current if exc.field == "current" else form.password
            target.errors.append(exc.message)
        else:
            db.session.execute(delete(LoginFailure).where(LoginFailure.key == key))
            db.session.commit()
            flash("密码已修改；您在其他设备或浏览器上的登录已退出。", "success")
            return redirect(url_for(".own_password"), code=303)
    status = 422 if request.method == "POST" else 200
    return render("users/own_password.html", status=status, form=form)
