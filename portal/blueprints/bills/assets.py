"""Image assets: thumbnails, page renders and originals, for the bill pages and the public link pages.

Callers resolve and authorise the :class:`~portal.models.Image` first; everything
here is addressed by the image's stored sha256, never by anything the client sent.
Renders are cached as derived assets beside the blob (content-addressed: sha256, page
and size in the name), and since a sha256 names content that never changes, browsers
may keep them for a year.  Renders run in budgeted child processes
(:mod:`portal.files.filework`); a page refused as over budget is remembered too, so a
hostile page costs one budget, not one per request, and concurrent requests for one
page wait for a single render.
"""
from __future__ import annotations

import io
import logging
import threading

from flask import Response, abort, current_app, request, send_file
from sqlalchemy import select
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from ... import bills
from ...extensions import db
from ...files import filework, media, pdf_legible
from ...files.storage import BlobNotFound
from ...models import Bill, Image

log = logging.getLogger("portal.assets")

THUMB_SIDE = 320
PAGE_SIDE = 1800
# ``private``: the bytes are behind a login or a token, shared caches must not keep them.
CACHE_CONTROL = "private, max-age=31536000, immutable"


# One lock per derived asset being made: the second request for a page waits for the first
# render instead of starting its own.
_making: dict[tuple[str, str], threading.Lock] = {}
_making_guard = threading.Lock()


def _lock_for(key: tuple[str, str]) -> threading.Lock:
    with _making_guard:
        return _making.setdefault(key, threading.Lock())


def _refused_name(name: str) -> str:
    return name + ".refused"


def _refusal(message: str, status: int = 422) -> Response:
    resp = Response(message, status=status, mimetype="text/plain")
    if status == 503:
        resp.headers["Retry-After"] = "5"
    return resp


def _cached(image: Image, name: str, media_type: str, page: int, max_side: int, thumb: bool) -> Response:
    """Answer a derived asset: 304 when the browser has it, else from the store or freshly made."""
    etag = f"{image.sha256}-{name}"
    if etag in request.if_none_match:
        resp = Response(status=304)
        resp.set_etag(etag)
        resp.headers["Cache-Control"] = CACHE_CONTROL
        return resp
    store = bills.storage()
    key = (image.sha256, name)
    data = store.get_derived(image.sha256, name)
    if data is None:
        try:
            made = _make(image, name, key, store, page, max_side, thumb)
        finally:
            with _making_guard:
                _making.pop(key, None)
        if isinstance(made, Response):
            return made
        data = made
    resp = Response(data, mimetype=media_type)
    resp.set_etag(etag)
    resp.headers["Cache-Control"] = CACHE_CONTROL
    return resp


def _make(image: Image, name: str, key: tuple[str, str], store, page: int, max_side: int, thumb: bool) -> bytes | Response:
    """Render one derived asset once (others asking meanwhile wait), or answer its remembered refusal."""
    with _lock_for(key):
        data = store.get_derived(image.sha256, name)
        refused = store.get_derived(image.sha256, _refused_name(name)) if data is None else None
        if refused is not None:
            return _refusal(refused.decode("utf-8"))
        if data is None:
            try:
                original = store.read(image.sha256)
            except BlobNotFound:
                log.error("blob %s of image %s is missing from storage", image.sha256, image.id)
                abort(404)
            tenant = db.session.scalar(select(Bill.enterprise_id).where(Bill.id == image.bill_id))
            try:
                data = filework.render(original, image.blob.media_type, page, max_side=max_side, thumb=thumb,
                                       config=current_app.config, tenant=tenant)
            except filework.Refused as exc:
                if exc.status == 503:
                    return _refusal(exc.message, 503)  # busy now, not the file's fault: not remembered
                # The file passed every check on upload; a renderer may still give up on it.
                log.warning("cannot render %s of image %s: %s", name, image.id, exc.message)
                store.put_derived(image.sha256, _refused_name(name), exc.message.encode("utf-8"))
                return _refusal(exc.message)
            store.put_derived(image.sha256, name, data)
        return data


def thumbnail(image: Image) -> Response:
    """The first page as a small JPEG."""
    return _cached(image, f"thumb-{THUMB_SIDE}.jpg", "image/jpeg", 0, THUMB_SIDE, True)


def page(image: Image, n: int) -> Response:
    """Page ``n`` (1-based) rendered for the viewer; 404 outside the file's pages."""
    blob = image.blob
    if not 1 <= n <= blob.pages:
        abort(404)
    out_type = media.render_media_type(blob.media_type)
    ext = "png" if out_type == media.PNG else "jpg"
    # A PDF page's render grows with small text (pdf_legible): its own name, so renders
    # cached before that rule are not served.
    size = f"{PAGE_SIDE}-text{pdf_legible.LEGIBLE_TEXT_PX}" if blob.media_type == media.PDF else PAGE_SIDE
    return _cached(image, f"page-{n}-{size}.{ext}", out_type, n - 1, PAGE_SIDE, False)


def download_name(image: Image) -> str:
    """The name the file was uploaded with, cleaned; an extension from its content when it had none.

    Cleaned here too, not only on upload: rows stored before the rule may still carry NUL, ESC or
    a bidi override, which must never reach the ``Content-Disposition`` header (werkzeug then
    writes it as an ASCII fallback plus RFC 5987 ``filename*=UTF-8''…``).
    """
    name = bills.clean_filename(image.filename)
    ext = media.EXTENSIONS.get(image.blob.media_type, "")
    if not name:
        return f"image-{image.id}{ext}"
    # The saved file opens by its extension: a PDF named "发票.exe" is offered as "发票.exe.pdf".
    if ext and not name.lower().endswith(_ALIASES.get(ext, (ext,))):
        name += ext
    return name


_ALIASES = {".jpg": (".jpg", ".jpeg"), ".tif": (".tif", ".tiff")}


def original(image: Image) -> Response:
    """The original bytes, byte-exact, as a download (never rendered by the browser).

    From local disk the file is sent by path; from an object store it is streamed in bounded
    chunks as the client reads (never read whole into memory), with ``Range`` requests
    answered by ranged reads of the store.
    """
    store = bills.storage()
    source = store.path_hint(image.sha256)
    size = None
    if source is None:
        try:
            source = store.open(image.sha256)
        except BlobNotFound:
            source = None
        else:
            size = source.seek(0, io.SEEK_END)
            source.seek(0)
    if source is None:
        log.error("blob %s of image %s is missing from storage", image.sha256, image.id)
        abort(404)
    resp = send_file(source, mimetype=image.blob.media_type, as_attachment=True,
                     download_name=download_name(image), etag=image.sha256, conditional=size is None,
                     max_age=31536000)
    if size is not None:
        # send_file cannot know a stream's length, so the conditional and Range handling it
        # does for paths is done here with the stored size.
        resp.content_length = size
        try:
            resp = resp.make_conditional(request.environ, accept_ranges=True, complete_length=size)
        except RequestedRangeNotSatisfiable:
            resp.close()
            raise
    resp.headers["Cache-Control"] = CACHE_CONTROL
    resp.headers["X-Content-Type-Options"] = "nosniff"
    # An uploaded XML or PDF must never run as a document of our origin, even if opened inline.
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp
