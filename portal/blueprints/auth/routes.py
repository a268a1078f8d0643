"""Login, logout and the landing page."""
from __future__ import annotations

from datetime import timedelta
from functools import cache

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ... import audit
from ...extensions import db
from ...models import LoginFailure, User, utcnow
from ...views import client_ip, render
from .forms import LoginForm

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "用户名或密码错误。"


@cache
def _dummy_hash() -> str:
    """A real hash to check against when the user does not exist, so timing does not tell."""
    return generate_password_hash("not-a-password")


def _throttle_keys(username: str) -> list[str]:
    return [f"user:{username.lower()}", f"ip:{client_ip()}"]


def _throttled(keys: list[str]) -> bool:
    limit = current_app.config["LOGIN_THROTTLE_LIMIT"]
    window = timedelta(seconds=current_app.config["LOGIN_THROTTLE_WINDOW"])
    now = utcnow()
    for row in db.session.scalars(select(LoginFailure).where(LoginFailure.key.in_(keys))):
        if now - row.window_start < window and row.count >= limit:
            return True
    return False


def _note_failure(keys: list[str]) -> None:
    window = timedelta(seconds=current_app.config["LOGIN_THROTTLE_WINDOW"])
    now = utcnow()
    for key in keys:
        row = db.session.get(LoginFailure, key)
        if row is None:
            db.session.add(LoginFailure(key=key, count=1, window_start=now))
        elif now - row.window_start >= window:
            row.count, row.window_start = 1, now
        else:
            row.count += 1
    db.session.commit()


@bp.get("/")
@login_required
def index():
    """Send each role to its home page."""
    if current_user.role == "scanner" and "scan.queue" in current_app.view_functions:
        return redirect(url_for("scan.queue"))
    if "invoices.index" in current_app.view_functions and current_user.role == "viewer":
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
        keys = _throttle_keys(username)
        if _throttled(keys):
            error, status = "登录失败次数过多，请 15 分钟后再试。", 429
        else:
            user = db.session.scalar(select(User).where(User.username == username))
            ok = check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data)
            if user is not None and ok and user.active:
                db.session.execute(LoginFailure.__table__.delete().where(LoginFailure.key == keys[0]))
                audit.record("login", "user", user.id, summary=f"{user.username} 登录", actor=user.username)
                db.session.commit()
                login_user(user)
                target = request.args.get("next", "")
                # Only same-site relative paths; never an open redirect.
                if not target.startswith("/") or target.startswith("//") or "\\" in target:
                    target = url_for("auth.index")
                return redirect(target)
            _note_failure(keys)
            error, status = GENERIC_FAILURE, 401
    elif request.method == "POST":
        status = 422
    return render("auth/login.html", form=form, error=error, status=status)


@bp.post("/logout")
@login_required
def logout():
    """Log out and return to the login page."""
    logout_user()
    flash("已退出登录。", "info")
    return redirect(url_for("auth.login"))
