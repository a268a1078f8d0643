"""发票查验: invoices verified with the invoice-cloud sandbox over real loopback HTTP.

Each result (查验通过 / 查验不符 / 已作废 / 未查验), retries with backoff when the cloud fails or
stalls, the interval (no second call), the API field, the card badge and the invoice list, the
match rule ``verify_failed``, the setting off (no call at all) and both job executors.
"""
from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from redis import Redis
from sqlalchemy import delete, select, update

from portal import verification
from portal.extensions import db
from portal.jobs import redis_queue, runner
from portal.models import AuditEvent, Bill, BillEvent, Enterprise, ExpectedInvoice, Invoice, InvoiceVerification, utcnow

from .conftest import Browser
from .test_jobs import on_redis, redis_url, work  # noqa: F401
from .test_matching import (EXPECT_8006, EXPECT_48542163, JPG_8006, KEY, OFD_489101796, OFD_48542163, PDF_8006,
                            PNG_33207675, SECRET, Erp, statuses, submit)

KEY_8006 = "052002100113:00008006"
KEY_48542163 = ":24112000000048542163"
KEY_489101796 = ":24322000000489101796"
KEY_33207675 = "012001800311:33207675"


@pytest.fixture
def ent(make_enterprise, cloud):
    ent = make_enterprise("查验企业", client_id="verify-client", mode="match", verify_invoices=True)
    cloud.add_client(ent.client_id, SECRET, KEY, tax_no=ent.tax_no, name=ent.name)
    return ent


@pytest.fixture
def erp(browser, ent):
    return Erp(browser, ent)


@pytest.fixture
def known(cloud):
    """The emulated tax authority knows 00008006 (special: pre-tax amount) and both 数电 invoices."""
    cloud.add_invoice("00008006", "20220505", code="052002100113", kind="20", amount="24519.05", total="25254.62",
                      check_code="18001801513030862041")
    cloud.add_invoice("24112000000048542163", "20240528", kind="31", amount="4197.17", total="4449.00")
    cloud.add_invoice("24322000000489101796", "20241205", kind="31", amount="17699.12", total="20000.00")
    return cloud


def checks(cloud) -> list[dict]:
    return [c for c in cloud.calls if c.get("service") == "check"]


def cloud_calls(cloud) -> list[dict]:
    return [c for c in cloud.calls if c.get("service") in ("check", "token")]


def result(ent, key) -> InvoiceVerification | None:
    db.session.expire_all()
    return db.session.scalar(select(InvoiceVerification).where(
        InvoiceVerification.enterprise_id == ent.id, InvoiceVerification.invoice_key == key))


def later(seconds: float) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=seconds)


def api_verifications(erp, bill_no) -> dict[str, dict | None]:
    body = erp.get(bill_no)
    return {f"{i['code'] or ''}:{i['number']}": i["verification"] for i in body["invoices"]}


# --------------------------------------------------------------------------- results

