"""Request hooks of the whole app: live sessions, the viewers' read-only rule, security headers (CSP)."""
from __future__ import annotations

from flask import abort, g, request
from flask_login import current_user

from .. import labels
from ..extensions import db
from ..models import utcnow
from .access import WEB_SESSION_TOUCH, PortalSessionInterface

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# Scripts only from our own files (no 'unsafe-inline', no 'unsafe-eval'); inline styles stay
# allowed because style attributes cannot run code and htmx adds its indicator style.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
])


def no_leak(resp):
    """After-request hook of pages reached by a signed link: keep the token out of Referer headers,
    shared caches and search engines."""
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Robots-Tag"] = "noindex, nofollow"
    if resp.mimetype == "text/html":
        resp.headers["Cache-Control"] = "no-store"
    return resp


def register(app) -> None:
    """Global request rules: live sessions, viewers never write; templates get the helpers."""
    app.session_interface = PortalSessionInterface()

    @app.before_request
    def _touch_web_session():
        # Registered first: the session is checked before any view work, and the touch
        # commits a transaction of its own.
        if request.endpoint == "static" or not current_user.is_authenticated:
            return
        web = g.get("web_session")
        now = utcnow()
        if web is not None and now - web.last_seen_at >= WEB_SESSION_TOUCH:
            web.last_seen_at = now
            db.session.commit()

    @app.before_request
    def _viewer_is_read_only():
        # DESIGN §2: a viewer's POST anywhere is refused, never silently ignored.
        if request.method not in SAFE_METHODS and current_user.is_authenticated and current_user.role == "viewer":
            # Ending one's session and changing one's own password are not writes to shared data.
            if request.endpoint not in {"auth.logout", "users.own_password"}:
                abort(403)

    # Every label table, also for imported macros (which see globals only).
    app.add_template_global(labels, "labels")

    @app.context_processor
    def _helpers():
        return {
            "ROLES": labels.ROLES,
            "IMAGE_MODES": labels.IMAGE_MODES,
            "IMAGE_MODE_HELP": labels.IMAGE_MODE_HELP,
            "BILL_STATUSES": labels.BILL_STATUSES,
            "INVOICE_SOURCES": labels.INVOICE_SOURCES,
        }

    @app.after_request
    def _close_unsent_file(resp):
        # A 304 sends no body, but send_file has already opened the file: close it now rather than
        # leave a descriptor to the garbage collector (browsers revalidate the favicon on every page).
        if resp.status_code == 304 and hasattr(resp.response, "close"):
            resp.response.close()
            resp.response = []
        return resp

    @app.after_request
    def _security_headers(resp):
        # No inline script, handler or eval anywhere: behaviour lives in static/*.js.
        resp.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if request.is_secure:
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return resp

    _ = g  # keep flask.g imported for extensions that rely on it
