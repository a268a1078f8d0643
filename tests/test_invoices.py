"""The invoice list (/invoices/): filters, isolation, keyset paging, htmx fragment, counts, bad input."""
from __future__ import annotations

import itertools
import random
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select, text

from portal.bills import refresh_duplicates
from portal.invoice_fields import invoice_key
from portal.search import invoices as service
from portal.extensions import db
from portal.models import Bill, Blob, Image, Invoice, InvoiceSeller, InvoiceVerification

from .conftest import Browser

ROW = re.compile(r'<tr id="invoice-(\d+)"')
NEXT = re.compile(r'href="([^"]+)"[^>]*rel="next"')
PREV = re.compile(r'href="([^"]+)"[^>]*rel="prev"')


def ids_in(html: str) -> list[int]:
    return [int(x) for x in ROW.findall(html)]


def link(pattern: re.Pattern, html: str) -> str | None:
    m = pattern.search(html)
    return m.group(1).replace("&amp;", "&") if m else None


class Factory:
    """Bills, blobs, images and invoices written straight into the database."""

    def __init__(self):
        self.n = itertools.count(1)
        self.images: dict[int, int] = {}  # bill id -> its image id

    def bill(self, ent, bill_no=None, status="completed") -> Bill:
        n = next(self.n)
        bill = Bill(enterprise_id=ent.id, bill_no=bill_no or f"BX{n:05d}", status=status)
        db.session.add(bill)
        db.session.flush()
        sha = f"{n:064x}"
        db.session.add(Blob(sha256=sha, size=10, media_type="application/pdf"))
        db.session.flush()
        image = Image(bill_id=bill.id, sha256=sha, filename=f"{n}.pdf", position=1)
        db.session.add(image)
        db.session.flush()
        self.images[bill.id] = image.id
        return bill

    def invoice(self, bill, **kw) -> Invoice:
        n = next(self.n)
        values = {"type": "31", "code": None, "number": f"2444{n:016d}", "date": date(2024, 5, 1),
                  "amount": Decimal("100.00"), "tax": Decimal("6.00"), "total": Decimal("106.00"),
                  "seller_name": "深圳市默认销售有限公司", "seller_tax_no": "91440300MA5DEFAULT",
                  "buyer_name": "买方公司", "source": "qr"}
        values.update(kw)
        inv = Invoice(enterprise_id=bill.enterprise_id, bill_id=bill.id, image_id=self.images[bill.id],
                      invoice_key=invoice_key(values["code"], values["number"]), **values)
        db.session.add(inv)
        db.session.flush()
        return inv


@pytest.fixture
def factory(app):
    return Factory()


@pytest.fixture
def ents(make_enterprise):
    return make_enterprise("甲公司"), make_enterprise("乙公司")


@pytest.fixture
def viewer(browser, make_user, ents):
    """A viewer of enterprise A only, logged in."""
    make_user("viewer-a", "viewer", [ents[0]])
    browser.login("viewer-a")
    return browser


# --------------------------------------------------------------------------- a varied data set

SELLERS = [("深圳市腾云科技有限公司", "91440300MA5TENGYUN"), ("中国东方航空股份有限公司", "91310000132141115X"),
           ("北京滴滴出行科技有限公司", "911101083064560000"), ("上海华住酒店管理有限公司", "91310000MA1HUAZHU1")]
TYPES = ["01", "04", "08", "10", "20", "31", "32", "61", "99"]


