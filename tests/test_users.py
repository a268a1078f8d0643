"""Users: the bootstrap CLI and the ops page."""
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, User

from .conftest import PASSWORD


def test_cli_creates_a_deployment_wide_ops_user(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "admin", "--role", "ops", "--password-stdin"],
                                          input="a-strong-password\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.username == "admin"))
    assert user.role == "ops" and user.is_global
    assert user.password_hash.startswith("scrypt:") and "a-strong-password" not in user.password_hash
    listing = app.test_cli_runner().invoke(args=["users", "list"])
    assert "admin\tops\t启用\t全部企业" in listing.output


def test_cli_binds_enterprises_and_refuses_bad_input(app, make_enterprise):
    ent = make_enterprise()
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["users", "create", "v1", "--role", "viewer", "--enterprise", ent.tax_no, "--password-stdin"],
                       input="a-strong-password\n")
    assert ok.exit_code == 0, ok.output
    assert [e.id for e in db.session.scalar(select(User).where(User.username == "v1")).enterprises] == [ent.id]
    for args, message in [
        (["users", "create", "v2", "--role", "viewer", "--password-stdin"], "必须绑定至少一个企业"),
        (["users", "create", "v3", "--role", "viewer", "--enterprise", "NOPE", "--password-stdin"], "找不到税号"),
        (["users", "create", "v1", "--role", "viewer", "--enterprise", ent.tax_no, "--password-stdin"], "已存在"),
    ]:
        bad = runner.invoke(args=args, input="a-strong-password\n")
        assert bad.exit_code != 0 and message in bad.output
    short = runner.invoke(args=["users", "create", "v4", "--role", "ops", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "至少" in short.output


def test_ops_adds_user_with_enterprise_and_scan_point(browser, ops, make_enterprise, make_scan_point):
    ent = make_enterprise()
    point = make_scan_point(ent)
    browser.login("root")
    resp = browser.post("/users/", {"username": "scan1", "role": "scanner", "password": "scanner-pass-1",
                                    "enterprises": str(ent.id), "scan_points": str(point.id)})
    assert resp.status_code == 303
    user = db.session.scalar(select(User).where(User.username == "scan1"))
    assert [p.code for p in user.scan_points] == [point.code]
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.object_type == "user", AuditEvent.action == "create"))


def test_add_user_validation(browser, ops, make_enterprise):
    make_enterprise()
    browser.login("root")
    resp = browser.post("/users/", {"username": "x y", "role": "viewer", "password": "short"}, htmx="user-form")
    html = resp.data.decode()
    assert resp.status_code == 422 and "用户名只能包含" in html and "密码至少" in html
    resp = browser.post("/users/", {"username": "viewer9", "role": "viewer", "password": "long-enough-1"}, htmx="user-form")
    assert resp.status_code == 422 and "必须绑定至少一个企业" in resp.data.decode()


def test_an_over_long_display_name_is_refused_in_chinese(browser, ops, make_enterprise):
    ent = make_enterprise()
    browser.login("root")
    resp = browser.post("/users/", {"username": "viewer9", "role": "viewer", "password": "long-enough-1",
                                    "display_name": "名" * 65, "enterprises": str(ent.id)}, htmx="user-form")
    assert resp.status_code == 422 and "姓名不能超过 64 个字符" in resp.data.decode()
    assert db.session.scalar(select(User).where(User.username == "viewer9")) is None


def test_cli_refuses_an_over_long_display_name(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "admin", "--role", "ops", "--password-stdin",
                                                "--display-name", "名" * 65], input="a-strong-password\n")
    assert result.exit_code != 0 and "姓名不能超过 64 个字符" in result.output
    assert db.session.scalar(select(User).where(User.username == "admin")) is None


def test_disable_logs_the_user_out(app, browser, ops, make_user, make_enterprise):
    ent = make_enterprise()
    target = make_user("victim", "viewer", [ent])
    other = type(browser)(app)
    other.login("victim")
    browser.login("root")
    resp = browser.post(f"/users/{target.id}/edit", {"display_name": "", "role": "viewer", "enterprises": str(ent.id)})
    assert resp.status_code == 303
    assert other.get("/enterprises/").status_code == 302
    assert other.login("victim").status_code == 401


def test_cannot_demote_or_disable_yourself(browser, ops):
    browser.login("root")
    resp = browser.post(f"/users/{ops.id}/edit", {"role": "viewer", "active": "y"})
    assert resp.status_code == 422 and "不能修改自己的角色" in resp.data.decode()


def test_bound_ops_sees_only_users_of_its_enterprises(browser, make_user, make_enterprise):
    a, b = make_enterprise(), make_enterprise()
    make_user("ops_a", "ops", [a])
    mine = make_user("mine", "viewer", [a])
    theirs = make_user("theirs", "viewer", [b])
    browser.login("ops_a")
    html = browser.get("/users/").data.decode()
    assert "mine" in html and "theirs" not in html
    assert browser.get(f"/users/{theirs.id}/edit").status_code == 404
    assert browser.post(f"/users/{theirs.id}/password", {"password": "hijack-1234"}).status_code == 404
    assert browser.get(f"/users/{mine.id}/edit").status_code == 200
    # New users of a bound ops must be bound to its enterprises.
    resp = browser.post("/users/", {"username": "x1", "role": "viewer", "password": PASSWORD, "enterprises": str(b.id)})
    assert resp.status_code == 422
