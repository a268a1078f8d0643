"""Enterprise authorizations (企业授权): list, add, edit, delete, hand-over block."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, or_, select

from ... import audit, verification
from ...crypto import mask
from ...errors import fail
from ...extensions import db
from ...forms import choices
from ...models import Bill, DockingConnection, Enterprise
from ...web.access import enterprise_or_404, roles_required, scope
from ...web.htmx import is_htmx, render, toast
from ..docking import service as docking_service
from . import service
from .forms import EnterpriseEditForm, EnterpriseForm

bp = Blueprint("enterprises", __name__)


def _rows(q: str):
    stmt = scope(select(Enterprise), Enterprise.id).order_by(Enterprise.name)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Enterprise.name.ilike(like), Enterprise.tax_no.ilike(like), Enterprise.client_id.ilike(like)))
    return list(db.session.scalars(stmt))


def _docking_choices(current_id: int | None = None) -> list[tuple[int, str]]:
    """Connections the user may pick: all for deployment-wide ops; for a bound ops those lying
    wholly inside its enterprises, plus the one the enterprise already uses (kept, not spread)."""
    stmt = select(DockingConnection).order_by(DockingConnection.name)
    if not current_user.is_global:
        ids = [e.id for e in current_user.enterprises]
        used = select(Enterprise.docking_id).where(Enterprise.id.in_(ids))
        stmt = stmt.where(or_(DockingConnection.enterprise_id.in_(ids), DockingConnection.id.in_(used)))
    conns = list(db.session.scalars(stmt))
    if not current_user.is_global:
        allowed = docking_service.manageable_ids(current_user, conns)
        conns = [d for d in conns if d.id in allowed or d.id == current_id]
    return [(0, "（不对接）")] + [(d.id, f"{d.name}（{d.base_url}）") for d in conns]


@bp.get("/")
@login_required
def index():
    """All authorizations the user may see; ``q`` filters (htmx active search)."""
    q = request.args.get("q", "").strip()
    return render("enterprises/index.html", "enterprises/_rows.html", enterprises=_rows(q), q=q, mask=mask,
                  deployment=service.deployment_info())


@bp.get("/new")
@roles_required("ops")
def new():
    """The add form (a fragment when htmx asks for it)."""
    return render("enterprises/new.html", "enterprises/_form.html", form=_add_form(), action=url_for(".create"))


def _add_form() -> EnterpriseForm:
    """The add form, offering only the docking connections this user may attach."""
    form = EnterpriseForm()
    form.docking_id.choices = choices(_docking_choices())
    return form


def _form_failed(form, page: str, action: str, error: str | None = None, **ctx):
    return render(page, "enterprises/_form.html", status=422, form=form, action=action, error=error, **ctx)


@bp.post("/")
@roles_required("ops")
def create():
    """Validate, check the credentials with the invoice cloud, then store; 422 with the form otherwise."""
    form = _add_form()
    action = url_for(".create")
    if not form.validate():
        return _form_failed(form, "enterprises/new.html", action)
    dupes = service.duplicate_error(form.tax_no.data, form.client_id.data)
    if dupes:
        for name, msg in dupes.items():
            form[name].errors.append(msg)
        return _form_failed(form, "enterprises/new.html", action)
    refusal = service.check_credentials(form.client_id.data, form.client_secret.data)
    if refusal:
        return _form_failed(form, "enterprises/new.html", action, error=refusal)
    ent = service.create(form, current_user)
    if is_htmx():
        # The new row goes on top of the list; the form panel closes (out-of-band swap).
        headers = toast(f"已新增企业授权：{ent.name}")
        headers.update({"HX-Retarget": "#enterprise-rows", "HX-Reswap": "afterbegin"})
        return render("enterprises/_created.html", ent=ent, mask=mask, headers=headers)
    return redirect(url_for(".show", enterprise_id=ent.id), code=303)


@bp.get("/<int:enterprise_id>")
@login_required
def show(enterprise_id: int):
    """One authorization with its hand-over block and image mode."""
    ent = enterprise_or_404(enterprise_id)
    given_up = verification.given_up(ent.id) if ent.verify_invoices else 0
    return render("enterprises/show.html", ent=ent, mask=mask, deployment=service.deployment_info(),
                  verify_given_up=given_up)


@bp.post("/<int:enterprise_id>/verify-again")
@roles_required("ops")
def verify_again(enterprise_id: int):
    """Ask the invoice cloud again for the invoices left 未查验 after every retry (say, after its outage)."""
    ent = enterprise_or_404(enterprise_id)
    if not ent.verify_invoices:
        fail(409, "该企业未开启发票查验。")
    n = verification.retry_given_up(ent.id)
    if n:
        audit.record("verify_again", "enterprise", ent.id, enterprise_id=ent.id,
                     summary=f"重新查验 {ent.name} 多次查验无结果的发票 {n} 张", after={"invoices": n})
    db.session.commit()
    flash(f"已安排重新查验 {n} 张发票，后台任务稍后向发票云查验。" if n else "没有需要重新查验的发票。",
          "success" if n else "info")
    return redirect(url_for(".show", enterprise_id=ent.id), code=303)


def _edit_form(ent: Enterprise, formdata=None) -> EnterpriseEditForm:
    form = EnterpriseEditForm(formdata=formdata, obj=None if formdata else ent)
    form.docking_id.choices = choices(_docking_choices(ent.docking_id))
    if formdata is None:
        form.docking_id.data = ent.docking_id or 0
    form.client_secret.masked_value = mask(ent.client_secret_enc)
    form.encrypt_key.masked_value = mask(ent.encrypt_key_enc)
    return form


@bp.get("/<int:enterprise_id>/edit")
@roles_required("ops")
def edit(enterprise_id: int):
    """The edit form; secrets are shown masked and kept when the mask comes back."""
    ent = enterprise_or_404(enterprise_id)
    form = _edit_form(ent)
    return render("enterprises/edit.html", "enterprises/_form.html", form=form, ent=ent,
                  action=url_for(".update", enterprise_id=ent.id))


@bp.post("/<int:enterprise_id>/edit")
@roles_required("ops")
def update(enterprise_id: int):
    """Apply an edit; changed credentials are checked with the invoice cloud first."""
    ent = enterprise_or_404(enterprise_id)
    form = _edit_form(ent, request.form)
    action = url_for(".update", enterprise_id=ent.id)
    if not form.validate():
        return _form_failed(form, "enterprises/edit.html", action, ent=ent)
    dupes = service.duplicate_error(form.tax_no.data, form.client_id.data, exclude_id=ent.id)
    if dupes:
        for name, msg in dupes.items():
            form[name].errors.append(msg)
        return _form_failed(form, "enterprises/edit.html", action, ent=ent)
    secret, _key = service.secrets_from_form(form, ent)
    if form.client_id.data != ent.client_id or secret != service.decrypt(ent.client_secret_enc):
        refusal = service.check_credentials(form.client_id.data, secret)
        if refusal:
            return _form_failed(form, "enterprises/edit.html", action, ent=ent, error=refusal)
    service.update(ent, form)
    if is_htmx():
        return render("enterprises/_saved.html", ent=ent, headers={**toast("已保存"), "HX-Redirect": url_for(".show", enterprise_id=ent.id)})
    return redirect(url_for(".show", enterprise_id=ent.id), code=303)


@bp.post("/<int:enterprise_id>/delete")
@roles_required("ops")
def delete(enterprise_id: int):
    """Delete an authorization that has no bills yet (bills keep their audit trail)."""
    ent = enterprise_or_404(enterprise_id)
    bills = db.session.scalar(select(func.count()).select_from(Bill).where(Bill.enterprise_id == ent.id))
    if bills:
        msg = f"该企业已有 {bills} 张单据的影像，不能删除。"
        if is_htmx():
            return render("_error_fragment.html", message=msg, status=409, headers=toast(msg, "error"))
        fail(422, msg)
    name = ent.name
    service.delete(ent)
    if is_htmx():
        return render("_empty.html", headers=toast(f"已删除企业授权：{name}"))
    return redirect(url_for(".index"), code=303)
