"""Login, throttling, logout, CSRF, session invalidation."""
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from portal import create_app
from portal.extensions import db
from portal.models import AuditEvent, LoginFailure, User, WebSession, utcnow

from .conftest import PASSWORD, Browser, _config


def test_login_page_has_the_documented_fields(browser):
    html = browser.get("/login").data.decode()
    for name in ('name="username"', 'name="password"', 'name="csrf_token"'):
        assert name in html


def test_login_and_logout(browser, ops):
    resp = browser.login("root")
    assert resp.status_code == 302
    assert browser.get("/enterprises/").status_code == 200
    assert browser.post("/logout").status_code == 302
    assert browser.get("/enterprises/").status_code == 302


def test_failures_share_one_generic_message(browser, ops):
    wrong_password = browser.login("root", "nope-nope-nope")
    unknown_user = browser.login("nobody", "nope-nope-nope")
    assert wrong_password.status_code == unknown_user.status_code == 401
    for resp in (wrong_password, unknown_user):
        assert "用户名或密码错误" in resp.data.decode()


def test_throttled_per_user(browser, ops, app):
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        browser.login("root", "wrong-password")
    # Even the right password is refused while the window lasts.
    resp = browser.login("root", PASSWORD)
    assert resp.status_code == 429
    assert "次数过多" in resp.data.decode()
    assert db.session.get(LoginFailure, "user:root").count >= app.config["LOGIN_THROTTLE_LIMIT"]


def test_one_users_typos_never_lock_out_another(browser, ops, make_user, app):
    make_user("alice", "ops")
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"] + 3):
        browser.login("root", "wrong-password")
    assert browser.login("root", PASSWORD).status_code == 429
    # Same address (office NAT, reverse proxy): alice still gets in.
    assert browser.login("alice", PASSWORD).status_code == 302


def test_address_cap_is_looser_but_holds(browser, make_user, app):
    app.config["LOGIN_THROTTLE_IP_LIMIT"] = 8
    make_user("alice", "ops")
    for i in range(8):
        assert browser.login(f"guess{i}", "wrong-password").status_code == 401
    # Spraying many user names from one address hits the per-address cap.
    resp = browser.login("alice", PASSWORD)
    assert resp.status_code == 429
    assert "次数过多" in resp.data.decode()


def test_an_address_over_its_cap_cannot_lock_other_accounts(tmp_path, app, ops):
    proxied = _proxied_app(tmp_path, hops=1)
    for i in range(3):
        _login_from(proxied, "203.0.113.7", f"guess{i}", "wrong-password")
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"] + 1):
        assert _login_from(proxied, "203.0.113.7", "root", "wrong-password").status_code == 429
    # Those refused attempts never reached root's own counter.
    assert db.session.get(LoginFailure, "user:root") is None
    assert _login_from(proxied, "198.51.100.9", "root", PASSWORD).status_code == 302


def test_successful_logins_do_not_use_up_the_address_cap(app, make_user):
    app.config["LOGIN_THROTTLE_IP_LIMIT"] = 3
    for i in range(5):
        make_user(f"clerk{i}", "scanner")
    # Five colleagues behind one NAT log in one after another.
    for i in range(5):
        assert Browser(app).login(f"clerk{i}").status_code == 302


def _proxied_app(tmp_path, hops):
    return create_app(_config(tmp_path, PROXY_FIX_HOPS=hops, LOGIN_THROTTLE_IP_LIMIT=3))


def _login_from(app, forwarded_for, username, password):
    """Log in through a proxy at 10.0.0.1 that forwards for ``forwarded_for``."""
    b = Browser(app)
    b.client.environ_base["REMOTE_ADDR"] = "10.0.0.1"
    headers = {"X-Forwarded-For": forwarded_for}
    b.get("/login", headers=headers)
    return b.post("/login", {"username": username, "password": password}, headers=headers)


def test_forwarded_for_is_honoured_behind_a_configured_proxy(tmp_path, app, make_user):
    make_user("alice", "ops")
    proxied = _proxied_app(tmp_path, hops=1)
    for i in range(3):
        assert _login_from(proxied, "203.0.113.7", f"guess{i}", "wrong-password").status_code == 401
    assert _login_from(proxied, "203.0.113.7", "alice", PASSWORD).status_code == 429
    # Another client behind the same proxy is a different address.
    assert _login_from(proxied, "198.51.100.9", "alice", PASSWORD).status_code == 302
    assert db.session.get(LoginFailure, "ip:203.0.113.7") is not None


