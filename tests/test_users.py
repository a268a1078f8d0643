"""Users: the bootstrap CLI and the ops page."""
import re

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


def _audit_count(action: str) -> int:
    from sqlalchemy import func

    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.object_type == "user",
                                                                                 AuditEvent.action == action))


def test_bound_ops_cannot_manage_a_user_bound_beyond_its_enterprises(app, browser, make_user, make_enterprise):
    a, b = make_enterprise("甲公司"), make_enterprise("乙公司")
    make_user("ops_a", "ops", [a])
    shared = make_user("shared", "viewer", [a, b])
    before = (shared.password_hash, shared.session_version, shared.role, sorted(e.id for e in shared.enterprises))
    browser.login("ops_a")
    # Listed read-only: no edit link, and the other enterprise is not named.
    html = browser.get("/users/").data.decode()
    assert "shared" in html and "只读" in html and f"/users/{shared.id}/edit" not in html and "乙公司" not in html
    refused = [
        browser.get(f"/users/{shared.id}/edit"),
        browser.post(f"/users/{shared.id}/password", {"password": "hijack-1234"}),
        browser.post(f"/users/{shared.id}/edit", {"role": "ops", "enterprises": str(a.id), "active": "y"}),
        browser.post(f"/users/{shared.id}/edit", {"role": "viewer", "enterprises": str(a.id)}),  # deactivate
    ]
    for resp in refused:
        assert resp.status_code == 403 and "管理范围以外的企业" in resp.data.decode()
    db.session.refresh(shared)
    assert (shared.password_hash, shared.session_version, shared.role, sorted(e.id for e in shared.enterprises)) == before
    assert shared.active and _audit_count("update") == 0 and _audit_count("reset_password") == 0
    # The victim still logs in with their own password.
    assert type(browser)(app).login("shared").status_code in (302, 303)


def test_ops_bound_to_every_enterprise_of_a_user_manages_it(browser, ops, make_user, make_enterprise):
    a, b = make_enterprise(), make_enterprise()
    make_user("ops_ab", "ops", [a, b])
    shared = make_user("shared", "viewer", [a, b])
    browser.login("ops_ab")
    assert f"/users/{shared.id}/edit" in browser.get("/users/").data.decode()
    assert browser.post(f"/users/{shared.id}/password", {"password": "new-password-1"}).status_code == 303
    root = type(browser)(browser.app)
    root.login("root")
    assert root.post(f"/users/{shared.id}/edit", {"role": "viewer", "enterprises": str(a.id), "active": "y"}).status_code == 303
    db.session.refresh(shared)
    assert [e.id for e in shared.enterprises] == [a.id]


def test_bound_ops_grants_nothing_beyond_its_own(browser, make_user, make_enterprise, make_scan_point):
    a, b = make_enterprise(), make_enterprise()
    point_b = make_scan_point(b, code="SPB")
    make_user("ops_a", "ops", [a])
    mine = make_user("mine", "scanner", [a])
    browser.login("ops_a")
    for data in [
        {"role": "scanner", "enterprises": [str(a.id), str(b.id)], "active": "y"},
        {"role": "scanner", "enterprises": str(a.id), "scan_points": str(point_b.id), "active": "y"},
        {"role": "ops", "active": "y"},  # an ops without binding would be deployment-wide
    ]:
        assert browser.post(f"/users/{mine.id}/edit", data).status_code == 422
    db.session.refresh(mine)
    assert mine.role == "scanner" and [e.id for e in mine.enterprises] == [a.id] and mine.scan_points == []
    resp = browser.post("/users/", {"username": "x2", "role": "ops", "password": PASSWORD})
    assert resp.status_code == 422
    assert db.session.scalar(select(User).where(User.username == "x2")) is None


# --------------------------------------------------------------------------- 修改我的密码

import pytest  # noqa: E402
from werkzeug.security import check_password_hash  # noqa: E402

NEW_PASSWORD = "battery-staple-2"


@pytest.mark.parametrize("role", ["viewer", "scanner", "ops"])
def test_every_role_changes_its_own_password_and_other_sessions_end(app, browser, make_user, make_enterprise, role):
    make_user("alice", role, [make_enterprise()])
    phone = type(browser)(app)
    assert phone.login("alice").status_code == 302
    assert browser.login("alice").status_code == 302
    page = browser.get("/users/me/password")
    assert page.status_code == 200 and "修改我的密码" in page.get_data(as_text=True)
    resp = browser.post("/users/me/password", {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert resp.status_code == 303
    user = db.session.scalar(select(User).where(User.username == "alice"))
    assert check_password_hash(user.password_hash, NEW_PASSWORD)
    # This browser keeps working; the phone's session is gone.
    assert browser.get("/bills/").status_code == 200
    assert phone.get("/bills/").status_code == 302
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "change_password"))
    assert ev.object_id == str(user.id) and ev.actor == "alice"
    assert NEW_PASSWORD not in repr((ev.before, ev.after, ev.summary))
    browser.post("/logout")
    assert browser.login("alice", NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize("data, message", [
    ({"current": "wrong-password", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, "当前密码不正确"),
    ({"current": PASSWORD, "password": "short", "confirm": "short"}, "密码至少 8 位"),
    ({"current": PASSWORD, "password": NEW_PASSWORD, "confirm": "something-else"}, "两次输入的新密码不一致"),
    ({"current": PASSWORD, "password": PASSWORD, "confirm": PASSWORD}, "新密码不能与当前密码相同"),
], ids=["wrong-current", "too-short", "mismatch", "unchanged"])
def test_a_refused_change_keeps_the_old_password_and_the_sessions(app, browser, make_user, make_enterprise, data, message):
    make_user("alice", "viewer", [make_enterprise()])
    phone = type(browser)(app)
    phone.login("alice")
    browser.login("alice")
    resp = browser.post("/users/me/password", data)
    assert resp.status_code == 422 and message in resp.get_data(as_text=True)
    user = db.session.scalar(select(User).where(User.username == "alice"))
    assert check_password_hash(user.password_hash, PASSWORD)
    assert phone.get("/bills/").status_code == 200
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "change_password")) is None


def test_changing_ones_own_password_needs_a_login_and_csrf(app, browser, make_user, make_enterprise):
    assert browser.get("/users/me/password").status_code == 302
    make_user("alice", "viewer", [make_enterprise()])
    browser.login("alice")
    raw = browser.client.post("/users/me/password", data={"current": PASSWORD, "password": NEW_PASSWORD,
                                                          "confirm": NEW_PASSWORD})
    assert raw.status_code in (400, 403)
    user = db.session.scalar(select(User).where(User.username == "alice"))
    assert check_password_hash(user.password_hash, PASSWORD)


def test_enterprises_and_scan_points_are_checkbox_lists(browser, ops, make_user, make_enterprise, make_scan_point):
    a, b = make_enterprise("甲公司"), make_enterprise("乙公司")
    point = make_scan_point(a, "SP01", "一号扫描点")
    target = make_user("carol", "scanner", [a], [point])
    browser.login("root")
    for url in ("/users/", f"/users/{target.id}/edit"):
        html = browser.get(url).get_data(as_text=True)
        assert "<select multiple" not in html and "Ctrl" not in html
        assert f'type="checkbox" value="{a.id}"' in html and f'type="checkbox" value="{b.id}"' in html
        assert f'type="checkbox" value="{point.id}"' in html and "<legend>所属企业</legend>" in html
    edit = browser.get(f"/users/{target.id}/edit").get_data(as_text=True)
    assert re.search(rf'<input checked id="enterprises-\d+" name="enterprises" type="checkbox" value="{a.id}">', edit)
    assert not re.search(rf'<input checked[^>]*name="enterprises" type="checkbox" value="{b.id}">', edit)
    # Each ticked box arrives as one value of the same name: both enterprises are bound.
    resp = browser.post(f"/users/{target.id}/edit", {"display_name": "", "role": "scanner", "active": "y",
                                                     "enterprises": [str(a.id), str(b.id)],
                                                     "scan_points": [str(point.id)]})
    assert resp.status_code == 303
    user = db.session.get(User, target.id)
    assert {e.name for e in user.enterprises} == {"甲公司", "乙公司"} and [p.code for p in user.scan_points] == ["SP01"]


def test_guessing_the_current_password_is_throttled_like_the_login(app, browser, make_user, make_enterprise):
    make_user("alice", "viewer", [make_enterprise()])
    browser.login("alice")
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        wrong = browser.post("/users/me/password", {"current": "guess-0000", "password": NEW_PASSWORD,
                                                    "confirm": NEW_PASSWORD})
        assert wrong.status_code == 422
    # Even the right password is refused now: the cap holds until the window passes.
    resp = browser.post("/users/me/password", {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert resp.status_code == 429 and "密码错误次数过多" in resp.get_data(as_text=True)
    user = db.session.scalar(select(User).where(User.username == "alice"))
    assert check_password_hash(user.password_hash, PASSWORD)


def test_the_user_list_sorts_by_column(browser, ops, make_user, make_enterprise):
    ent = make_enterprise()
    for name, role in (("bob", "viewer"), ("carol", "ops"), ("alice", "scanner")):
        make_user(name, role, [ent])

    def order(query: str) -> list[str]:
        html = browser.get(f"/users/{query}").get_data(as_text=True)
        return re.findall(r'<td class="mono">([^<]+)</td>', html.split('id="user-rows"', 1)[1])

    browser.login("root")
    assert order("") == ["alice", "bob", "carol", "root"]
    assert order("?sort=username&dir=desc") == ["root", "carol", "bob", "alice"]
    # By role code: ops, scanner, viewer (equal roles by user name).
    assert order("?sort=role&dir=asc") == ["carol", "root", "alice", "bob"]
    html = browser.get("/users/?sort=role&dir=asc").get_data(as_text=True)
    assert 'href="/users/?sort=role&amp;dir=desc"' in html
