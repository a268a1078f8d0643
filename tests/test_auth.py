"""Login, throttling, logout, CSRF, session invalidation."""
from portal.extensions import db
from portal.models import AuditEvent, LoginFailure, User

from .conftest import PASSWORD


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


def test_throttled_per_address(browser, make_user, app):
    make_user("alice", "ops")
    for i in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        browser.login(f"guess{i}", "wrong-password")
    # A different user name from the same address is throttled too.
    assert browser.login("alice", PASSWORD).status_code == 429


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


def test_next_parameter_is_never_an_open_redirect(browser, ops):
    resp = browser.client.post("/login?next=//evil.example/", data={"username": "root", "password": PASSWORD,
                                                                   "csrf_token": browser.csrf()})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"


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
