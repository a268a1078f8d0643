"""A paper invoice without a QR code in a real browser: the card says 识别中 at once, then — after the
background OCR job ran — flips to the read values with 待确认 by itself (htmx polling, no page load)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal import ocr_state
from portal.jobs import runner
from portal.models import Image, Invoice
from tests.conftest import CORPUS
from tests.e2e.conftest import login
from tests.e2e.test_upload_browser import BILL_NO, DROP, _make_bill, _payload

pytestmark = pytest.mark.skipif(not ocr_state.installed(), reason="OCR（rapidocr-onnxruntime）未安装")
PAPER = "vat_special_paper_sample_87654321.jpg"


def test_the_card_flips_from_recognising_to_the_values_without_a_reload(live_app, page):
    live_app.app.config["OCR_BACKGROUND"] = True
    ent_id, point_id = live_app.call(_make_bill)
    live_app.make_user("scanner1", "scanner", [ent_id], [point_id])
    login(page, live_app, "scanner1")
    page.goto(f"{live_app.url}/bills/{BILL_NO}")
    documents = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)

    page.evaluate(DROP, ["#dropzone", [_payload(PAPER, (CORPUS / PAPER).read_bytes(), "image/jpeg")]])
    card = page.locator("#image-list .image-card")
    expect(card).to_have_count(1, timeout=15_000)
    expect(card.locator(".ocr-state")).to_have_text("识别中")
    expect(card.locator(".ocr-note")).to_contain_text("正在进行 OCR 识别")
    assert live_app.scalar(select(Image.ocr_state)) == "queued"

    # The job runner's pass does the OCR (in its file-work child); the card polls every 2 s meanwhile.
    assert live_app.call(lambda: runner.one_pass().recognised["done"]) == 1
    expect(card.locator(".invoice-number")).to_have_text("87654321", timeout=10_000)
    expect(card.locator(".needs-confirm")).to_have_text("待确认")
    expect(card.locator(".ocr-state")).to_have_count(0)
    expect(page.locator("#bill-history")).to_contain_text("OCR 识别完成")

    # 确认 in place: the badge goes, the invoice is confirmed.
    card.locator(".confirm-invoice button").click()
    expect(card.locator(".confirmed")).to_have_text("已确认")
    expect(card.locator(".needs-confirm")).to_have_count(0)
    assert live_app.scalar(select(Invoice.confirmed_by)) == "scanner1"
    assert documents == []  # no page load: the upload, the flip and the confirmation came through htmx
