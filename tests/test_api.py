"""The ERP API (/api/v1): tokens, image tasks, uploads, duplicates, view links, the OpenAPI document."""
from __future__ import annotations

import io
import os
import re
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import event, func, select

from portal import links
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import AuditEvent, Bill, BillEvent, Blob, ExpectedInvoice, Image

from .conftest import corpus

PDF_8006 = "vat_e_special_guizhou_00008006.pdf"
JPG_8006 = "vat_e_special_guizhou_00008006_render.jpg"
OFD_SHUDIAN = "shudian_vat_special_24322000000489101796.ofd"
PNG_TIANJIN = "vat_e_ordinary_tianjin_33207675.png"
SECRET = "s3cret-value-1234567890"
CJK = re.compile(r"[\u4e00-\u9fff]")




class Api:
    """A test client that speaks to /api/v1 as one enterprise's ERP."""

    def __init__(self, app, ent, secret=SECRET):
        self.client = app.test_client()
        self.ent = ent
        self.token = self.fetch_token(ent.client_id, secret).get_json()["access_token"]

    def fetch_token(self, client_id, secret):
        return self.client.post("/api/v1/token", json={"client_id": client_id, "client_secret": secret})

    def _headers(self, token=None):
        return {"Authorization": f"Bearer {token or self.token}"}

    def get(self, url, token=None):
        return self.client.get("/api/v1" + url, headers=self._headers(token))

    def post(self, url, json=None, token=None):
        return self.client.post("/api/v1" + url, json=json, headers=self._headers(token))

    def delete(self, url):
        return self.client.delete("/api/v1" + url, headers=self._headers())

    def open(self, bill_no="FYBX0001", **fields):
        resp = self.post("/bills", {"bill_no": bill_no, **fields})
        assert resp.status_code in (200, 201), resp.get_json()
        return resp.get_json()

    def upload(self, bill_no, *files):
        """Upload ``files``: corpus names or (filename, bytes) pairs, all in one request."""
        parts = [(io.BytesIO(corpus(f)), f) if isinstance(f, str) else (io.BytesIO(f[1]), f[0]) for f in files]
        return self.client.post(f"/api/v1/bills/{bill_no}/images", data={"file": parts},
                                content_type="multipart/form-data", headers=self._headers())


@pytest.fixture
def ent(make_enterprise):
    return make_enterprise("甲企业", client_id="erp-a")


@pytest.fixture
def api(app, ent):
    return Api(app, ent)


def stored_files(app) -> list[str]:
    root = Path(app.config["STORAGE_DIR"])
    return [str(p) for p in root.rglob("*") if p.is_file()] if root.exists() else []


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# --------------------------------------------------------------------------- tokens

