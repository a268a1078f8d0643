"""The one handler set for errors (page, htmx, JSON API), for :class:`portal.errors.UserError` and the rest.

A :class:`UserError` shows its own message on every status: the full error page, an htmx
error fragment plus an error toast (htmx swaps only some statuses, the toast shows on all),
or ``{"error", "message"}`` under ``/api/``. Werkzeug's own errors (404, 405, 413 …) get the
generic Chinese message of their status. Anything else is a 500 that rolls the session back.
"""
from __future__ import annotations

import logging

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, SecurityError

from ..errors import UserError
from ..extensions import db
from .htmx import from_htmx, toast, wants_fragment

log = logging.getLogger("portal")

MESSAGES = {
    400: "请求无效。",
    403: "您没有权限执行此操作。",
    404: "页面或对象不存在。",
    405: "不支持此请求方法。",
    409: "操作与对象的当前状态冲突。",
    410: "对象已不存在。",
    413: "文件过大。",
    415: "不支持的文件类型。",
    422: "提交的内容有误。",
    429: "请求过于频繁，请稍后再试。",
    500: "服务器内部错误，请稍后再试。",
}


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _respond(code: int, message: str | None = None):
    message = message or MESSAGES.get(code, "出错了。")
    if _wants_json():
        return jsonify(error=str(code), message=message), code
    template = "_error_fragment.html" if wants_fragment() else "error.html"
    # Any htmx request, boosted ones too: htmx swaps no error status by default, the toast still shows.
    headers = toast(message, "error") if from_htmx() else {}
    return render_template(template, code=code, message=message), code, headers


def register(app) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(CSRFError)
    def _csrf(err):
        return _respond(400, "页面已过期或请求来源无效（CSRF 校验失败），请刷新页面后重试。")

    @app.errorhandler(SecurityError)
    def _untrusted_host(err: SecurityError):
        # A Host outside TRUSTED_HOSTS: Flask has no URL adapter for it, so no page that
        # links anywhere can be rendered; plain text says what is wrong.
        return "请求的主机名不在本系统的受信任主机（TRUSTED_HOSTS）中。", 400, {"Content-Type": "text/plain; charset=utf-8"}

    @app.errorhandler(UserError)
    def _user_error(err: UserError):
        # A refused request stores nothing: whatever it flushed so far is undone.
        db.session.rollback()
        return _respond(err.status, err.message)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        # Werkzeug's descriptions are English: the status's Chinese message is shown instead.
        return _respond(err.code or 500)

    @app.errorhandler(Exception)
    def _unhandled(err: Exception):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500)
