"""The bill pages through the browser routes: upload, remove, reorder, correct, submit, return, assets."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import event, func, select

from portal import bills, links
from portal.errors import UserError
from portal.extensions import db
from portal.models import AuditEvent, Bill, BillEvent, Blob, Image, Invoice

from .conftest import corpus
from .test_pdf_preview import LEGIBLE_PX, median_glyph_px

PDF_00008006 = "vat_e_special_guizhou_00008006.pdf"
OFD_SHUDIAN = "shudian_vat_special_24112000000048542163.ofd"
PNG_33207675 = "vat_e_ordinary_tianjin_33207675.png"
XML_83089647 = "vat_e_ordinary_zhejiang_83089647_original_invoice.xml"
OFD_MULTIPAGE = "vat_e_ordinary_chongqing_12235358.ofd"


@pytest.fixture
def world(app, make_enterprise, make_user, make_scan_point):
    """Two enterprises; enterprise A has two scan points, a scanner on SP01, a viewer, ops, bills."""
    ent = make_enterprise("甲公司")
    other = make_enterprise("乙公司")
    sp1 = make_scan_point(ent, "SP01", "一号扫描点")
    sp2 = make_scan_point(ent, "SP02", "二号扫描点")
    osp = make_scan_point(other, "SP01", "乙公司扫描点")
    make_user("scanner1", "scanner", [ent], [sp1])
    make_user("scanner2", "scanner", [ent], [sp2])
    make_user("viewer1", "viewer", [ent])
    make_user("ops1", "ops", [ent])
    make_user("other_scanner", "scanner", [other], [osp])
    for ent_, no, point in ((ent, "BX-0001", "SP01"), (ent, "BX-0002", "SP01"), (ent, "BX-0003", "SP02"),
                            (other, "BX-9001", "SP01")):
        bills.open_bill(ent_, {"bill_no": no, "scan_point": point, "submitter": "张三", "amount": "25254.62"}, "erp")
    db.session.commit()
    return {"ent": ent.id, "other": other.id}


def bill(no: str, enterprise_id: int | None = None) -> Bill:
    stmt = select(Bill).where(Bill.bill_no == no)
    if enterprise_id:
        stmt = stmt.where(Bill.enterprise_id == enterprise_id)
    return db.session.scalar(stmt)


def attach(no: str, name: str, enterprise_id: int | None = None) -> Image:
    """Attach a corpus file directly through the domain service (for tests about other things)."""
    added = bills.add_file(bill(no, enterprise_id), corpus(name), name, "tester")
    db.session.commit()
    return added.image


def upload(browser, no: str, name: str, data: bytes | None = None, *, htmx=True, query: str = ""):
    payload = {"file": (io.BytesIO(corpus(name) if data is None else data), name)}
    return browser.post(f"/bills/{no}/images{query}", payload, htmx="upload-1-state" if htmx else False,
                        content_type="multipart/form-data")


@pytest.fixture
def scanner(browser, world):
    assert browser.login("scanner1").status_code == 302
    return browser


# --------------------------------------------------------------------------- upload

def test_upload_corpus_files_creates_images_and_invoices(scanner):
    expected = {PDF_00008006: "00008006", OFD_SHUDIAN: "24112000000048542163", PNG_33207675: "33207675"}
    for name, number in expected.items():
        resp = upload(scanner, "BX-0001", name)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        html = resp.get_data(as_text=True)
        # The row's text names the recognised number; the card goes to #image-list out of band.
        assert f'<span class="mono">{number}</span>' in html
        assert 'hx-swap-oob="beforeend:#image-list"' in html and 'class="image-card"' in html
        assert json.loads(resp.headers["HX-Trigger"]) == {"bill-changed": True}
    b = bill("BX-0001")
    assert b.status == "uploaded"
    images = bills.live_images(b)
    assert [i.filename for i in images] == list(expected)
    assert [i.origin for i in images] == ["upload"] * 3
    assert [inv.number for inv in bills.bill_invoices(b)] == list(expected.values())
    assert {i.uploaded_by for i in images} == {"scanner1"}
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    for number in expected.values():
        assert number in page


@pytest.mark.parametrize("data", [
    b"<!doctype html><html><body><script>alert(1)</script></body></html>",
    os.urandom(4096),
], ids=["html", "random"])
def test_unsupported_content_is_refused_with_415_and_nothing_stored(scanner, app, data):
    resp = upload(scanner, "BX-0001", "invoice.pdf", data)
    assert resp.status_code == 415
    assert "不支持的文件类型" in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Image)) == 0
    assert db.session.scalar(select(func.count()).select_from(Blob)) == 0
    stored = [p for p in Path(app.config["STORAGE_DIR"]).rglob("*") if p.is_file()]
    assert stored == []
    assert bill("BX-0001").status == "pending"


def test_the_same_file_twice_is_stored_once(scanner):
    assert upload(scanner, "BX-0001", PNG_33207675).status_code == 201
    again = upload(scanner, "BX-0001", PNG_33207675)
    assert again.status_code == 200
    html = again.get_data(as_text=True)
    assert "未重复保存" in html and "hx-swap-oob" not in html
    assert db.session.scalar(select(func.count()).select_from(Image)) == 1
    assert db.session.scalar(select(func.count()).select_from(Blob)) == 1


def test_upload_without_javascript_redirects_back(scanner):
    resp = upload(scanner, "BX-0001", PDF_00008006, htmx=False)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/bills/BX-0001")
    refused = upload(scanner, "BX-0001", "x.pdf", b"not a pdf at all", htmx=False)
    assert refused.status_code == 415 and "不支持的文件类型" in refused.get_data(as_text=True)


# --------------------------------------------------------------------------- remove and reorder

def test_remove_image(scanner):
    image = attach("BX-0001", PDF_00008006)
    resp = scanner.post(f"/bills/BX-0001/images/{image.id}/remove", htmx=f"image-{image.id}")
    assert resp.status_code == 200 and resp.get_data() == b""
    trigger = json.loads(resp.headers["HX-Trigger"])
    assert trigger["bill-changed"] and "已删除影像" in trigger["toast"]["message"]
    image = db.session.get(Image, image.id)
    assert image.removed
    assert db.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.image_id == image.id)) == 0
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert f'id="image-{image.id}"' not in page  # not among the live cards
    assert f'id="removed-image-{image.id}"' in page  # but in the history's removed images
    again = scanner.post(f"/bills/BX-0001/images/{image.id}/remove", htmx=f"image-{image.id}")
    assert again.status_code == 404


def test_reorder(scanner):
    ids = [attach("BX-0001", name).id for name in (PDF_00008006, OFD_SHUDIAN, PNG_33207675)]
    resp = scanner.post("/bills/BX-0001/order", {"image_ids": [str(i) for i in reversed(ids)]}, htmx="image-order")
    assert resp.status_code == 204
    assert json.loads(resp.headers["HX-Trigger"])["toast"]["message"] == "已调整影像顺序"
    assert [i.id for i in bills.live_images(bill("BX-0001"))] == list(reversed(ids))
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    positions = [page.index(f'id="image-{i}"') for i in reversed(ids)]
    assert positions == sorted(positions)
    assert scanner.post("/bills/BX-0001/order", {"image_ids": ["x"]}, htmx="image-order").status_code == 422


def test_positions_stay_unique_across_remove_reorder_and_re_add(scanner):
    ids = [attach("BX-0001", name).id for name in (PDF_00008006, OFD_SHUDIAN, PNG_33207675)]
    scanner.post(f"/bills/BX-0001/images/{ids[0]}/remove", htmx=f"image-{ids[0]}")
    assert scanner.post("/bills/BX-0001/order", {"image_ids": [str(ids[2]), str(ids[1])]}, htmx="image-order").status_code == 204
    assert len({i.position for i in bills.all_images(bill("BX-0001"))}) == 3  # the removed one keeps its own
    attach("BX-0001", XML_83089647)
    attach("BX-0001", PDF_00008006)  # the removed file comes back
    images = bills.all_images(bill("BX-0001"))
    assert len(images) == 4 and len({i.position for i in images}) == 4
    assert [i.id for i in bills.live_images(bill("BX-0001"))][:2] == [ids[2], ids[1]]
    assert [i.id for i in bills.live_images(bill("BX-0001"))][-1] == ids[0]  # re-added files go last


# --------------------------------------------------------------------------- correction and duplicates

def test_correct_invoice_sets_manual_source_audits_and_recomputes_duplicates(scanner):
    attach("BX-0001", PDF_00008006)
    attach("BX-0002", PDF_00008006)  # the same invoice on a second bill: a duplicate reimbursement
    inv = bills.bill_invoices(bill("BX-0001"))[0]
    other = bills.bill_invoices(bill("BX-0002"))[0]
    assert inv.duplicate and other.duplicate
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "重复报销" in page and ">BX-0002</a>" in page

    values = {"type": "20", "code": "052002100113", "number": "00008007", "date": "2022-05-05",
              "amount": "24519.05", "tax": "735.57", "total": "25254.62", "check_code": "",
              "seller_name": "卖方", "seller_tax_no": "", "buyer_name": "买方", "buyer_tax_no": ""}
    resp = scanner.post(f"/bills/BX-0001/invoices/{inv.id}", values, htmx=f"invoice-{inv.id}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith(f'<div class="invoice" id="invoice-{inv.id}"')
    assert "00008007" in html and "人工录入" in html and "重复报销" not in html
    inv, other = db.session.get(Invoice, inv.id), db.session.get(Invoice, other.id)
    assert inv.source == "manual" and inv.number == "00008007" and inv.invoice_key == "052002100113:00008007"
    assert not inv.duplicate and not other.duplicate
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "correct"))
    assert audit.object_id == str(inv.id) and audit.actor == "scanner1"
    assert audit.before["number"] == "00008006" and audit.after["number"] == "00008007"
    ev = db.session.scalar(select(BillEvent).where(BillEvent.action == "correct"))
    assert ev.detail["changed"]["number"] == "00008007"
    history = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "修正识别结果" in history and "发票号码 → 00008007" in history


@pytest.mark.parametrize("field,value,message", [
    ("number", "12AB", "发票号码应为 8 位或 20 位数字"),
    ("amount", "12.345", "不是有效的金额"),
    ("date", "2022-13-45", "开票日期 不是有效的日期"),
])
def test_correction_errors_answer_422_with_the_form(scanner, field, value, message):
    attach("BX-0001", PDF_00008006)
    inv = bills.bill_invoices(bill("BX-0001"))[0]
    resp = scanner.post(f"/bills/BX-0001/invoices/{inv.id}", {field: value}, htmx=f"invoice-{inv.id}")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert message in html and "<details class=\"invoice-edit\" open>" in html
    assert f'value="{value}"' in html  # what was typed comes back for fixing
    inv = db.session.get(Invoice, inv.id)
    assert inv.source == "pdf_text" and inv.number == "00008006"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "correct")) == 0


@pytest.mark.parametrize("field,limit,label", [("seller_name", 200, "销方名称"), ("buyer_name", 200, "购方名称"),
                                               ("check_code", 32, "校验码")])
def test_over_long_correction_text_is_refused_and_nothing_stored(scanner, field, limit, label):
    attach("BX-0001", PDF_00008006)
    inv = bills.bill_invoices(bill("BX-0001"))[0]
    resp = scanner.post(f"/bills/BX-0001/invoices/{inv.id}", {field: "x" * (limit + 1)}, htmx=f"invoice-{inv.id}")
    assert resp.status_code == 422 and f"{label}不能超过 {limit} 个字符" in resp.get_data(as_text=True)
    # The domain rule holds for callers without the form, too.
    with pytest.raises(UserError, match=f"{label} 不能超过 {limit} 个字符"):
        bills.correct_invoice(db.session.get(Invoice, inv.id), {field: "x" * (limit + 1)}, "tester")
    db.session.rollback()
    inv = db.session.get(Invoice, inv.id)
    assert inv.source == "pdf_text" and len(getattr(inv, field) or "") <= limit


def test_over_long_typed_in_text_is_refused(scanner):
    image = attach("BX-0001", PAPER_87654321)
    resp = _manual(scanner, "BX-0001", image.id, {**MANUAL, "seller_name": "卖" * 201})
    assert resp.status_code == 422 and "销方名称不能超过 200 个字符" in resp.get_data(as_text=True)
    with pytest.raises(UserError, match="销方名称 不能超过 200 个字符"):
        bills.add_manual_invoice(db.session.get(Image, image.id), {**MANUAL, "seller_name": "卖" * 201}, "tester")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 0


# --------------------------------------------------------------------------- submit, return, confirm

def test_submit_moves_the_status(scanner):
    refused = scanner.post("/bills/BX-0001/submit")
    assert refused.status_code == 409 and "还没有上传影像" in refused.get_data(as_text=True)
    attach("BX-0001", PDF_00008006)
    resp = scanner.post("/bills/BX-0001/submit")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/bills/BX-0001")
    b = bill("BX-0001")
    assert b.status == "completed" and b.submitted_at is not None  # basic mode completes on submit
    actions = [e.action for e in db.session.scalars(select(BillEvent).where(BillEvent.bill_id == b.id)
                                                    .order_by(BillEvent.id))]
    assert actions.index("submit") < actions.index("complete")
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert 'id="upload-panel"' not in page and "hx-post" not in page  # nothing editable any more
    assert upload(scanner, "BX-0001", PNG_33207675).status_code == 409


def test_return_for_rescan_with_a_reason(scanner):
    attach("BX-0001", PDF_00008006)
    scanner.post("/bills/BX-0001/submit")
    missing = scanner.post("/bills/BX-0001/return", {"reason": "  "})
    assert missing.status_code == 422 and "请填写退回原因" in missing.get_data(as_text=True)
    resp = scanner.post("/bills/BX-0001/return", {"reason": "第 1 张发票模糊"})
    assert resp.status_code == 303
    b = bill("BX-0001")
    assert (b.status, b.return_reason, b.round) == ("returned", "第 1 张发票模糊", 2)
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "退回原因：</strong>第 1 张发票模糊" in page and 'id="upload-panel"' in page
    # Rescan: a new file is marked as added after the return, the old one as removed after it.
    old = bills.live_images(b)[0]
    assert upload(scanner, "BX-0001", PNG_33207675).status_code == 201
    scanner.post(f"/bills/BX-0001/images/{old.id}/remove", htmx=f"image-{old.id}")
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "退扫后新增" in page and "退扫后删除" in page
    assert "退回重扫" in page and "原因：第 1 张发票模糊" in page  # in the history


def test_an_over_long_return_reason_is_refused_whole(scanner):
    attach("BX-0001", PDF_00008006)
    scanner.post("/bills/BX-0001/submit")
    resp = scanner.post("/bills/BX-0001/return", {"reason": "糊" * 501})
    assert resp.status_code == 422 and "退回原因不能超过 500 个字符" in resp.get_data(as_text=True)
    with pytest.raises(UserError, match="退回原因不能超过 500 个字符"):
        bills.return_bill(bill("BX-0001"), "糊" * 501, "tester")
    db.session.rollback()
    b = bill("BX-0001")
    assert (b.status, b.return_reason, b.round) == ("completed", None, 1)
    assert db.session.scalar(select(func.count()).select_from(BillEvent).where(BillEvent.action == "return")) == 0


def test_confirm_through_the_matching_module(scanner):
    attach("BX-0001", PDF_00008006)
    assert 'action="/bills/BX-0001/confirm"' not in scanner.get("/bills/BX-0001").get_data(as_text=True)
    b = bill("BX-0001")
    b.status = "match_failed"
    b.match_result = {"result": "match_failed", "reasons": ["发票 00008006 金额不一致"],
                      "items": [{"key": "052002100113:00008006", "status": "amount_mismatch",
                                 "expected": "25254.00", "found": "25254.62"}]}
    db.session.commit()
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "发票 00008006 金额不一致" in page and "金额不一致" in page and "25254.00" in page
    assert 'action="/bills/BX-0001/confirm"' in page  # a failed match offers the confirmation

    assert scanner.post("/bills/BX-0001/confirm", {"reason": ""}).status_code == 422
    assert bill("BX-0001").status == "match_failed"
    resp = scanner.post("/bills/BX-0001/confirm", {"reason": "纸质发票已核对"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/bills/BX-0001"
    b = bill("BX-0001")
    assert b.status == "matched" and b.match_result["result"] == "confirmed"
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "人工确认通过" in page and "原因：纸质发票已核对" in page
    assert 'action="/bills/BX-0001/confirm"' not in page
    again = scanner.post("/bills/BX-0001/confirm", {"reason": "再确认一次"})
    assert again.status_code == 409


# --------------------------------------------------------------------------- who may do what

def _every_post(image_id: int, invoice_id: int) -> list[str]:
    return ["/bills/BX-0001/images", f"/bills/BX-0001/images/{image_id}/remove", "/bills/BX-0001/order",
            f"/bills/BX-0001/invoices/{invoice_id}", f"/bills/BX-0001/images/{image_id}/invoices", "/bills/BX-0001/submit", "/bills/BX-0001/return",
            "/bills/BX-0001/confirm"]


def test_viewer_sees_a_read_only_page_and_every_post_is_refused(browser, world):
    image = attach("BX-0001", PDF_00008006)
    inv = bills.bill_invoices(bill("BX-0001"))[0]
    browser.login("viewer1")
    page = browser.get("/bills/BX-0001")
    assert page.status_code == 200
    main = page.get_data(as_text=True).split('<main class="container">', 1)[1]
    assert "<form" not in main and "hx-post" not in main and "<input" not in main
    assert "00008006" in main and 'data-viewer-item' in main
    for url in _every_post(image.id, inv.id):
        assert browser.post(url, {"reason": "x", "number": "1"}).status_code == 403, url
    assert len(bills.live_images(bill("BX-0001"))) == 1


def test_scanner_of_another_scan_point_reads_but_cannot_change(browser, world):
    image = attach("BX-0001", PDF_00008006)
    inv = bills.bill_invoices(bill("BX-0001"))[0]
    browser.login("scanner2")
    page = browser.get("/bills/BX-0001").get_data(as_text=True)
    assert "该单据属于其他扫描点" in page and "hx-post" not in page
    for url in _every_post(image.id, inv.id):
        assert browser.post(url, {"reason": "x"}).status_code == 403, url


@pytest.mark.parametrize("user", ["scanner1", "viewer1", "ops1"])
def test_other_enterprises_bills_and_images_are_404(browser, world, user):
    image = attach("BX-9001", PDF_00008006, world["other"])
    browser.login(user)
    assert browser.get("/bills/BX-9001").status_code == 404
    assert browser.get(f"/bills/BX-9001?e={world['other']}").status_code == 404
    for kind in ("thumb", "pages/1", "original"):
        assert browser.get(f"/bills/images/{image.id}/{kind}").status_code == 404
    if user != "viewer1":
        assert upload(browser, "BX-9001", PNG_33207675).status_code == 404


def test_anonymous_is_sent_to_login(browser, world):
    image = attach("BX-0001", PDF_00008006)
    for url in ("/bills/", "/bills/BX-0001", f"/bills/images/{image.id}/thumb", f"/bills/images/{image.id}/original"):
        resp = browser.get(url)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_same_number_in_two_enterprises_asks_which(browser, world, make_user):
    from portal.models import Enterprise

    ent, other = db.session.get(Enterprise, world["ent"]), db.session.get(Enterprise, world["other"])
    bills.open_bill(other, {"bill_no": "BX-0001"}, "erp")
    db.session.commit()
    make_user("ops2", "ops", [ent, other])
    browser.login("ops2")
    page = browser.get("/bills/BX-0001").get_data(as_text=True)
    assert "多个企业都有这个编号的单据" in page
    assert f"/bills/BX-0001?e={world['ent']}" in page and f"/bills/BX-0001?e={world['other']}" in page
    chosen = browser.get(f"/bills/BX-0001?e={world['other']}")
    assert chosen.status_code == 200 and "乙公司" in chosen.get_data(as_text=True)
    # For someone with several enterprises, the page's own links name the enterprise.
    assert f"/bills/BX-0001/images?e={world['other']}" in chosen.get_data(as_text=True)
    assert browser.post("/bills/BX-0001/submit").status_code == 409  # which one? refused, not guessed


# --------------------------------------------------------------------------- the page and its parts

def test_head_and_history_refresh_as_fragments(scanner):
    attach("BX-0001", PDF_00008006)
    head = scanner.get("/bills/BX-0001", htmx="bill-head").get_data(as_text=True)
    assert head.lstrip().startswith('<section class="card bill-head" id="bill-head"') and "<html" not in head
    assert 'hx-trigger="bill-changed from:body"' in head and "影像已上传" in head
    history = scanner.get("/bills/BX-0001", htmx="bill-history").get_data(as_text=True)
    assert history.lstrip().startswith('<section class="card bill-history" id="bill-history"')
    assert "添加影像" in history and PDF_00008006 in history


def test_returned_bill_shows_its_reason_and_match_result_shape_is_tolerated(scanner):
    b = bill("BX-0001")
    b.status, b.return_reason = "returned", "缺少第 2 张发票"
    b.match_result = {"result": "matched", "reasons": [], "items": [
        {"key": ":24112000000048542163", "status": "matched", "expected": {"total": "4449.00"}, "found": None}]}
    db.session.commit()
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "缺少第 2 张发票" in page and "匹配成功" in page and "价税合计 4449.00" in page


# --------------------------------------------------------------------------- the list

def test_bill_list_filters_searches_and_counts(scanner):
    attach("BX-0001", PDF_00008006)
    attach("BX-0001", OFD_SHUDIAN)
    page = scanner.get("/bills/").get_data(as_text=True)
    assert all(no in page for no in ("BX-0001", "BX-0002", "BX-0003")) and "BX-9001" not in page
    row = page.split('<tr id="bill-', 1)[1].split("</tr>", 1)[0]  # newest first: BX-0003
    assert "BX-0003" in row
    uploaded = scanner.get("/bills/?status=uploaded", htmx="bill-list").get_data(as_text=True)
    assert uploaded.lstrip().startswith('<div id="bill-list">')
    assert "BX-0001" in uploaded and "BX-0002" not in uploaded
    row = uploaded.split('<tr id="bill-', 1)[1].split("</tr>", 1)[0]
    assert [c.split(">")[-1] for c in row.split("</td>") if 'class="num"' in c][1:] == ["2", "2"]
    found = scanner.get("/bills/?q=0002", htmx="bill-list").get_data(as_text=True)
    assert "BX-0002" in found and "BX-0001" not in found
    assert "没有符合条件的单据" in scanner.get("/bills/?q=%25", htmx="bill-list").get_data(as_text=True)


def test_bill_list_query_count_does_not_grow_with_rows(scanner, world):
    from portal.models import Enterprise

    def statements(url: str) -> int:
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert scanner.get(url).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    attach("BX-0001", PDF_00008006)
    few = statements("/bills/")
    ent = db.session.get(Enterprise, world["ent"])
    for n in range(12):
        bills.open_bill(ent, {"bill_no": f"BX-1{n:03d}", "scan_point": "SP02"}, "erp")
    db.session.commit()
    attach("BX-1000", OFD_SHUDIAN)
    assert statements("/bills/") == few


# --------------------------------------------------------------------------- assets

def test_thumbnail_page_and_original(scanner, app):
    image = attach("BX-0001", OFD_MULTIPAGE)
    thumb = scanner.get(f"/bills/images/{image.id}/thumb")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and thumb.data[:3] == b"\xff\xd8\xff"
    assert "max-age=31536000" in thumb.headers["Cache-Control"] and "private" in thumb.headers["Cache-Control"]
    etag = thumb.headers["ETag"]
    assert image.sha256 in etag
    assert bills.storage().get_derived(image.sha256, "thumb-320.jpg") == thumb.data  # cached by sha256 + name
    cached = scanner.get(f"/bills/images/{image.id}/thumb", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.data == b""

    pages = db.session.get(Image, image.id).blob.pages
    assert pages == 5
    page = scanner.get(f"/bills/images/{image.id}/pages/{pages}")
    assert page.status_code == 200 and page.mimetype == "image/jpeg"
    assert page.headers["ETag"] != etag and "immutable" in page.headers["Cache-Control"]
    assert scanner.get(f"/bills/images/{image.id}/pages/{pages + 1}").status_code == 404
    assert scanner.get(f"/bills/images/{image.id}/pages/0").status_code == 404

    original = scanner.get(f"/bills/images/{image.id}/original", buffered=True)
    assert original.status_code == 200 and original.mimetype == "application/ofd"
    assert original.data == corpus(OFD_MULTIPAGE)
    assert hashlib.sha256(original.data).hexdigest() == image.sha256
    assert original.headers["Content-Disposition"] == f"attachment; filename={OFD_MULTIPAGE}"
    assert original.headers["X-Content-Type-Options"] == "nosniff"


def test_a_pdf_with_small_text_on_a_large_page_is_served_legible(scanner):
    """The viewer's page of the Sichuan 数电 PDF: rendered larger than PAGE_SIDE until its glyphs read."""
    name = "shudian_vat_special_sichuan_23512000000005197325.pdf"
    image = attach("BX-0001", name)
    page = scanner.get(f"/bills/images/{image.id}/pages/1")
    assert page.status_code == 200 and page.mimetype == "image/jpeg"
    rendered = PILImage.open(io.BytesIO(page.data))
    assert max(rendered.size) > 1800
    assert median_glyph_px(corpus(name), rendered) >= LEGIBLE_PX
    assert bills.storage().get_derived(image.sha256, "page-1-1800-text13.jpg") == page.data


