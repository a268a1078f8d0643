"""The scan desk: the scanner's queue and opening a bill by its number (typed or a barcode gun)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal import bills
from portal.extensions import db
from portal.models import Bill


@pytest.fixture
def desk(app, make_enterprise, make_user, make_scan_point):
    ent = make_enterprise("甲公司")
    other = make_enterprise("乙公司")
    sp1 = make_scan_point(ent, "SP01", "一号扫描点")
    make_scan_point(ent, "SP02", "二号扫描点")
    osp = make_scan_point(other, "SP01", "乙公司扫描点")
    make_user("scanner1", "scanner", [ent], [sp1])
    make_user("viewer1", "viewer", [ent])
    make_user("ops1", "ops", [ent])
    make_user("ops_both", "ops", [ent, other])
    make_user("other_scanner", "scanner", [other], [osp])
    rows = [
        (ent, "BX-MINE-1", "SP01", "pending"),
        (ent, "BX-MINE-2", "SP01", "returned"),
        (ent, "BX-MINE-3", "SP01", "match_failed"),
        (ent, "BX-MINE-DONE", "SP01", "completed"),
        (ent, "BX-THEIRS", "SP02", "pending"),
        (ent, "BX-NOPOINT", None, "uploaded"),
        (other, "BX-OTHER", "SP01", "pending"),
    ]
    for ent_, no, point, status in rows:
        bill = bills.open_bill(ent_, {"bill_no": no, "scan_point": point, "submitter": "李四"}, "erp").bill
        bill.status = status
        if status == "returned":
            bill.return_reason = "第 2 张发票不清晰，请重扫"
    db.session.commit()
    return {"ent": ent.id, "other": other.id}


def _queue_numbers(html: str) -> list[str]:
    """Bill numbers linked from the queue table, in order."""
    body = html.split('id="scan-queue"', 1)[1]
    return re.findall(r'<a class="mono" href="/bills/[^"]*">([^<]+)</a>', body)


def test_queue_shows_only_the_scanners_scan_points_newest_first(browser, desk):
    browser.login("scanner1")
    resp = browser.get("/scan/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    # Pending, returned and match-failed bills of SP01, plus bills no scan point claims; newest first.
    assert _queue_numbers(html) == ["BX-NOPOINT", "BX-MINE-3", "BX-MINE-2", "BX-MINE-1"]
    assert "BX-THEIRS" not in html and "BX-OTHER" not in html and "BX-MINE-DONE" not in html
    assert 'name="bill_no"' in html and "autofocus" in html


def test_returned_bills_show_their_reason(browser, desk):
    browser.login("scanner1")
    html = browser.get("/scan/").get_data(as_text=True)
    bill_id = db.session.scalar(select(Bill.id).where(Bill.bill_no == "BX-MINE-2"))
    reason_row = html.split(f'id="queue-bill-{bill_id}-reason"', 1)[1].split("</tr>", 1)[0]
    assert "退回原因：</strong>第 2 张发票不清晰，请重扫" in reason_row


def test_ops_see_every_scan_point_of_their_enterprises(browser, desk):
    browser.login("ops1")
    numbers = _queue_numbers(browser.get("/scan/").get_data(as_text=True))
    assert set(numbers) == {"BX-MINE-1", "BX-MINE-2", "BX-MINE-3", "BX-THEIRS", "BX-NOPOINT"}


def test_queue_refreshes_as_a_fragment(browser, desk):
    browser.login("scanner1")
    html = browser.get("/scan/", htmx="scan-queue").get_data(as_text=True)
    assert html.lstrip().startswith('<div id="scan-queue"') and "<html" not in html


def test_open_by_number_redirects_to_the_bill(browser, desk):
    browser.login("scanner1")
    resp = browser.get("/scan/open?bill_no=+BX-MINE-1%0D", htmx="open-bill")  # a gun may add spaces/CR
    assert resp.status_code == 200 and resp.headers["HX-Redirect"] == "/bills/BX-MINE-1"
    plain = browser.get("/scan/open?bill_no=BX-MINE-1")
    assert plain.status_code == 303 and plain.headers["Location"].endswith("/bills/BX-MINE-1")
    # Any bill of the enterprise opens (read-only when another desk owns it).
    assert browser.get("/scan/open?bill_no=BX-THEIRS", htmx="open-bill").headers["HX-Redirect"] == "/bills/BX-THEIRS"


@pytest.mark.parametrize("number", ["BX-NOPE", "BX-OTHER"], ids=["unknown", "other-enterprise"])
def test_unknown_number_answers_an_inline_error(browser, desk, number):
    browser.login("scanner1")
    resp = browser.get(f"/scan/open?bill_no={number}", htmx="open-bill")
    assert resp.status_code == 422 and "HX-Redirect" not in resp.headers
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<form id="open-bill"') and "<html" not in html
    assert f"没有找到单据 {number}" in html and f'value="{number}"' in html and 'role="alert"' in html
    page = browser.get(f"/scan/open?bill_no={number}")  # without htmx: the desk page with the message
    assert page.status_code == 422 and f"没有找到单据 {number}" in page.get_data(as_text=True)


def test_empty_number_is_an_error(browser, desk):
    browser.login("scanner1")
    resp = browser.get("/scan/open?bill_no=", htmx="open-bill")
    assert resp.status_code == 422 and "请输入或扫描单据编号" in resp.get_data(as_text=True)


def test_a_number_in_two_enterprises_offers_a_choice(browser, desk):
    from portal.models import Enterprise

    bills.open_bill(db.session.get(Enterprise, desk["other"]), {"bill_no": "BX-MINE-1"}, "erp")
    db.session.commit()
    browser.login("ops_both")
    resp = browser.get("/scan/open?bill_no=BX-MINE-1", htmx="open-bill")
    assert resp.status_code == 200 and "HX-Redirect" not in resp.headers
    html = resp.get_data(as_text=True)
    assert "多个企业都有单据" in html
    assert f'href="/bills/BX-MINE-1?e={desk["ent"]}"' in html and f'href="/bills/BX-MINE-1?e={desk["other"]}"' in html


@pytest.mark.parametrize("url", ["/scan/", "/scan/open?bill_no=BX-MINE-1"])
def test_viewers_have_no_scan_desk(browser, desk, url):
    browser.login("viewer1")
    assert browser.get(url).status_code == 403


def test_open_by_number_ignores_letter_case(browser, desk):
    browser.login("scanner1")
    resp = browser.get("/scan/open?bill_no=bx-mine-1", htmx="open-bill")
    assert resp.status_code == 200 and resp.headers["HX-Redirect"] == "/bills/BX-MINE-1"
    # Another enterprise's bill stays hidden in any case.
    assert browser.get("/scan/open?bill_no=bx-other", htmx="open-bill").status_code == 422


def test_an_exact_number_wins_over_one_that_differs_only_in_case(browser, desk):
    from portal.models import Enterprise

    bills.open_bill(db.session.get(Enterprise, desk["ent"]), {"bill_no": "bx-mine-1"}, "erp")
    db.session.commit()
    browser.login("scanner1")
    assert browser.get("/scan/open?bill_no=bx-mine-1", htmx="open-bill").headers["HX-Redirect"] == "/bills/bx-mine-1"
    assert browser.get("/scan/open?bill_no=BX-MINE-1", htmx="open-bill").headers["HX-Redirect"] == "/bills/BX-MINE-1"


def test_queue_sorts_by_column_and_keeps_the_order_when_it_refreshes(browser, desk):
    from portal.models import Bill as BillModel

    for no, amount in (("BX-MINE-1", "300"), ("BX-MINE-2", "100"), ("BX-MINE-3", "200"), ("BX-NOPOINT", None)):
        db.session.scalar(select(BillModel).where(BillModel.bill_no == no)).amount = amount
    db.session.commit()
    browser.login("scanner1")
    html = browser.get("/scan/?sort=amount&dir=desc", htmx="scan-queue").get_data(as_text=True)
    assert _queue_numbers(html)[:3] == ["BX-MINE-1", "BX-MINE-3", "BX-MINE-2"]
    # The minute refresh asks for the same order.
    refresh = re.search(r'<div id="scan-queue" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "sort=amount" in refresh and "dir=desc" in refresh
    asc = browser.get("/scan/?sort=bill_no&dir=asc", htmx="scan-queue").get_data(as_text=True)
    assert _queue_numbers(asc) == ["BX-MINE-1", "BX-MINE-2", "BX-MINE-3", "BX-NOPOINT"]