@pytest.fixture
def dataset(ents, factory):
    """60 invoices of enterprise A over 6 bills and 10 of B, with every attribute varied (fixed seed)."""
    a, b = ents
    rng = random.Random(7)
    rows = []
    bills_a = [factory.bill(a) for _ in range(6)]
    for i in range(60):
        kind = rng.choice(TYPES)
        classic = kind in ("01", "04", "10", "08", "20")
        seller, seller_tax = rng.choice(SELLERS)
        total = Decimal(rng.choice(["12.50", "106.00", "880.00", "1234.56", "5000.00", "23000.00"]))
        rows.append(factory.invoice(
            bills_a[i % 6], type=kind,
            code=f"0{4400000000 + i}" if classic else None,
            number=f"{rng.randrange(10 ** 7, 10 ** 8)}" if classic else f"2{rng.randrange(10 ** 18, 10 ** 19)}",
            date=date(2023, 1, 1) + timedelta(days=rng.randrange(0, 700)),
            total=total, amount=(total / Decimal("1.06")).quantize(Decimal("0.01")), tax=None if i % 7 == 0 else Decimal("1.00"),
            seller_name=seller, seller_tax_no=seller_tax, source=rng.choice(["qr", "push", "pdf_text", "ofd"])))
    # Two bills of A carry the same invoice (a duplicate reimbursement); flags via the domain rule.
    twin = rows[5]
    dup = factory.invoice(bills_a[1], type=twin.type, code=twin.code, number=twin.number, date=twin.date,
                          total=twin.total, seller_name=twin.seller_name, seller_tax_no=twin.seller_tax_no)
    rows.append(dup)
    refresh_duplicates(a.id, [twin.invoice_key])
    bill_b = factory.bill(b)
    others = [factory.invoice(bill_b, seller_name="乙方专属供应商有限公司", total=Decimal("106.00")) for _ in range(10)]
    # 查验 results: failed and void ones (the twin's key among them), a verified one, and a failure of B's
    # on a key that A's invoice also carries (it must not mark A's invoice).
    for inv, status in ((rows[3], "failed"), (rows[5], "void"), (rows[20], "failed"), (rows[30], "verified"),
                        (rows[44], "unverified")):
        db.session.add(InvoiceVerification(enterprise_id=a.id, invoice_key=inv.invoice_key, status=status))
    db.session.add(InvoiceVerification(enterprise_id=b.id, invoice_key=rows[40].invoice_key, status="failed"))
    db.session.commit()
    return rows, others


def expected(rows, args: dict) -> list[int]:
    """The reference filter, in Python, newest first."""
    def keep(inv):
        if "date_from" in args and not (inv.date and inv.date >= date.fromisoformat(args["date_from"])):
            return False
        if "date_to" in args and not (inv.date and inv.date <= date.fromisoformat(args["date_to"])):
            return False
        if "type" in args and inv.type != args["type"]:
            return False
        if "seller" in args:
            s = args["seller"]
            if re.fullmatch(r"[0-9A-Z]{15,20}", s):
                if inv.seller_tax_no != s:
                    return False
            elif s not in (inv.seller_name or ""):
                return False
        if "min_total" in args and not (inv.total is not None and inv.total >= Decimal(args["min_total"])):
            return False
        if "max_total" in args and not (inv.total is not None and inv.total <= Decimal(args["max_total"])):
            return False
        if "q" in args:
            q = args["q"]
            parts = re.split(r"[\s,]+", q)
            if len(parts) == 2:
                if not (inv.code == parts[0] and (inv.number or "").startswith(parts[1])):
                    return False
            elif not ((inv.number or "").startswith(q)
                      or (len(q) in (18, 20) and inv.code == q[:-8] and inv.number == q[-8:])):
                return False
        if args.get("dup") == "1" and not inv.duplicate:
            return False
        if args.get("vf") == "1" and (inv.enterprise_id, inv.invoice_key) not in failing:
            return False
        return True

    failing = set(db.session.execute(select(InvoiceVerification.enterprise_id, InvoiceVerification.invoice_key)
                                     .where(InvoiceVerification.status.in_(("failed", "void")))).all())

    return sorted((inv.id for inv in rows if keep(inv)), reverse=True)


def walk(browser, url: str) -> list[int]:
    """Every row of a listing, following 下一页 to the end."""
    seen = []
    while url:
        html = browser.get(url).data.decode()
        seen += ids_in(html)
        url = link(NEXT, html)
    return seen


# --------------------------------------------------------------------------- the page

