"""Sync mode (影像同步提单人): pushed invoice files fetched over real loopback HTTP and attached to bills."""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from portal import bills, signing, sync
from portal.extensions import db
from portal.models import Bill, BillEvent, ExpectedInvoice, Image, Invoice, utcnow

from .conftest import Browser, corpus

SECRET = "s3cret-value-1234567890"
KEY = "0123456789abcdef"
PDF_8006 = "vat_e_special_guizhou_00008006.pdf"
OFD_48542163 = "shudian_vat_special_24112000000048542163.ofd"
OFD_489101796 = "shudian_vat_special_24322000000489101796.ofd"


@pytest.fixture(autouse=True)
def allow_sandbox(app, cloud):
    """The cloud sandbox serves files from loopback, which downloads refuse unless its host:port is listed."""
    app.config["FETCH_ALLOWED_HOSTS"] = urlsplit(cloud.url).netloc


@pytest.fixture
def ent(make_enterprise):
    return make_enterprise("同步企业", client_id="sync-client", mode="sync")


@pytest.fixture
def push(browser, ent):
    """Send the receipt assistant's (encrypted) push of ``invoices``."""
    # A timestamp of its own for every push: the same timestamp and sign with another body is a replay.
    stamps = itertools.count(int(time.time() * 1000), -1)

    def push(*invoices, enterprise=None):
        e = enterprise or ent
        ts = next(stamps)
        body = {"taxNo": e.tax_no, "client_id": e.client_id, "timestamp": ts, "encType": 2, "encrypt": True,
                "sign": signing.sign(e.client_id, SECRET, ts, 2),
                "data": signing.aes_ecb_encrypt(json.dumps(list(invoices)).encode(), KEY)}
        resp = browser.request("POST", "/api/v1/push/invoices", json=body)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    return push


def open_bill(ent, bill_no, erp_id="100001"):
    bill = bills.open_bill(ent, {"bill_no": bill_no, "erp_id": erp_id}, "api:test").bill
    db.session.commit()
    return bill


def pushed(number, url, bill_no, **extra):
    inv = {"serialNo": f"SN-{number}", "invoiceNo": number, "downloadUrl": url, "billNo": bill_no}
    inv.update(extra)
    return inv


def row(number) -> ExpectedInvoice:
    db.session.expire_all()
    return db.session.scalar(select(ExpectedInvoice).where(ExpectedInvoice.number == number))


def later(seconds: float) -> dt.datetime:
    """The clock ``seconds`` from now, as fetch_pending reads it (naive UTC)."""
    return utcnow() + dt.timedelta(seconds=seconds)


def file_calls(cloud) -> list[str]:
    return [c["name"] for c in cloud.calls if c.get("service") == "file"]


