"""The viewer's 100 % toggle in a real browser: the Sichuan 数电 PDF, whose text is small on a large
page, is served as a larger render, and 100 % (button, key 1 or double-click) shows it pixel for
pixel in the scrolling stage; the same action again fits it back."""
from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from portal import bills
from portal.extensions import db
from portal.models import Bill
from tests.conftest import CORPUS
from tests.e2e.conftest import login
from tests.e2e.test_upload_browser import BILL_NO, _make_bill

SICHUAN = "shudian_vat_special_sichuan_23512000000005197325.pdf"


def _attach() -> None:
    bill = db.session.scalar(select(Bill).where(Bill.bill_no == BILL_NO))
    bills.add_file(bill, (CORPUS / SICHUAN).read_bytes(), SICHUAN, "tester")
    db.session.commit()


def _shown(page) -> dict:
    return page.locator("#viewer .viewer-img").evaluate("""im => {
      const st = document.querySelector('#viewer .viewer-stage');
      return {natural: im.naturalWidth, width: im.getBoundingClientRect().width,
              scrolls: st.scrollWidth > st.clientWidth, stage: st.clientWidth};
    }""")


def test_small_print_pdf_reads_at_100_percent_and_toggles_back_to_fit(live_app, page):
    ent_id, point_id = live_app.call(_make_bill)
    live_app.call(_attach)
    live_app.make_user("scanner1", "scanner", [ent_id], [point_id])
    login(page, live_app, "scanner1")
    page.goto(f"{live_app.url}/bills/{BILL_NO}")
    page.wait_for_function("() => document.querySelector('#viewer .viewer-img').naturalWidth > 0", timeout=15_000)
    zoom = page.locator("#viewer .viewer-zoom")
    expect(zoom).to_contain_text("适应")
    fitted = _shown(page)
    assert fitted["natural"] > 1800  # rendered larger than an ordinary page for its small text
    assert fitted["width"] <= fitted["stage"] and not fitted["scrolls"]

    page.locator('#viewer [data-act="actual"]').click()
    expect(zoom).to_have_text("100%")
    actual = _shown(page)
    assert round(actual["width"]) == actual["natural"] and actual["scrolls"]

    page.locator('#viewer [data-act="actual"]').click()  # again: back to fit
    expect(zoom).to_contain_text("适应")

    page.locator("#viewer .viewer-img").dblclick()
    expect(zoom).to_have_text("100%")
    page.locator("#viewer .viewer-img").dblclick()
    expect(zoom).to_contain_text("适应")

    page.locator("#viewer .viewer-stage").focus()
    page.keyboard.press("1")
    expect(zoom).to_have_text("100%")
    page.keyboard.press("0")
    expect(zoom).to_contain_text("适应")
