"""Shared view helpers: fragment-or-page rendering, role checks, enterprise scoping."""
from __future__ import annotations

import secrets
from datetime import timedelta
from functools import wraps

from flask import abort, current_app, g, has_request_context, make_response, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_required
from sqlalchemy import Select, delete, or_, select

from .extensions import db, login_manager
from .models import Enterprise, User, WebSession, utcnow

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


def wants_fragment() -> bool:
    """True for targeted htmx requests; boosted and history-restore ones get the full page."""
    h = request.htmx
    return bool(h) and not h.boosted and not h.history_restore_request and bool(h.target)


def render(page: str, fragment: str | None = None, /, *, status: int = 200, headers: dict | None = None, **ctx):
    """Render ``fragment`` for a targeted htmx request, else the full ``page``.

    Both templates get the same context; ``Vary: HX-Request`` keeps caches honest.
    """
    template = fragment if (fragment and wants_fragment()) else page
    resp = make_response(render_template(template, **ctx), status)
    resp.headers["Vary"] = "HX-Request"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def roles_required(*roles: str):
    """Allow only users of the given roles: anonymous → login, other roles → 403."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def visible_enterprise_ids(user: User | None = None) -> list[int] | None:
    """Enterprise ids the user may see; ``None`` means all (deployment-wide ops)."""
    user = user or current_user
    if user.is_global:
        return None
    return [e.id for e in user.enterprises]


def scope(stmt: Select, column) -> Select:
    """Restrict a select to the current user's enterprises through ``column``."""
    ids = visible_enterprise_ids()
    return stmt if ids is None else stmt.where(column.in_(ids))


def visible_enterprises() -> list[Enterprise]:
    """The current user's enterprises, ordered by name."""
    if current_user.is_global:
        return list(db.session.scalars(select(Enterprise).order_by(Enterprise.name)))
    # Bound users carry their enterprises already (loaded with the user): no extra query.
    return sorted(current_user.enterprises, key=lambda e: e.name)


def enterprise_or_404(enterprise_id: int) -> Enterprise:
    """The enterprise if the current user may see it; 404 otherwise (no existence leak)."""
    ent = db.get_or_404(Enterprise, enterprise_id)
    ids = visible_enterprise_ids()
    if ids is not None and ent.id not in ids:
        abort(404)
    return ent


# Past this a page number only names "the last page": it keeps LIMIT/OFFSET within 64 bits.
_PAGE_CAP = 1_000_000


def paginate(stmt: Select, per_page: int):
    """One page of ``stmt`` for the request's ``?page``, clamped to 1..last page.

    A number that is not a positive integer means the first page; one past the end (however
    large) means the last page, so the pager never says 第 999 / 4 页 and the database never
    sees an offset it cannot hold.
    """
    raw = request.args.get("page", "").strip()
    if raw.isascii() and raw.isdigit():
        # Thousands of digits would not even parse (int's digit limit): they too mean "the end".
        wanted = min(int(raw), _PAGE_CAP) if len(raw) <= 9 else _PAGE_CAP
    else:
        wanted = 1
    page = db.paginate(stmt, page=max(wanted, 1), per_page=per_page, error_out=False)
    if page.page > max(page.pages, 1):
        page = db.paginate(stmt, page=page.pages, per_page=per_page, error_out=False)
    return page


def toast(message: str, level: str = "success") -> dict:
    """An ``HX-Trigger`` header that shows a toast on the page."""
    import json

    # Header values must be Latin-1: JSON \u escapes carry the Chinese text.
    return {"HX-Trigger": json.dumps({"toast": {"message": message, "level": level}})}


def no_leak(resp):
    """After-request hook of pages reached by a signed link: keep the token out of Referer headers,
    shared caches and search engines."""
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Robots-Tag"] = "noindex, nofollow"
    if resp.mimetype == "text/html":
        resp.headers["Cache-Control"] = "no-store"
    return resp


def client_ip() -> str:
    """The caller's address: the peer, or what the configured proxies forwarded (``PROXY_FIX_HOPS``)."""
    return request.remote_addr or "-"