def test_xml_renders_as_png_card_and_chinese_names_download_intact(scanner):
    data = corpus(XML_83089647)
    resp = upload(scanner, "BX-0001", "发票 原件.xml", data)
    assert resp.status_code == 201
    image = bills.live_images(bill("BX-0001"))[0]
    page = scanner.get(f"/bills/images/{image.id}/pages/1")
    assert page.mimetype == "image/png" and page.data[:8] == b"\x89PNG\r\n\x1a\n"
    original = scanner.get(f"/bills/images/{image.id}/original", buffered=True)
    assert original.data == data and original.mimetype == "application/xml"
    disposition = original.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''%E5%8F%91%E7%A5%A8%20%E5%8E%9F%E4%BB%B6.xml" in disposition


def test_file_names_lose_control_and_bidi_characters_on_upload(scanner):
    added = bills.add_file(bill("BX-0001"), corpus(PDF_00008006), "C:\\扫描\\发票\x00\x1b[31m\u202efdp.exe\r\n", "tester")
    db.session.commit()
    assert db.session.get(Image, added.image.id).filename == "发票[31mfdp.exe"
    resp = scanner.get(f"/bills/images/{added.image.id}/original", buffered=True)
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"[31mfdp.exe.pdf\"; filename*=UTF-8''%E5%8F%91%E7%A5%A8%5B31mfdp.exe.pdf")


@pytest.mark.parametrize("stored,fallback,encoded", [
    ("a\x00b\x1bc\u202efdp.exe", "abcfdp.exe.pdf", None),
    ("发票\u202efdp.pdf", "fdp.pdf", "%E5%8F%91%E7%A5%A8fdp.pdf"),
    ("\u2066\u200f\x7f", "image-{id}.pdf", None),
])
def test_stored_names_with_control_characters_never_reach_content_disposition(scanner, stored, fallback, encoded):
    image = attach("BX-0001", PDF_00008006)
    if db.engine.dialect.name == "postgresql":
        stored = stored.replace("\x00", "")  # PostgreSQL text holds no NUL: no old row there can have one
    db.session.get(Image, image.id).filename = stored  # a row from before names were cleaned on upload
    db.session.commit()
    for url in (f"/bills/images/{image.id}/original",
                f"/v/{links.view_link(image.bill_id).token}/images/{image.id}/original"):
        header = scanner.get(url, buffered=True).headers["Content-Disposition"]
        assert header.startswith("attachment; filename=")
        assert not any(ord(ch) < 0x20 or ord(ch) >= 0x7f for ch in header)
        assert "%00" not in header and "%1B" not in header and "%E2%80%AE" not in header and "%E2%81" not in header
        assert f"filename={fallback.format(id=image.id)}" in header
        if encoded:
            assert header.endswith(f"; filename*=UTF-8''{encoded}")
        else:
            assert "filename*" not in header


# --------------------------------------------------------------------------- typing in an invoice

PAPER_87654321 = "vat_special_paper_sample_87654321.jpg"  # a photo of a paper invoice: nothing recognised
MANUAL = {"code": "1100094140", "number": "87654321", "date": "2010-11-18", "amount": "5999.00", "tax": "",
          "total": "7018.83", "seller_name": "", "seller_tax_no": ""}


def _manual(browser, no: str, image_id: int, values: dict):
    return browser.post(f"/bills/{no}/images/{image_id}/invoices", values, htmx=f"image-{image_id}")


def test_type_in_an_invoice_for_an_image_nothing_was_recognised_on(scanner):
    resp = upload(scanner, "BX-0001", PAPER_87654321)
    assert resp.status_code == 201 and "未识别到发票" in resp.get_data(as_text=True)
    image = bills.live_images(bill("BX-0001"))[0]
    assert image.invoices == []
    # The card offers the entry form unfolded while it has no invoice.
    assert f'id="manual-invoice-{image.id}" open>' in resp.get_data(as_text=True)

    resp = _manual(scanner, "BX-0001", image.id, MANUAL)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith(f'<article class="image-card" id="image-{image.id}"')
    assert "87654321" in html and "人工录入" in html and "未识别到发票" not in html
    assert f'id="manual-invoice-{image.id}">' in html  # folded now: the file may hold one more
    trigger = json.loads(resp.headers["HX-Trigger"])
    assert trigger["bill-changed"] and trigger["toast"]["message"] == "已录入发票 87654321"

    invoices = bills.bill_invoices(bill("BX-0001"))
    assert len(invoices) == 1
    inv = invoices[0]
    assert (inv.source, inv.invoice_key, inv.image_id, inv.code, inv.number) == (
        "manual", "1100094140:87654321", image.id, "1100094140", "87654321")
    assert inv.date.isoformat() == "2010-11-18" and str(inv.amount) == "5999.00" and str(inv.total) == "7018.83"
    assert inv.tax is None and inv.enterprise_id == bill("BX-0001").enterprise_id and not inv.duplicate
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "create", AuditEvent.object_type == "invoice"))
    assert audit.object_id == str(inv.id) and audit.actor == "scanner1" and audit.after["number"] == "87654321"
    ev = db.session.scalar(select(BillEvent).where(BillEvent.action == "add_invoice"))
    assert ev.actor == "scanner1" and ev.detail["invoice_id"] == inv.id
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "手工录入发票" in page and "发票号码 87654321" in page  # in the history


@pytest.mark.parametrize("field,value,message", [
    ("number", "1234567", "发票号码应为 8 位或 20 位数字"),
    ("number", "8765432A", "发票号码应为 8 位或 20 位数字"),
    ("number", "", "请填写发票号码"),
    ("code", "11000941", "发票代码应为 10 位或 12 位数字"),
    ("total", "7018.833", "价税合计 不是有效的金额"),
    ("date", "2010-13-18", "开票日期 不是有效的日期"),
])
def test_typed_in_invoice_errors_answer_422_with_the_form(scanner, field, value, message):
    image = attach("BX-0001", PAPER_87654321)
    resp = _manual(scanner, "BX-0001", image.id, {**MANUAL, field: value})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith(f'<details class="invoice-edit manual-invoice" id="manual-invoice-{image.id}" open>')
    assert resp.headers["HX-Retarget"] == f"#manual-invoice-{image.id}" and resp.headers["HX-Reswap"] == "outerHTML"
    assert message in html
    if value:
        assert f'value="{value}"' in html  # what was typed comes back for fixing
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.object_type == "invoice")) == 0
    assert db.session.scalar(select(func.count()).select_from(BillEvent).where(BillEvent.action == "add_invoice")) == 0


XML_00008006 = "vat_e_special_guizhou_00008006_original_invoice.xml"
KEY_00008006 = "052002100113:00008006"


def flags(no: str) -> list[bool]:
    """The duplicate flags of a bill's invoices, as stored."""
    db.session.expire_all()
    return [inv.duplicate for inv in bills.bill_invoices(bill(no))]


def test_the_same_invoice_twice_on_one_bill_is_not_a_duplicate(scanner):
    """A PDF and its XML twin on one bill are one reimbursement; only a second bill makes it a duplicate."""
    attach("BX-0001", PDF_00008006)
    attach("BX-0001", XML_00008006)
    one = bill("BX-0001")
    assert [inv.invoice_key for inv in bills.bill_invoices(one)] == [KEY_00008006] * 2
    assert flags("BX-0001") == [False, False]
    assert bills.duplicate_bills(one.enterprise_id, one.id, [KEY_00008006]) == {}
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "重复报销" not in page
    # ...but the bill counts it twice: both invoices and the bill's head say so (单据内重复).
    assert page.count('class="badge badge-err dup-badge in-bill-dup"') == 2
    assert f"发票 00008006 在本单据中出现 2 次（单据内重复：{PDF_00008006}、{XML_00008006}）" in page

    attach("BX-0002", PDF_00008006)
    assert flags("BX-0001") == [True, True] and flags("BX-0002") == [True]
    assert bills.duplicate_bills(one.enterprise_id, one.id, [KEY_00008006]) == {KEY_00008006: ["BX-0002"]}


def test_the_same_invoice_in_two_enterprises_is_not_a_duplicate(scanner, world):
    """Duplicate reimbursement is counted within one enterprise: another company's bill never counts."""
    attach("BX-0001", PDF_00008006)
    attach("BX-9001", PDF_00008006, world["other"])
    assert flags("BX-0001") == [False] and flags("BX-9001") == [False]
    mine = bill("BX-0001")
    assert bills.duplicate_bills(mine.enterprise_id, mine.id, [KEY_00008006]) == {}
    assert "重复报销" not in scanner.get("/bills/BX-0001").get_data(as_text=True)


def test_a_deleted_bill_no_longer_counts_as_a_duplicate(scanner):
    """The ERP deleted one of three bills: the other two stay duplicates, the deleted one is never flagged."""
    for no in ("BX-0001", "BX-0002", "BX-0003"):
        attach(no, PDF_00008006)
    assert flags("BX-0001") == flags("BX-0002") == flags("BX-0003") == [True]

    bills.delete_bill(bill("BX-0003"), "api:test")
    db.session.commit()
    assert flags("BX-0001") == flags("BX-0002") == [True] and flags("BX-0003") == [False]
    one = bill("BX-0001")
    assert bills.duplicate_bills(one.enterprise_id, one.id, [KEY_00008006]) == {KEY_00008006: ["BX-0002"]}

    bills.delete_bill(bill("BX-0002"), "api:test")
    db.session.commit()
    assert flags("BX-0001") == flags("BX-0002") == flags("BX-0003") == [False]
    assert bills.duplicate_bills(one.enterprise_id, one.id, [KEY_00008006]) == {}
    assert "重复报销" not in scanner.get("/bills/BX-0001").get_data(as_text=True)


def test_the_same_typed_in_invoice_on_two_bills_is_a_duplicate_on_both(scanner):
    first = attach("BX-0001", PAPER_87654321)
    second = attach("BX-0002", PAPER_87654321)
    assert _manual(scanner, "BX-0001", first.id, MANUAL).status_code == 200
    resp = _manual(scanner, "BX-0002", second.id, MANUAL)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "重复报销" in html and ">BX-0001</a>" in html
    one, two = bills.bill_invoices(bill("BX-0001"))[0], bills.bill_invoices(bill("BX-0002"))[0]
    assert one.invoice_key == two.invoice_key == "1100094140:87654321"
    assert one.duplicate and two.duplicate


def test_typing_in_is_refused_to_viewers_and_on_a_submitted_bill(browser, world):
    image = attach("BX-0001", PAPER_87654321)
    browser.login("viewer1")
    assert _manual(browser, "BX-0001", image.id, MANUAL).status_code == 403
    browser.post("/logout")
    browser.login("scanner1")
    assert browser.post("/bills/BX-0001/submit").status_code == 303
    page = browser.get("/bills/BX-0001").get_data(as_text=True)
    assert "手工录入发票" not in page.split('id="bill-history"', 1)[0]  # no form once submitted
    resp = _manual(browser, "BX-0001", image.id, MANUAL)
    assert resp.status_code == 409 and "不能修改影像" in json.loads(resp.headers["HX-Trigger"])["toast"]["message"]
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 0


# --------------------------------------------------------------------------- duplicates you cannot miss

def _head(page: str) -> str:
    return page.split('id="bill-head"', 1)[1].split("</section>", 1)[0]


def _submit_question(page: str) -> str:
    import html as html_lib
    import re

    m = re.search(r'action="/bills/BX-0001/submit" class="inline"\s+data-confirm="([^"]*)"', page)
    assert m, "no submit form"
    return html_lib.unescape(m.group(1))


def test_an_upload_of_a_duplicate_is_a_warning_not_a_green_success(scanner):
    attach("BX-0002", PDF_00008006)
    resp = upload(scanner, "BX-0001", PDF_00008006)
    assert resp.status_code == 201
    row = resp.get_data(as_text=True).split("<div hx-swap-oob", 1)[0]
    assert 'class="upload-warn" role="alert"' in row and "upload-ok" not in row
    assert "已上传，但发票 00008006 重复报销（另见单据 BX-0002）" in row
    # A file without duplicates is still the plain success.
    ok = upload(scanner, "BX-0001", PNG_33207675).get_data(as_text=True).split("<div hx-swap-oob", 1)[0]
    assert 'class="upload-ok"' in ok and "upload-warn" not in ok


def test_an_upload_of_an_invoice_already_on_the_bill_warns_of_duplicate_in_bill(scanner):
    attach("BX-0001", PDF_00008006)
    resp = upload(scanner, "BX-0001", XML_00008006)  # the same invoice, another file
    assert resp.status_code == 201
    html = resp.get_data(as_text=True)
    row = html.split("<div hx-swap-oob", 1)[0]
    assert 'class="upload-warn"' in row and "发票 00008006 已在本单据的其他影像中（单据内重复）" in row
    assert "in-bill-dup" in html  # the new card's invoice carries the badge


def test_the_bill_head_and_the_submit_confirmation_name_every_duplicate(scanner):
    plain = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert "dup-warnings" not in plain
    attach("BX-0001", PDF_00008006)
    question = _submit_question(scanner.get("/bills/BX-0001").get_data(as_text=True))
    assert question == "提交后不能再修改影像，确定提交单据 BX-0001 吗？"

    attach("BX-0002", PDF_00008006)
    attach("BX-0001", XML_00008006)
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    head = _head(page)
    cross = "发票 00008006 重复报销（另见单据 BX-0002）"
    within = f"发票 00008006 在本单据中出现 2 次（单据内重复：{PDF_00008006}、{XML_00008006}）"
    assert 'class="alert alert-error dup-warnings"' in head and cross in head and within in head
    question = _submit_question(page)
    assert question.startswith("注意：") and cross in question and within in question
    assert question.endswith("确定提交单据 BX-0001 吗？")
    # The head's htmx refresh (after every change) carries the same warning.
    fragment = scanner.get("/bills/BX-0001", htmx="bill-head").get_data(as_text=True)
    assert cross in fragment and within in fragment


def test_confirm_needs_someone_other_than_the_uploader(scanner, world):
    upload(scanner, "BX-0001", PDF_00008006)
    b = bill("BX-0001")
    b.status = "match_failed"
    b.match_result = {"result": "match_failed", "reasons": ["发票 00008006 缺少应收记录"], "items": []}
    db.session.commit()
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert 'action="/bills/BX-0001/confirm"' not in page and "人工确认需他人复核" in page
    resp = scanner.post("/bills/BX-0001/confirm", {"reason": "我自己核对过"})
    assert resp.status_code == 403 and "人工确认需他人复核" in resp.get_data(as_text=True)
    assert bill("BX-0001").status == "match_failed"

    scanner.post("/logout")
    scanner.login("ops1")
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    assert 'action="/bills/BX-0001/confirm"' in page
    assert scanner.post("/bills/BX-0001/confirm", {"reason": "运维复核通过"}).status_code == 303
    assert bill("BX-0001").status == "matched"


# --------------------------------------------------------------------------- one invoice form

def _labels(html: str, prefix: str) -> list[tuple[str, str]]:
    import re

    return re.findall(r'<span>([^<]+)</span>\s*<input[^>]*id="' + prefix + r'-(\w+)"', html)


def test_manual_entry_has_the_correction_forms_fields_and_labels(scanner):
    attach("BX-0001", PDF_00008006)
    image = attach("BX-0001", PAPER_87654321)
    page = scanner.get("/bills/BX-0001").get_data(as_text=True)
    inv = bills.bill_invoices(bill("BX-0001"))[0]
    correction = [(name, label) for label, name in _labels(page, f"inv-{inv.id}")]
    manual = [(name, label) for label, name in _labels(page, f"manual-{image.id}")]
    assert len(correction) == 12 and manual == correction
    assert {"type", "check_code", "buyer_name", "buyer_tax_no"} <= {name for name, _ in manual}

    values = {**MANUAL, "type": "04", "check_code": "12345678901234567890", "buyer_name": "买方公司",
              "buyer_tax_no": "91110000100000000X"}
    assert _manual(scanner, "BX-0001", image.id, values).status_code == 200
    typed = db.session.scalar(select(Invoice).where(Invoice.image_id == image.id))
    assert (typed.type, typed.check_code, typed.buyer_name, typed.buyer_tax_no) == (
        "04", "12345678901234567890", "买方公司", "91110000100000000X")


def test_manual_entry_refuses_amount_plus_tax_not_the_total(scanner):
    image = attach("BX-0001", PAPER_87654321)
    resp = _manual(scanner, "BX-0001", image.id, {**MANUAL, "tax": "1019.82"})  # 5999.00 + 1019.82 = 7018.82
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "金额（不含税）5999.00 + 税额 1019.82 = 7018.82，与价税合计 7018.83 不一致，请核对" in html
    assert 'value="1019.82"' in html and 'value="7018.83"' in html  # what was typed comes back
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.object_type == "invoice")) == 0
    # The sum that adds up is taken.
    assert _manual(scanner, "BX-0001", image.id, {**MANUAL, "tax": "1019.83"}).status_code == 200