def test_each_result_is_kept_with_the_clouds_code_and_shown_in_the_api(erp, ent, known, cloud):
    known.add_invoice("24112000000048542163", "20240528", kind="31", total="4400.00")  # the cloud says another total
    known.add_invoice("24322000000489101796", "20241205", kind="31", total="20000.00", void=True)
    erp.open("FYBX7001")
    erp.upload("FYBX7001", PDF_8006, OFD_48542163, OFD_489101796, PNG_33207675)
    assert checks(cloud) == []  # nothing is verified inside the upload request

    counts = verification.verify_due()

    assert counts == {"verified": 1, "failed": 2, "void": 1, "unverified": 0, "skipped": 0}
    assert len([c for c in cloud.calls if c.get("service") == "token"]) == 1  # one token per enterprise and run
    sent = {c["invoiceNo"]: c for c in checks(cloud)}
    # Special invoices go with the pre-tax amount and the last six of the check code; 数电 with the total.
    assert (sent["00008006"]["invoiceMoney"], sent["00008006"]["checkCode"]) == ("24519.05", "862041")
    assert sent["00008006"]["invoiceDate"] == "20220505" and sent["00008006"]["invoiceCode"] == "052002100113"
    assert (sent["24112000000048542163"]["invoiceMoney"], sent["24112000000048542163"]["totalAmount"]) == ("4449.00", "4449.00")
    assert sent["24112000000048542163"]["invoiceCode"] == ""
    assert all(c["client_id"] == ent.client_id for c in checks(cloud))

    ok, wrong, void, unknown = (result(ent, k) for k in (KEY_8006, KEY_48542163, KEY_489101796, KEY_33207675))
    assert (ok.status, ok.code, ok.attempts) == ("verified", "0000", 1) and ok.checked_at is not None
    assert (wrong.status, wrong.code) == ("failed", "0006") and "金额不符" in wrong.message
    assert void.status == "void" and "作废" in void.message
    assert (unknown.status, unknown.code, unknown.message) == ("failed", "0009", "查无此票")

    api = api_verifications(erp, "FYBX7001")
    assert api[KEY_8006]["status"] == "verified" and api[KEY_8006]["checked_at"].endswith("Z")
    assert api[KEY_48542163] == {"status": "failed", "code": "0006", "message": wrong.message,
                                 "checked_at": api[KEY_48542163]["checked_at"]}
    assert api[KEY_489101796]["status"] == "void"
    assert api[KEY_33207675]["code"] == "0009"
    # Settled results are not asked again.
    assert verification.verify_due() == dict.fromkeys(counts, 0) and len(checks(cloud)) == 4


def test_not_yet_verified_shows_unverified_and_the_setting_off_gives_null(erp, ent, known):
    erp.open("FYBX7002")
    erp.upload("FYBX7002", PDF_8006)
    assert api_verifications(erp, "FYBX7002")[KEY_8006] == {"status": "unverified", "code": None, "message": None,
                                                            "checked_at": None}
    ent.verify_invoices = False
    db.session.commit()
    assert api_verifications(erp, "FYBX7002")[KEY_8006] is None


def test_with_the_setting_off_nothing_is_sent_to_the_cloud(make_enterprise, browser, known, cloud):
    ent = make_enterprise("不查验企业", client_id="quiet-client", mode="match")
    assert ent.verify_invoices is False  # off by default
    cloud.add_client(ent.client_id, SECRET, KEY)
    erp = Erp(browser, ent)
    erp.open("FYBX7003")
    erp.upload("FYBX7003", PDF_8006, OFD_48542163)
    erp.push({"serialNo": "SN-OFF-1", "invoiceNo": "24322000000489101796", "invoiceDate": "20241205",
              "totalAmount": "20000.00", "billNo": "FYBX7003"})

    assert verification.verify_due() == dict.fromkeys(("verified", "failed", "void", "unverified", "skipped"), 0)
    runner.one_pass()
    assert cloud_calls(cloud) == []
    assert db.session.scalar(select(InvoiceVerification.id)) is None
    assert api_verifications(erp, "FYBX7003")[KEY_8006] is None


def test_a_pushed_invoice_is_verified_without_any_upload(erp, ent, known, cloud, browser, make_user):
    erp.open("FYBX7004")
    erp.push({"serialNo": "SN-7004", "invoiceNo": "24322000000489101796", "invoiceDate": "20241205",
              "amount": "17699.12", "totalAmount": "20000.00", "invoiceType": "31", "billNo": "FYBX7004"})
    assert verification.verify_due()["verified"] == 1
    assert result(ent, KEY_489101796).status == "verified"
    assert [c["invoiceNo"] for c in checks(cloud)] == ["24322000000489101796"]
    make_user("checker", "scanner", enterprises=[ent])
    browser.login("checker")
    page = browser.get("/bills/FYBX7004").get_data(as_text=True)
    pushed = page[page.index('id="pushed-invoices"'):]
    assert "verify-badge verify-verified" in pushed


def test_an_ordinary_invoice_read_from_its_qr_goes_with_the_pre_tax_amount_and_check_code(erp, ent, cloud):
    # The QR of an ordinary invoice carries the pre-tax amount only; the cloud takes it with the check code.
    cloud.add_invoice("33207675", "20190508", code="012001800311", kind="10", amount="46.62", total="52.70",
                      check_code="76939056883466677916")
    erp.open("FYBX7005")
    erp.upload("FYBX7005", PNG_33207675)
    assert verification.verify_due()["verified"] == 1
    [sent] = checks(cloud)
    assert (sent["invoiceMoney"], sent["checkCode"]) == ("46.62", "677916")


