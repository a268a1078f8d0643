"""Login, logout and the landing page."""
from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import cache
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.urls import iri_to_uri

from ... import audit
from ...extensions import db
from ...models import LoginFailure, User, utcnow
from ...web.access import client_ip, end_web_session, start_web_session
from ...web.htmx import render
from .forms import LoginForm

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "用户名或密码错误。"


@cache
def _dummy_hash() -> str:
    """A real hash to check against when the user does not exist, so timing does not tell."""
    return generate_password_hash("not-a-password")


def _count_attempt(key: str, limit: int) -> bool:
    """Count one attempt under ``key`` in one atomic statement; True while within ``limit``.

    The attempt is counted before the password is checked, so parallel requests cannot all
    read "4 failures so far" and each check a password (an INSERT … ON CONFLICT DO UPDATE …
    RETURNING serialises them on SQLite and PostgreSQL alike).
    """
    table = LoginFailure.__table__
    now = utcnow()
    expired = table.c.window_start <= now - timedelta(seconds=current_app.config["LOGIN_THROTTLE_WINDOW"])
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(key=key, count=1, window_start=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={"count": case((expired, 1), else_=table.c.count + 1),
              "window_start": case((expired, now), else_=table.c.window_start)},
    ).returning(table.c.count)
    return db.session.execute(stmt).scalar_one() <= limit


def _address_key(address: str) -> str:
    """The per-address throttle key; an IPv6 client counts as its /64, which it controls whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"ip:{address}"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        return f"ip:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"ip:{ip}"


def _refund_attempt(key: str) -> None:
    """Take back a counted attempt that turned out to be a successful login."""
    table = LoginFailure.__table__
    db.session.execute(update(table).where(table.c.key == key, table.c.count > 0).values(count=table.c.count - 1))


def same_site_path(target: str) -> str | None:
    """``target`` as a path on this site, or None when it could lead anywhere else.

    Browsers drop tabs and newlines inside URLs and read a backslash as ``/``, so
    ``/%09/evil.com`` (a tab) becomes ``//evil.com``; a newline would also break the
    ``Location`` header. Such characters are refused outright, then the path must parse
    without scheme or host.
    """
    if not target.startswith("/") or any(ch < " " or ch in "\\\x7f" for ch in target):
        return None
    target = iri_to_uri(target)
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target


@bp.get("/")
@login_required
def index():
    """Send each role to its home page."""
    if current_user.role == "scanner":
        return redirect(url_for("scan.queue"))
    if current_user.role == "viewer":
        return redirect(url_for("invoices.index"))
    return redirect(url_for("enterprises.index"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in; failures get one generic message and are throttled per user and address."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.index"))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        username = form.username.data.strip()
        user_key, ip_key = f"user:{username.lower()}", _address_key(client_ip())
        # Per account: one user's typos never lock out another user behind the same address.
        # Per address: a looser cap against spraying many accounts from one place.
        # The address first: once it is over its cap, its attempts no longer count against
        # (and so cannot lock) the accounts it tries.
        within = (_count_attempt(ip_key, current_app.config["LOGIN_THROTTLE_IP_LIMIT"])
                  and _count_attempt(user_key, current_app.config["LOGIN_THROTTLE_LIMIT"]))
        db.session.commit()
        if not within:
            minutes = max(1, -(-current_app.config["LOGIN_THROTTLE_WINDOW"] // 60))
            error, status = f"登录失败次数过多，请 {minutes} 分钟后再试。", 429
        else:
            user = db.session.scalar(select(User).where(User.username == username))
            ok = check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data)
            if user is not None and ok and user.active:
                db.session.execute(LoginFailure.__table__.delete().where(LoginFailure.key == user_key))
                _refund_attempt(ip_key)
                audit.record("login", "user", user.id, summary=f"{user.username} 登录", actor=user.username)
                # A fresh cookie: nothing from before the login is carried into the new session.
                session.clear()
                login_user(user)
                start_web_session(user)
                db.session.commit()
                return redirect(same_site_path(request.args.get("next", "")) or url_for("auth.index"))
            error, status = GENERIC_FAILURE, 401
    elif request.method == "POST":
        status = 422
    return render("auth/login.html", form=form, error=error, status=status)


@bp.post("/logout")
@login_required
def logout():
    """Log out: the server-side session ends, so a copied cookie stops working too."""
    end_web_session()
    db.session.commit()
    logout_user()
    flash("已退出登录。", "info")
    return redirect(url_for("auth.login"))
