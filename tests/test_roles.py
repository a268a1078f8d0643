"""Every route × every role: the exact status (and redirect target) each one answers."""
import io
import re
from urllib.parse import quote

import pytest

from portal import bills
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import DockingConnection, WritebackJob

from .conftest import CORPUS

ROLES = ("anonymous", "ops", "scanner", "viewer")
# What each role gets, in ROLES order. An int is the status; (status, location) a redirect that
# must go exactly there; LOGIN the redirect of an anonymous visitor to /login?next=<this url>.
# POSTs carry an empty form (and the CSRF token): a form route answers 422, a plain action 303.
LOGIN = "login"
OPS_PAGE = (LOGIN, 200, 403, 403)
OPS_FORM = (LOGIN, 422, 403, 403)  # empty form refused for ops, role refused for the others
PAGE = (LOGIN, 200, 200, 200)
MISSING = (LOGIN, 404, 404, 404)
DESK_FORM = (LOGIN, 422, 422, 403)  # the scan desk (ops and scanners); viewers never post
BACK_TO_BILL = (LOGIN, (303, "/bills/B-1"), (303, "/bills/B-1"), 403)
# Token-guarded routes (ERP API, push, signed links): a portal session unlocks nothing there. A
# viewer's POST is refused before anything else, the API included (DESIGN §2).
BEARER_GET = (401, 401, 401, 401)
BEARER_POST = (401, 401, 401, 403)
SIGNED = (403, 403, 403, 403)

