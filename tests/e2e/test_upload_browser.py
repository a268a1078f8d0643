"""A scanner drops three invoice files on a bill in a real browser: a progress bar per file, then
the thumbnails and the recognised invoice numbers appear without a page load."""
from __future__ import annotations

import base64

from playwright.sync_api import expect
from sqlalchemy import func, select

from portal import bills
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import Bill, Enterprise, Image, ScanPoint
from tests.conftest import CORPUS, tax_no
from tests.e2e.conftest import login

FILES = {
    "vat_e_special_guizhou_00008006.pdf": ("application/pdf", "00008006"),
    "shudian_vat_special_24112000000048542163.ofd": ("application/octet-stream", "24112000000048542163"),
    "vat_e_ordinary_tianjin_33207675.png": ("image/png", "33207675"),
}
BILL_NO = "FYBX-2024-000123"

# Drop files on the zone the way a browser does: dragenter, dragover, drop with a DataTransfer of Files.
DROP = """([selector, files]) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, { type: f.type }));
  }
  const zone = document.querySelector(selector);
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }
}"""


def _payload(name: str, data: bytes, media_type: str) -> dict:
    return {"name": name, "type": media_type, "data": base64.b64encode(data).decode()}


def _make_bill() -> tuple[int, int]:
    ent = Enterprise(tax_no=tax_no(7), name="贵州浏览器测试有限公司", client_id="client-e2e-upload",
                     client_secret_enc=encrypt("s3cret-value-1234567890"), encrypt_key_enc=encrypt("0123456789abcdef"))
    db.session.add(ent)
    db.session.flush()
    point = ScanPoint(enterprise_id=ent.id, code="SP01", name="一号扫描点")
    db.session.add(point)
    db.session.flush()
    bills.open_bill(ent, {"bill_no": BILL_NO, "scan_point": "SP01", "submitter": "张三", "org": "财务共享中心",
                          "amount": "29756.32"}, "erp")
    db.session.commit()
    return ent.id, point.id


def test_drop_three_files_shows_progress_thumbnails_and_numbers(live_app, page):
    ent_id, point_id = live_app.call(_make_bill)
    live_app.make_user("scanner1", "scanner", [ent_id], [point_id])
    login(page, live_app, "scanner1")
    page.goto(f"{live_app.url}/bills/{BILL_NO}")
    expect(page.locator("#bill-head .bill-status")).to_have_text("待扫描")
    expect(page.locator("#dropzone")).to_be_visible()

    documents = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)
    files = [_payload(name, (CORPUS / name).read_bytes(), media_type) for name, (media_type, _) in FILES.items()]
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/images")):
        page.evaluate(DROP, ["#dropzone", files])

    rows = page.locator("#upload-list .upload-row")
    expect(rows).to_have_count(3)
    expect(page.locator("#upload-list .upload-row progress")).to_have_count(3)
    expect(page.locator('#upload-list .upload-row[data-state="done"]')).to_have_count(3, timeout=15_000)
    for i in range(3):
        row = rows.nth(i)
        bar = row.locator("progress")
        expect(bar).to_be_visible()
        assert bar.evaluate("p => p.max > 1 && p.value === p.max"), row.inner_html()
        assert int(row.get_attribute("data-progress-events") or 0) >= 1  # driven by htmx:xhr:progress
        expect(row.locator(".upload-ok")).to_contain_text("已上传")

    cards = page.locator("#image-list .image-card")
    expect(cards).to_have_count(3)
    for _, number in FILES.values():
        expect(page.locator("#image-list .invoice-number", has_text=number)).to_have_count(1)
    page.wait_for_function("""() => {
      const imgs = [...document.querySelectorAll('#image-list .image-card .image-thumb img')];
      return imgs.length === 3 && imgs.every((im) => im.complete && im.naturalWidth > 0);
    }""")
    # The rest of the page follows by itself (bill-changed): status, history, the viewer's strip.
    expect(page.locator("#bill-head .bill-status")).to_have_text("影像已上传")
    expect(page.locator("#bill-history")).to_contain_text("添加影像")
    expect(page.locator("#viewer .viewer-thumb")).to_have_count(3)
    page.wait_for_function("() => document.querySelector('#viewer .viewer-img').naturalWidth > 0")
    assert documents == []  # no page load: everything came through htmx

    assert live_app.scalar(select(Bill.status).where(Bill.bill_no == BILL_NO)) == "uploaded"
    assert live_app.scalar(select(func.count()).select_from(Image)) == 3


