"""Business-system docking (对接业务系统): Galaxy connections."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select

from ... import audit
from ...crypto import mask
from ...errors import fail
from ...extensions import db
from ...forms import choices as to_choices
from ...models import DockingConnection, Enterprise
from ...web.access import roles_required, visible_enterprise_ids, visible_enterprises
from ...web.htmx import is_htmx, render, toast
from . import service
from .forms import DockingForm

bp = Blueprint("docking", __name__)


def _visible_stmt():
    stmt = select(DockingConnection).order_by(DockingConnection.name)
    ids = visible_enterprise_ids()
    if ids is not None:
        used = select(Enterprise.docking_id).where(Enterprise.id.in_(ids))
        stmt = stmt.where(or_(DockingConnection.enterprise_id.in_(ids), DockingConnection.id.in_(used)))
    return stmt


def _connection_or_404(conn_id: int) -> DockingConnection:
    conn = db.session.scalar(_visible_stmt().where(DockingConnection.id == conn_id))
    if conn is None:
        abort(404)
    return conn


def _manageable_or_403(conn: DockingConnection) -> DockingConnection:
    """Refuse (403, nothing changed) a shared connection the current ops may only look at."""
    if conn.id not in service.manageable_ids(current_user, [conn]):
        fail(403, service.NOT_MANAGEABLE)
    return conn


def _form(conn: DockingConnection | None = None, formdata=None) -> DockingForm:
    form = DockingForm(formdata=formdata, obj=None if formdata else conn)
    form.editing = conn is not None
    options = [(e.id, f"{e.name}（{e.tax_no}）") for e in visible_enterprises()]
    if current_user.is_global:
        options = [(0, "（不限企业）")] + options
    form.enterprise_id.choices = to_choices(options)
    if conn is not None:
        form.password.masked_value = mask(conn.password_enc)
        form.password_reusable = lambda f: service.may_reuse_password(conn, f.base_url.data, f.acct_id.data, f.username.data)
        form.retype_message = service.RETYPE_PASSWORD
        if formdata is None:
            form.enterprise_id.data = conn.enterprise_id or 0
    return form


def _users_of(conn_ids: list[int]) -> dict[int, list[str]]:
    """Names of the enterprises that use each connection (one query); a bound ops reads only
    its own enterprises' names, the others are summed up as 其他企业."""
    out: dict[int, list[str]] = {}
    visible = visible_enterprise_ids()
    if conn_ids:
        stmt = select(Enterprise.docking_id, Enterprise.id, Enterprise.name).where(Enterprise.docking_id.in_(conn_ids))
        for did, eid, name in db.session.execute(stmt.order_by(Enterprise.name)):
            names = out.setdefault(did, [])
            if visible is None or eid in visible:
                names.append(name)
            elif "其他企业" not in names:
                names.append("其他企业")
    return out


@bp.get("/")
@roles_required("ops")
def index():
    """The connections the user may manage, plus the add form."""
    conns = list(db.session.scalars(_visible_stmt()))
    return render("docking/index.html", conns=conns, users=_users_of([c.id for c in conns]), mask=mask,
                  manageable=service.manageable_ids(current_user, conns), form=_form(), action=url_for(".create"))


@bp.post("/datacenters")
@roles_required("ops")
def datacenters():
    """List Galaxy's data centres at the given prefix address so the user picks the Id."""
    base_url = (request.form.get("base_url") or "").strip()
    form = _form(formdata=request.form)
    # The field alone skips the form's inline check; the scheme rule must hold here as on save.
    if not form.base_url.validate(form, extra_validators=[DockingForm.validate_base_url]):
        return render("docking/_acct_field.html", form=form, centres=[], error=form.base_url.errors[0])
    centres, error = service.data_centers(base_url)
    if not error and not centres:
        error = "该星空没有返回任何数据中心。"
    return render("docking/_acct_field.html", form=form, centres=centres, error=error)