def test_pushed_files_are_fetched_recognised_and_the_bill_completes(ent, cloud, push):
    bill = open_bill(ent, "FYBX3001")
    pdf, ofd = corpus(PDF_8006), corpus(OFD_48542163)
    url_pdf = cloud.add_file("a/8006.pdf", pdf, "application/pdf", download_name="发票00008006.pdf")
    url_ofd = cloud.add_file("a/48542163.ofd", ofd, "application/ofd")
    answer = push(pushed("00008006", url_pdf, "FYBX3001", invoiceCode="052002100113"),
                  pushed("24112000000048542163", url_ofd, "FYBX3001"))
    assert answer["accepted"] == 2
    assert file_calls(cloud) == []  # the push itself downloads nothing

    assert sync.fetch_pending() == 2
    db.session.expire_all()
    bill = db.session.get(Bill, bill.id)
    images = bills.live_images(bill)
    assert [(i.filename, i.origin, i.uploaded_by) for i in images] == [
        ("发票00008006.pdf", "push", "sync"), ("48542163.ofd", "push", "sync")]
    # Byte-exact: the stored content is what the server sent.
    assert [i.sha256 for i in images] == [hashlib.sha256(pdf).hexdigest(), hashlib.sha256(ofd).hexdigest()]
    assert bills.storage().read(images[0].sha256) == pdf
    assert bills.storage().read(images[1].sha256) == ofd
    # Recognised like any upload.
    found = {(i.code, i.number, f"{i.total:.2f}") for i in bills.bill_invoices(bill)}
    assert found == {("052002100113", "00008006", "25254.62"), (None, "24112000000048542163", "4449.00")}
    assert row("00008006").fetched_image_id == images[0].id and row("00008006").fetch_error is None
    assert row("24112000000048542163").fetched_image_id == images[1].id
    # Every pushed file attached: submitted automatically, completed (and written back).
    assert bill.status == "completed"
    actions = [e.action for e in db.session.scalars(select(BillEvent).where(BillEvent.bill_id == bill.id).order_by(BillEvent.id))]
    assert actions[-2:] == ["complete", "writeback"]
    submit = db.session.scalar(select(BillEvent).where(BillEvent.bill_id == bill.id, BillEvent.action == "submit"))
    assert submit.actor == "sync"

    # Nothing is fetched twice.
    calls = file_calls(cloud)
    assert sync.fetch_pending() == 0
    assert file_calls(cloud) == calls and len(calls) == 2


def test_failures_are_kept_and_do_not_block_the_others(app, ent, cloud, push):
    good = open_bill(ent, "FYBX3002")
    mixed = open_bill(ent, "FYBX3003")
    ofd = corpus(OFD_489101796)
    host, port = urlsplit(cloud.url).hostname, urlsplit(cloud.url).port
    app.config["FETCH_ALLOWED_HOSTS"] = f"{host}:{port}, files.example.com"
    app.config["FETCH_MAX_BYTES"] = 200_000
    url_good = cloud.add_file("good.ofd", ofd, "application/ofd")
    url_pdf = cloud.add_file("8006.pdf", corpus(PDF_8006), "application/pdf")
    url_big = cloud.add_file("big.pdf", b"%PDF-1.7\n" + b"0" * 300_000, "application/pdf")
    push(pushed("24322000000489101796", url_good, "FYBX3002"),
         pushed("10000001", cloud.file_url("missing.pdf"), "FYBX3003", invoiceCode="011001900111"),
         pushed("10000002", f"http://localhost:{port}/files/8006.pdf", "FYBX3003", invoiceCode="011001900111"),
         pushed("10000003", url_big + "?chunked=1", "FYBX3003", invoiceCode="011001900111"),
         pushed("10000004", url_big, "FYBX3003", invoiceCode="011001900111"),
         pushed("10000005", "ftp://files.example.com/x.pdf", "FYBX3003", invoiceCode="011001900111"),
         pushed("00008006", url_pdf, "FYBX3003", invoiceCode="052002100113"))

    assert sync.fetch_pending() == 2
    assert "404" in row("10000001").fetch_error
    assert "localhost" in row("10000002").fetch_error and "不在允许的列表" in row("10000002").fetch_error
    assert "超过" in row("10000003").fetch_error  # no Content-Length: cut off while reading
    assert "超过上限" in row("10000004").fetch_error  # declared too large: refused before reading
    assert "http 或 https" in row("10000005").fetch_error
    for number in ("10000001", "10000002", "10000003", "10000004", "10000005"):
        assert row(number).fetched_image_id is None
    assert row("00008006").fetched_image_id is not None and row("24322000000489101796").fetched_image_id is not None

    db.session.expire_all()
    assert db.session.get(Bill, good.id).status == "completed"
    # The bill with failed files keeps what arrived and waits: never submitted with files missing.
    mixed = db.session.get(Bill, mixed.id)
    assert mixed.status == "uploaded"
    assert [i.filename for i in bills.live_images(mixed)] == ["8006.pdf"]

    # Later runs retry only the failures (once their wait is over); what arrived is not fetched again.
    before = file_calls(cloud)
    assert sync.fetch_pending(now=later(61)) == 0
    retried = file_calls(cloud)[len(before):]
    assert sorted(retried) == ["big.pdf", "big.pdf", "missing.pdf"]  # the refused hosts are never contacted


def test_a_transient_failure_is_retried_and_then_completes(ent, cloud, push):
    bill = open_bill(ent, "FYBX3004")
    url = cloud.add_file("later.ofd", corpus(OFD_48542163), "application/ofd")
    push(pushed("24112000000048542163", url, "FYBX3004"))
    cloud.inject_fault(match="/files/later.ofd", status=503)
    assert sync.fetch_pending() == 0
    assert "503" in row("24112000000048542163").fetch_error
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == "pending"
    assert sync.fetch_pending(now=later(61)) == 1
    assert row("24112000000048542163").fetch_error is None
    db.session.expire_all()
    assert db.session.get(Bill, bill.id).status == "completed"


def test_unreadable_file_is_an_error_not_an_image(ent, cloud, push):
    open_bill(ent, "FYBX3005")
    url = cloud.add_file("note.txt", "这不是发票".encode(), "text/plain")
    push(pushed("24112000000048542163", url, "FYBX3005"))
    assert sync.fetch_pending() == 0
    assert "不支持的文件类型" in row("24112000000048542163").fetch_error
    assert db.session.scalar(select(Image.id)) is None


def test_what_is_not_fetched(make_enterprise, ent, cloud, push):
    """Other modes, unknown bills, bills past editing and rows without a URL are left alone."""
    url = cloud.add_file("x.ofd", corpus(OFD_48542163), "application/ofd")
    basic = make_enterprise("基础企业", client_id="basic-client", mode="basic")
    open_bill(basic, "FYBX3006")
    push(pushed("24112000000048542163", url, "FYBX3006"), enterprise=basic)
    push(pushed("24322000000489101796", url, "FYBX9999"))  # no such bill (yet)
    done = open_bill(ent, "FYBX3007")
    done.status = "completed"
    db.session.commit()
    push(pushed("24112000000048542164", url, "FYBX3007"))
    open_bill(ent, "FYBX3008")
    push({"serialNo": "SN-no-url", "invoiceNo": "24112000000048542165", "billNo": "FYBX3008"})
    assert sync.fetch_pending() == 0
    assert file_calls(cloud) == []

    # The bill opened after the push: its file is fetched now.
    open_bill(ent, "FYBX9999")
    assert sync.fetch_pending() == 1
    assert db.session.scalar(select(Bill.status).where(Bill.bill_no == "FYBX9999")) == "completed"


def test_same_file_for_two_invoices_is_attached_once(ent, cloud, push):
    bill = open_bill(ent, "FYBX3009")
    url = cloud.add_file("both.ofd", corpus(OFD_48542163), "application/ofd")
    push(pushed("24112000000048542163", url, "FYBX3009"), pushed("24112000000048542199", url, "FYBX3009"))
    assert sync.fetch_pending() == 2
    db.session.expire_all()
    bill = db.session.get(Bill, bill.id)
    [image] = bills.live_images(bill)
    assert row("24112000000048542163").fetched_image_id == row("24112000000048542199").fetched_image_id == image.id
    assert db.session.scalar(select(Invoice.number).where(Invoice.bill_id == bill.id)) == "24112000000048542163"
    assert bill.status == "completed"


def test_limit_and_cli(app, ent, cloud, push):
    open_bill(ent, "FYBX3010")
    urls = [cloud.add_file(f"f{i}.ofd", corpus(name), "application/ofd")
            for i, name in enumerate((OFD_48542163, OFD_489101796))]
    push(pushed("24112000000048542163", urls[0], "FYBX3010"), pushed("24322000000489101796", urls[1], "FYBX3010"))
    assert sync.fetch_pending(limit=1) == 1
    assert db.session.scalar(select(Bill.status).where(Bill.bill_no == "FYBX3010")) == "uploaded"
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sync", "run", "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert "已附加 1 个文件" in result.output
    db.session.expire_all()
    assert db.session.scalar(select(Bill.status).where(Bill.bill_no == "FYBX3010")) == "completed"


