"""Bills (单据): the list, the bill page, image upload/remove/reorder, invoice correction and entry,
submit / return / confirm, and the image assets (thumbnail, page render, original).

Views are thin: they find the bill in the user's enterprises, check the desk owns it,
call :mod:`portal.bills`, commit, and render.  A :class:`~portal.errors.UserError` rolls
the session back and answers its status with its Chinese message.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, request
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from ... import bills, ocr_jobs, ocr_state, review, verification
from ...errors import UserError, fail
from ...extensions import db
from ...labels import invoice_type_label
from ...models import Bill, Image, Invoice, Role
from ...web.access import roles_required, scope
from ...web.lists import paginate, sort_order
from ...web.htmx import is_htmx, render, target, toast, toast_event, trigger
from . import assets, search, service
from .forms import ConfirmForm, InvoiceForm, ManualInvoiceForm, ReturnForm

bp = Blueprint("bills", __name__)

DESK_ROLES = (Role.SCANNER, Role.OPS)
PER_PAGE = 20
BILL_ASSETS = service.AssetUrls("bills.image_thumb", "bills.image_page", "bills.image_original")

bp.add_app_template_global(service.bill_url, "bill_url")
bp.add_app_template_global(service, "bill_ui")
bp.add_app_template_global(verification.verification_of, "verification_of")
bp.add_app_template_filter(service.human_size, "human_size")
bp.add_app_template_filter(invoice_type_label, "invoice_type")
bp.add_app_template_filter(service.beijing_time, "beijing_time")


# --------------------------------------------------------------------------- helpers

def _bill_or_404(bill_no: str) -> Bill:
    """The one bill with this number among the user's enterprises (``?e=`` picks the enterprise)."""
    found = service.find_bills(bill_no, request.args.get("e", type=int))
    if not found:
        abort(404)
    if len(found) > 1:
        fail(409, f"多个企业都有单据 {bill_no}，请从单据页面操作。")
    return found[0]


def _desk_bill(bill_no: str) -> Bill:
    """The bill, if the current user's scan desk works on it; 403 for another scan point's bill."""
    bill = _bill_or_404(bill_no)
    if not service.owns(bill):
        abort(403)
    return bill


def _trigger(message: str | None = None, level: str = "success") -> dict:
    """``HX-Trigger``: ``bill-changed`` (the page's status and history refresh) and a toast."""
    return trigger({"bill-changed": True, **(toast_event(message, level) if message else {})})


def _basename(name: str | None) -> str:
    # Some browsers send the client-side path; only its last part is the file's name.
    return (name or "").replace("\\", "/").rsplit("/", 1)[-1]


def _page_context(bill: Bill, **extra) -> dict:
    """Everything the bill page and its fragments show."""
    images = bills.live_images(bill)
    invoices = [inv for img in images for inv in img.invoices]
    rows = service.history(bill)
    dups = service.duplicate_map(bill, invoices)
    warnings = service.duplicate_warnings(bill, invoices, dups)
    ctx = dict(
        bill=bill,
        images=images,
        dups=dups,
        repeats=service.repeated_in_bill(invoices),
        dup_warnings=warnings,
        submit_question=service.submit_confirmation(bill, warnings),
        may_confirm=(bill.status == "match_failed" and service.owns(bill)
                     and review.may_confirm(bill, service.actor(), current_user.role)),
        history=rows,
        removed=service.removed_images(bill, rows),
        owns=service.owns(bill),
        editable=service.may_edit_images(bill),
        urls=BILL_ASSETS,
        invoice_form=InvoiceForm.for_invoice,
        invoice_forms={},
        manual_invoice_form=_blank_manual_form,
        manual_forms={},
        return_form=ReturnForm(formdata=None),
        confirm_form=ConfirmForm(formdata=None),
        show_dup_bills=True,
        error=None,
    )
    ctx.update(extra)
    return ctx


def _show_page(bill: Bill, *, fragment: str | None = None, status: int = 200, **extra):
    return render("bills/show.html", fragment, status=status, **_page_context(bill, **extra))


def _refused(bill: Bill, err: UserError, **extra):
    """Answer a refused change: an error fragment for htmx, else the bill page with the message."""
    db.session.rollback()
    if is_htmx():
        return render("_error_fragment.html", message=err.message, status=err.status, headers=toast(err.message, "error"))
    return _show_page(bill, status=err.status, error=err.message, **extra)


def _back(bill: Bill, message: str, level: str = "success"):
    """Post/Redirect/Get back to the bill page."""
    flash(message, level)
    return redirect(service.bill_url("bills.show", bill), code=303)


# --------------------------------------------------------------------------- list