def test_an_ipv6_client_counts_as_its_whole_slash_64(tmp_path, app, make_user):
    make_user("alice", "ops")
    proxied = _proxied_app(tmp_path, hops=1)
    for i in range(3):
        _login_from(proxied, f"2001:db8:1:2::{i + 1:x}", f"guess{i}", "wrong-password")
    # A fresh address from the same /64 is the same client.
    assert _login_from(proxied, "2001:db8:1:2:ffff::9", "alice", PASSWORD).status_code == 429
    assert _login_from(proxied, "2001:db8:1:3::1", "alice", PASSWORD).status_code == 302
    assert db.session.get(LoginFailure, "ip:2001:db8:1:2::/64").count >= 3


def test_forwarded_for_is_ignored_without_a_configured_proxy(tmp_path, app, make_user):
    make_user("alice", "ops")
    direct = _proxied_app(tmp_path, hops=0)
    for i in range(3):
        _login_from(direct, f"203.0.113.{i}", f"guess{i}", "wrong-password")
    # A forged header does not buy a fresh address: the peer is what counts.
    assert _login_from(direct, "198.51.100.9", "alice", PASSWORD).status_code == 429
    assert db.session.get(LoginFailure, "ip:10.0.0.1").count >= 3


def parallel_logins(app, username, attempts=40):
    """Fire ``attempts`` wrong-password logins at once; return the status codes."""
    clients = [Browser(app) for _ in range(attempts)]
    for c in clients:
        c.csrf()
    db.session.commit()
    start = threading.Barrier(attempts)

    def attempt(c):
        # Each thread is a request of its own, like a threaded WSGI server's.
        start.wait()
        resp = c.client.post("/login", data={"username": username, "password": "wrong-password",
                                             "csrf_token": c.token})
        return resp.status_code

    with ThreadPoolExecutor(attempts) as pool:
        return list(pool.map(attempt, clients))


def test_parallel_failures_check_no_more_passwords_than_the_limit(app, ops):
    app.config["LOGIN_THROTTLE_IP_LIMIT"] = 1000
    codes = parallel_logins(app, "root")
    # Each 401 is a password that was checked; the rest were refused before any check.
    assert codes.count(401) == app.config["LOGIN_THROTTLE_LIMIT"]
    assert codes.count(429) == len(codes) - app.config["LOGIN_THROTTLE_LIMIT"]


def test_disabled_user_cannot_log_in(browser, make_user):
    user = make_user("bob", "ops")
    user.active = False
    db.session.commit()
    assert browser.login("bob").status_code == 401


def test_post_without_csrf_token_is_refused(browser, ops):
    resp = browser.post("/login", {"username": "root", "password": PASSWORD}, csrf=False)
    assert resp.status_code == 400
    assert "CSRF" in resp.data.decode()
    browser.login("root")
    resp = browser.post("/scan-points/", {"code": "X1", "name": "x"}, csrf=False)
    assert resp.status_code == 400


@pytest.mark.parametrize("next_param", [
    "//evil.example/", "/%09/evil.example", "/%0A/x", "/%0D%0ASet-Cookie:x=1", "/%5C/evil.example",
    "%5C%5Cevil.example", "https://evil.example/", "/%7F/evil.example", "javascript:alert(1)",
])
def test_next_parameter_is_never_an_open_redirect(browser, ops, next_param):
    resp = browser.client.post(f"/login?next={next_param}", data={"username": "root", "password": PASSWORD,
                                                                 "csrf_token": browser.csrf()})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize(("next_param", "location"), [
    ("/bills/%3Fstatus%3Duploaded", "/bills/?status=uploaded"),
    ("/invoices/%3Fq%3D%E5%8F%91%E7%A5%A8", "/invoices/?q=%E5%8F%91%E7%A5%A8"),
])
def test_next_parameter_keeps_same_site_paths(browser, ops, next_param, location):
    resp = browser.client.post(f"/login?next={next_param}", data={"username": "root", "password": PASSWORD,
                                                                 "csrf_token": browser.csrf()})
    assert resp.status_code == 302
    assert resp.headers["Location"] == location


def test_password_reset_ends_existing_sessions(browser, app, ops, make_user, make_enterprise):
    ent = make_enterprise()
    make_user("carol", "viewer", [ent])
    other = type(browser)(app)
    other.login("carol")
    assert other.get("/enterprises/").status_code == 200
    browser.login("root")
    carol_id = db.session.scalar(db.select(User.id).where(User.username == "carol"))
    resp = browser.post(f"/users/{carol_id}/password", {"password": "a-new-password-9"})
    assert resp.status_code == 303
    assert other.get("/enterprises/").status_code == 302  # logged out
    assert other.login("carol", "a-new-password-9").status_code == 302