def test_lists_invoices_newest_first_with_formatted_columns(viewer, ents, factory):
    a = ents[0]
    bill = factory.bill(a, bill_no="FYBX-2024-07")
    old = factory.invoice(bill, type="01", code="044001900111", number="12345678", total=Decimal("1234.5"),
                          amount=Decimal("1092.48"), tax=None, seller_name="深圳市腾云科技有限公司", source="push")
    new = factory.invoice(bill, type="86", total=None, amount=None)
    db.session.commit()
    resp = viewer.get("/invoices/")
    assert resp.status_code == 200
    html = resp.data.decode()
    assert ids_in(html) == [new.id, old.id]
    row_old = html[html.index(f'id="invoice-{old.id}"'):]
    assert "增值税专用发票" in row_old and "044001900111" in row_old and "12345678" in row_old
    assert '<td class="num">1,234.50</td>' in row_old and '<td class="num">1,092.48</td>' in row_old
    assert '<td class="num">—</td>' in row_old  # no tax
    assert "收票推送" in row_old
    assert 'href="/bills/FYBX-2024-07"' in row_old
    assert "其他（86）" in html
    assert "共 2 条" in html
    assert "重复报销</span>" not in html


def test_viewer_scanner_and_ops_may_view_anonymous_is_sent_to_login(app, viewer, make_user, ents, ops):
    make_user("s", "scanner", [ents[0]])
    assert viewer.get("/invoices/").status_code == 200
    anonymous = Browser(app)
    assert anonymous.get("/invoices/").status_code == 302
    for name in ("s", "root"):
        other = Browser(app)
        other.login(name)
        assert other.get("/invoices/").status_code == 200


def test_the_list_is_read_only_for_a_viewer(viewer):
    assert viewer.post("/invoices/").status_code in (403, 405)


# --------------------------------------------------------------------------- filters

FILTERS = [
    {"date_from": "2023-06-01"},
    {"date_to": "2023-06-01"},
    {"date_from": "2023-03-01", "date_to": "2023-09-30"},
    {"type": "01"},
    {"type": "08"},
    {"type": "99"},
    {"seller": "航空"},
    {"seller": "酒店管理"},
    {"seller": "91440300MA5TENGYUN"},
    {"seller": "没有这家公司"},
    {"min_total": "1000"},
    {"max_total": "106"},
    {"min_total": "100", "max_total": "1234.56"},
    {"q": "2"},
    {"q": "1"},
    {"dup": "1"},
    {"type": "31", "date_from": "2023-05-01", "min_total": "800"},
    {"seller": "滴滴", "date_to": "2024-06-30", "max_total": "5000"},
    {"q": "2", "type": "32", "seller": "有限公司"},
    {"dup": "1", "type": "99", "date_from": "2023-01-01"},
    {"date_from": "2023-02-01", "date_to": "2024-10-01", "min_total": "10", "max_total": "6000", "seller": "科技"},
    {"vf": "1"},
    {"vf": "1", "dup": "1"},
    {"vf": "1", "date_from": "2023-06-01", "type": "31"},
    {"vf": "1", "seller": "航空", "min_total": "100"},
]


@pytest.mark.parametrize("probe,names,branches,seller_branches", [
    (5000, 500, 100, 40), (3, 500, 100, 40), (1, 1, 100, 40), (5000, 500, 0, 0), (3, 500, 100, 0), (1, 1, 0, 0)],
    ids=["narrow", "broad", "broadest", "narrow-one-statement", "broad-sorted-sellers", "broadest-one-statement"])
def test_every_filter_alone_and_combined_matches_the_reference(viewer, dataset, monkeypatch, probe, names, branches,
                                                               seller_branches):
    """The same answers whichever index the planner drives by (the limits patched here force each path)."""
    monkeypatch.setattr(service, "PROBE", probe)
    monkeypatch.setattr(service, "NAME_LIMIT", names)
    monkeypatch.setattr(service, "MAX_BRANCHES", branches)
    monkeypatch.setattr(service, "SELLER_BRANCHES", seller_branches)
    monkeypatch.setattr(service, "PER_PAGE", 7)
    drivers = set()
    plan = service.Search._plan

    def spy(self):
        plan(self)
        drivers.add(self.driver + ("+window" if self.date_window else ""))

    monkeypatch.setattr(service.Search, "_plan", spy)
    rows, _ = dataset
    for args in FILTERS:
        url = "/invoices/?" + "&".join(f"{k}={v}" for k, v in args.items())
        assert walk(viewer, url) == expected(rows, args), args
    # Every way of reading the invoices was taken at least once.
    windows = {"id+window"} if branches else set()  # one statement for all enterprises: no per-enterprise window
    assert drivers >= ({"date", "total", "number", "seller", "dup", "verify"} if probe > 3 else {"id", "dup"} | windows)
    if probe == 1 and seller_branches:
        assert "seller+window" in drivers  # a seller's own index, walked inside the date window


def test_number_search_by_prefix_code_and_number_and_glued_digits(viewer, ents, factory):
    bill = factory.bill(ents[0])
    classic = factory.invoice(bill, type="04", code="044001900111", number="12345678")
    other = factory.invoice(bill, type="04", code="044001900222", number="12349999")
    shudian = factory.invoice(bill, type="32", number="24442000000012345678")
    db.session.commit()
    assert walk(viewer, "/invoices/?q=1234") == [other.id, classic.id]
    assert walk(viewer, "/invoices/?q=044001900111+1234") == [classic.id]
    assert walk(viewer, "/invoices/?q=044001900111,12345678") == [classic.id]
    assert walk(viewer, "/invoices/?q=04400190011112345678") == [classic.id]  # 12-digit code glued to the number
    assert walk(viewer, "/invoices/?q=24442000000012345678") == [shudian.id]
    assert walk(viewer, "/invoices/?q=2444200000") == [shudian.id]
    assert walk(viewer, "/invoices/?q=9999") == []


def test_duplicates_only_uses_the_flag_kept_by_refresh_duplicates(viewer, ents, factory):
    a = ents[0]
    first, second = factory.bill(a), factory.bill(a)
    one = factory.invoice(first, code="044001900111", number="11111111", type="04")
    two = factory.invoice(second, code="044001900111", number="11111111", type="04")
    factory.invoice(second, code="044001900111", number="22222222", type="04")
    refresh_duplicates(a.id, [one.invoice_key])
    db.session.commit()
    html = viewer.get("/invoices/?dup=1").data.decode()
    assert ids_in(html) == [two.id, one.id]
    assert html.count('<span class="badge badge-err">重复报销</span>') == 2


def test_type_filter_lists_known_labels_and_keeps_an_unknown_code_selected(viewer):
    html = viewer.get("/invoices/?type=86").data.decode()
    labels = ("增值税专用发票", "增值税普通发票", "增值税电子专用发票（08）", "增值税电子专用发票（20）",
              "增值税电子普通发票", "电子发票（增值税专用发票）", "电子发票（普通发票）", "电子发票（航空运输电子客票行程单）")
    for label in labels:
        assert label in html
    assert '<option value="86" selected>其他（86）</option>' in html


# --------------------------------------------------------------------------- enterprises

def test_a_user_never_sees_another_enterprises_invoices(viewer, ents, factory):
    a, b = ents
    mine = factory.invoice(factory.bill(a))
    factory.invoice(factory.bill(b), seller_name="乙方专属供应商有限公司")
    db.session.commit()
    html = viewer.get("/invoices/").data.decode()
    assert ids_in(html) == [mine.id] and "乙方专属供应商" not in html
    assert walk(viewer, "/invoices/?seller=乙方专属") == []
    assert viewer.get(f"/invoices/?e={b.id}").status_code == 404
    assert viewer.get(f"/invoices/?e={b.id}", htmx="invoice-results").status_code == 404
    assert 'name="e"' not in html  # one enterprise: no enterprise picker