def test_refused_file_keeps_its_message_and_viewer_keys_work(live_app, page):
    ent_id, point_id = live_app.call(_make_bill)
    live_app.make_user("scanner1", "scanner", [ent_id], [point_id])
    login(page, live_app, "scanner1")
    page.goto(f"{live_app.url}/bills/{BILL_NO}")
    bad = _payload("伪装成PDF.pdf", b"<!doctype html><html><body>not an invoice</body></html>", "application/pdf")
    good = _payload("vat_e_ordinary_tianjin_33207675.png", (CORPUS / "vat_e_ordinary_tianjin_33207675.png").read_bytes(),
                    "image/png")
    multi = "vat_e_ordinary_chongqing_12235358.ofd"  # five pages
    page.evaluate(DROP, ["#dropzone", [bad, good, _payload(multi, (CORPUS / multi).read_bytes(), "application/ofd")]])
    failed = page.locator('#upload-list .upload-row[data-state="failed"]')
    expect(failed).to_have_count(1, timeout=15_000)
    expect(failed.locator(".upload-error")).to_contain_text("不支持的文件类型")
    expect(page.locator('#upload-list .upload-row[data-state="done"]')).to_have_count(2, timeout=15_000)
    expect(page.locator("#image-list .image-card")).to_have_count(2)
    expect(page.locator("#toasts .toast-error")).to_have_count(0)  # the row says it; no page-level error

    # Open the five-page file in the viewer and page through it with the keyboard.
    page.locator(f'#image-list .image-card[data-name="{multi}"] [data-viewer-open]').click()
    pos = page.locator("#viewer .viewer-pos")
    expect(pos).to_contain_text("1/5 页")
    page.keyboard.press("ArrowRight")
    expect(pos).to_contain_text("2/5 页")
    page.wait_for_function("""() => {
      const im = document.querySelector('#viewer .viewer-img');
      return im.src.endsWith('/pages/2') && im.complete && im.naturalWidth > 0;
    }""")
    page.keyboard.press("r")
    assert "rotate(90deg)" in page.locator("#viewer .viewer-img").evaluate("im => im.style.transform")
    page.keyboard.press("+")
    expect(page.locator("#viewer .viewer-zoom")).not_to_contain_text("适应")
    page.keyboard.press("0")
    expect(page.locator("#viewer .viewer-zoom")).to_contain_text("适应")

    # Move the first card down: the order is saved without a page load.
    first_id = page.locator("#image-list .image-card").first.get_attribute("data-image-id")
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("/order")) as saved:
        page.locator("#image-list .image-card").first.locator('[data-move="down"]').click()
    assert saved.value.status == 204
    order = live_app.call(lambda: [i.id for i in bills.live_images(db.session.scalar(select(Bill)))])
    assert str(order[-1]) == first_id


def test_images_keep_the_picked_order_when_uploads_finish_out_of_order(live_app, page):
    ent_id, point_id = live_app.call(_make_bill)
    live_app.make_user("scanner1", "scanner", [ent_id], [point_id])
    login(page, live_app, "scanner1")
    page.goto(f"{live_app.url}/bills/{BILL_NO}")
    names = list(FILES)
    # The first file's upload is held at the browser's edge until the other two are stored.
    held: list = []

    def hold_first(route):
        if route.request.method == "POST" and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/images", hold_first)
    files = [_payload(name, (CORPUS / name).read_bytes(), media_type) for name, (media_type, _) in FILES.items()]
    page.evaluate(DROP, ["#dropzone", files])
    expect(page.locator('#upload-list .upload-row[data-state="done"]')).to_have_count(2, timeout=15_000)
    cards = page.locator("#image-list > .image-card")
    expect(cards).to_have_count(2)
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("/order")) as saved:
        held.pop().continue_()
    assert saved.value.status == 204

    expect(cards).to_have_count(3)
    assert [cards.nth(i).get_attribute("data-name") for i in range(3)] == names
    expect(page.locator("#image-list > :not(.image-card)")).to_have_count(0)  # no slot left behind
    stored = live_app.call(lambda: [i.filename for i in bills.live_images(db.session.scalar(select(Bill)))])
    assert stored == names
    expect(page.locator("#viewer .viewer-thumb")).to_have_count(3)