def test_token_is_issued_for_good_credentials(app, ent):
    client = app.test_client()
    resp = client.post("/api/v1/token", json={"client_id": "erp-a", "client_secret": SECRET})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == app.config["API_TOKEN_TTL"]
    assert links.load("api", body["access_token"])["e"] == ent.id
    assert resp.headers["Cache-Control"] == "no-store"
    ok = client.get("/api/v1/scan-points", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ok.status_code == 200


def test_token_accepts_form_encoded_credentials(app, ent):
    resp = app.test_client().post("/api/v1/token", data={"client_id": "erp-a", "client_secret": SECRET})
    assert resp.status_code == 200 and resp.get_json()["access_token"]


@pytest.mark.parametrize("body", [
    {"client_id": "erp-a", "client_secret": "wrong"},
    {"client_id": "nobody", "client_secret": SECRET},
    {"client_id": "erp-a"},
    {},
])
def test_token_refused_for_bad_credentials(app, ent, body):
    resp = app.test_client().post("/api/v1/token", json=body)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"
    assert CJK.search(resp.get_json()["message"])


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic abc", "Token x"])
def test_endpoints_require_a_bearer_token(app, ent, header):
    headers = {"Authorization": header} if header else {}
    resp = app.test_client().get("/api/v1/scan-points", headers=headers)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_token"
    assert CJK.search(resp.get_json()["message"])
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_expires(app, ent, monkeypatch):
    app.config["API_TOKEN_TTL"] = 1
    api = Api(app, ent)
    assert api.get("/scan-points").status_code == 200
    # Jump the clock past the expiry instead of sleeping.
    now = time.time()
    monkeypatch.setattr(links, "time", SimpleNamespace(time=lambda: now + 5))
    resp = api.get("/scan-points")
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_token"


def test_rotating_the_secret_invalidates_tokens(app, ent):
    api = Api(app, ent)
    ent.client_secret_enc = encrypt("a-brand-new-secret-0000")
    db.session.commit()
    assert api.get("/scan-points").get_json()["error"] == "invalid_token"
    assert api.fetch_token("erp-a", SECRET).status_code == 401
    fresh = api.fetch_token("erp-a", "a-brand-new-secret-0000").get_json()["access_token"]
    assert api.get("/scan-points", token=fresh).status_code == 200


def test_token_of_a_deleted_enterprise_is_refused(app, ent):
    api = Api(app, ent)
    db.session.delete(ent)
    db.session.commit()
    assert api.get("/scan-points").status_code == 401


def test_view_link_is_not_an_api_token(app, api):
    api.open("FYBX0001")
    url = api.get("/bills/FYBX0001/view-link").get_json()["url"]
    assert api.get("/scan-points", token=url.rsplit("/", 1)[-1]).status_code == 401


# --------------------------------------------------------------------------- enterprise scoping

@pytest.mark.parametrize("method,url", [
    ("get", "/bills/B-0001"),
    ("delete", "/bills/B-0001"),
    ("get", "/bills/B-0001/view-link"),
    ("post", "/bills/B-0001/images"),
    ("post", "/bills/B-0001/return"),
])
def test_other_enterprises_bills_are_invisible(app, api, make_enterprise, method, url):
    other = Api(app, make_enterprise("乙企业", client_id="erp-b"))
    other.open("B-0001")
    if method == "post" and url.endswith("/images"):
        resp = api.upload("B-0001", PDF_8006)
    elif method == "post":
        resp = api.post(url, {"reason": "x"})
    else:
        resp = getattr(api, method)(url)
    assert resp.status_code == 404
    assert resp.get_json()["error"] == "not_found"
    assert db.session.scalar(select(Bill.status).where(Bill.bill_no == "B-0001")) == "pending"
    assert count(Image) == 0


def test_same_bill_no_in_two_enterprises_are_two_bills(app, api, make_enterprise):
    other = Api(app, make_enterprise("乙企业", client_id="erp-b"))
    assert api.post("/bills", {"bill_no": "FYBX0001", "amount": "1"}).status_code == 201
    assert other.post("/bills", {"bill_no": "FYBX0001", "amount": "2"}).status_code == 201
    assert api.get("/bills/FYBX0001").get_json()["amount"] == "1.00"
    assert other.get("/bills/FYBX0001").get_json()["amount"] == "2.00"


def test_scan_points_of_own_enterprise_only(app, api, ent, make_enterprise, make_scan_point):
    make_scan_point(ent, "SP02", "二号扫描点")
    make_scan_point(ent, "SP01", "一号扫描点")
    make_scan_point(make_enterprise("乙企业"), "SPX", "别家扫描点")
    assert api.get("/scan-points").get_json() == {"items": [{"code": "SP01", "name": "一号扫描点"},
                                                            {"code": "SP02", "name": "二号扫描点"}]}


# --------------------------------------------------------------------------- opening bills

def test_open_bill_then_again_returns_the_same_bill(app, api, ent, make_scan_point):
    make_scan_point(ent, "SP01")
    first = api.post("/bills", {"bill_no": "FYBX0001", "erp_id": 100123, "submitter": "张三", "org": "总部",
                                "amount": "1280.5", "scan_point": "SP01"})
    assert first.status_code == 201
    assert first.headers["Location"].endswith("/api/v1/bills/FYBX0001")
    body = first.get_json()
    assert body == {
        "bill_no": "FYBX0001", "status": "pending", "status_label": "待扫描", "amount": "1280.50",
        "form_id": "ER_ExpReimbursement", "erp_id": "100123", "submitter": "张三", "org": "总部",
        "scan_point": "SP01", "return_reason": None, "images": [], "invoices": [],
    }
    again = api.post("/bills", {"bill_no": "FYBX0001", "amount": "9.99"})
    assert again.status_code == 200
    assert again.get_json() == body  # the existing bill, untouched
    assert db.session.scalar(select(func.count()).select_from(Bill)) == 1
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.object_type == "bill")).all()
    assert [(a.action, a.actor) for a in audit] == [("create", "api:erp-a")]