def test_loopback_file_server_is_refused_unless_allow_listed(app, ent, cloud, push):
    open_bill(ent, "FYBX3011")
    url = cloud.add_file("inside.ofd", corpus(OFD_48542163), "application/ofd")
    push(pushed("24112000000048542163", url, "FYBX3011"))
    app.config["FETCH_ALLOWED_HOSTS"] = ""
    assert sync.fetch_pending() == 0
    error = row("24112000000048542163").fetch_error
    assert "127.0.0.1" in error and "保留地址" in error and "FETCH_ALLOWED_HOSTS" in error
    assert file_calls(cloud) == []  # refused before connecting
    app.config["FETCH_ALLOWED_HOSTS"] = urlsplit(cloud.url).netloc
    assert sync.fetch_pending(now=later(61)) == 1


def test_a_dripping_server_is_given_up_at_the_deadline(app, ent, cloud, push):
    """One byte every 50 ms never trips the read timeout; FETCH_DEADLINE bounds the whole file."""
    open_bill(ent, "FYBX3012")
    url = cloud.add_file("drip.ofd", corpus(OFD_48542163), "application/ofd") + "?drip=0.05"
    push(pushed("24112000000048542163", url, "FYBX3012"))
    app.config["FETCH_DEADLINE"] = 0.5
    started = time.monotonic()
    assert sync.fetch_pending() == 0
    assert time.monotonic() - started < 2.0
    assert "下载文件超时" in row("24112000000048542163").fetch_error


def test_failed_downloads_back_off_and_stop_at_the_cap(app, ent, cloud, push):
    open_bill(ent, "FYBX3013")
    app.config.update(FETCH_MAX_ATTEMPTS=4, FETCH_RETRY_BASE=60, FETCH_RETRY_MAX=200)
    push(pushed("24112000000048542163", cloud.file_url("gone.ofd"), "FYBX3013"))
    now = utcnow()
    waits = []
    for attempt in range(1, 4):
        assert sync.fetch_pending(now=now) == 0
        r = row("24112000000048542163")
        assert r.fetch_attempts == attempt and "404" in r.fetch_error
        waits.append((r.fetch_next_at - now).total_seconds())
        # Not due before its time: nothing is asked of the server.
        calls = len(file_calls(cloud))
        assert sync.fetch_pending(now=r.fetch_next_at - dt.timedelta(seconds=1)) == 0
        assert len(file_calls(cloud)) == calls
        now = r.fetch_next_at
    assert waits == [60, 120, 200]  # doubling, capped at FETCH_RETRY_MAX
    assert sync.fetch_pending(now=now) == 0  # the fourth and last attempt
    r = row("24112000000048542163")
    assert r.fetch_attempts == 4 and r.fetch_next_at is None
    assert "404" in r.fetch_error and "已尝试 4 次，不再自动下载" in r.fetch_error
    assert sync.fetch_pending(now=now + dt.timedelta(days=30)) == 0
    assert file_calls(cloud) == ["gone.ofd"] * 4


def test_a_run_starts_no_download_once_its_budget_is_spent(app, ent, cloud, push):
    """Many dripping files cannot hold the job loop (and every tenant's write-back) file after file."""
    open_bill(ent, "FYBX3014")
    urls = [cloud.add_file(f"slow{i}.ofd", corpus(OFD_48542163), "application/ofd") + "?drip=0.05" for i in range(3)]
    push(*[pushed(f"2411200000004854216{i}", url, "FYBX3014") for i, url in enumerate(urls)])
    app.config.update(FETCH_DEADLINE=0.3, FETCH_RUN_BUDGET=0.5)
    started = time.monotonic()
    assert sync.fetch_pending() == 0
    assert time.monotonic() - started < 1.5
    assert file_calls(cloud) == ["slow0.ofd", "slow1.ofd"]  # the third was not started
    third = row("24112000000048542162")
    assert third.fetch_attempts == 0 and third.fetch_error is None
    assert row("24112000000048542160").fetch_attempts == 1
    # Untouched, the third is due and comes first in the next run.
    assert sync._pending_rows(1, utcnow())[0][0] == third.id


