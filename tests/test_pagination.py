"""``?page`` on every paged list: clamped to 1..last page, never a 500, never 第 999 / 4 页."""
import re

import pytest

from portal.extensions import db
from portal.models import AuditEvent, Bill, WritebackJob

# Each list and how many pages its 51 rows fill (20 bills a page, 50 rows on the others).
LISTS = {
    "/bills/": 3,
    "/scan/": 2,
    "/audit/": 2,
    "/writeback/": 2,
}
HUGE = "100000000000000000000"


@pytest.fixture
def two_pages(app, make_enterprise, ops, browser):
    """51 bills, 51 audit events and 51 write-back jobs (two pages or more each); ops logged in."""
    ent = make_enterprise()
    bills = [Bill(enterprise_id=ent.id, bill_no=f"P-{n:03d}", status="uploaded") for n in range(51)]
    db.session.add_all(bills)
    db.session.flush()
    db.session.add_all(AuditEvent(actor="test", action="update", object_type="bill", enterprise_id=ent.id,
                                  summary=f"事件 {n}") for n in range(51))
    db.session.add_all(WritebackJob(bill_id=b.id, enterprise_id=ent.id, kind="status") for b in bills)
    db.session.commit()
    browser.login("root")
    return browser


def _pager(resp) -> str:
    assert resp.status_code == 200, resp.status_code
    m = re.search(r"第 (\d+) / (\d+) 页", resp.get_data(as_text=True))
    assert m, "no pager on the page"
    return f"{m.group(1)}/{m.group(2)}"


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("page, shown", [
    (HUGE, "last"), ("9" * 5000, "last"), ("999", "last"), ("2", "2"), ("1", "1"),
    ("0", "1"), ("-3", "1"), ("abc", "1"), ("", "1"), ("²", "1"),
])
def test_page_number_is_clamped_to_the_pages_there_are(two_pages, url, page, shown):
    pages = LISTS[url]
    expected = f"{pages if shown == 'last' else shown}/{pages}"
    assert _pager(two_pages.get(f"{url}?page={page}")) == expected


@pytest.mark.parametrize("url", LISTS)
def test_past_the_end_shows_the_last_pages_rows(two_pages, url):
    last = two_pages.get(f"{url}?page={LISTS[url]}").get_data(as_text=True)
    beyond = two_pages.get(f"{url}?page={HUGE}").get_data(as_text=True)
    rows = re.findall(r"<tr[ >]", last)
    assert len(re.findall(r"<tr[ >]", beyond)) == len(rows) > 1
    assert "上一页" in beyond and "下一页" not in beyond


def test_an_empty_list_stays_on_page_one(app, ops, browser):
    browser.login("root")
    for url in LISTS:
        resp = browser.get(f"{url}?page={HUGE}")
        assert resp.status_code == 200, url