def test_open_bill_keeps_expected_invoices(app, api, ent):
    api.open("FYBX0002", form_id="ER_Other", expected_invoices=[
        {"serialNo": "S1", "invoiceType": "20", "invoiceCode": "052002100113", "invoiceNo": "00008006",
         "invoiceDate": "20220505", "amount": "24519.05", "taxAmount": "735.57", "totalAmount": "25254.62",
         "salerName": "贵州某公司"},
        {"invoiceNo": "24322000000489101796", "totalAmount": 20000},
    ])
    rows = db.session.scalars(select(ExpectedInvoice).order_by(ExpectedInvoice.id)).all()
    assert [(r.origin, r.bill_no, r.invoice_key) for r in rows] == [
        ("erp", "FYBX0002", "052002100113:00008006"), ("erp", "FYBX0002", ":24322000000489101796")]
    assert str(rows[0].total) == "25254.62" and rows[0].date.isoformat() == "2022-05-05"
    assert api.get("/bills/FYBX0002").get_json()["form_id"] == "ER_Other"


def test_open_bill_stores_an_invoice_listed_twice_once(app, api):
    twice = {"invoiceCode": "052002100113", "invoiceNo": "00008006"}
    assert api.post("/bills", {"bill_no": "FYBX0003", "expected_invoices": [twice, dict(twice)]}).status_code == 201
    assert count(ExpectedInvoice) == 1


@pytest.mark.parametrize("body,word", [
    ({}, "bill_no"),
    ({"bill_no": "   "}, "bill_no"),
    ({"bill_no": "X" * 65}, "bill_no"),
    # Numbers no route could reach again, or that read differently than they are stored.
    ({"bill_no": "FY/BX1"}, "bill_no"),
    ({"bill_no": "FY\\BX1"}, "bill_no"),
    ({"bill_no": "FY..BX1"}, "bill_no"),
    ({"bill_no": ".."}, "bill_no"),
    ({"bill_no": "."}, "bill_no"),
    ({"bill_no": "FY\x00BX1"}, "bill_no"),
    ({"bill_no": "FY\x1bBX1"}, "bill_no"),
    ({"bill_no": "FY\u202eBX1"}, "bill_no"),
    ({"bill_no": "FY BX1"}, "bill_no"),
    ({"bill_no": " FYBX1"}, "bill_no"),
    ({"bill_no": "FYBX1 "}, "bill_no"),
    ({"bill_no": "FYBX1?x=1"}, "bill_no"),
    ({"bill_no": "FYBX1#a"}, "bill_no"),
    # Free text over its column's length is refused whole, never cut or stored.
    ({"bill_no": "F1", "submitter": "张" * 101}, "submitter"),
    ({"bill_no": "F1", "org": "组" * 201}, "org"),
    ({"bill_no": "F1", "form_id": "F" * 65}, "form_id"),
    ({"bill_no": "F1", "erp_id": "9" * 65}, "erp_id"),
    ({"bill_no": "F1", "scan_point": "S" * 33}, "scan_point"),
    ({"bill_no": "F1", "amount": "12.345"}, "amount"),
    ({"bill_no": "F1", "amount": "abc"}, "amount"),
    ({"bill_no": "F1", "scan_point": "NOPE"}, "NOPE"),
    ({"bill_no": "F1", "expected_invoices": {"invoiceNo": "1"}}, "expected_invoices"),
    ({"bill_no": "F1", "expected_invoices": [{"invoiceNo": "ABC"}]}, "invoiceNo"),
    ({"bill_no": "F1", "expected_invoices": [{"invoiceCode": "052002100113"}]}, "invoiceNo"),
    ({"bill_no": "F1", "expected_invoices": [{"invoiceNo": "00008006", "invoiceDate": "20221345"}]}, "invoiceDate"),
    ({"bill_no": "F1", "expected_invoices": [{"invoiceNo": "00008006", "totalAmount": "1.234"}]}, "totalAmount"),
    ({"bill_no": "F1", "expected_invoices": ["00008006"]}, "发票"),
    ([1, 2], "JSON"),
])
def test_open_bill_refuses_bad_fields(app, api, body, word):
    resp = api.post("/bills", body)
    assert resp.status_code == 422
    err = resp.get_json()
    assert err["error"] == "invalid_request"
    assert word in err["message"] and CJK.search(err["message"])
    assert count(Bill) == 0 and count(ExpectedInvoice) == 0


def test_bill_no_rule_names_the_rule(app, api):
    err = api.post("/bills", {"bill_no": "FY/BX1"}).get_json()
    assert "字母、数字" in err["message"] and "“..”" in err["message"] and "斜杠" in err["message"]


def test_open_bill_refuses_over_long_text_with_a_message(app, api):
    err = api.post("/bills", {"bill_no": "F1", "submitter": "张" * 101}).get_json()
    assert err["message"] == "submitter 不能超过 100 个字符（收到 101 个）"
    assert api.post("/bills", {"bill_no": "F1", "submitter": "张" * 100}).status_code == 201


@pytest.mark.parametrize("bill_no", ["FY-BX_2024.001", "A.B", "单据-001", "x" * 64])
def test_every_accepted_bill_no_is_reachable_by_every_route(app, api, bill_no):
    assert api.post("/bills", {"bill_no": bill_no}).status_code == 201
    assert api.get(f"/bills/{bill_no}").get_json()["bill_no"] == bill_no
    assert api.upload(bill_no, PDF_8006).status_code == 201
    assert api.get(f"/bills/{bill_no}/view-link").status_code == 200
    assert api.post(f"/bills/{bill_no}/return", {"reason": "重扫"}).status_code == 200
    assert api.delete(f"/bills/{bill_no}").status_code == 200


def test_open_bill_refuses_a_body_that_is_not_json(app, api):
    resp = api.client.post("/api/v1/bills", data="{not json", content_type="application/json",
                           headers=api._headers())
    assert resp.status_code == 422 and resp.get_json()["error"] == "invalid_request"


# --------------------------------------------------------------------------- images

def test_upload_and_get_bill_with_exact_values(app, api):
    api.open("FYBX0001")
    resp = api.upload("FYBX0001", PDF_8006)
    assert resp.status_code == 201
    up = resp.get_json()
    assert len(up["images"]) == 1 and up["images"][0]["created"] is True
    body = api.get("/bills/FYBX0001").get_json()
    assert body["status"] == "uploaded"
    [image] = body["images"]
    assert image == {"id": up["images"][0]["id"], "sha256": up["images"][0]["sha256"],
                     "media_type": "application/pdf", "pages": 1, "filename": PDF_8006, "recognition": None}
    assert len(image["sha256"]) == 64
    [inv] = body["invoices"]
    assert inv["image_id"] == image["id"]
    assert (inv["code"], inv["number"], inv["date"]) == ("052002100113", "00008006", "2022-05-05")
    assert (inv["amount"], inv["tax"], inv["total"]) == ("24519.05", "735.57", "25254.62")
    assert inv["duplicate_bills"] == []
    assert inv["source"] in ("pdf_text", "qr")
    assert inv["verification"] is None  # 发票查验 is off by default
    assert set(inv) == {"image_id", "type", "code", "number", "date", "amount", "tax", "total", "check_code",
                        "seller_name", "seller_tax_no", "buyer_name", "buyer_tax_no", "source", "needs_confirmation",
                        "ocr_fields", "duplicate_bills", "verification"}
    assert inv["needs_confirmation"] is False
    assert up["invoices"] == body["invoices"]
    img = db.session.get(Image, image["id"])
    assert (img.origin, img.uploaded_by) == ("api", "api:erp-a")


def test_upload_several_files_at_once(app, api):
    api.open("FYBX0001")
    resp = api.upload("FYBX0001", PDF_8006, OFD_SHUDIAN, PNG_TIANJIN)
    assert resp.status_code == 201, resp.get_json()
    up = resp.get_json()
    assert [i["filename"] for i in up["images"]] == [PDF_8006, OFD_SHUDIAN, PNG_TIANJIN]
    assert [i["media_type"] for i in up["images"]] == ["application/pdf", "application/ofd", "image/png"]
    assert all(i["created"] for i in up["images"])
    numbers = {i["number"] for i in up["invoices"]}
    assert {"00008006", "24322000000489101796", "33207675"} <= numbers
    body = api.get("/bills/FYBX0001").get_json()
    assert [i["filename"] for i in body["images"]] == [PDF_8006, OFD_SHUDIAN, PNG_TIANJIN]
    shudian = next(i for i in body["invoices"] if i["number"] == "24322000000489101796")
    assert shudian["code"] is None and shudian["total"] == "20000.00"


def test_same_file_twice_is_stored_once(app, api):
    api.open("FYBX0001")
    first = api.upload("FYBX0001", PDF_8006).get_json()["images"][0]
    again = api.upload("FYBX0001", ("copy.pdf", corpus(PDF_8006)))
    assert again.status_code == 201
    [img] = again.get_json()["images"]
    assert img["created"] is False and img["id"] == first["id"]
    twice = api.upload("FYBX0001", PDF_8006, PDF_8006).get_json()
    assert [i["created"] for i in twice["images"]] == [False, False]
    assert len(twice["invoices"]) == 1
    body = api.get("/bills/FYBX0001").get_json()
    assert len(body["images"]) == 1 and len(body["invoices"]) == 1
    assert count(Blob) == 1


