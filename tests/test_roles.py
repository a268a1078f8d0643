"""Every route × every role: allowed, 403, or redirect to the login page."""
import re

import pytest

from portal import bills
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import DockingConnection, WritebackJob

from .conftest import CORPUS

ROLES = ("anonymous", "ops", "scanner", "viewer")
OK, DENIED, LOGIN = "ok", "403", "login"
# Token-guarded routes (ERP API, push, signed links): a portal session unlocks nothing there.
TOKEN = "token"

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
    ("GET", "/scan/", (LOGIN, OK, OK, DENIED)),
    ("GET", "/scan/open?bill_no=B-1", (LOGIN, OK, OK, DENIED)),
    ("GET", "/bills/", EVERYONE_GET),
    ("GET", "/bills/B-1", EVERYONE_GET),
    ("GET", "/bills/images/{image}/thumb", EVERYONE_GET),
    ("GET", "/bills/images/{image}/pages/0", EVERYONE_GET),
    ("GET", "/bills/images/{image}/original", EVERYONE_GET),
    ("POST", "/bills/B-1/images", (LOGIN, OK, OK, DENIED)),
    ("POST", "/bills/B-1/images/{image}/remove", (LOGIN, OK, OK, DENIED)),
    ("POST", "/bills/B-1/order", (LOGIN, OK, OK, DENIED)),
    ("POST", "/bills/B-1/invoices/{invoice}", (LOGIN, OK, OK, DENIED)),
    ("POST", "/bills/B-1/images/{image}/invoices", (LOGIN, OK, OK, DENIED)),
    ("POST", "/bills/B-1/submit", (LOGIN, OK, OK, DENIED)),
    ("POST", "/bills/B-1/return", (LOGIN, OK, OK, DENIED)),
    ("POST", "/bills/B-1/confirm", (LOGIN, OK, OK, DENIED)),
    ("GET", "/invoices/", EVERYONE_GET),
    ("GET", "/writeback/", OPS_ONLY_GET),
    ("POST", "/writeback/{job}/retry", OPS_ONLY_POST),
    ("POST", "/writeback/retry-failed", OPS_ONLY_POST),
    ("POST", "/api/v1/token", (TOKEN,) * 4),
    ("GET", "/api/v1/openapi.json", (OK,) * 4),
    ("GET", "/healthz", (OK,) * 4),
    ("GET", "/erp/open", (TOKEN,) * 4),
    ("GET", "/erp/plugin/{ent}/image_buttons.py", OPS_ONLY_GET),
    ("GET", "/api/v1/scan-points", (TOKEN,) * 4),
    ("POST", "/api/v1/bills", (TOKEN,) * 4),
    ("GET", "/api/v1/bills/B-1", (TOKEN,) * 4),
    ("DELETE", "/api/v1/bills/B-1", (TOKEN,) * 4),
    ("POST", "/api/v1/bills/B-1/images", (TOKEN,) * 4),
    ("POST", "/api/v1/bills/B-1/return", (TOKEN,) * 4),
    ("GET", "/api/v1/bills/B-1/view-link", (TOKEN,) * 4),
    ("POST", "/api/v1/push/invoices", (TOKEN,) * 4),
    ("GET", "/v/forged-token", (TOKEN,) * 4),
    ("GET", "/v/forged-token/images/{image}/thumb", (TOKEN,) * 4),
    ("GET", "/v/forged-token/images/{image}/pages/0", (TOKEN,) * 4),
    ("GET", "/v/forged-token/images/{image}/original", (TOKEN,) * 4),
    ("GET", "/v/upload/forged-token", (TOKEN,) * 4),
    ("POST", "/v/upload/forged-token/images", (TOKEN,) * 4),
    ("GET", "/v/upload/forged-token/images/{image}/thumb", (TOKEN,) * 4),
]
# Every rule of the application must appear above.
SWEPT = None


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
    bill = bills.open_bill(ent, {"bill_no": "B-1", "scan_point": point.code, "erp_id": "100001"}, "test").bill
    image = bills.add_file(bill, (CORPUS / "vat_e_ordinary_zhejiang_83089647_original_invoice.xml").read_bytes(), "a.xml", "test").image
    job = WritebackJob(bill_id=bill.id, enterprise_id=ent.id, kind="attachment", sha256=image.sha256, state="failed")
    db.session.add(job)
    db.session.commit()
    return {"ent": ent.id, "dock": dock.id, "point": point.id, "user": target.id, "users": users,
            "image": image.id, "invoice": image.invoices[0].id, "job": job.id}


def _shape(url: str) -> str:
    """A URL with every variable part as ``*``, for matching rules to the table."""
    url = re.sub(r"\{[a-z]+\}|forged-token|B-1|(?<=/)\d+(?=/|$)", "*", url.split("?")[0])
    return url.rstrip("/") or "/"


def test_the_sweep_covers_every_route(app):
    declared = {(m, _shape(u)) for m, u, _ in ROUTES}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        base = _shape(re.sub(r"<[^>]+>", "*", str(rule)))
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
    if method == "GET":
        resp = browser.get(url)
    elif method == "POST":
        resp = browser.post(url, {})
    else:
        resp = browser.request(method, url, headers={"X-CSRFToken": browser.csrf()})
    location = resp.headers.get("Location", "")
    if want == TOKEN:
        assert resp.status_code in (400, 401, 403), resp.status_code
    elif want == LOGIN:
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