def test_the_seller_search_knows_each_enterprises_seller_names_as_invoices_are_written(viewer, ents, factory):
    a, b = ents
    inv = factory.invoice(factory.bill(a), seller_name="深圳市甲方旧名有限公司")
    factory.invoice(factory.bill(b), seller_name="乙方专属供应商有限公司")
    db.session.commit()
    # Kept by the database (triggers on invoices), per enterprise.
    names = set(db.session.execute(select(InvoiceSeller.enterprise_id, InvoiceSeller.name)).all())
    assert {(a.id, "深圳市甲方旧名有限公司"), (b.id, "乙方专属供应商有限公司")} <= names
    assert walk(viewer, "/invoices/?seller=甲方旧名") == [inv.id]
    inv.seller_name = "深圳市甲方新名有限公司"  # a corrected seller name is found under the new name
    db.session.commit()
    assert walk(viewer, "/invoices/?seller=甲方新名") == [inv.id]
    assert walk(viewer, "/invoices/?seller=甲方旧名") == []


def test_a_sellers_invoices_are_read_in_id_order_from_the_per_enterprise_seller_index(app, ents, factory):
    """A seller's page walks (enterprise_id, seller_name, id) newest first: no sort of all the seller's invoices.

    A seller on 80,000 of 1M invoices otherwise costs a read and sort of every one of them per page
    (bench/bench_invoices.py: ~60 ms on PostgreSQL, ~11 ms with the index walked in order).
    """
    a, b = ents
    for ent in (a, b):
        bill = factory.bill(ent)
        for _ in range(3):
            factory.invoice(bill, seller_name="成都泰宏石油化工股份有限公司")
    db.session.commit()
    search = service.Search(service.parse_filters({"seller": "泰宏石油"}), [a.id, b.id])
    assert search.driver == "seller" and search.seller_ordered
    branches = search._branches("seller", [], "desc", 51)
    assert len(branches) == 2
    conn = db.session.connection()
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # a handful of rows: make the planner show the plan it would pick for many
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "
                             "SET LOCAL enable_sort = off")
    for branch in branches:
        sql = str(branch.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql(
            ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql))
        assert "ix_invoices_enterprise_seller_name" in plan, plan
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
    db.session.rollback()

def test_a_user_of_several_enterprises_picks_one_or_sees_all(app, make_user, ents, factory, ops):
    a, b = ents
    in_a = factory.invoice(factory.bill(a))
    in_b = factory.invoice(factory.bill(b))
    db.session.commit()
    make_user("both", "viewer", [a, b])
    for name in ("both", "root"):  # a bound user of both, and deployment-wide ops
        browser = Browser(app)
        browser.login(name)
        html = browser.get("/invoices/").data.decode()
        assert ids_in(html) == [in_b.id, in_a.id] and 'name="e"' in html
        bill_a = db.session.get(Bill, in_a.bill_id).bill_no
        assert f'href="/bills/{bill_a}?e={a.id}"' in html  # the bill page is told which enterprise
        assert ids_in(browser.get(f"/invoices/?e={a.id}").data.decode()) == [in_a.id]
        assert ids_in(browser.get(f"/invoices/?e={b.id}").data.decode()) == [in_b.id]
        assert browser.get("/invoices/?e=999999").status_code == 404


# --------------------------------------------------------------------------- keyset paging

@pytest.mark.parametrize("args,probe,branches", [
    ("", 5000, 100), ("&min_total=100", 5000, 100), ("&date_from=2024-01-01", 5000, 100),
    ("&min_total=100", 1, 100), ("&date_to=2024-01-15", 1, 100), ("", 5000, 0), ("&date_to=2024-01-15", 1, 0)])
def test_keyset_paging_walks_every_row_once_in_order_and_back(browser, make_user, ents, factory, monkeypatch,
                                                              args, probe, branches):
    monkeypatch.setattr(service, "PER_PAGE", 5)
    monkeypatch.setattr(service, "PROBE", probe)  # 1: every filter counts as broad (id walk, date window)
    monkeypatch.setattr(service, "MAX_BRANCHES", branches)  # 0: one statement for both enterprises
    a, b = ents
    bills = [factory.bill(a), factory.bill(b)]
    made = [factory.invoice(bills[i % 3 == 0], date=date(2024, 1, 1) + timedelta(days=i), total=Decimal(90 + i))
            for i in range(23)]
    db.session.commit()
    make_user("both", "viewer", [a, b])
    browser.login("both")
    keep = {"": lambda inv: True, "&min_total=100": lambda inv: inv.total >= 100,
            "&date_from=2024-01-01": lambda inv: True, "&date_to=2024-01-15": lambda inv: inv.date <= date(2024, 1, 15)}
    want = sorted((inv.id for inv in made if keep[args](inv)), reverse=True)

    pages, url = [], "/invoices/?" + args.lstrip("&")
    while url:
        html = browser.get(url).data.decode()
        pages.append(ids_in(html))
        assert ("上一页" in html) is (len(pages) > 1)
        url = link(NEXT, html)
    assert [i for p in pages for i in p] == want
    assert all(len(p) == 5 for p in pages[:-1])

    # and back from the last page with 上一页
    back = [pages[-1]]
    html = browser.get(url or "/invoices/?" + args.lstrip("&") + f"&after={pages[-2][-1]}").data.decode()
    url = link(PREV, html)
    while url:
        html = browser.get(url).data.decode()
        back.insert(0, ids_in(html))
        url = link(PREV, html)
    assert back == pages


def test_pager_links_keep_the_filters_and_a_bad_cursor_means_the_first_page(viewer, ents, factory, monkeypatch):
    monkeypatch.setattr(service, "PER_PAGE", 2)
    bill = factory.bill(ents[0])
    made = [factory.invoice(bill, type="01") for _ in range(3)]
    db.session.commit()
    html = viewer.get("/invoices/?type=01&date_from=").data.decode()
    nxt = link(NEXT, html)
    assert "type=01" in nxt and f"after={made[1].id}" in nxt and "date_from" not in nxt
    html = viewer.get("/invoices/?type=01&after=abc").data.decode()
    assert ids_in(html) == [made[2].id, made[1].id] and "翻页参数无效" in html


# --------------------------------------------------------------------------- htmx

def test_full_page_has_the_active_search_form(viewer):
    html = viewer.get("/invoices/").data.decode()
    assert "<html" in html
    form = html[html.index('<form id="invoice-filters"'):html.index("</form>", html.index('<form id="invoice-filters"'))]
    assert 'hx-get="/invoices/"' in form and 'hx-target="#invoice-results"' in form and 'hx-push-url="true"' in form
    assert "input changed delay:250ms" in form and "change from:select" in form
    assert '<div id="invoice-results">' in html
    assert 'hx-swap-oob' not in html  # the page renders the messages in place


def test_htmx_request_gets_only_the_results_fragment(viewer, ents, factory):
    inv = factory.invoice(factory.bill(ents[0]))
    db.session.commit()
    resp = viewer.get("/invoices/?date_from=nope", htmx="invoice-results")
    html = resp.data.decode()
    assert resp.status_code == 200 and "HX-Request" in resp.headers["Vary"]
    assert "<html" not in html and "<form" not in html and 'id="invoice-results"' not in html
    assert ids_in(html) == [inv.id] and "<table" in html
    assert 'id="invoice-filter-errors" class="filter-errors" hx-swap-oob="true"' in html
    assert "开票日期（起）不是有效的日期：nope" in html
    # boosted and history-restore requests get the whole page
    assert "<html" in viewer.get("/invoices/", headers={"HX-Request": "true", "HX-Boosted": "true"}).data.decode()


# --------------------------------------------------------------------------- counts

def test_count_is_exact_below_the_cap_and_bounded_above(viewer, ents, factory, monkeypatch):
    # A generous time budget: on a busy machine the default 8 ms would give up and make this flaky;
    # running out of time is tested on its own below.
    viewer.app.config["INVOICES_COUNT_BUDGET_MS"] = 60_000
    monkeypatch.setattr(service, "PER_PAGE", 2)
    bill = factory.bill(ents[0])
    for i in range(7):
        factory.invoice(bill, type="01" if i < 3 else "31")
    db.session.commit()
    assert "共 3 条" in viewer.get("/invoices/?type=01").data.decode()
    assert "共 7 条" in viewer.get("/invoices/").data.decode()
    monkeypatch.setattr(service, "SMALL_CAP", 2)
    monkeypatch.setattr(service, "COUNT_CAP", 5)
    assert "共 5+ 条" in viewer.get("/invoices/").data.decode()
    assert "共 3 条" in viewer.get("/invoices/?type=01").data.decode()  # past the small cap, exact below the large one
    # The large count running out of time still leaves the small one's answer.
    small_only = service.Search._count

    def slow_large(self, cap):
        if cap == service.COUNT_CAP:
            raise service.CountTimeout()
        return small_only(self, cap)

    monkeypatch.setattr(service.Search, "_count", slow_large)
    assert "共 2+ 条" in viewer.get("/invoices/").data.decode()