def test_the_bill_page_shows_each_pushed_files_download(app, ent, cloud, push, make_user):
    """A scanner sees which pushed files arrived, which wait, and why one failed and when it is tried again."""
    open_bill(ent, "FYBX3020")
    app.config.update(FETCH_MAX_ATTEMPTS=2, FETCH_RETRY_BASE=60)
    good = cloud.add_file("good.ofd", corpus(OFD_48542163), "application/ofd")
    push(pushed("24112000000048542163", good, "FYBX3020"),
         pushed("24322000000489101796", cloud.file_url("gone.ofd"), "FYBX3020"),
         {"serialNo": "SN-NOURL", "invoiceNo": "10000009", "invoiceCode": "011001900111", "billNo": "FYBX3020"})
    make_user("scan1", "scanner", [ent])
    viewer = Browser(app)
    viewer.login("scan1")

    def states() -> dict[str, str]:
        page = viewer.get("/bills/FYBX3020").get_data(as_text=True)
        cells = re.findall(r'<td class="mono">([^<]*)</td>.*?<td class="fetch-state">(.*?)</td>', page, re.S)
        return {number.strip(): re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip() for number, cell in cells}

    assert states() == {"24112000000048542163": "等待下载", "24322000000489101796": "等待下载",
                        "011001900111 10000009": "未提供文件地址"}
    sync.fetch_pending()
    shown = states()
    assert shown["24112000000048542163"] == "已下载"
    retry_at = (row("24322000000489101796").fetch_next_at + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    assert shown["24322000000489101796"].startswith(f"下载失败，将重试 {retry_at} 重试")
    assert "404" in shown["24322000000489101796"]
    sync.fetch_pending(now=later(61))  # the second and last attempt
    shown = states()["24322000000489101796"]
    assert shown.startswith("下载失败，已停止") and "已尝试 2 次，不再自动下载" in shown


def test_the_download_column_is_only_shown_in_sync_mode(app, make_enterprise, make_user):
    basic = make_enterprise("基础企业", client_id="basic-client", mode="basic")
    bills.open_bill(basic, {"bill_no": "FYBX3021"}, "erp")
    db.session.add(ExpectedInvoice(enterprise_id=basic.id, origin="push", dedup_key="s:SN-B", bill_no="FYBX3021",
                                   number="10000010", download_url="https://files.example.com/a.pdf"))
    db.session.commit()
    make_user("scan2", "scanner", [basic])
    viewer = Browser(app)
    viewer.login("scan2")
    page = viewer.get("/bills/FYBX3021").get_data(as_text=True)
    assert "收票推送的发票" in page and "文件下载" not in page and "fetch-state" not in page


def test_the_download_pass_reads_only_the_files_still_to_fetch(app, ent, cloud, push):
    """Its statement walks the partial index of rows without a fetched image, whatever the pushed rows."""
    open_bill(ent, "FYBX3030")
    push(pushed("24112000000048542163", cloud.add_file("a.ofd", corpus(OFD_48542163), "application/ofd"), "FYBX3030"))
    conn = db.session.connection()
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # a handful of rows: make the planner show the plan it would pick for many
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    sql = str(sync.pending_statement(100, utcnow()).compile(conn, compile_kwargs={"literal_binds": True}))
    plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql))
    assert "ix_expected_invoices_to_fetch" in plan, plan
    db.session.rollback()
    assert sync.fetch_pending() == 1
