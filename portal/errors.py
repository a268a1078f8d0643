"""Error pages (403/404/413/415/422/429/500), htmx- and API-aware."""
from __future__ import annotations

import logging

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, SecurityError

from .extensions import db
from .views import wants_fragment

log = logging.getLogger("portal")


class UserError(Exception):
    """A refusal a person reads: the HTTP ``status`` and a Chinese ``message``.

    ``field`` names the form or API field at fault, ``details`` carries anything a JSON
    answer adds. Raised anywhere below the views; the handlers here show the message on
    every status (full page, htmx fragment or JSON).
    """

    def __init__(self, message: str, status: int = 422, *, field: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.details = details

MESSAGES = {
    400: "请求无效。",
    403: "您没有权限执行此操作。",
    404: "页面或对象不存在。",
    405: "不支持此请求方法。",
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
    return render_template(template, code=code, message=message), code


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

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        code = err.code or 500
        desc = err.description if isinstance(err.description, str) and code in (400, 403, 413, 415, 422, 429) and getattr(err, "_portal_message", False) else None
        return _respond(code, desc)

    @app.errorhandler(Exception)
    def _unhandled(err: Exception):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500)


def fail(code: int, message: str):
    """Abort with ``code`` and a user-facing Chinese ``message``."""
    from werkzeug.exceptions import default_exceptions

    exc = default_exceptions[code](description=message)
    exc._portal_message = True
    raise exc