def test_a_count_that_runs_out_of_time_is_abandoned_not_waited_for(app, viewer, ents, factory, monkeypatch):
    forever = text("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c")
    with pytest.raises(service.CountTimeout):
        with service.time_limit(5):
            db.session.execute(forever)
    db.session.rollback()
    assert db.session.execute(text("SELECT 1")).scalar() == 1  # the connection is still good

    def timeout(self, cap):
        raise service.CountTimeout()

    monkeypatch.setattr(service.Search, "_count", timeout)
    monkeypatch.setattr(service, "PER_PAGE", 1)
    bill = factory.bill(ents[0])
    factory.invoice(bill), factory.invoice(bill)
    db.session.commit()
    html = viewer.get("/invoices/").data.decode()
    assert "结果较多，未统计总数" in html and len(ids_in(html)) == 1


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("query,message", [
    ("date_from=2024-13-45", "开票日期（起）不是有效的日期"),
    ("date_to=yesterday", "开票日期（止）不是有效的日期"),
    ("date_from=2024-05-01&date_to=2024-01-01", "开票日期（起）晚于开票日期（止）"),
    ("min_total=abc", "价税合计（最小）不是有效的金额"),
    ("max_total=1.234", "价税合计（最大）不是有效的金额"),
    ("min_total=500&max_total=100", "最小值大于最大值"),
    ("q=abc", "发票号码只能输入数字"),
    ("type=%27%3B--", "发票类型无效"),
    ("e=abc", "企业参数无效"),
    ("before=-1", "翻页参数无效"),
    ("after=%C2%B2", "翻页参数无效"),  # "²" passes str.isdigit() but not int()
    ("q=%EF%BC%91%EF%BC%92", "发票号码只能输入数字"),  # full-width digits
])
def test_bad_input_is_reported_in_the_filter_bar_and_ignored(viewer, ents, factory, query, message):
    inv = factory.invoice(factory.bill(ents[0]), date=date(2024, 3, 1), total=Decimal("300"))
    db.session.commit()
    resp = viewer.get("/invoices/?" + query)
    html = resp.data.decode()
    assert resp.status_code == 200
    bar = html[html.index('<div id="invoice-filter-errors"'):html.index('<div id="invoice-results">')]
    assert message in bar
    assert ids_in(html) == [inv.id]  # the bad condition is ignored, not applied


# --------------------------------------------------------------------------- query count

def test_statements_per_page_do_not_grow_with_the_rows(viewer, ents, factory, app, monkeypatch):
    monkeypatch.setattr(service, "PER_PAGE", 5)  # both sizes have a next page (so both are counted)
    a = ents[0]
    bills = [factory.bill(a) for _ in range(10)]

    def statements(url):
        seen = []

        def count(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert viewer.get(url).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(seen)

    urls = ["/invoices/", "/invoices/?seller=科技&date_from=2024-01-01&min_total=1", "/invoices/?dup=1&q=2"]
    for i in range(10):
        factory.invoice(bills[i], seller_name="科技公司", date=date(2024, 2, 1))
    db.session.commit()
    small = [statements(u) for u in urls]
    for i in range(90):
        factory.invoice(bills[i % 10], seller_name="科技公司", date=date(2024, 2, 1))
    db.session.commit()
    assert [statements(u) for u in urls] == small
    # PostgreSQL's count time limit adds two round trips (savepoint + SET LOCAL, rollback to it).
    assert max(small) <= 9 + (2 if db.engine.dialect.name == "postgresql" else 0)