# last_seen_at is written at most this often: not one write per request, at the price of
# an idle lifetime that may end up to this much early.
WEB_SESSION_TOUCH = timedelta(seconds=60)


def _lifetimes() -> tuple[timedelta, timedelta]:
    cfg = current_app.config
    return timedelta(seconds=cfg["SESSION_IDLE_LIFETIME"]), timedelta(seconds=cfg["SESSION_ABSOLUTE_LIFETIME"])


def start_web_session(user: User) -> None:
    """Open a server-side session for ``user`` and put its id in the cookie (caller commits)."""
    now = utcnow()
    idle, absolute = _lifetimes()
    # Sweep this user's dead sessions while we are here: bounded, and no background job needed.
    db.session.execute(delete(WebSession).where(
        WebSession.user_id == user.id,
        or_(WebSession.created_at <= now - absolute, WebSession.last_seen_at <= now - idle)))
    sid = secrets.token_urlsafe(32)
    db.session.add(WebSession(id=sid, user_id=user.id, created_at=now, last_seen_at=now))
    session["sid"] = sid


def end_web_session() -> None:
    """Delete the current server-side session, so a copy of the cookie is worth nothing (caller commits)."""
    sid = session.pop("sid", None)
    if sid:
        db.session.execute(delete(WebSession).where(WebSession.id == sid))


def _live_web_session(user_id: int) -> WebSession | None:
    """The cookie's server-side session when it belongs to ``user_id`` and has not expired."""
    sid = session.get("sid")
    web = db.session.get(WebSession, sid) if isinstance(sid, str) else None
    if web is None or web.user_id != user_id:
        return None
    now = utcnow()
    idle, absolute = _lifetimes()
    if now - web.last_seen_at >= idle or now - web.created_at >= absolute:
        return None
    return web


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """Load the session's user; a bumped session version (reset/disable) logs it out.

    The cookie alone is not enough: its server-side session must still exist (logout
    deletes it) and be within the idle and absolute lifetimes.
    """
    try:
        uid, version = (int(x) for x in user_id.split(":", 1))
    except ValueError:
        return None
    user = db.session.get(User, uid)
    if user is None or user.session_version != version or not user.active:
        return None
    web = _live_web_session(uid)
    if web is None:
        return None
    g.web_session = web
    return user


class PortalSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked ``Secure`` whenever the page itself came over https."""

    def get_cookie_secure(self, app) -> bool:
        """``SESSION_COOKIE_SECURE``, or the request's own scheme (behind a proxy: ``PROXY_FIX_HOPS``)."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (has_request_context() and request.is_secure)


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

    @app.context_processor
    def _helpers():
        from . import models

        return {
            "has_endpoint": lambda name: name in app.view_functions,
            "ROLES": models.ROLES,
            "IMAGE_MODES": models.IMAGE_MODES,
            "IMAGE_MODE_HELP": models.IMAGE_MODE_HELP,
            "BILL_STATUSES": models.BILL_STATUSES,
            "INVOICE_SOURCES": models.INVOICE_SOURCES,
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


def sort_order(columns: dict, default: str, default_desc: bool = True, tiebreak=None):
    """``(key, desc, order_by)`` for the request's ``?sort=<key>&dir=asc|desc``.

    ``columns`` maps the keys a list offers to their columns; an unknown key means ``default``.
    ``tiebreak`` (usually the id) follows in the same direction, so equal values keep a stable
    order from page to page.
    """
    key = request.args.get("sort", "")
    if key not in columns:
        key, desc = default, default_desc
    else:
        direction = request.args.get("dir", "")
        desc = direction == "desc" if direction in ("asc", "desc") else default_desc
    column = columns[key]
    order = [column.desc() if desc else column.asc()]
    if getattr(getattr(column, "expression", column), "nullable", False):
        # Empty values sort as SQLite sorts them, on PostgreSQL too: first going up, last going down
        # (only on nullable columns: NULLS LAST on the id would keep PostgreSQL off its index).
        order = [order[0].nulls_last() if desc else order[0].nulls_first()]
    if tiebreak is not None and tiebreak is not column:
        order.append(tiebreak.desc() if desc else tiebreak.asc())
    return key, desc, order