# --------------------------------------------------------------------------- no answer: retried with backoff

@pytest.mark.parametrize("fault", [
    {"status": 500},
    {"status": 200, "body": "<html>维护中</html>", "content_type": "text/html"},
    {"status": 200, "body": '{"unexpected": true}', "content_type": "application/json"},
], ids=["http-500", "not-json", "no-errcode"])
def test_a_failing_cloud_leaves_unverified_and_is_retried_later(erp, ent, known, cloud, app, fault):
    app.config.update(VERIFY_RETRY_BASE=60, VERIFY_RETRY_MAX=3600)
    erp.open("FYBX7010")
    erp.upload("FYBX7010", PDF_8006)
    cloud.inject_fault(match="sys/check", **fault)

    assert verification.verify_due()["unverified"] == 1
    row = result(ent, KEY_8006)
    assert (row.status, row.attempts, row.checked_at) == ("unverified", 1, None)
    assert "未能完成查验" in row.message
    assert api_verifications(erp, "FYBX7010")[KEY_8006]["status"] == "unverified"
    # Not due before its wait is over: no call (a faulted request is not logged, the attempt count is).
    assert verification.verify_due(now=later(30))["unverified"] == 0 and result(ent, KEY_8006).attempts == 1
    # The wait doubles: the second failure waits 120 s.
    cloud.inject_fault(match="sys/check", **fault)
    now = later(61)
    verification.verify_due(now=now)
    row = result(ent, KEY_8006)
    assert row.attempts == 2 and row.next_try_at == now + dt.timedelta(seconds=120)
    assert verification.verify_due(now=now + dt.timedelta(seconds=119))["unverified"] == 0
    # Then the cloud answers.
    assert verification.verify_due(now=now + dt.timedelta(seconds=121))["verified"] == 1
    row = result(ent, KEY_8006)
    assert (row.status, row.attempts, row.next_try_at) == ("verified", 3, None)
    assert len(checks(cloud)) == 1  # the one that got through


def test_a_stalling_cloud_is_cut_off_by_the_client_deadline(erp, ent, known, cloud, app):
    app.config["OUTBOUND_READ_TIMEOUT"] = 0.5
    erp.open("FYBX7011")
    erp.upload("FYBX7011", PDF_8006)
    cloud.inject_fault(match="sys/check", delay=5)
    started = time.monotonic()
    assert verification.verify_due()["unverified"] == 1
    assert time.monotonic() - started < 4
    row = result(ent, KEY_8006)
    assert row.status == "unverified" and "响应超时" in row.message and row.next_try_at is not None


def test_attempts_are_bounded(erp, ent, known, cloud, app):
    app.config.update(VERIFY_MAX_ATTEMPTS=2, VERIFY_RETRY_BASE=1)
    erp.open("FYBX7012")
    erp.upload("FYBX7012", PDF_8006)
    cloud.inject_fault(match="sys/check", status=500, count=5)
    verification.verify_due()
    verification.verify_due(now=later(10))
    assert result(ent, KEY_8006).attempts == 2
    assert verification.verify_due(now=later(100000))["unverified"] == 0
    assert result(ent, KEY_8006).attempts == 2 and checks(cloud) == []


def test_refused_credentials_leave_unverified_with_the_clouds_words(erp, ent, known, cloud):
    cloud.add_client(ent.client_id, "another-secret-000000000", KEY)
    erp.open("FYBX7013")
    erp.upload("FYBX7013", PDF_8006, OFD_48542163)
    assert verification.verify_due()["unverified"] == 2
    assert checks(cloud) == [] and len([c for c in cloud.calls if c.get("service") == "token"]) == 1
    row = result(ent, KEY_8006)
    assert row.status == "unverified" and "签名错误" in row.message


# --------------------------------------------------------------------------- the interval