@bp.get("/")
@login_required
def index():
    """Bills of the user's enterprises: search (number, submitter, org, amount, dates), sortable
    columns, pages; the active search and the column headers swap ``#bill-list`` with htmx."""
    filters = search.parse_filters(request.args)
    sort, desc, order = sort_order(search.SORT_COLUMNS, "created", tiebreak=Bill.id)
    stmt = search.apply(scope(select(Bill), Bill.enterprise_id), filters)
    stmt = stmt.options(joinedload(Bill.enterprise), joinedload(Bill.scan_point)).order_by(*order)
    page = paginate(stmt, PER_PAGE)
    ids = [b.id for b in page.items]
    # Two grouped counts for the whole page instead of two queries per row.
    image_counts = dict(db.session.execute(
        select(Image.bill_id, func.count()).where(Image.bill_id.in_(ids), Image.removed.is_(False))
        .group_by(Image.bill_id)).all()) if ids else {}
    invoice_counts = dict(db.session.execute(
        select(Invoice.bill_id, func.count()).join(Image, Invoice.image_id == Image.id)
        .where(Invoice.bill_id.in_(ids), Image.removed.is_(False)).group_by(Invoice.bill_id)).all()) if ids else {}
    args = filters.args()
    sort_args = {**args, "sort": sort, "dir": "desc" if desc else "asc"}
    return render("bills/index.html", "bills/_list.html", page=page, filters=filters, status_filter=filters.status,
                  q=filters.q, args=args, sort=sort, desc=desc, sort_args=sort_args,
                  image_counts=image_counts, invoice_counts=invoice_counts,
                  many=service.sees_many_enterprises())


# --------------------------------------------------------------------------- the bill page

@bp.get("/<bill_no>")
@login_required
def show(bill_no: str):
    """The bill with its images, invoices, match result and history; read-only unless the desk owns it.

    htmx refreshes of ``#bill-head`` and ``#bill-history`` (after ``bill-changed``) get just that part.
    """
    found = service.find_bills(bill_no, request.args.get("e", type=int))
    if not found:
        abort(404)
    if len(found) > 1:
        return render("bills/choose.html", bills=found, bill_no=bill_no)
    fragment = {"bill-head": "bills/_head.html", "bill-history": "bills/_history.html"}.get(target())
    return _show_page(found[0], fragment=fragment)


@bp.post("/<bill_no>/images")
@roles_required(*DESK_ROLES)
def upload(bill_no: str):
    """Attach an uploaded file (multipart ``file``); htmx gets the upload row's result and the new card."""
    bill = _desk_bill(bill_no)
    files = [f for f in request.files.getlist("file") if f.filename or f.content_length]
    if not is_htmx():
        return _upload_without_js(bill, files)
    if len(files) != 1:
        return render("_upload_failed.html", message="请每次上传一个文件（表单字段 file）", status=422)
    name = _basename(files[0].filename)
    try:
        added = bills.add_file(bill, files[0].read(), name, service.actor(), origin="upload")
    except UserError as err:
        db.session.rollback()
        return render("_upload_failed.html", message=err.message, status=err.status)
    db.session.commit()
    image = db.session.get(Image, added.image.id)
    return render("_uploaded.html", status=201 if added.created else 200, headers=_trigger(),
                  created=added.created, **_card_context(bill, image))


def _upload_without_js(bill: Bill, files):
    """The plain form's fallback: every file in turn, then back to the bill page."""
    if not files:
        return _refused(bill, UserError("请选择要上传的文件"))
    done, refused = 0, None
    for f in files:
        try:
            bills.add_file(bill, f.read(), _basename(f.filename), service.actor(), origin="upload")
        except UserError as err:
            db.session.rollback()
            refused = err
            continue
        db.session.commit()
        done += 1
    if refused is not None:
        if done:
            flash(f"已上传 {done} 个文件", "success")
        return _refused(bill, refused)
    return _back(bill, f"已上传 {done} 个文件")


@bp.post("/<bill_no>/images/<int:image_id>/remove")
@roles_required(*DESK_ROLES)
def remove_image(bill_no: str, image_id: int):
    """Take an image off the bill (the file stays for the history); htmx gets an empty 200."""
    bill = _desk_bill(bill_no)
    image = db.session.get(Image, image_id)
    if image is None or image.bill_id != bill.id:
        abort(404)
    name = image.filename or f"影像 {image.id}"
    try:
        bills.remove_image(bill, image, service.actor())
    except UserError as err:
        return _refused(bill, err)
    db.session.commit()
    if is_htmx():
        return render("_empty.html", headers=_trigger(f"已删除影像：{name}"))
    return _back(bill, f"已删除影像：{name}")


