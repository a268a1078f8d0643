"""Scan points (影像扫描点): ops manage them; scanners are assigned to them on the users page."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from sqlalchemy import select

from ... import audit
from ...extensions import db
from ...forms import choices
from ...models import ScanPoint
from ...views import render, roles_required, scope, toast, visible_enterprises
from .forms import ScanPointForm

bp = Blueprint("scan_points", __name__)


def _form(formdata=None) -> ScanPointForm:
    form = ScanPointForm(formdata=formdata)
    form.enterprise_id.choices = choices((e.id, f"{e.name}（{e.tax_no}）") for e in visible_enterprises())
    return form


def _points():
    stmt = scope(select(ScanPoint), ScanPoint.enterprise_id).order_by(ScanPoint.enterprise_id, ScanPoint.code)
    return list(db.session.scalars(stmt))


def _point_or_404(point_id: int) -> ScanPoint:
    point = db.session.scalar(scope(select(ScanPoint), ScanPoint.enterprise_id).where(ScanPoint.id == point_id))
    if point is None:
        abort(404)
    return point


@bp.get("/")
@roles_required("ops")
def index():
    """Scan points of the user's enterprises and the add form."""
    return render("scan_points/index.html", points=_points(), form=_form())


@bp.post("/")
@roles_required("ops")
def create():
    """Add a scan point; codes are unique within an enterprise."""
    form = _form(request.form)
    if form.validate():
        exists = db.session.scalar(select(ScanPoint.id).where(ScanPoint.enterprise_id == form.enterprise_id.data,
                                                              ScanPoint.code == form.code.data))
        if exists:
            form.code.errors.append("该企业已有相同编码的扫描点")
        else:
            point = ScanPoint(code=form.code.data, name=form.name.data, enterprise_id=form.enterprise_id.data)
            db.session.add(point)
            db.session.flush()
            audit.record("create", "scan_point", point.id, enterprise_id=point.enterprise_id,
                         summary=f"新增扫描点 {point.code} {point.name}", after={"code": point.code, "name": point.name})
            db.session.commit()
            if request.htmx and not request.htmx.boosted:
                headers = {**toast(f"已新增扫描点：{point.name}"), "HX-Retarget": "#scan-point-rows", "HX-Reswap": "beforeend"}
                return render("scan_points/_created.html", p=point, form=_form(), headers=headers)
            return redirect(url_for(".index"), code=303)
    return render("scan_points/index.html", "scan_points/_form.html", status=422, points=_points(), form=form)


@bp.post("/<int:point_id>/delete")
@roles_required("ops")
def delete(point_id: int):
    """Delete a scan point (bills keep their history; their scan point becomes empty)."""
    point = _point_or_404(point_id)
    audit.record("delete", "scan_point", point.id, enterprise_id=point.enterprise_id,
                 summary=f"删除扫描点 {point.code} {point.name}", before={"code": point.code, "name": point.name})
    db.session.delete(point)
    db.session.commit()
    if request.htmx and not request.htmx.boosted:
        return render("_empty.html", headers=toast("已删除扫描点"))
    return redirect(url_for(".index"), code=303)