def test_a_correction_of_the_money_must_add_up(scanner):
    attach("BX-0001", PDF_00008006)
    inv = bills.bill_invoices(bill("BX-0001"))[0]
    form = {"number": "00008006", "code": "052002100113", "amount": "24519.05", "tax": "735.57", "total": "25254.00"}
    resp = scanner.post(f"/bills/BX-0001/invoices/{inv.id}", form, htmx=f"invoice-{inv.id}")
    assert resp.status_code == 422 and "与价税合计 25254.00 不一致" in resp.get_data(as_text=True)
    inv = db.session.get(Invoice, inv.id)
    assert str(inv.total) == "25254.62" and inv.source == "pdf_text"


# --------------------------------------------------------------------------- search and sort

def _listed(html: str) -> list[str]:
    """Bill numbers in the list, in order."""
    return re.findall(r'<a class="mono" href="/bills/[^"]*">([^<]+)</a>', html.split('id="bill-list"', 1)[1])


@pytest.fixture
def searchable(scanner, world):
    """Three more bills of enterprise A with distinct submitters, orgs, amounts and creation days."""
    from datetime import datetime

    from portal.models import Enterprise

    ent = db.session.get(Enterprise, world["ent"])
    rows = [("BX-S1", "王五", "深圳分公司", "100.00", datetime(2026, 3, 1, 2)),
            ("BX-S2", "Alice Wang", "北京总部", "999.50", datetime(2026, 3, 5, 2)),
            # 17:30 UTC on 3-9 is 3-10 in Beijing: the date filter speaks Beijing days.
            ("BX-S3", "赵六", "深圳分公司", "5000.00", datetime(2026, 3, 9, 17, 30))]
    for no, who, org, amount, at in rows:
        b = bills.open_bill(ent, {"bill_no": no, "submitter": who, "org": org, "amount": amount,
                                  "scan_point": "SP01"}, "erp").bill
        b.created_at = at
    db.session.commit()
    return scanner


@pytest.mark.parametrize("query, expected", [
    ("q=bx-s", ["BX-S3", "BX-S2", "BX-S1"]),
    ("submitter=alice", ["BX-S2"]),
    ("submitter=%E7%8E%8B", ["BX-S1"]),  # 王: a substring of the name
    ("org=%E6%B7%B1%E5%9C%B3", ["BX-S3", "BX-S1"]),  # 深圳
    ("min_amount=999.5&max_amount=5000", ["BX-S3", "BX-S2"]),
    ("max_amount=100&q=BX-S", ["BX-S1"]),
    ("date_from=2026-03-05&date_to=2026-03-09&q=BX-S", ["BX-S2"]),
    ("date_from=2026-03-10&q=BX-S", ["BX-S3"]),
    ("submitter=%25", []),
], ids=["number-any-case", "submitter-any-case", "submitter-chinese", "org", "amount-range", "amount-max",
        "date-range", "beijing-day", "percent-is-literal"])
def test_bill_list_searches_every_field(searchable, query, expected):
    html = searchable.get(f"/bills/?{query}", htmx="bill-list").get_data(as_text=True)
    assert html.lstrip().startswith('<div id="bill-list">')
    assert _listed(html) == expected


def test_bad_search_values_are_named_and_ignored(searchable):
    html = searchable.get("/bills/?q=BX-S&min_amount=abc&date_from=2026-13-01", htmx="bill-list").get_data(as_text=True)
    assert "金额（最小）不是有效的金额：abc，已忽略。" in html and "创建日期（起）不是有效的日期" in html
    assert _listed(html) == ["BX-S3", "BX-S2", "BX-S1"]
    swapped = searchable.get("/bills/?q=BX-S&min_amount=10&max_amount=1", htmx="bill-list").get_data(as_text=True)
    assert "金额的最小值大于最大值" in swapped and len(_listed(swapped)) == 3


@pytest.mark.parametrize("sort, direction, expected", [
    ("amount", "asc", ["BX-S1", "BX-S2", "BX-S3"]),
    ("amount", "desc", ["BX-S3", "BX-S2", "BX-S1"]),
    ("submitter", "asc", ["BX-S2", "BX-S1", "BX-S3"]),
    ("bill_no", "desc", ["BX-S3", "BX-S2", "BX-S1"]),
    ("nonsense", "asc", ["BX-S3", "BX-S2", "BX-S1"]),  # unknown column: newest first
])
def test_bill_list_sorts_by_column(searchable, sort, direction, expected):
    html = searchable.get(f"/bills/?q=BX-S&sort={sort}&dir={direction}", htmx="bill-list").get_data(as_text=True)
    assert _listed(html) == expected


def test_sort_links_keep_the_search_and_flip_the_direction(searchable):
    html = searchable.get("/bills/?submitter=%E7%8E%8B&sort=amount&dir=asc").get_data(as_text=True)
    head = html.split("<thead", 1)[1].split("</thead>", 1)[0]
    assert 'aria-sort="ascending"' in head
    links = re.findall(r'href="([^"]+)"', head)
    amount = next(u for u in links if "sort=amount" in u)
    assert "dir=desc" in amount and "submitter=%E7%8E%8B" in amount
    assert all("dir=asc" in u for u in links if "sort=amount" not in u)
    # The sort rides along with the search form, so typing keeps the chosen order.
    assert 'name="sort" value="amount" form="bill-search"' in html


def test_the_pager_keeps_search_and_sort(searchable, world):
    from portal.models import Enterprise

    ent = db.session.get(Enterprise, world["ent"])
    for n in range(25):
        bills.open_bill(ent, {"bill_no": f"BX-P{n:02d}", "submitter": "分页", "amount": str(n)}, "erp")
    db.session.commit()
    html = searchable.get("/bills/?submitter=%E5%88%86%E9%A1%B5&sort=amount&dir=asc").get_data(as_text=True)
    assert _listed(html)[:2] == ["BX-P00", "BX-P01"]
    nxt = re.search(r'<a href="([^"]+)">下一页</a>', html).group(1).replace("&amp;", "&")
    assert "sort=amount" in nxt and "dir=asc" in nxt and "submitter=" in nxt
    assert _listed(searchable.get(nxt).get_data(as_text=True)) == ["BX-P20", "BX-P21", "BX-P22", "BX-P23", "BX-P24"]
