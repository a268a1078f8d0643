"""Signed links without an account: the view link (影像调阅) and the submitter's upload link."""
from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from portal import bills, links
from portal.extensions import db
from portal.models import Bill, Image

from .conftest import corpus

PDF = "vat_e_special_guizhou_00008006.pdf"
OFD = "shudian_vat_special_24112000000048542163.ofd"
PNG = "vat_e_ordinary_tianjin_33207675.png"




@pytest.fixture
def bill_pair(app, make_enterprise):
    """Two bills of one enterprise, each with an uploaded file."""
    ent = make_enterprise("甲公司", mode="sync")
    one = bills.open_bill(ent, {"bill_no": "BX-0001", "submitter": "王五", "amount": "25254.62"}, "erp").bill
    two = bills.open_bill(ent, {"bill_no": "BX-0002"}, "erp").bill
    db.session.flush()
    first = bills.add_file(one, corpus(PDF), PDF, "erp").image
    second = bills.add_file(one, corpus(OFD), OFD, "erp").image
    elsewhere = bills.add_file(two, corpus(PNG), PNG, "erp").image
    db.session.commit()
    return {"bill": one.id, "other": two.id, "images": [first.id, second.id], "elsewhere": elsewhere.id}


def view_token(bill_id: int, ttl: int | None = None) -> str:
    return links.view_link(bill_id, ttl).token


# --------------------------------------------------------------------------- view link

def test_view_link_works_without_login(browser, bill_pair):
    token = view_token(bill_pair["bill"])
    resp = browser.get(f"/v/{token}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "影像调阅" in html and "BX-0001" in html and "王五" in html
    assert "00008006" in html and "24112000000048542163" in html and "33207675" not in html
    assert "<form" not in html.split('<main class="container">', 1)[1] and "hx-post" not in html
    assert 'data-viewer' in html and "viewer.js" in html
    assert resp.headers["Referrer-Policy"] == "no-referrer" and resp.headers["Cache-Control"] == "no-store"
    for image_id in bill_pair["images"]:
        assert f'/v/{token}/images/{image_id}/thumb' in html
        thumb = browser.get(f"/v/{token}/images/{image_id}/thumb")
        assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
        assert thumb.headers["Referrer-Policy"] == "no-referrer" and "private" in thumb.headers["Cache-Control"]
        page = browser.get(f"/v/{token}/images/{image_id}/pages/1")
        assert page.status_code == 200 and page.mimetype == "image/jpeg"
    original = browser.get(f"/v/{token}/images/{bill_pair['images'][0]}/original", buffered=True)
    assert original.status_code == 200 and original.data == corpus(PDF)
    assert original.mimetype == "application/pdf" and original.headers["Content-Disposition"] == f"attachment; filename={PDF}"


def _refused(resp) -> bool:
    return resp.status_code == 403 and "链接已失效或无效" in resp.get_data(as_text=True)


def test_altered_or_expired_links_are_refused(browser, bill_pair):
    token = view_token(bill_pair["bill"])
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    image = bill_pair["images"][0]
    assert _refused(browser.get(f"/v/{altered}"))
    assert _refused(browser.get(f"/v/{altered}/images/{image}/thumb"))
    expired = view_token(bill_pair["bill"], ttl=-1)
    assert _refused(browser.get(f"/v/{expired}"))
    assert _refused(browser.get(f"/v/{expired}/images/{image}/original"))
    # A link for one purpose is not a link for another.
    upload_token = links.upload_link(bill_pair["bill"]).token
    assert _refused(browser.get(f"/v/{upload_token}"))
    assert _refused(browser.get(f"/v/upload/{token}"))
    assert browser.get(f"/v/{altered}").headers["Referrer-Policy"] == "no-referrer"


def test_link_expiry_follows_the_clock(browser, bill_pair, monkeypatch):
    import time

    token = view_token(bill_pair["bill"], ttl=60)
    assert browser.get(f"/v/{token}").status_code == 200
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    assert _refused(browser.get(f"/v/{token}"))


def test_an_image_of_another_bill_is_not_found_through_a_valid_link(browser, bill_pair):
    token = view_token(bill_pair["bill"])
    for kind in ("thumb", "pages/1", "original"):
        assert browser.get(f"/v/{token}/images/{bill_pair['elsewhere']}/{kind}").status_code == 404
        assert browser.get(f"/v/{token}/images/999999/{kind}").status_code == 404
    assert browser.get(f"/v/{token}/images/{bill_pair['images'][0]}/pages/2").status_code == 404


def test_removed_images_are_not_shown_through_the_link(browser, bill_pair):
    bill = db.session.get(Bill, bill_pair["bill"])
    bills.remove_image(bill, db.session.get(Image, bill_pair["images"][0]), "scanner")
    db.session.commit()
    token = view_token(bill.id)
    html = browser.get(f"/v/{token}").get_data(as_text=True)
    assert "00008006" not in html and "24112000000048542163" in html
    assert browser.get(f"/v/{token}/images/{bill_pair['images'][0]}/thumb").status_code == 404


# --------------------------------------------------------------------------- upload link

def _post_file(browser, token: str, name: str, data: bytes, csrf: bool = True):
    return browser.post(f"/v/upload/{token}/images", {"file": (io.BytesIO(data), name)}, htmx="upload-1-state",
                        csrf=csrf, content_type="multipart/form-data")


def test_upload_link_adds_files_without_login(browser, bill_pair):
    token = links.upload_link(bill_pair["other"]).token
    page = browser.get(f"/v/upload/{token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "补传发票" in html and 'id="upload-panel"' in html and "upload.js" in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert f"/v/upload/{token}/images/{bill_pair['elsewhere']}/thumb" in html

    resp = _post_file(browser, token, OFD, corpus(OFD))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_data(as_text=True)
    assert "24112000000048542163" in body and 'hx-swap-oob="beforeend:#image-list"' in body
    assert "hx-post" not in body.split("hx-swap-oob", 1)[1]  # the submitter's card has no desk buttons
    image = db.session.scalar(select(Image).where(Image.bill_id == bill_pair["other"], Image.filename == OFD))
    assert image.origin == "link" and "上传链接" in image.uploaded_by
    thumb = browser.get(f"/v/upload/{token}/images/{image.id}/thumb")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    # The upload link shows thumbnails only: the view link's routes do not take it.
    assert _refused(browser.get(f"/v/{token}/images/{image.id}/original"))

    refused = _post_file(browser, token, "x.pdf", b"<html><body>no</body></html>")
    assert refused.status_code == 415 and "不支持的文件类型" in refused.get_data(as_text=True)


def test_upload_link_needs_the_csrf_token_and_an_editable_bill(browser, bill_pair):
    token = links.upload_link(bill_pair["other"]).token
    browser.get(f"/v/upload/{token}")
    assert _post_file(browser, token, PDF, corpus(PDF), csrf=False).status_code == 400
    before = db.session.scalar(select(func.count()).select_from(Image))
    bill = db.session.get(Bill, bill_pair["other"])
    bill.status = "completed"
    db.session.commit()
    html = browser.get(f"/v/upload/{token}").get_data(as_text=True)
    assert 'id="upload-closed"' in html and 'id="upload-panel"' not in html
    closed = _post_file(browser, token, PDF, corpus(PDF))
    assert closed.status_code == 409 and "不能修改影像" in closed.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Image)) == before
    expired = links.upload_link(bill_pair["other"], ttl=-1).token
    assert _refused(_post_file(browser, expired, PDF, corpus(PDF)))


