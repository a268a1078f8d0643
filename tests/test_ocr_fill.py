"""QR + OCR fill: a photo whose QR gives the invoice but not the names and total is filled by background OCR.

Real phone photos of the corpus go through the upload, one pass of the job runner and the card: the QR's
values stay, OCR adds seller, buyer and total (listed in ``raw["ocr_fields"]`` and marked OCR on the card),
and the invoice is 待确认 only when a field the match or duplicate check uses came from OCR. A fill-only
job does not hold up submit; an e-invoice PDF or XML whose data is complete never goes to OCR.
"""
from __future__ import annotations

import gc
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal import ocr_jobs, ocr_state
from portal.blueprints.api.serializers import bill_json
from portal.extensions import db
from portal.jobs import runner
from portal.models import Image, Invoice

from .test_bills_ui import bill, scanner, upload, world  # noqa: F401  (fixtures)
from .test_ocr_jobs import image_of, ocr_on  # noqa: F401  (ocr_on is a fixture)

pytestmark = [
    pytest.mark.skipif(not ocr_state.installed(), reason="OCR（rapidocr-onnxruntime）未安装"),
    # The test client spools a multipart body this large (the 4 MB phone photo) to a temp file it never
    # closes (werkzeug's EnvironBuilder input stream): collected after each test here, see the fixture below.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

SICHUAN = "vat_special_paper_photo_sichuan_00472703.jpg"
SHENZHEN = "vat_ordinary_paper_photo_shenzhen.jpg"


@pytest.fixture(autouse=True)
def _collect_upload_temp_files():
    """Let the test client's spooled request bodies go within this module, not in a later test."""
    yield
    gc.collect()


def invoices_of(image: Image) -> list[Invoice]:
    return list(db.session.scalars(select(Invoice).where(Invoice.image_id == image.id)))


@pytest.mark.parametrize("name,qr,filled", [
    (SHENZHEN, dict(number="41108527", code="044031800104", amount=Decimal("96.72")), dict(
        total=Decimal("112.20"), buyer_name="深圳市华云中盛科技有限公司", seller_name="深圳市南山区江南百货商场")),
    (SICHUAN, dict(number="00472703", code="5100191160", amount=Decimal("1456.31")), dict(
        total=Decimal("1500.00"), buyer_name="小米商业保理（天津）有限责任公司", seller_tax_no="51019800DK01187")),
])
def test_phone_photo_qr_invoice_is_filled_by_one_pass_and_marked_as_ocr(ocr_on, scanner, name, qr, filled):
    resp = upload(scanner, "BX-0001", name)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    image = image_of("BX-0001")
    assert image.ocr_state == "queued"  # complete by its QR, but without names and total
    [inv] = invoices_of(image)
    assert inv.source == "qr" and inv.total is None and inv.buyer_name is None and not inv.needs_confirm
    html = resp.get_data(as_text=True)
    assert "补全识别中" in html and "不影响提交" in html and 'hx-trigger="every 2s"' in html
    assert qr["number"] in html  # the QR's invoice shows at once

    result = runner.one_pass()
    assert result.recognised["done"] == 1
    image = image_of("BX-0001")
    assert image.ocr_state == "done"
    [inv] = invoices_of(image)
    assert inv.source == "qr"
    assert {k: getattr(inv, k) for k in qr} == qr  # the QR's values never change
    assert {k: getattr(inv, k) for k in filled} == filled
    assert {"total", "buyer_name"} <= set(inv.raw["ocr_fields"])
    assert "number" not in inv.raw["ocr_fields"] and inv.raw["qr"]
    assert inv.amount + inv.tax == inv.total
    assert inv.needs_confirm  # the total (used by the match and the duplicate check) came from OCR
    [api] = bill_json(bill("BX-0001"))["invoices"]
    assert api["ocr_fields"] == inv.raw["ocr_fields"] and api["source"] == "qr" and api["needs_confirmation"]
    html = scanner.get(f"/bills/BX-0001/images/{image.id}/card", htmx=f"image-{image.id}").get_data(as_text=True)
    assert filled["buyer_name"] in html and f"{filled['total']:,}" in html
    assert html.count('class="badge source-ocr ocr-filled"') >= 2  # total and buyer shown as read by OCR
    assert "待确认" in html and "every 2s" not in html
    # A second pass finds nothing due.
    assert runner.one_pass().recognised["done"] == 0


def test_names_only_from_ocr_leave_the_invoice_confirmed(ocr_on, scanner):
    """The QR's key fields are trusted: OCR adding only names and tax numbers does not ask for 确认."""
    upload(scanner, "BX-0001", SICHUAN)
    [inv] = invoices_of(image_of("BX-0001"))
    inv.total = Decimal("1500.00")  # as if the total were known already: only the names are missing
    db.session.commit()
    assert runner.one_pass().recognised["done"] == 1
    [inv] = invoices_of(image_of("BX-0001"))
    assert inv.buyer_name == "小米商业保理（天津）有限责任公司" and inv.total == Decimal("1500.00")
    assert "total" not in inv.raw["ocr_fields"] and "buyer_name" in inv.raw["ocr_fields"]
    assert not inv.needs_confirm
    assert scanner.post("/bills/BX-0001/submit").status_code == 303


def test_a_fill_only_job_does_not_hold_up_submit_and_finds_the_bill_gone(ocr_on, scanner):
    upload(scanner, "BX-0001", SHENZHEN)
    image = image_of("BX-0001")
    assert image.ocr_state == "queued" and ocr_state.fill_only(image)
    assert scanner.post("/bills/BX-0001/submit").status_code == 303  # the invoice is known: no wait
    assert bill("BX-0001").status != "uploaded"
    assert runner.one_pass().recognised["done"] == 1
    image = image_of("BX-0001")
    [inv] = invoices_of(image)
    # The bill left the scan desk: the fill stores nothing (no 待确认 on a bill nobody can confirm).
    assert image.ocr_state == "done" and inv.total is None and not inv.needs_confirm and not inv.raw.get("ocr_fields")


def test_a_corrected_invoice_is_not_overwritten_by_a_late_fill(ocr_on, scanner):
    from portal import bills

    upload(scanner, "BX-0001", SHENZHEN)
    [inv] = invoices_of(image_of("BX-0001"))
    bills.correct_invoice(inv, {"buyer_name": "人工录入的购方"}, "scanner1")
    db.session.commit()
    assert runner.one_pass().recognised["done"] == 1
    [inv] = invoices_of(image_of("BX-0001"))
    assert inv.source == "manual" and inv.buyer_name == "人工录入的购方" and inv.total is None


@pytest.mark.parametrize("name", ["vat_e_special_guizhou_00008006.pdf",
                                  "vat_e_special_guizhou_00008006_original_invoice.xml"])
def test_a_complete_e_invoice_file_never_queues_ocr(ocr_on, scanner, name):
    assert upload(scanner, "BX-0001", name).status_code == 201
    image = image_of("BX-0001")
    [inv] = invoices_of(image)
    assert inv.number and inv.date and (inv.amount or inv.total)
    assert image.ocr_state is None and ocr_jobs.due_ids() == []


def test_without_ocr_installed_a_qr_photo_is_simply_stored(ocr_on, scanner, monkeypatch):
    monkeypatch.setattr(ocr_state, "_installed", False)
    upload(scanner, "BX-0001", SHENZHEN)
    image = image_of("BX-0001")
    assert image.ocr_state is None and ocr_jobs.due_ids() == []  # not 识别中, not "OCR 未安装"


def test_ocr_threads_reach_the_engine_of_the_ocr_child():
    """``OCR_THREADS`` travels with the job's inspect task and sets the engine's onnxruntime threads."""
    from portal.files import filework
    from portal.recognition import ocr

    from .conftest import corpus

    before = dict(ocr.ENGINE_PARAMS)
    try:
        found = filework._inspect(corpus(SHENZHEN), True, 2)
        assert ocr.ENGINE_PARAMS["intra_op_num_threads"] == 2
        assert found.readings[0].raw["ocr_fields"]  # the engine so set still read the page
        filework._inspect(corpus(SHENZHEN), False, 3)  # no OCR asked: the setting is left alone
        assert ocr.ENGINE_PARAMS["intra_op_num_threads"] == 2
    finally:
        ocr.set_engine_params(**before)