@pytest.mark.parametrize("bad", [
    ("invoice.pdf", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"),
    ("invoice.pdf", os.urandom(4096)),
])
@pytest.mark.parametrize("with_good_first", [False, True])
def test_unsupported_file_is_refused_and_nothing_stored(app, api, bad, with_good_first):
    api.open("FYBX0001")
    files = ([PDF_8006] if with_good_first else []) + [bad]
    resp = api.upload("FYBX0001", *files)
    assert resp.status_code == 415
    err = resp.get_json()
    assert err["error"] == "unsupported_media_type" and "invoice.pdf" in err["message"]
    assert count(Image) == 0 and count(Blob) == 0
    assert stored_files(app) == []
    assert api.get("/bills/FYBX0001").get_json()["status"] == "pending"


def test_damaged_file_is_refused_and_nothing_stored(app, api):
    api.open("FYBX0001")
    damaged = corpus(PDF_8006)[:600]  # a PDF head without the rest of the file
    resp = api.upload("FYBX0001", PDF_8006, ("broken.pdf", damaged))
    assert resp.status_code == 422, resp.get_json()
    assert "broken.pdf" in resp.get_json()["message"]
    assert count(Image) == 0 and count(Blob) == 0 and stored_files(app) == []


def test_file_over_the_size_cap_is_refused(app, api):
    api.open("FYBX0001")
    app.config["MAX_FILE_BYTES"] = 10_000
    resp = api.upload("FYBX0001", ("small.xml", corpus("vat_e_special_guizhou_00008006_original_invoice.xml")), PDF_8006)
    assert resp.status_code == 413
    assert resp.get_json()["error"] == "too_large" and PDF_8006 in resp.get_json()["message"]
    assert count(Image) == 0 and stored_files(app) == []


def test_request_over_max_content_length_is_413_json(app, api):
    api.open("FYBX0001")
    app.config["MAX_CONTENT_LENGTH"] = 50_000
    resp = api.upload("FYBX0001", PDF_8006)
    assert resp.status_code == 413
    assert resp.get_json()["error"] == "too_large" and CJK.search(resp.get_json()["message"])
    assert count(Image) == 0


def test_upload_without_files_is_422(app, api):
    api.open("FYBX0001")
    resp = api.client.post("/api/v1/bills/FYBX0001/images", data={"other": "x"},
                           content_type="multipart/form-data", headers=api._headers())
    assert resp.status_code == 422 and resp.get_json()["error"] == "invalid_request"


def test_upload_to_a_deleted_bill_is_409(app, api):
    api.open("FYBX0001")
    api.delete("/bills/FYBX0001")
    resp = api.upload("FYBX0001", ("page.html", b"<html></html>"))
    assert resp.status_code == 409 and resp.get_json()["error"] == "conflict"
    assert count(Image) == 0


def test_get_bill_uses_a_fixed_number_of_queries(app, api):
    def queries_for(bill_no):
        seen = []

        def count_it(*args, **kwargs):
            seen.append(1)

        event.listen(db.engine, "before_cursor_execute", count_it)
        try:
            assert api.get(f"/bills/{bill_no}").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count_it)
        return len(seen)

    api.open("ONE")
    api.upload("ONE", PDF_8006)
    api.open("MANY")
    api.upload("MANY", PDF_8006, OFD_SHUDIAN, PNG_TIANJIN, "vat_e_ordinary_zhejiang_83089647_original_invoice.xml")
    db.session.expunge_all()
    one = queries_for("ONE")
    db.session.expunge_all()
    assert queries_for("MANY") == one <= 8


# --------------------------------------------------------------------------- duplicates

def test_same_invoice_in_two_formats_on_two_bills_is_a_duplicate(app, api):
    api.open("BILL-A")
    api.open("BILL-B")
    assert api.upload("BILL-A", PDF_8006).status_code == 201
    up = api.upload("BILL-B", JPG_8006)
    assert up.status_code == 201
    assert up.get_json()["invoices"][0]["duplicate_bills"] == ["BILL-A"]
    a = api.get("/bills/BILL-A").get_json()["invoices"]
    b = api.get("/bills/BILL-B").get_json()["invoices"]
    assert [i["duplicate_bills"] for i in a] == [["BILL-B"]]
    assert [i["duplicate_bills"] for i in b] == [["BILL-A"]]
    assert b[0]["number"] == "00008006" and b[0]["source"] == "qr"

    assert api.delete("/bills/BILL-B").status_code == 200
    assert api.get("/bills/BILL-A").get_json()["invoices"][0]["duplicate_bills"] == []


# --------------------------------------------------------------------------- links, delete, return

def test_view_link_decodes_to_the_bill(app, api):
    api.open("FYBX0001")
    resp = api.get("/bills/FYBX0001/view-link")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["url"].startswith("http://localhost/v/")
    token = body["url"].rsplit("/", 1)[-1]
    bill = db.session.scalar(select(Bill).where(Bill.bill_no == "FYBX0001"))
    payload = links.load("view", token)
    assert payload["b"] == bill.id
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires.utcoffset().total_seconds() == 0
    assert abs(expires.timestamp() - (time.time() + app.config["VIEW_LINK_TTL"])) < 60
    assert int(expires.timestamp()) == payload["exp"]


