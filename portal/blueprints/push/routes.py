"""``POST /api/v1/push/invoices``: a thin view over :func:`portal.push.receive`.

Every answer is the invoice cloud's shape, ``{"errcode", "description", ...}``,
with ``"0000"`` for success (see :data:`portal.push.ERRCODES`). CSRF-exempt:
the caller is the vendor's server proving itself with the signature, not a browser.
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ... import push
from ...extensions import csrf, db
from ...web.errors import MESSAGES

log = logging.getLogger("portal.push")

bp = Blueprint("push", __name__)
csrf.exempt(bp)


def _answer(body: dict, status: int = 200):
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _refuse(err: push.PushError):
    db.session.rollback()  # a refused push stores nothing
    return _answer(err.as_json(), err.status)


def _too_large(limit: int) -> push.PushError:
    return push.PushError("1008", f"请求体过大：上限 {limit // (1024 * 1024)} MB，请分批推送")


@bp.post("/invoices")
def invoices():
    """Receive one push of invoices; answer ``accepted`` (new) and ``duplicates`` (already known)."""
    cfg = current_app.config
    limit = int(cfg.get("PUSH_MAX_BYTES") or push.DEFAULT_MAX_BYTES)
    if request.content_length is not None and request.content_length > limit:
        return _refuse(_too_large(limit))
    # A chunked body declares no length: the stream stops at max_content_length without an
    # error, so allow one byte more and refuse what reaches it, never parse a cut-off body.
    request.max_content_length = limit + 1
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _refuse(_too_large(limit))
    if len(raw) > limit:
        return _refuse(_too_large(limit))
    try:
        received = push.receive(raw, max_skew=int(cfg.get("PUSH_MAX_SKEW", 600)))
        db.session.commit()
    except push.PushError as err:
        if err.errcode in ("1002", "1003"):
            log.warning("push refused (%s) from %s", err.errcode, request.remote_addr)
        return _refuse(err)
    return _answer(received.as_json())


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    """Werkzeug errors on this blueprint in the push protocol's shape."""
    if isinstance(err, RequestEntityTooLarge):
        return _refuse(_too_large(int(current_app.config.get("PUSH_MAX_BYTES") or push.DEFAULT_MAX_BYTES)))
    code = err.code or 500
    return _answer({"errcode": "1001" if code < 500 else "9999", "description": MESSAGES.get(code, "请求无效。")}, code)


@bp.errorhandler(Exception)
def _unhandled(err: Exception):
    """Anything unexpected: roll back, log, answer 9999 (never half a push stored)."""
    db.session.rollback()
    log.exception("push failed")
    return _answer({"errcode": "9999", "description": "服务器内部错误，请稍后重试"}, 500)