def test_the_same_invoice_is_not_verified_twice_within_the_interval(erp, ent, known, cloud, app):
    app.config["VERIFY_INTERVAL"] = 3600
    erp.open("FYBX7020")
    erp.upload("FYBX7020", PDF_8006)
    verification.verify_due()
    assert len(checks(cloud)) == 1
    # The same invoice again: re-uploaded on another bill (as a photo) and pushed.
    erp.open("FYBX7021")
    erp.upload("FYBX7021", JPG_8006)
    erp.push({"serialNo": "SN-7021", "invoiceCode": "052002100113", "invoiceNo": "00008006",
              "invoiceDate": "20220505", "amount": "24519.05", "totalAmount": "25254.62", "billNo": "FYBX7021"})
    assert sum(verification.verify_due(now=later(1800)).values()) == 0
    assert len(checks(cloud)) == 1
    assert api_verifications(erp, "FYBX7021")[KEY_8006]["status"] == "verified"
    # Past the interval, the key that arrived again is verified once more; a call without an answer
    # keeps the earlier result and is tried again later.
    app.config["VERIFY_RETRY_MAX"] = 600
    cloud.inject_fault(match="sys/check", status=500)
    assert verification.verify_due(now=later(3700))["unverified"] == 1
    assert result(ent, KEY_8006).status == "verified"
    assert sum(verification.verify_due(now=later(3800)).values()) == 0  # waits VERIFY_RETRY_MAX
    assert verification.verify_due(now=later(4400))["verified"] == 1
    assert len(checks(cloud)) == 2
    assert sum(verification.verify_due(now=later(4500)).values()) == 0


def _backdate(model, hours: float = 1) -> None:
    """Make every row of ``model`` look changed ``hours`` ago (before the last scan, past the overlap)."""
    column = model.updated_at if model is Invoice else model.received_at
    db.session.execute(update(model).values({column.key: utcnow() - dt.timedelta(hours=hours)}))
    db.session.commit()


def test_a_pass_reads_only_rows_changed_since_the_last_complete_scan(erp, ent, known, cloud, app, monkeypatch):
    """Unchanged rows are not read again; switching 查验 off and on reads everything once more."""
    monkeypatch.setattr(verification, "SCAN_OVERLAP", dt.timedelta(0))
    erp.open("FYBX7060")
    erp.upload("FYBX7060", PDF_8006)
    assert verification.verify_due()["verified"] == 1
    db.session.expire_all()
    assert db.session.get(Enterprise, ent.id).verify_scanned_at is not None
    # A row without a result that did not change since the scan (say, its result was deleted by hand):
    # a pass no longer reads it.
    db.session.execute(delete(InvoiceVerification))
    db.session.commit()
    _backdate(Invoice)
    assert sum(verification.verify_due().values()) == 0 and len(checks(cloud)) == 1
    # A row that changes is read again at once.
    erp.upload("FYBX7060", OFD_48542163)
    assert verification.verify_due()["verified"] == 1 and result(ent, KEY_48542163).status == "verified"
    assert result(ent, KEY_8006) is None
    # 查验 switched off (a pass forgets the scan) and on again: every row is read once more.
    db.session.get(Enterprise, ent.id).verify_invoices = False
    db.session.commit()
    assert sum(verification.verify_due().values()) == 0
    db.session.expire_all()
    assert db.session.get(Enterprise, ent.id).verify_scanned_at is None
    db.session.get(Enterprise, ent.id).verify_invoices = True
    db.session.commit()
    assert verification.verify_due()["verified"] == 1 and result(ent, KEY_8006).status == "verified"


def test_a_key_that_arrives_again_is_asked_again_when_its_result_turns_stale(erp, ent, known, cloud, app,
                                                                              monkeypatch):
    """The re-ask is noted when the copy arrives: it happens even when no row changes near that time."""
    monkeypatch.setattr(verification, "SCAN_OVERLAP", dt.timedelta(0))
    app.config["VERIFY_INTERVAL"] = 3600
    erp.open("FYBX7061")
    erp.upload("FYBX7061", PDF_8006)
    verification.verify_due()
    checked = result(ent, KEY_8006).checked_at
    erp.push({"serialNo": "SN-7061", "invoiceCode": "052002100113", "invoiceNo": "00008006",
              "invoiceDate": "20220505", "amount": "24519.05", "totalAmount": "25254.62", "billNo": "FYBX7061"})
    assert sum(verification.verify_due(now=later(60)).values()) == 0  # still fresh
    assert result(ent, KEY_8006).next_try_at == checked + dt.timedelta(seconds=3600)
    # Much later no row has changed since the scan mark: the noted time still brings the key back.
    db.session.get(Enterprise, ent.id).verify_scanned_at = utcnow()
    db.session.commit()
    assert sum(verification.verify_due(now=later(3500)).values()) == 0
    assert verification.verify_due(now=later(3700))["verified"] == 1 and len(checks(cloud)) == 2
    assert result(ent, KEY_8006).next_try_at is None
    assert sum(verification.verify_due(now=later(7000)).values()) == 0


def test_keys_a_run_did_not_reach_keep_the_scan_mark_where_it_was(erp, ent, known, cloud, app, monkeypatch):
    monkeypatch.setattr(verification, "SCAN_OVERLAP", dt.timedelta(0))
    erp.open("FYBX7062")
    verification.verify_due()
    mark = db.session.get(Enterprise, ent.id).verify_scanned_at
    erp.upload("FYBX7062", PDF_8006, OFD_48542163)
    app.config["VERIFY_RUN_BUDGET"] = -1  # spent before the first call
    assert sum(verification.verify_due().values()) == 0
    db.session.expire_all()
    assert db.session.get(Enterprise, ent.id).verify_scanned_at == mark
    app.config["VERIFY_RUN_BUDGET"] = 120
    assert verification.verify_due()["verified"] == 2


# --------------------------------------------------------------------------- pages

def test_cards_and_the_invoice_list_show_the_badges(erp, ent, known, browser, make_user):
    known.add_invoice("24112000000048542163", "20240528", kind="31", total="4400.00")
    make_user("checker", "scanner", enterprises=[ent])
    erp.open("FYBX7030")
    erp.upload("FYBX7030", PDF_8006, OFD_48542163)
    verification.verify_due()
    browser.login("checker")
    page = browser.get("/bills/FYBX7030").get_data(as_text=True)
    assert re.search(r'<span class="badge verify-badge verify-verified badge-ok" title="查验通过：查验成功">查验通过</span>', page)
    wrong = result(ent, KEY_48542163)
    failed = re.search(r'<span class="badge verify-badge verify-failed badge-err" title="([^"]*)">查验不符</span>', page)
    assert failed and "0006" in failed.group(1) and "金额不符" in failed.group(1)
    assert f"查验不符：{wrong.message}（0006）" in page  # the detail under the card's invoice
    listing = browser.get("/invoices/").get_data(as_text=True)
    assert "<th>查验</th>" in listing
    assert listing.count("verify-badge verify-verified") == 1 and listing.count("verify-badge verify-failed") == 1
    # The list's 只看查验不符 filter keeps the failed one.
    assert 'name="vf"' in listing
    only = browser.get("/invoices/?vf=1").get_data(as_text=True)
    assert only.count('<tr id="invoice-') == 1 and "verify-badge verify-failed" in only
    assert "verify-badge verify-verified" not in only
    # Off: no badge anywhere.
    db.session.get(Enterprise, ent.id).verify_invoices = False
    db.session.commit()
    assert "verify-badge" not in browser.get("/bills/FYBX7030").get_data(as_text=True)
    assert "verify-badge" not in browser.get("/invoices/").get_data(as_text=True)
    assert 'name="vf"' not in browser.get("/invoices/").get_data(as_text=True)  # no enterprise verifies


# --------------------------------------------------------------------------- match mode

def test_a_failed_or_void_verification_fails_the_match(erp, ent, known):
    known.add_invoice("24112000000048542163", "20240528", kind="31", total="4449.00", void=True)
    bill = erp.open("FYBX7040", [EXPECT_8006, EXPECT_48542163])
    erp.upload("FYBX7040", PDF_8006, OFD_48542163)
    verification.verify_due()
    bill = submit(bill)
    assert bill.status == "match_failed"
    assert statuses(bill) == {KEY_8006: "matched", KEY_48542163: "verify_failed"}
    assert bill.match_result["reasons"] == ["发票 24112000000048542163 已作废/红冲（发票云查验）"]
    [item] = [i for i in bill.match_result["items"] if i["status"] == "verify_failed"]
    assert item["verification"]["status"] == "void"


def test_a_mismatching_verification_fails_the_match_with_the_clouds_words(erp, ent, known):
    known.add_invoice("00008006", "20220505", code="052002100113", kind="20", amount="24000.00")
    bill = erp.open("FYBX7041", [EXPECT_8006])
    erp.upload("FYBX7041", PDF_8006)
    verification.verify_due()
    bill = submit(bill)
    assert bill.status == "match_failed"
    assert statuses(bill) == {KEY_8006: "verify_failed"}
    assert bill.match_result["reasons"] == ["发票 00008006 查验不符：发票信息不一致：金额不符（0006）"]
    # The same failed result with the setting off does not count: the resubmitted bill matches.
    ent.verify_invoices = False
    db.session.commit()
    assert submit(bill).status == "matched"


def test_a_failure_that_lands_after_submit_goes_on_the_bills_history(erp, ent, known, browser, make_user, app):
    """The bill already matched (and may be approved in the ERP): nothing reopens, its history says so."""
    known.add_invoice("00008006", "20220505", code="052002100113", kind="20", amount="24000.00")
    bill = erp.open("FYBX7042", [EXPECT_8006])
    erp.upload("FYBX7042", PDF_8006)
    bill = submit(bill)  # not verified yet: the match goes on without it
    assert bill.status in ("matched", "completed")
    erp.open("FYBX7043")
    erp.upload("FYBX7043", JPG_8006)  # the same invoice on a bill still at the scan desk
    assert verification.verify_due()["failed"] == 1
    db.session.expire_all()
    late = db.session.scalars(select(BillEvent).where(BillEvent.action == "verify_late")).all()
    assert [ev.bill_id for ev in late] == [bill.id]
    assert "发票 052002100113 00008006 查验不符" in late[0].detail["message"] and "（0006）" in late[0].detail["message"]
    assert db.session.get(Bill, bill.id).status == bill.status  # nothing reopened
    # Asked again after the interval (the invoice arrived once more) with the same answer: no second entry.
    app.config["VERIFY_INTERVAL"] = 60
    erp.upload("FYBX7043", PDF_8006)
    assert verification.verify_due(now=later(120))["failed"] == 1
    assert len(db.session.scalars(select(BillEvent).where(BillEvent.action == "verify_late")).all()) == 1
    make_user("auditor", "viewer", enterprises=[ent])
    browser.login("auditor")
    page = browser.get("/bills/FYBX7042").get_data(as_text=True)
    assert "提交后查验不符" in page and "发票 052002100113 00008006 查验不符" in page


def test_unverified_and_verified_invoices_do_not_fail_the_match(erp, ent, known, cloud):
    bill = erp.open("FYBX7042", [EXPECT_8006, EXPECT_48542163])
    erp.upload("FYBX7042", PDF_8006, OFD_48542163)
    cloud.inject_fault(match="sys/check", status=500)  # the first call (00008006) gets no answer
    assert verification.verify_due() == {"verified": 1, "failed": 0, "void": 0, "unverified": 1, "skipped": 0}
    assert result(ent, KEY_8006).status == "unverified"
    assert submit(bill).status == "matched"


# --------------------------------------------------------------------------- both executors

def test_the_in_process_pass_verifies(erp, ent, known, app):
    erp.open("FYBX7050")
    erp.upload("FYBX7050", PDF_8006)
    out = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert out.exit_code == 0, out.output
    assert "发票查验：1" in out.output
    assert result(ent, KEY_8006).status == "verified"


def test_under_rq_the_pass_queues_the_verification_on_the_cloud_queue(erp, ent, known, cloud, app, on_redis):
    erp.open("FYBX7051")
    erp.upload("FYBX7051", PDF_8006)
    out = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert out.exit_code == 0, out.output
    assert "发票查验 1" in out.output
    assert checks(cloud) == []  # nothing ran in this process
    conn = Redis.from_url(on_redis)
    try:
        assert conn.llen("rq:queue:cloud") == 2  # the sync downloads and the verification
        assert redis_queue.dispatch()["verify_invoices"] == 0  # already waiting: not queued twice
    finally:
        conn.close()
    work(app, on_redis)
    assert result(ent, KEY_8006).status == "verified"
    assert len(checks(cloud)) == 1


# --------------------------------------------------------------------------- the setting

def test_the_setting_is_on_the_add_and_edit_forms_and_audited(browser, ops, cloud):
    from portal.models import AuditEvent

    from .test_enterprises import GOOD

    browser.login("root")
    assert browser.post("/enterprises/", {**GOOD, "verify_invoices": "y"}).status_code == 303
    ent = db.session.scalar(select(Enterprise).where(Enterprise.client_id == GOOD["client_id"]))
    assert ent.verify_invoices is True
    assert re.search(r"<dt>发票查验</dt><dd>是</dd>", browser.get(f"/enterprises/{ent.id}").get_data(as_text=True))
    edit = browser.get(f"/enterprises/{ent.id}/edit").get_data(as_text=True)
    assert re.search(r'<input checked id="verify_invoices" name="verify_invoices" type="checkbox"', edit)
    fields = {"name": ent.name, "tax_no": ent.tax_no, "client_id": ent.client_id, "client_secret": "",
              "encrypt_key": "", "image_mode": "basic", "docking_id": "0", "confirm_needs_second": "y"}
    assert browser.post(f"/enterprises/{ent.id}/edit", fields).status_code == 303
    db.session.refresh(ent)
    assert ent.verify_invoices is False
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "update"))
    assert (ev.before["verify_invoices"], ev.after["verify_invoices"]) == (True, False)


def test_one_call_gets_a_wall_clock_deadline_whatever_the_read_timeout(erp, ent, known, cloud, app):
    app.config.update(OUTBOUND_READ_TIMEOUT=10, VERIFY_DEADLINE=0.5)
    erp.open("FYBX7014")
    erp.upload("FYBX7014", PDF_8006)
    cloud.inject_fault(match="sys/check", delay=5)
    started = time.monotonic()
    assert verification.verify_due()["unverified"] == 1
    assert time.monotonic() - started < 3
    row = result(ent, KEY_8006)
    assert "查验超时（整个请求超过 0.5 秒）" in row.message


# --------------------------------------------------------------------------- the emulator itself

def test_the_sandbox_check_endpoint_follows_the_reference(cloud):
    import requests

    from portal.sandbox.seed import TEST_CLOUD_CLIENT
    from portal.signing import sign

    reply = requests.post(f"{cloud.url}/_sandbox/invoices", timeout=5, json={
        "number": "12345678", "date": "2024-01-02", "code": "3100231130", "kind": "01", "amount": "100.00",
        "total": "113.00"})
    assert reply.status_code == 200 and reply.json()["date"] == "20240102"
    stamp = int(time.time() * 1000)
    token = requests.post(f"{cloud.url}/base/oauth/token", timeout=5, json={
        "client_id": TEST_CLOUD_CLIENT.client_id, "timestamp": stamp,
        "sign": sign(TEST_CLOUD_CLIENT.client_id, TEST_CLOUD_CLIENT.client_secret, stamp, 0)}).json()["access_token"]

    def check(body, access_token=token):
        return requests.post(f"{cloud.url}/m13/bill/invoice/sys/check", params={"access_token": access_token},
                             json=body, timeout=5).json()

    good = {"invoiceCode": "3100231130", "invoiceNo": "12345678", "invoiceDate": "20240102", "invoiceMoney": "100.00"}
    answer = check(good)
    assert answer["errcode"] == "0000" and answer["data"]["cancelMark"] == "N"
    assert check({**good, "invoiceMoney": "113.00"})["errcode"] == "0006"  # special: the pre-tax amount only
    assert check({**good, "invoiceDate": "20240103"})["errcode"] == "0006"
    assert check({**good, "invoiceNo": "87654321"}) == {"errcode": "0009", "description": "查无此票"}
    assert check({"invoiceNo": "12345678"})["errcode"] == "1005"
    assert check(good, access_token="forged")["errcode"] == "1003"
    assert check(good, access_token="")["errcode"] == "1003"


def test_an_oversized_check_answer_is_refused_and_retried_later(erp, ent, known, cloud, app):
    from portal.integration.http import MAX_CHECK_REPLY

    erp.open("FYBX7015")
    erp.upload("FYBX7015", PDF_8006)
    padding = " " * (MAX_CHECK_REPLY + 1)
    cloud.inject_fault(match="sys/check", status=200, body='{"errcode": "0000"' + padding + "}",
                       content_type="application/json")
    assert verification.verify_due()["unverified"] == 1
    row = result(ent, KEY_8006)
    assert row.status == "unverified" and "查验应答过大" in row.message and row.next_try_at is not None


def test_each_enterprise_gets_its_share_of_a_run(erp, ent, known, cloud, browser, make_enterprise):
    """An enterprise with a backlog (查验 just switched on, say) does not hold up another's new invoices."""
    other = make_enterprise("另一查验企业", client_id="verify-client-2", mode="match", verify_invoices=True)
    cloud.add_client(other.client_id, SECRET, KEY, tax_no=other.tax_no, name=other.name)
    erp.open("FYBX7080")
    erp.upload("FYBX7080", PDF_8006, OFD_48542163, OFD_489101796)
    second = Erp(browser, other)
    second.open("FYBX7081")
    second.upload("FYBX7081", OFD_48542163)
    assert verification.verify_due(limit=2)["verified"] == 2
    assert result(other, KEY_48542163).status == "verified"  # not left behind the first enterprise's three
    assert sum(1 for k in (KEY_8006, KEY_48542163, KEY_489101796) if result(ent, k)) == 1
    # The enterprise whose scan completed goes to the back: the next run serves the one with work left.
    assert verification.verify_due(limit=2)["verified"] == 2
    assert all(result(ent, k) for k in (KEY_8006, KEY_48542163, KEY_489101796))


def test_ops_ask_again_for_invoices_left_unverified_after_every_retry(erp, ent, known, cloud, app, browser, ops,
                                                                      make_user):
    """After a cloud outage longer than the retries, ops reschedule the invoices from the enterprise page."""
    app.config.update(VERIFY_MAX_ATTEMPTS=2, VERIFY_RETRY_BASE=1)
    erp.open("FYBX7070")
    erp.upload("FYBX7070", PDF_8006, OFD_48542163)
    cloud.inject_fault(match="sys/check", status=503, count=4)
    verification.verify_due()
    verification.verify_due(now=later(10))
    assert [result(ent, k).attempts for k in (KEY_8006, KEY_48542163)] == [2, 2]
    assert sum(verification.verify_due(now=later(100000)).values()) == 0  # given up

    make_user("look", "viewer", [ent])
    viewer = Browser(app)
    viewer.login("look")
    page = viewer.get(f"/enterprises/{ent.id}")
    if page.status_code == 200:  # a viewer may see the count, never the button
        assert "重新查验这些发票" not in page.get_data(as_text=True)
    assert viewer.post(f"/enterprises/{ent.id}/verify-again").status_code == 403
    assert result(ent, KEY_8006).attempts == 2

    browser.login("root")
    page = browser.get(f"/enterprises/{ent.id}").get_data(as_text=True)
    assert "有 <strong>2</strong> 张发票多次向发票云查验都没有得到结果" in page and "重新查验这些发票" in page
    resp = browser.post(f"/enterprises/{ent.id}/verify-again", follow_redirects=True)
    assert "已安排重新查验 2 张发票" in resp.get_data(as_text=True)
    assert "重新查验这些发票" not in resp.get_data(as_text=True)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "verify_again"))
    assert event.actor == "root" and event.enterprise_id == ent.id
    assert verification.verify_due()["verified"] == 2
    assert result(ent, KEY_8006).status == "verified" and result(ent, KEY_48542163).status == "verified"
    resp = browser.post(f"/enterprises/{ent.id}/verify-again", follow_redirects=True)
    assert "没有需要重新查验的发票" in resp.get_data(as_text=True)
