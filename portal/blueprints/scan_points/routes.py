"""Scan points (影像扫描点): ops manage them; scanners are assigned to them on the users page."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, request, url_for
from sqlalchemy import func, select

from ... import audit
from ...extensions import db
from ...forms import choices
from ...models import Bill, ScanPoint, user_scan_points
from ...web.access import roles_required, scope, visible_enterprises
from ...web.htmx import is_htmx, render, toast
from .forms import EditScanPointForm, ScanPointForm

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
            if is_htmx():
                headers = {**toast(f"已新增扫描点：{point.name}"), "HX-Retarget": "#scan-point-rows", "HX-Reswap": "beforeend"}
                return render("scan_points/_created.html", p=point, form=_form(), headers=headers)
            return redirect(url_for(".index"), code=303)
    return render("scan_points/index.html", "scan_points/_form.html", status=422, points=_points(), form=form)


@bp.get("/<int:point_id>/edit")
@roles_required("ops")
def edit(point_id: int):
    """The edit form of one scan point (code and name; the enterprise stays)."""
    point = _point_or_404(point_id)
    form = EditScanPointForm(formdata=None, obj=point)
    return render("scan_points/edit.html", point=point, form=form)


@bp.post("/<int:point_id>/edit")
@roles_required("ops")
def update(point_id: int):
    """Save a scan point's code and name; codes stay unique within the enterprise; audited."""
    point = _point_or_404(point_id)
    form = EditScanPointForm(request.form)
    if form.validate():
        clash = db.session.scalar(select(ScanPoint.id).where(
            ScanPoint.enterprise_id == point.enterprise_id, ScanPoint.code == form.code.data, ScanPoint.id != point.id))
        if clash:
            form.code.errors.append("该企业已有相同编码的扫描点")
        else:
            before = {"code": point.code, "name": point.name}
            point.code, point.name = form.code.data, form.name.data
            after = {"code": point.code, "name": point.name}
            if after != before:
                audit.record("update", "scan_point", point.id, enterprise_id=point.enterprise_id,
                             summary=f"修改扫描点 {point.code} {point.name}", before=before, after=after)
            db.session.commit()
            flash(f"已保存扫描点：{point.name}", "success")
            return redirect(url_for(".index"), code=303)
    return render("scan_points/edit.html", status=422, point=point, form=form)


@bp.get("/<int:point_id>/delete")
@roles_required("ops")
def confirm_delete(point_id: int):
    """What deleting the point would touch, and the button that does it (or why it cannot be done)."""
    point = _point_or_404(point_id)
    return render("scan_points/delete.html", "scan_points/_delete.html", point=point, usage=usage(point))


@bp.post("/<int:point_id>/delete")
@roles_required("ops")
def delete(point_id: int):
    """Delete a scan point.

    Refused (409) while bills still being worked on name it: deleting it would pull them off
    their desk.  Finished bills and assigned scanners only need a confirmation (``confirm=1``)
    after the counts were shown; they lose the point, their history stays.
    """
    point = _point_or_404(point_id)
    used = usage(point)
    if used.open_bills or (used.in_use and request.form.get("confirm") != "1"):
        message = used.refusal(point) if used.open_bills else "请确认删除：该扫描点仍在使用中"
        return render("scan_points/delete.html", "scan_points/_delete.html", status=409, point=point, usage=used,
                      headers=toast(message, "error"))
    audit.record("delete", "scan_point", point.id, enterprise_id=point.enterprise_id,
                 summary=f"删除扫描点 {point.code} {point.name}",
                 before={"code": point.code, "name": point.name, "bills": used.bills, "scanners": used.scanners})
    db.session.delete(point)
    db.session.commit()
    message = f"已删除扫描点：{point.name}"
    if is_htmx():
        # The confirmation panel goes; the row goes out of band.
        return render("scan_points/_deleted.html", point_id=point_id, headers=toast(message))
    flash(message, "success")
    return redirect(url_for(".index"), code=303)


@dataclass
class Usage:
    """How many bills (unfinished among them) and scanners name a scan point."""

    bills: int
    open_bills: int
    scanners: int

    @property
    def in_use(self) -> bool:
        """Whether deleting would take the point from anything."""
        return bool(self.bills or self.scanners)

    def refusal(self, point: ScanPoint) -> str:
        """The Chinese reason a delete is refused."""
        return (f"扫描点“{point.name}”还有 {self.open_bills} 张未完成的单据，不能删除。"
                "请先在 ERP 中把这些单据改派到其他扫描点，或等单据审核完成后再删除。")


# Bills in these states are done with the desk: losing their scan point changes nothing for anyone.
FINISHED = ("completed", "withdrawn", "deleted")


def usage(point: ScanPoint) -> Usage:
    """Count the bills and scanners that use ``point`` (three counts, no rows loaded)."""
    bills = db.session.scalar(select(func.count()).select_from(Bill).where(Bill.scan_point_id == point.id)) or 0
    open_bills = db.session.scalar(select(func.count()).select_from(Bill).where(
        Bill.scan_point_id == point.id, Bill.status.not_in(FINISHED))) or 0
    scanners = db.session.scalar(select(func.count()).select_from(user_scan_points).where(
        user_scan_points.c.scan_point_id == point.id)) or 0
    return Usage(bills, open_bills, scanners)