def test_sync_mode_view_page_offers_the_submitter_an_upload_link(browser, bill_pair, make_enterprise):
    html = browser.get(f"/v/{view_token(bill_pair['bill'])}").get_data(as_text=True)
    match = re.search(r'href="(/v/upload/[^"]+)"', html)
    assert match and "补传" in html
    page = browser.get(match.group(1))
    assert page.status_code == 200
    # Other image modes have a scan desk: their view page offers no upload.
    basic = make_enterprise("乙公司", mode="basic")
    other = bills.open_bill(basic, {"bill_no": "BX-9"}, "erp").bill
    db.session.commit()
    assert "/v/upload/" not in browser.get(f"/v/{view_token(other.id)}").get_data(as_text=True)


# --------------------------------------------------------------------------- deleted bills

def test_links_of_a_deleted_bill_are_revoked_but_its_pages_stay_for_ops(browser, bill_pair, make_user):
    bill = db.session.get(Bill, bill_pair["bill"])
    view, upload = view_token(bill.id), links.upload_link(bill.id).token
    image_id = bill_pair["images"][0]
    urls = [f"/v/{view}", f"/v/{view}/images/{image_id}/thumb", f"/v/{view}/images/{image_id}/pages/1",
            f"/v/{view}/images/{image_id}/original", f"/v/upload/{upload}", f"/v/upload/{upload}/images/{image_id}/thumb"]
    assert [browser.get(u, buffered=True).status_code for u in urls] == [200] * len(urls)

    bills.delete_bill(bill, "api:erp")
    db.session.commit()
    for url in urls:
        resp = browser.get(url, buffered=True)
        assert resp.status_code == 410, url
        assert "单据已被 ERP 删除" in resp.get_data(as_text=True) and resp.mimetype == "text/html"
        assert resp.headers["Cache-Control"] == "no-store"
    before = db.session.scalar(select(func.count()).select_from(Image))
    assert _post_file(browser, upload, PNG, corpus(PNG)).status_code == 410
    assert db.session.scalar(select(func.count()).select_from(Image)) == before

    # The audit trail: people with an account still see the bill and its files.
    make_user("ops1", "ops", [bill.enterprise])
    browser.login("ops1")
    assert browser.get("/bills/BX-0001").status_code == 200
    original = browser.get(f"/bills/images/{image_id}/original", buffered=True)
    assert original.status_code == 200 and original.data == corpus(PDF)


def test_the_api_gives_no_new_view_link_for_a_deleted_bill(app, bill_pair):
    bill = db.session.get(Bill, bill_pair["bill"])
    client, auth = app.test_client(), {"Authorization": f"Bearer {links.api_token(bill.enterprise).token}"}
    assert client.get("/api/v1/bills/BX-0001/view-link", headers=auth).status_code == 200
    assert client.delete("/api/v1/bills/BX-0001", headers=auth).status_code == 200
    resp = client.get("/api/v1/bills/BX-0001/view-link", headers=auth)
    assert resp.status_code == 410
    assert resp.get_json() == {"error": "gone", "message": "单据 BX-0001 已被删除，不再提供调阅链接"}
