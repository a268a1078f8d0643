"""Pages reached through signed links, without an account.

* ``/v/<token>`` — the view link (影像调阅): a read-only page of the bill's images and
  invoices for approvers, and its image assets; every asset route checks that the
  token's bill owns the image.
* ``/v/upload/<token>`` — the submitter's upload link (sync mode): add files to the
  bill while it is editable.  The POST carries the CSRF token of the anonymous session.

An altered or expired token answers 403 with a Chinese page.  The token is the only
credential, so these pages never send it on as a referrer and are never cached.
"""
from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, abort, render_template, request, url_for

from ... import bills, links
from ...errors import UserError
from ...extensions import db
from ...models import Bill, Image
from ...web.hooks import no_leak
from ...web.htmx import render, trigger
from ..bills import assets, service

bp = Blueprint("public", __name__)

INVALID = "链接已失效或无效"
DELETED = "单据已被 ERP 删除，影像调阅和上传链接均已失效。"


class LinkRefused(UserError):
    """The token is altered, expired or names no bill (shown on the link's own page)."""

    def __init__(self):
        super().__init__(INVALID, 403)


class BillDeleted(UserError):
    """The token is valid but its bill was deleted in the ERP: every link of it is revoked."""

    def __init__(self):
        # 410: the link was good and will never work again (DESIGN §5: images kept, links revoked).
        super().__init__(DELETED, 410)


@bp.errorhandler(LinkRefused)
def _refused(_err):
    return render_template("public/invalid.html", message=INVALID), 403


@bp.errorhandler(BillDeleted)
def _deleted(_err):
    # 410: the link was good and will never work again (DESIGN §5: images kept, links revoked).
    return render_template("error.html", code=410, message=DELETED), 410


bp.after_request(no_leak)


def _bill(purpose: str, token: str) -> Bill:
    data = links.load(purpose, token)
    if data is None or not isinstance(data.get("b"), int):
        raise LinkRefused()
    bill = db.session.get(Bill, data["b"])
    if bill is None:
        raise LinkRefused()
    if bill.status == "deleted":
        raise BillDeleted()
    return bill


def _image(bill: Bill, image_id: int) -> Image:
    """A live image of the token's bill; any other id is 404, whoever owns it."""
    image = db.session.get(Image, image_id)
    if image is None or image.bill_id != bill.id or image.removed:
        abort(404)
    return image


def _view_urls(token: str) -> service.AssetUrls:
    return service.AssetUrls("public.image_thumb", "public.image_page", "public.image_original", (("token", token),))


# --------------------------------------------------------------------------- view link

@bp.get("/<token>")
def view(token: str):
    """The bill's images in the viewer and its invoices, read-only."""
    bill = _bill("view", token)
    images = bills.live_images(bill)
    invoices = [inv for img in images for inv in img.invoices]
    upload_url = None
    if bill.enterprise.image_mode == "sync" and bill.status in bills.EDITABLE:
        # 影像同步提单人: no scan desk, so the submitter adds what the push did not bring.
        upload_url = url_for(".upload_page", token=links.upload_link(bill.id).token)
    return render("public/view.html", bill=bill, images=images, urls=_view_urls(token), editable=False,
                  dups=service.duplicate_map(bill, invoices), show_dup_bills=True, total=_total(invoices),
                  repeats=service.repeated_in_bill(invoices),
                  upload_url=upload_url)


def _total(invoices) -> Decimal | None:
    totals = [inv.total for inv in invoices if inv.total is not None]
    return sum(totals) if totals else None


@bp.get("/<token>/images/<int:image_id>/thumb")
def image_thumb(token: str, image_id: int):
    """Thumbnail of an image of the link's bill."""
    return assets.thumbnail(_image(_bill("view", token), image_id))


@bp.get("/<token>/images/<int:image_id>/pages/<int:n>")
def image_page(token: str, image_id: int, n: int):
    """Page ``n`` of an image of the link's bill."""
    return assets.page(_image(_bill("view", token), image_id), n)


@bp.get("/<token>/images/<int:image_id>/original")
def image_original(token: str, image_id: int):
    """The original file of an image of the link's bill."""
    return assets.original(_image(_bill("view", token), image_id))


# --------------------------------------------------------------------------- upload link

def _upload_urls(token: str) -> service.AssetUrls:
    # The submitter sees thumbnails of the bill's files; pages and originals stay with the view link.
    return service.AssetUrls("public.upload_thumb", params=(("token", token),))


@bp.get("/upload/<token>")
def upload_page(token: str):
    """The submitter's page: the bill, the files it has, and the upload component while editable."""
    bill = _bill("upload", token)
    return render("public/upload.html", bill=bill, images=bills.live_images(bill), urls=_upload_urls(token),
                  editable=False, dups={}, show_dup_bills=False, token=token,
                  open_for_upload=bill.status in bills.EDITABLE)


@bp.post("/upload/<token>/images")
def upload(token: str):
    """Add one file (multipart ``file``) to the link's bill; answers like the bill page's upload."""
    bill = _bill("upload", token)
    files = [f for f in request.files.getlist("file") if f.filename or f.content_length]
    if len(files) != 1:
        return render("_upload_failed.html", message="请每次上传一个文件（表单字段 file）", status=422)
    name = files[0].filename.replace("\\", "/").rsplit("/", 1)[-1]
    actor = f"提单人{('（' + bill.submitter + '）') if bill.submitter else ''}·上传链接"[:100]
    try:
        added = bills.add_file(bill, files[0].read(), name, actor, origin="link")
    except UserError as err:
        db.session.rollback()
        return render("_upload_failed.html", message=err.message, status=err.status)
    db.session.commit()
    image = db.session.get(Image, added.image.id)
    return render("_uploaded.html", status=201 if added.created else 200,
                  headers=trigger({"bill-changed": True}),
                  image=image, created=added.created, bill=bill, urls=_upload_urls(token), editable=False,
                  dups={}, show_dup_bills=False)


@bp.get("/upload/<token>/images/<int:image_id>/thumb")
def upload_thumb(token: str, image_id: int):
    """Thumbnail of a file on the upload link's bill."""
    return assets.thumbnail(_image(_bill("upload", token), image_id))
