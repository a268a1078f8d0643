"""Who may see what: role checks, enterprise scoping, ``*_or_404``, web sessions and the user loader."""
from __future__ import annotations

import secrets
from datetime import timedelta
from functools import wraps

from flask import abort, current_app, g, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_required
from sqlalchemy import Select, delete, or_, select

from ..extensions import db, login_manager
from ..models import Enterprise, User, WebSession, utcnow

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