@bp.post("/<bill_no>/order")
@roles_required(*DESK_ROLES)
def reorder(bill_no: str):
    """Put the images in the order of the posted ``image_ids``; htmx gets 204 (the page already moved them)."""
    bill = _desk_bill(bill_no)
    try:
        ids = [int(v) for v in request.form.getlist("image_ids")]
    except ValueError:
        return _refused(bill, UserError("影像顺序无效"))
    try:
        bills.reorder(bill, ids, service.actor())
    except UserError as err:
        return _refused(bill, err)
    db.session.commit()
    if is_htmx():
        return Response(status=204, headers=_trigger("已调整影像顺序"))
    return _back(bill, "已调整影像顺序")


def _live_invoice(bill: Bill, invoice_id: int) -> Invoice:
    """The bill's invoice ``invoice_id`` on a live image (or pushed/typed without one), else 404."""
    inv = db.session.get(Invoice, invoice_id)
    if inv is None or inv.bill_id != bill.id or (inv.image is not None and inv.image.removed):
        abort(404)
    return inv


@bp.post("/<bill_no>/invoices/<int:invoice_id>")
@roles_required(*DESK_ROLES)
def correct_invoice(bill_no: str, invoice_id: int):
    """Save a scanner's correction of an invoice's recognised fields (source becomes 人工录入)."""
    bill = _desk_bill(bill_no)
    inv = _live_invoice(bill, invoice_id)
    form = InvoiceForm()
    error, status = None, 422
    if form.validate():
        try:
            bills.correct_invoice(inv, form.values(), service.actor())
        except UserError as err:
            db.session.rollback()
            error, status = err.message, err.status
        else:
            db.session.commit()
            inv = db.session.get(Invoice, invoice_id)
            if is_htmx():
                return render("_invoice.html", headers=_trigger(f"已保存发票 {inv.number or ''} 的修改"),
                              **_invoice_context(bill, inv))
            return _back(bill, "已保存发票修改")
    inv = db.session.get(Invoice, invoice_id)
    if is_htmx():
        return render("_invoice.html", status=status, **_invoice_context(bill, inv, form=form, error=error))
    return _show_page(bill, status=status, error=error or "发票信息有误，请检查后重新保存",
                      invoice_forms={inv.id: form}, open_invoice=inv.id)


@bp.post("/<bill_no>/invoices/<int:invoice_id>/confirm")
@roles_required(*DESK_ROLES)
def confirm_invoice(bill_no: str, invoice_id: int):
    """Confirm an OCR'd invoice as read (待确认 → 已确认); audited. htmx gets the invoice block."""
    bill = _desk_bill(bill_no)
    inv = _live_invoice(bill, invoice_id)
    try:
        ocr_jobs.confirm_invoice(inv, service.actor())
    except UserError as err:
        return _refused(bill, err)
    db.session.commit()
    inv = db.session.get(Invoice, invoice_id)
    message = f"已确认发票 {inv.number or ''} 的识别结果"
    if is_htmx():
        return render("_invoice.html", headers=_trigger(message), **_invoice_context(bill, inv))
    return _back(bill, message)


def _invoice_context(bill: Bill, inv: Invoice, form: InvoiceForm | None = None, error: str | None = None) -> dict:
    return dict(bill=bill, inv=inv, editable=service.may_edit_images(bill), dups=service.duplicate_map(bill, [inv]),
                repeats=service.repeated_in_bill(bills.bill_invoices(bill)),
                show_dup_bills=True, invoice_form=InvoiceForm.for_invoice,
                invoice_forms={inv.id: form} if form is not None else {},
                open_invoice=inv.id if form is not None else None, invoice_error=error)


@bp.post("/<bill_no>/images/<int:image_id>/invoices")
@roles_required(*DESK_ROLES)
def add_invoice(bill_no: str, image_id: int):
    """Type in an invoice for an image (nothing recognised, or one more in the file); htmx gets the new card."""
    bill = _desk_bill(bill_no)
    image = db.session.get(Image, image_id)
    if image is None or image.bill_id != bill.id or image.removed:
        abort(404)
    form = ManualInvoiceForm()
    error, status = None, 422
    if form.validate():
        try:
            inv = bills.add_manual_invoice(image, form.values(), service.actor())
        except UserError as err:
            db.session.rollback()
            error, status = err.message, err.status
        else:
            db.session.commit()
            message = f"已录入发票 {inv.number}"
            if is_htmx():
                return render("_image_card.html", headers=_trigger(message),
                              **_card_context(bill, db.session.get(Image, image_id)))
            return _back(bill, message)
    image = db.session.get(Image, image_id)
    if is_htmx():
        # The form targets the whole card; a refusal replaces only the form, keeping what was typed.
        # A 409 (bill no longer editable) is not swapped by htmx: a toast says it instead.
        headers = toast(error, "error") if error and status != 422 else {}
        headers.update({"HX-Retarget": f"#manual-invoice-{image.id}", "HX-Reswap": "outerHTML"})
        return render("_manual_invoice.html", status=status, headers=headers,
                      **_card_context(bill, image, form=form, error=error))
    return _show_page(bill, status=status, error=error or "发票信息有误，请检查后重新保存",
                      manual_forms={image.id: form}, open_manual=image.id)


@bp.get("/<bill_no>/images/<int:image_id>/card")
@login_required
def image_card(bill_no: str, image_id: int):
    """One image's card: what the card polls while OCR runs (识别中); the bill page refreshes once it is done."""
    bill = _bill_or_404(bill_no)
    image = db.session.get(Image, image_id)
    if image is None or image.bill_id != bill.id or image.removed:
        abort(404)
    done = image.ocr_state not in ocr_state.PENDING
    # The first answer without 识别中 ends the polling; the page's head and history then refresh too.
    return render("_image_card.html", headers=_trigger() if done and is_htmx() else None, **_card_context(bill, image))


def _blank_manual_form() -> ManualInvoiceForm:
    return ManualInvoiceForm(formdata=None)


def _card_context(bill: Bill, image: Image, form: ManualInvoiceForm | None = None, error: str | None = None) -> dict:
    """What ``_image_card.html`` (and the manual-entry form in it) needs for one image."""
    return dict(bill=bill, image=image, urls=BILL_ASSETS, editable=service.may_edit_images(bill),
                dups=service.duplicate_map(bill, image.invoices), show_dup_bills=True,
                repeats=service.repeated_in_bill(bills.bill_invoices(bill)),
                invoice_form=InvoiceForm.for_invoice, invoice_forms={},
                manual_invoice_form=_blank_manual_form,
                manual_forms={image.id: form} if form is not None else {},
                open_manual=image.id if form is not None else None, manual_error=error)


@bp.post("/<bill_no>/submit")
@roles_required(*DESK_ROLES)
def submit(bill_no: str):
    """Submit the bill's images; the enterprise's image mode decides what follows."""
    bill = _desk_bill(bill_no)
    try:
        review.submit(bill, service.actor())
    except UserError as err:
        return _refused(bill, err)
    db.session.commit()
    return _back(bill, f"已提交单据 {bill.bill_no}，当前状态：{bill.status_label}")


@bp.post("/<bill_no>/return")
@roles_required(*DESK_ROLES)
def return_bill(bill_no: str):
    """Return the bill for rescan with a reason; a new round starts."""
    bill = _desk_bill(bill_no)
    form = ReturnForm()
    if not form.validate():
        return _refused(bill, UserError(form.reason.errors[0]), return_form=form)
    try:
        bills.return_bill(bill, form.reason.data, service.actor())
    except UserError as err:
        return _refused(bill, err, return_form=form)
    db.session.commit()
    return _back(bill, f"已退回单据 {bill.bill_no} 重扫")


@bp.post("/<bill_no>/confirm")
@roles_required(*DESK_ROLES)
def confirm(bill_no: str):
    """Pass a failed match by hand, with a reason (the matching module records it)."""
    bill = _desk_bill(bill_no)
    form = ConfirmForm()
    if not form.validate():
        return _refused(bill, UserError(form.reason.errors[0]), confirm_form=form)
    try:
        review.confirm(bill, form.reason.data, service.actor(), role=current_user.role)
    except UserError as err:
        return _refused(bill, err, confirm_form=form)
    db.session.commit()
    return _back(bill, f"已人工确认单据 {bill.bill_no} 通过")


# --------------------------------------------------------------------------- image assets

def _image_or_404(image_id: int) -> Image:
    """An image of a bill in the user's enterprises; 404 for anything else (no existence leak)."""
    stmt = scope(select(Image).join(Bill, Image.bill_id == Bill.id).where(Image.id == image_id), Bill.enterprise_id)
    image = db.session.scalar(stmt)
    if image is None:
        abort(404)
    return image


@bp.get("/images/<int:image_id>/thumb")
@login_required
def image_thumb(image_id: int):
    """The image's first page as a small JPEG (cached)."""
    return assets.thumbnail(_image_or_404(image_id))


@bp.get("/images/<int:image_id>/pages/<int:n>")
@login_required
def image_page(image_id: int, n: int):
    """Page ``n`` (1-based) for the viewer (cached)."""
    return assets.page(_image_or_404(image_id), n)


@bp.get("/images/<int:image_id>/original")
@login_required
def image_original(image_id: int):
    """The original file, byte-exact, as a download."""
    return assets.original(_image_or_404(image_id))
