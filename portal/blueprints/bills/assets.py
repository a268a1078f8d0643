"""Image assets: thumbnails, page renders and originals, for the bill pages and the public link pages.

Callers resolve and authorise the :class:`~portal.models.Image` first; everything
here is addressed by the image's stored sha256, never by anything the client sent.
Renders are cached as derived assets beside the blob, and since a sha256 names
content that never changes, browsers may keep them for a year.
"""
from __future__ import annotations

import logging

from flask import Response, abort, request, send_file

from ... import bills, media
from ...models import Image
from ...storage import BlobNotFound

log = logging.getLogger("portal.assets")

THUMB_SIDE = 320
PAGE_SIDE = 1800
# ``private``: the bytes are behind a login or a token, shared caches must not keep them.
CACHE_CONTROL = "private, max-age=31536000, immutable"


def _cached(image: Image, name: str, media_type: str, make) -> Response:
    """Answer a derived asset: 304 when the browser has it, else from the store or freshly made."""
    etag = f"{image.sha256}-{name}"
    if etag in request.if_none_match:
        resp = Response(status=304)
    else:
        store = bills.storage()
        data = store.get_derived(image.sha256, name)
        if data is None:
            try:
                original = store.read(image.sha256)
            except BlobNotFound:
                log.error("blob %s of image %s is missing from storage", image.sha256, image.id)
                abort(404)
            try:
                data = make(original)
            except media.MediaError:
                # The file passed every check on upload; a renderer may still give up on it.
                log.warning("cannot render %s of image %s", name, image.id, exc_info=True)
                abort(404)
            store.put_derived(image.sha256, name, data)
        resp = Response(data, mimetype=media_type)
    resp.set_etag(etag)
    resp.headers["Cache-Control"] = CACHE_CONTROL
    return resp


def thumbnail(image: Image) -> Response:
    """The first page as a small JPEG."""
    blob = image.blob
    return _cached(image, f"thumb-{THUMB_SIDE}.jpg", "image/jpeg",
                   lambda data: media.thumbnail(data, blob.media_type, max_side=THUMB_SIDE))


def page(image: Image, n: int) -> Response:
    """Page ``n`` (1-based) rendered for the viewer; 404 outside the file's pages."""
    blob = image.blob
    if not 1 <= n <= blob.pages:
        abort(404)
    out_type = media.render_media_type(blob.media_type)
    ext = "png" if out_type == media.PNG else "jpg"
    return _cached(image, f"page-{n}-{PAGE_SIDE}.{ext}", out_type,
                   lambda data: media.render_page(data, blob.media_type, n - 1, max_side=PAGE_SIDE))


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
    """The original bytes, byte-exact, as a download (never rendered by the browser)."""
    store = bills.storage()
    path = store.path_hint(image.sha256)
    if path is None:
        log.error("blob %s of image %s is missing from storage", image.sha256, image.id)
        abort(404)
    resp = send_file(path, mimetype=image.blob.media_type, as_attachment=True,
                     download_name=download_name(image), etag=image.sha256, conditional=True,
                     max_age=31536000)
    resp.headers["Cache-Control"] = CACHE_CONTROL
    resp.headers["X-Content-Type-Options"] = "nosniff"
    # An uploaded XML or PDF must never run as a document of our origin, even if opened inline.
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp
