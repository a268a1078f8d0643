"""Every route × every role: allowed, 403, or redirect to the login page."""
import pytest

from portal.extensions import db
from portal.models import DockingConnection
from portal.crypto import encrypt

ROLES = ("anonymous", "ops", "scanner", "viewer")
OK, DENIED, LOGIN = "ok", "403", "login"

# (method, url, expectation per role in ROLES order). {ent}, {dock}, {point}, {user} are filled in.
OPS_ONLY_GET = (LOGIN, OK, DENIED, DENIED)
OPS_ONLY_POST = (LOGIN, OK, DENIED, DENIED)
EVERYONE_GET = (LOGIN, OK, OK, OK)
ROUTES = [
    ("GET", "/", (LOGIN, OK, OK, OK)),
    ("GET", "/login", (OK, OK, OK, OK)),
    # A logged-in viewer posting anywhere is refused, the login form included.
    ("POST", "/login", (OK, OK, OK, DENIED)),
    ("POST", "/logout", (LOGIN, OK, OK, OK)),
    ("GET", "/enterprises/", EVERYONE_GET),
    ("GET", "/enterprises/new", OPS_ONLY_GET),
    ("POST", "/enterprises/", OPS_ONLY_POST),
    ("GET", "/enterprises/{ent}", EVERYONE_GET),
    ("GET", "/enterprises/{ent}/edit", OPS_ONLY_GET),
    ("POST", "/enterprises/{ent}/edit", OPS_ONLY_POST),
    ("POST", "/enterprises/{ent}/delete", OPS_ONLY_POST),
    ("GET", "/docking/", OPS_ONLY_GET),
    ("GET", "/docking/new", OPS_ONLY_GET),
    ("POST", "/docking/", OPS_ONLY_POST),
    ("POST", "/docking/test", OPS_ONLY_POST),
    ("POST", "/docking/datacenters", OPS_ONLY_POST),
    ("GET", "/docking/{dock}/edit", OPS_ONLY_GET),
    ("POST", "/docking/{dock}/edit", OPS_ONLY_POST),
    ("POST", "/docking/{dock}/delete", OPS_ONLY_POST),
    ("GET", "/scan-points/", OPS_ONLY_GET),
    ("POST", "/scan-points/", OPS_ONLY_POST),
    ("POST", "/scan-points/{point}/delete", OPS_ONLY_POST),
    ("GET", "/users/", OPS_ONLY_GET),
    ("POST", "/users/", OPS_ONLY_POST),
    ("GET", "/users/{user}/edit", OPS_ONLY_GET),
    ("POST", "/users/{user}/edit", OPS_ONLY_POST),
    ("POST", "/users/{user}/password", OPS_ONLY_POST),
    ("GET", "/audit/", OPS_ONLY_GET),
]
# Blueprints whose every rule must appear above.
SWEPT = {"auth", "enterprises", "docking", "scan_points", "users", "audit"}


@pytest.fixture
def world(make_enterprise, make_user, make_scan_point):
    ent = make_enterprise("甲公司")
    dock = DockingConnection(name="星空", base_url="http://127.0.0.1:9/k3cloud/", acct_id="x", username="u",
                             password_enc=encrypt("pw-123456"), enterprise_id=ent.id)
    db.session.add(dock)
    db.session.commit()
    point = make_scan_point(ent)
    users = {role: make_user(f"user_{role}", role, [ent], [point] if role == "scanner" else []) for role in ROLES[1:]}
    target = make_user("target", "viewer", [ent])
    return {"ent": ent.id, "dock": dock.id, "point": point.id, "user": target.id, "users": users}


def test_the_sweep_covers_every_route(app):
    declared = {(m, u.split("{")[0].rstrip("/") or "/") for m, u, _ in ROUTES}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in SWEPT:
            continue
        base = str(rule).split("<")[0].rstrip("/") or "/"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (method, base) not in declared:
                missing.append((method, str(rule)))
    assert not missing, f"routes missing from the role sweep: {missing}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,url,expected", ROUTES, ids=[f"{m} {u}" for m, u, _ in ROUTES])
def test_route_by_role(browser, world, role, method, url, expected):
    want = expected[ROLES.index(role)]
    if role != "anonymous":
        assert browser.login(f"user_{role}").status_code == 302
    url = url.format(**world)
    resp = browser.get(url) if method == "GET" else browser.post(url, {})
    location = resp.headers.get("Location", "")
    if want == LOGIN:
        assert resp.status_code == 302 and "/login" in location, (resp.status_code, location)
    elif want == DENIED:
        assert resp.status_code == 403, resp.status_code
    else:
        assert resp.status_code not in (401, 403, 500), resp.status_code
        assert "/login" not in location or url == "/logout"


def test_viewer_post_anywhere_is_refused(browser, world):
    browser.login("user_viewer")
    for url in ("/enterprises/", "/scan-points/", "/anything/at/all"):
        assert browser.post(url, {}).status_code == 403