def test_view_link_respects_public_base_url(app, api):
    api.open("FYBX0001")
    app.config["PUBLIC_BASE_URL"] = "https://images.example.com/"
    url = api.get("/bills/FYBX0001/view-link").get_json()["url"]
    assert url.startswith("https://images.example.com/v/") and "//v/" not in url


def test_delete_bill_keeps_its_images(app, api):
    api.open("FYBX0001")
    api.upload("FYBX0001", PDF_8006)
    resp = api.delete("/bills/FYBX0001")
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "deleted"
    body = api.get("/bills/FYBX0001").get_json()
    assert body["status"] == "deleted" and len(body["images"]) == 1 and len(body["invoices"]) == 1
    actions = db.session.execute(select(AuditEvent.action, AuditEvent.actor).where(AuditEvent.object_type == "bill")).all()
    assert ("delete", "api:erp-a") in actions
    assert api.delete("/bills/FYBX0001").status_code == 200  # deleting again is harmless


def test_return_bill_for_rescan(app, api):
    api.open("FYBX0001")
    assert api.post("/bills/FYBX0001/return", {"reason": "模糊"}).status_code == 409  # nothing scanned yet
    api.upload("FYBX0001", PDF_8006)
    missing = api.post("/bills/FYBX0001/return", {"reason": "  "})
    assert missing.status_code == 422 and CJK.search(missing.get_json()["message"])
    resp = api.post("/bills/FYBX0001/return", {"reason": "发票不清晰，请重扫"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["status"], body["return_reason"]) == ("returned", "发票不清晰，请重扫")
    assert api.post("/bills/FYBX0001/return", {"reason": "again"}).status_code == 409


def test_an_over_long_return_reason_is_refused_and_nothing_stored(app, api):
    api.open("FYBX0001")
    api.upload("FYBX0001", PDF_8006)
    events = count(BillEvent)
    resp = api.post("/bills/FYBX0001/return", {"reason": "糊" * 501})
    assert resp.status_code == 422
    assert resp.get_json()["message"] == "退回原因不能超过 500 个字符（收到 501 个）"
    body = api.get("/bills/FYBX0001").get_json()
    assert (body["status"], body["return_reason"]) == ("uploaded", None)
    assert count(BillEvent) == events
    assert api.post("/bills/FYBX0001/return", {"reason": "糊" * 500}).status_code == 200


def test_unknown_api_path_answers_json(app, api):
    resp = api.get("/nothing-here")
    assert resp.status_code == 404 and resp.is_json


# --------------------------------------------------------------------------- OpenAPI

def test_openapi_describes_every_route(app):
    resp = app.test_client().get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {"Bill", "Image", "Invoice", "Error", "Token"} <= set(doc["components"]["schemas"])
    base = doc["servers"][0]["url"]
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")]
    assert rules
    for rule in rules:
        assert rule.rule.startswith(base)
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len(base):])
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], (method, path)
    # Every $ref points at something that exists.
    text = resp.get_data(as_text=True)
    for ref in set(re.findall(r'"\$ref": ?"#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in doc["components"][ref[0]], ref


def test_openapi_states_the_limits_the_api_enforces(app):
    from portal import bills

    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    fields = doc["components"]["schemas"]["BillOpen"]["properties"]
    assert fields["bill_no"]["maxLength"] == bills.BILL_NO_MAX and "“..”" in fields["bill_no"]["description"]
    assert {f: fields[f]["maxLength"] for f in bills.TEXT_LIMITS} == bills.TEXT_LIMITS
    reason = doc["components"]["schemas"]["ReturnRequest"]["properties"]["reason"]
    assert reason["maxLength"] == bills.RETURN_REASON_MAX
    assert "410" in doc["paths"]["/bills/{bill_no}/view-link"]["get"]["responses"]