def _run_test(form, conn: DockingConnection | None):
    password = service.effective_password(form, conn)
    result = service.test_connection(form.base_url.data, form.acct_id.data, form.username.data, password)
    audit.record("test", "docking", conn.id if conn else None, enterprise_id=form.enterprise_id.data or None,
                 summary=f"测试星空连接 {form.base_url.data}（{form.acct_id.data}）：{'成功' if result.ok else '失败'}",
                 after={"ok": result.ok, "message": result.message, "username": form.username.data})
    db.session.commit()
    return result


@bp.post("/test")
@roles_required("ops")
def test():
    """Test a connection from the form's fields; the outcome is a result, not an HTTP error."""
    conn_id = request.form.get("connection_id", type=int)
    conn = _manageable_or_403(_connection_or_404(conn_id)) if conn_id else None
    form = _form(conn, formdata=request.form)
    if not form.validate():
        return render("docking/_test_result.html", ok=False, message="；".join(
            f"{form[name].label.text}：{errs[0]}" for name, errs in form.errors.items()))
    result = _run_test(form, conn)
    return render("docking/_test_result.html", ok=result.ok, message=result.message)


def _save(conn: DockingConnection | None):
    form = _form(conn, formdata=request.form)
    action = url_for(".update", conn_id=conn.id) if conn else url_for(".create")
    page = "docking/edit.html" if conn else "docking/new.html"
    # A refused save keeps the data-centre list the user chose from (no second call to Galaxy).
    centres = service.centres_from_form(request.form.get("acct_choices"))
    if not form.validate():
        return render(page, "docking/_form.html", status=422, form=form, conn=conn, action=action, centres=centres)
    result = _run_test(form, conn)
    if not result.ok:
        return render(page, "docking/_form.html", status=422, form=form, conn=conn, action=action, centres=centres,
                      error=f"连接测试未通过，未保存：{result.message}")
    conn = service.save(form, conn, result.acct_name)
    if is_htmx():
        return render("_empty.html", headers={**toast(f"已保存对接业务系统：{conn.name}"), "HX-Redirect": url_for(".index")})
    return redirect(url_for(".index"), code=303)


@bp.get("/new")
@roles_required("ops")
def new():
    """The add form as a page of its own."""
    return render("docking/new.html", "docking/_form.html", form=_form(), conn=None, action=url_for(".create"))


@bp.post("/")
@roles_required("ops")
def create():
    """Save a new connection; it must pass the connection test first (422 otherwise)."""
    return _save(None)


@bp.get("/<int:conn_id>/edit")
@roles_required("ops")
def edit(conn_id: int):
    """Edit form; the password is masked and kept when the mask comes back."""
    conn = _manageable_or_403(_connection_or_404(conn_id))
    return render("docking/edit.html", "docking/_form.html", form=_form(conn), conn=conn,
                  action=url_for(".update", conn_id=conn.id))


@bp.post("/<int:conn_id>/edit")
@roles_required("ops")
def update(conn_id: int):
    """Save an edit after a passing test."""
    return _save(_manageable_or_403(_connection_or_404(conn_id)))


@bp.post("/<int:conn_id>/delete")
@roles_required("ops")
def delete(conn_id: int):
    """Delete a connection no enterprise uses any more."""
    conn = _manageable_or_403(_connection_or_404(conn_id))
    in_use = db.session.scalar(select(func.count()).select_from(Enterprise).where(Enterprise.docking_id == conn.id))
    if in_use:
        msg = f"仍有 {in_use} 个企业授权使用该连接，请先在企业授权中改选后再删除。"
        return render("_error_fragment.html", message=msg, status=409, headers=toast(msg, "error"))
    audit.record("delete", "docking", conn.id, enterprise_id=conn.enterprise_id,
                 summary=f"删除对接业务系统 {conn.name}", before=service.snapshot(conn))
    db.session.delete(conn)
    db.session.commit()
    if is_htmx():
        return render("_empty.html", headers=toast("已删除"))
    return redirect(url_for(".index"), code=303)