def test_a_duplicate_upload_warns_on_its_row_the_bill_head_and_the_submit_question(live_app, page):
    ent_id, point_id = live_app.call(_make_bill)
    pdf, xml = "vat_e_special_guizhou_00008006.pdf", "vat_e_special_guizhou_00008006_original_invoice.xml"

    def other_bill_with_the_invoice():
        ent = db.session.get(Enterprise, ent_id)
        other = bills.open_bill(ent, {"bill_no": "FYBX-2024-000099", "scan_point": "SP01"}, "erp").bill
        db.session.flush()
        bills.add_file(other, (CORPUS / pdf).read_bytes(), pdf, "tester")
        db.session.commit()

    live_app.call(other_bill_with_the_invoice)
    live_app.make_user("scanner1", "scanner", [ent_id], [point_id])
    login(page, live_app, "scanner1")
    page.goto(f"{live_app.url}/bills/{BILL_NO}")
    expect(page.locator("#bill-head .dup-warnings")).to_have_count(0)

    page.evaluate(DROP, ["#dropzone", [_payload(pdf, (CORPUS / pdf).read_bytes(), "application/pdf")]])
    row = page.locator('#upload-list .upload-row[data-state="done"]')
    expect(row).to_have_count(1, timeout=15_000)
    # Not the green 已上传: the row says which invoice is claimed elsewhere.
    expect(row.locator(".upload-ok")).to_have_count(0)
    expect(row.locator(".upload-warn")).to_contain_text("发票 00008006 重复报销（另见单据 FYBX-2024-000099）")
    expect(page.locator("#bill-head .dup-warnings")).to_contain_text("重复报销（另见单据 FYBX-2024-000099）")

    # The same invoice again, as its XML: the bill would count it twice.
    page.evaluate(DROP, ["#dropzone", [_payload(xml, (CORPUS / xml).read_bytes(), "application/xml")]])
    expect(page.locator('#upload-list .upload-row[data-state="done"]')).to_have_count(2, timeout=15_000)
    expect(page.locator("#upload-list .upload-row").nth(1).locator(".upload-warn")).to_contain_text("单据内重复")
    expect(page.locator("#bill-head .dup-warnings")).to_contain_text("在本单据中出现 2 次（单据内重复")
    expect(page.locator("#image-list .in-bill-dup")).to_have_count(1)  # the new card; the page shows both after a load

    # The submit question names the duplicates first; cancelling keeps the bill as it was.
    questions: list[str] = []

    def answer(dialog):
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", answer)
    page.locator("#bill-head").get_by_role("button", name="提交").click()
    assert len(questions) == 1, questions
    assert questions[0].startswith("注意：发票 00008006 重复报销（另见单据 FYBX-2024-000099）")
    assert "单据内重复" in questions[0] and questions[0].endswith(f"确定提交单据 {BILL_NO} 吗？")
    assert live_app.scalar(select(Bill.status).where(Bill.bill_no == BILL_NO)) == "uploaded"
    page.reload()
    expect(page.locator("#image-list .in-bill-dup")).to_have_count(2)


def test_manual_entry_refuses_a_sum_that_does_not_add_up_in_place_and_keeps_what_was_typed(live_app, page):
    ent_id, point_id = live_app.call(_make_bill)
    paper = "vat_special_paper_sample_87654321.jpg"  # nothing recognised on it

    def attach_paper() -> int:
        bill = db.session.scalar(select(Bill).where(Bill.bill_no == BILL_NO))
        added = bills.add_file(bill, (CORPUS / paper).read_bytes(), paper, "tester")
        db.session.commit()
        return added.image.id

    image_id = live_app.call(attach_paper)
    live_app.make_user("scanner1", "scanner", [ent_id], [point_id])
    login(page, live_app, "scanner1")
    page.goto(f"{live_app.url}/bills/{BILL_NO}")
    form = page.locator(f"#manual-invoice-{image_id} form")
    # The twelve fields of the correction form, with its labels.
    expect(form.locator(".invoice-grid label.field")).to_have_count(12)
    for label in ("发票类型", "校验码", "购方名称", "购方税号", "销方名称"):
        expect(form.locator(".invoice-grid")).to_contain_text(label)
    typed = {"code": "1100094140", "number": "87654321", "date": "2010-11-18", "amount": "5999.00",
             "tax": "1019.82", "total": "7018.83", "buyer_name": "买方公司"}
    for name, value in typed.items():
        form.locator(f"[name={name}]").fill(value)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/invoices")) as refused:
        form.get_by_role("button", name="保存发票").click()
    assert refused.value.status == 422

    form = page.locator(f"#manual-invoice-{image_id} form")
    expect(form.locator(".alert-error")).to_contain_text("与价税合计 7018.83 不一致")
    for name, value in typed.items():
        expect(form.locator(f"[name={name}]")).to_have_value(value)
    form.locator("[name=tax]").fill("1019.83")
    form.get_by_role("button", name="保存发票").click()
    card = page.locator(f"#image-{image_id}")
    expect(card.locator(".invoice-number")).to_have_text("87654321")
    expect(card).to_contain_text("买方公司")