# (method, url, expectation). {ent}, {dock}, {point}, {user}, {image}, {photo}, {invoice}, {job} are filled in.
ROUTES = [
    ("GET", "/", (LOGIN, (302, "/enterprises/"), (302, "/scan/"), (302, "/invoices/"))),
    ("GET", "/login", (200, (302, "/"), (302, "/"), (302, "/"))),
    # A logged-in viewer posting anywhere is refused, the login form included.
    ("POST", "/login", (422, (302, "/"), (302, "/"), 403)),
    ("POST", "/logout", (LOGIN, (302, "/login"), (302, "/login"), (302, "/login"))),
    ("GET", "/enterprises/", PAGE),
    ("GET", "/enterprises/new", OPS_PAGE),
    ("POST", "/enterprises/", OPS_FORM),
    ("GET", "/enterprises/{ent}", PAGE),
    ("GET", "/enterprises/999999", MISSING),
    ("GET", "/enterprises/{ent}/edit", OPS_PAGE),
    ("POST", "/enterprises/{ent}/edit", OPS_FORM),
    ("POST", "/enterprises/{ent}/delete", OPS_FORM),  # deleting asks for the tax number typed again
    # The enterprise does not verify invoices: nothing to ask again.
    ("POST", "/enterprises/{ent}/verify-again", (LOGIN, 409, 403, 403)),
    ("GET", "/docking/", OPS_PAGE),
    ("GET", "/docking/new", OPS_PAGE),
    ("POST", "/docking/", OPS_FORM),
    # A failed connection test is a result shown to the user, not an error of ours.
    ("POST", "/docking/test", OPS_PAGE),
    ("POST", "/docking/datacenters", OPS_PAGE),
    ("GET", "/docking/{dock}/edit", OPS_PAGE),
    ("POST", "/docking/{dock}/edit", OPS_FORM),
    ("POST", "/docking/{dock}/delete", (LOGIN, (303, "/docking/"), 403, 403)),
    ("GET", "/scan-points/", OPS_PAGE),
    ("POST", "/scan-points/", OPS_FORM),
    ("GET", "/scan-points/{point}/edit", OPS_PAGE),
    ("POST", "/scan-points/{point}/edit", OPS_FORM),
    ("GET", "/scan-points/{point}/delete", OPS_PAGE),
    # The point still has an unfinished bill (B-1): the delete is refused, nothing unassigned.
    ("POST", "/scan-points/{point}/delete", (LOGIN, 409, 403, 403)),
    ("GET", "/users/", OPS_PAGE),
    ("POST", "/users/", OPS_FORM),
    ("GET", "/users/{user}/edit", OPS_PAGE),
    ("POST", "/users/{user}/edit", OPS_FORM),
    ("POST", "/users/{user}/password", OPS_FORM),
    # Everyone changes their own password, viewers included (an empty form is refused).
    ("GET", "/users/me/password", PAGE),
    ("POST", "/users/me/password", (LOGIN, 422, 422, 422)),
    ("GET", "/audit/", OPS_PAGE),
    ("GET", "/scan/", (LOGIN, 200, 200, 403)),
    ("GET", "/scan/open?bill_no=B-1", (LOGIN, (303, "/bills/B-1"), (303, "/bills/B-1"), 403)),
    ("GET", "/bills/", PAGE),
    ("GET", "/bills/B-1", PAGE),
    ("GET", "/bills/NO-SUCH-BILL", MISSING),
    ("GET", "/bills/images/{image}/thumb", PAGE),
    ("GET", "/bills/images/{photo}/pages/1", PAGE),
    ("GET", "/bills/images/{photo}/pages/0", MISSING),  # pages count from 1
    ("GET", "/bills/images/{image}/original", PAGE),
    ("GET", "/bills/images/999999/original", MISSING),
    ("POST", "/bills/B-1/images", DESK_FORM),  # no file
    ("POST", "/bills/B-1/images/{image}/remove", BACK_TO_BILL),
    ("POST", "/bills/B-1/order", BACK_TO_BILL),
    ("POST", "/bills/B-1/invoices/{invoice}", BACK_TO_BILL),  # every field may be cleared
    ("POST", "/bills/B-1/invoices/{invoice}/confirm", BACK_TO_BILL),  # nothing to confirm: no change
    ("GET", "/bills/B-1/images/{image}/card", PAGE),  # what a 识别中 card polls
    ("POST", "/bills/B-1/images/{image}/invoices", DESK_FORM),
    ("POST", "/bills/B-1/submit", BACK_TO_BILL),
    ("POST", "/bills/B-1/return", DESK_FORM),  # no reason
    ("POST", "/bills/B-1/confirm", DESK_FORM),  # no reason
    ("GET", "/invoices/", PAGE),
    ("GET", "/writeback/", OPS_PAGE),
    ("POST", "/writeback/{job}/retry", (LOGIN, (303, "/writeback/"), 403, 403)),
    ("POST", "/writeback/retry-failed", (LOGIN, (303, "/writeback/"), 403, 403)),
    ("POST", "/api/v1/token", BEARER_POST),  # no client credentials
    ("GET", "/api/v1/openapi.json", (200, 200, 200, 200)),
    ("GET", "/api/v1/scan-points", BEARER_GET),
    ("POST", "/api/v1/bills", BEARER_POST),
    ("GET", "/api/v1/bills/B-1", BEARER_GET),
    ("DELETE", "/api/v1/bills/B-1", BEARER_POST),
    ("POST", "/api/v1/bills/B-1/images", BEARER_POST),
    ("POST", "/api/v1/bills/B-1/return", BEARER_POST),
    ("GET", "/api/v1/bills/B-1/view-link", BEARER_GET),
    ("POST", "/api/v1/push/invoices", (400, 400, 400, 403)),  # no signed envelope
    ("GET", "/v/forged-token", SIGNED),
    ("GET", "/v/forged-token/images/{image}/thumb", SIGNED),
    ("GET", "/v/forged-token/images/{image}/pages/0", SIGNED),
    ("GET", "/v/forged-token/images/{image}/original", SIGNED),
    ("GET", "/v/upload/forged-token", SIGNED),
    ("POST", "/v/upload/forged-token/images", SIGNED),
    ("GET", "/v/upload/forged-token/images/{image}/thumb", SIGNED),
    ("GET", "/healthz", (200, 200, 200, 200)),
    ("GET", "/erp/open", SIGNED),
    ("GET", "/erp/plugin/{ent}/image_buttons.py", OPS_PAGE),
    # The operations manual: every logged-in role reads all of it.
    ("GET", "/help/", PAGE),
    ("GET", "/help/{chapter}", PAGE),
    ("GET", "/help/no-such-chapter", MISSING),
    ("GET", "/help/img/{shot}", PAGE),
    ("GET", "/help/img/no-such-image.png", MISSING),
]
# Every rule of the application must appear above.


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
    photo = bills.add_file(bill, _blank_png(), "b.png", "test").image
    job = WritebackJob(bill_id=bill.id, enterprise_id=ent.id, kind="attachment", sha256=image.sha256, state="failed")
    db.session.add(job)
    db.session.commit()
    return {"ent": ent.id, "dock": dock.id, "point": point.id, "user": target.id, "users": users,
            "image": image.id, "photo": photo.id, "invoice": image.invoices[0].id, "job": job.id,
            "chapter": "ops", "shot": "password.png"}


def _blank_png() -> bytes:
    """A small white picture: an image with a page to draw, cheap to recognise (nothing found)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (120, 80), "white").save(out, "PNG")
    return out.getvalue()


def _shape(url: str) -> str:
    """A URL with every variable part as ``*``, for matching rules to the table."""
    url = re.sub(r"\{[a-z]+\}|forged-token|NO-SUCH-BILL|B-1|(?<=/)\d+(?=/|$)", "*", url.split("?")[0])
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
    if want == LOGIN:
        want = (302, "/login?next=" + quote(url, safe=""))
    status, location = want if isinstance(want, tuple) else (want, None)
    got = (resp.status_code, resp.headers.get("Location"))
    assert got == (status, location), got


def test_viewer_post_anywhere_is_refused(browser, world):
    browser.login("user_viewer")
    for url in ("/enterprises/", "/scan-points/", "/anything/at/all"):
        assert browser.post(url, {}).status_code == 403