def test_login_is_audited(browser, ops):
    browser.login("root")
    assert db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "login")).actor == "root"


# --------------------------------------------------------------------------- web session


def _session_cookie(b: Browser) -> str:
    return b.client.get_cookie("session").value


def _with_cookie(app, value: str) -> Browser:
    """A second browser that replays a copied session cookie."""
    thief = Browser(app)
    thief.client.set_cookie("session", value)
    return thief


def _web_session() -> WebSession:
    return db.session.scalars(db.select(WebSession)).one()


def test_logout_ends_a_copied_session_cookie(browser, ops, app):
    browser.login("root")
    copied = _session_cookie(browser)
    assert _with_cookie(app, copied).get("/enterprises/").status_code == 200
    assert browser.post("/logout").status_code == 302
    assert _with_cookie(app, copied).get("/enterprises/").status_code == 302
    assert db.session.scalar(db.select(db.func.count()).select_from(WebSession)) == 0


def test_logout_ends_only_its_own_session(app, ops):
    desk, laptop = Browser(app), Browser(app)
    desk.login("root")
    laptop.login("root")
    desk.post("/logout")
    assert desk.get("/enterprises/").status_code == 302
    assert laptop.get("/enterprises/").status_code == 200


def test_idle_lifetime_ends_a_quiet_session(browser, ops, app):
    app.config["SESSION_IDLE_LIFETIME"] = 600
    browser.login("root")
    web = _web_session()
    web.last_seen_at = utcnow() - timedelta(seconds=540)
    db.session.commit()
    # Still within the idle lifetime: the request counts as activity.
    assert browser.get("/enterprises/").status_code == 200
    assert utcnow() - _web_session().last_seen_at < timedelta(seconds=60)
    web = _web_session()
    web.last_seen_at = utcnow() - timedelta(seconds=601)
    db.session.commit()
    assert browser.get("/enterprises/").status_code == 302


def test_absolute_lifetime_ends_even_a_busy_session(browser, ops, app):
    app.config["SESSION_ABSOLUTE_LIFETIME"] = 3600
    browser.login("root")
    web = _web_session()
    web.created_at = utcnow() - timedelta(seconds=3601)
    db.session.commit()
    assert browser.get("/enterprises/").status_code == 302


def test_lifetimes_default_to_eight_hours_and_seven_days(app):
    from portal.config import DEFAULTS

    assert DEFAULTS["SESSION_IDLE_LIFETIME"] == 8 * 3600
    assert DEFAULTS["SESSION_ABSOLUTE_LIFETIME"] == 7 * 24 * 3600
    # The cookie's own signature does not outlive the absolute lifetime either.
    assert app.permanent_session_lifetime == timedelta(seconds=app.config["SESSION_ABSOLUTE_LIFETIME"])


def test_a_cookie_from_before_server_side_sessions_is_not_enough(browser, ops, app):
    browser.login("root")
    db.session.execute(db.delete(WebSession))
    db.session.commit()
    assert browser.get("/enterprises/").status_code == 302


def test_https_gets_a_secure_cookie_and_hsts(app, ops):
    b = Browser(app)
    page = b.get("https://localhost/login")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    b._remember_token(page)
    # Over https Flask-WTF also wants a same-site Referer, as browsers send it.
    resp = b.post("https://localhost/login", {"username": "root", "password": PASSWORD},
                  headers={"Referer": "https://localhost/login"})
    assert resp.status_code == 302
    assert "Secure" in resp.headers["Set-Cookie"]
    plain = Browser(app)
    assert "Strict-Transport-Security" not in plain.get("/login").headers
    resp = plain.login("root")
    assert "Secure" not in resp.headers["Set-Cookie"]


def test_https_behind_a_configured_proxy_gets_a_secure_cookie(tmp_path, app, ops):
    proxied = _proxied_app(tmp_path, hops=1)
    b = Browser(proxied)
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", "Referer": "https://localhost/login"}
    b.get("/login", headers=headers)
    resp = b.post("/login", {"username": "root", "password": PASSWORD}, headers=headers)
    assert resp.status_code == 302
    assert "Secure" in resp.headers["Set-Cookie"]
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
