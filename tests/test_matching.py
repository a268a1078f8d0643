"""Image modes after submit: matching (影像匹配) against the ERP's and pushed invoices, confirm, basic, sync."""
from __future__ import annotations

import io
import json
import time

import pytest
from sqlalchemy import select

from portal import bills, create_app, matching, review, signing
from portal.errors import UserError
from portal.extensions import db
from portal.models import AuditEvent, Bill, BillEvent, Image

from .conftest import corpus

SECRET = "s3cret-value-1234567890"
KEY = "0123456789abcdef"

# Recognised values known from the corpus MANIFEST.
PDF_8006 = "vat_e_special_guizhou_00008006.pdf"  # legacy: code 052002100113, amount 24519.05, total 25254.62
JPG_8006 = "vat_e_special_guizhou_00008006_render.jpg"  # the same invoice as a picture (QR: amount only)
OFD_48542163 = "shudian_vat_special_24112000000048542163.ofd"  # 数电: amount 4197.17, total 4449.00
OFD_489101796 = "shudian_vat_special_24322000000489101796.ofd"  # 数电: amount 17699.12, total 20000.00
PNG_33207675 = "vat_e_ordinary_tianjin_33207675.png"  # legacy: code 012001800311, amount 46.62

EXPECT_8006 = {"invoiceCode": "052002100113", "invoiceNo": "00008006", "invoiceDate": "20220505",
               "amount": "24519.05", "taxAmount": "735.57", "totalAmount": "25254.62", "invoiceType": "20"}
EXPECT_48542163 = {"invoiceNo": "24112000000048542163", "invoiceDate": "20240528", "amount": "4197.17",
                   "totalAmount": "4449.00", "invoiceType": "31"}
EXPECT_489101796 = {"invoiceNo": "24322000000489101796", "invoiceDate": "20241205", "amount": "17699.12",
                    "totalAmount": "20000.00", "invoiceType": "31"}


class Erp:
    """The ERP side: bearer-token API calls, and the receipt assistant's pushes."""

    def __init__(self, browser, ent):
        self.browser = browser
        self.ent = ent
        resp = browser.request("POST", "/api/v1/token", json={"client_id": ent.client_id, "client_secret": SECRET})
        self.headers = {"Authorization": f"Bearer {resp.get_json()['access_token']}"}

    def open(self, bill_no, expected=(), **extra):
        resp = self.browser.request("POST", "/api/v1/bills", headers=self.headers,
                                    json={"bill_no": bill_no, "erp_id": "100001", "expected_invoices": list(expected), **extra})
        assert resp.status_code == 201, resp.get_json()
        return db.session.scalar(select(Bill).where(Bill.enterprise_id == self.ent.id, Bill.bill_no == bill_no))

    def get(self, bill_no):
        resp = self.browser.request("GET", f"/api/v1/bills/{bill_no}", headers=self.headers)
        assert resp.status_code == 200
        return resp.get_json()

    def upload(self, bill_no, *names):
        parts = [(io.BytesIO(corpus(n)), n) for n in names]
        resp = self.browser.request("POST", f"/api/v1/bills/{bill_no}/images", data={"file": parts},
                                    content_type="multipart/form-data", headers=self.headers)
        assert resp.status_code == 201, resp.get_json()

    def return_bill(self, bill_no, reason):
        resp = self.browser.request("POST", f"/api/v1/bills/{bill_no}/return", json={"reason": reason}, headers=self.headers)
        assert resp.status_code == 200, resp.get_json()

    def push(self, *invoices):
        ts = int(time.time() * 1000)
        body = {"taxNo": self.ent.tax_no, "client_id": self.ent.client_id, "timestamp": ts, "encType": 1, "encrypt": True,
                "sign": signing.sign(self.ent.client_id, SECRET, ts, 1),
                "data": signing.aes_ecb_encrypt(json.dumps(list(invoices)).encode(), KEY)}
        resp = self.browser.request("POST", "/api/v1/push/invoices", json=body)
        assert resp.status_code == 200 and resp.get_json()["errcode"] == "0000", resp.get_json()


@pytest.fixture
def ent(make_enterprise):
    return make_enterprise("匹配企业", client_id="match-client", mode="match")


@pytest.fixture
def erp(browser, ent):
    return Erp(browser, ent)


def submit(bill, actor="scanner1"):
    db.session.refresh(bill)
    review.submit(bill, actor)
    db.session.commit()
    db.session.refresh(bill)
    return bill


def statuses(bill) -> dict[str, str]:
    return {item["key"]: item["status"] for item in bill.match_result["items"]}


def image_of(bill, filename) -> Image:
    return db.session.scalar(select(Image).where(Image.bill_id == bill.id, Image.filename == filename, Image.removed.is_(False)))


def events(bill, action) -> list[BillEvent]:
    return list(db.session.scalars(select(BillEvent).where(BillEvent.bill_id == bill.id, BillEvent.action == action)
                                   .order_by(BillEvent.id)))


# --------------------------------------------------------------------------- match mode

def test_missing_and_unexpected_then_fixed_after_return(erp):
    bill = erp.open("FYBX1001", [EXPECT_8006])
    # The receipt assistant pushes a second invoice for the bill, and one for another bill.
    erp.push({**EXPECT_48542163, "serialNo": "SN-1", "billNo": "FYBX1001"},
             {**EXPECT_489101796, "serialNo": "SN-2", "billNo": "FYBX9999"})
    erp.upload("FYBX1001", PDF_8006, PNG_33207675)
    bill = submit(bill)

    assert bill.status == "match_failed"
    result = bill.match_result
    assert result["result"] == "match_failed" and result["round"] == 1
    assert result["reasons"] == ["发票 24112000000048542163 缺少影像", "影像中的发票 33207675 不在应收发票中"]
    assert statuses(bill) == {"052002100113:00008006": "matched", ":24112000000048542163": "missing_image",
                              "012001800311:33207675": "unexpected_image"}
    items = {i["key"]: i for i in result["items"]}
    assert items["052002100113:00008006"]["expected"]["amount"] == "24519.05"
    assert items["052002100113:00008006"]["found"]["amount"] == "24519.05"
    assert items["052002100113:00008006"]["found"]["filename"] == PDF_8006
    assert items[":24112000000048542163"]["expected"]["origin"] == "push" and items[":24112000000048542163"]["found"] is None
    assert items["012001800311:33207675"]["expected"] is None
    assert items["012001800311:33207675"]["found"]["date"] == "2019-05-08"
    json.dumps(result)  # JSON-safe as stored
    assert [e.to_status for e in events(bill, "recognise")] == ["recognised"]
    assert events(bill, "match")[0].detail["result"] == "match_failed"
    assert not events(bill, "writeback")  # a failed match is not written back

    # The ERP shows the result.
    shown = erp.get("FYBX1001")
    assert shown["status"] == "match_failed" and shown["match"]["reasons"] == result["reasons"]

    # Returned for rescan: a new round; the scanner removes the stray image and adds the missing one.
    erp.return_bill("FYBX1001", "缺少一张发票")
    db.session.refresh(bill)
    assert bill.status == "returned" and bill.round == 2
    bills.remove_image(bill, image_of(bill, PNG_33207675), "scanner1")
    db.session.commit()
    erp.upload("FYBX1001", OFD_48542163)
    bill = submit(bill)

    assert bill.status == "matched"
    assert bill.match_result["result"] == "matched" and bill.match_result["round"] == 2
    assert bill.match_result["reasons"] == []
    assert set(statuses(bill).values()) == {"matched"} and len(statuses(bill)) == 2
    # Every round's result stays in the history.
    rounds = [(e.round, e.detail["result"], e.to_status) for e in events(bill, "match")]
    assert rounds == [(1, "match_failed", "match_failed"), (2, "matched", "matched")]
    assert events(bill, "match")[0].detail["reasons"] == result["reasons"]
    assert len(events(bill, "writeback")) == 1  # a match is written back
    assert erp.get("FYBX1001")["match"]["result"] == "matched"


def test_match_failed_is_editable_and_resubmitted_directly(erp):
    bill = erp.open("FYBX1002", [EXPECT_489101796])
    erp.upload("FYBX1002", PNG_33207675)
    bill = submit(bill)
    assert bill.status == "match_failed" and bill.round == 1
    erp.upload("FYBX1002", OFD_489101796)  # match_failed takes images without a return
    db.session.refresh(bill)
    assert bill.status == "uploaded"
    bills.remove_image(bill, image_of(bill, PNG_33207675), "scanner1")
    db.session.commit()
    bill = submit(bill)
    assert bill.status == "matched" and bill.match_result["round"] == 1
    assert len(events(bill, "match")) == 2


def test_amount_legacy_compares_pre_tax_and_shudian_the_total(erp):
    # Legacy: a wrong pre-tax amount fails even with the right total.
    # 数电: the right total passes even with a wrong pre-tax amount.
    bill = erp.open("FYBX1003", [{**EXPECT_8006, "amount": "24000.00"}, {**EXPECT_48542163, "amount": "9999.99"}])
    erp.upload("FYBX1003", PDF_8006, OFD_48542163)
    bill = submit(bill)
    assert bill.status == "match_failed"
    assert bill.match_result["reasons"] == ["发票 00008006 金额不一致：应为 24000.00，识别为 24519.05（不含税金额）"]
    assert statuses(bill) == {"052002100113:00008006": "amount_mismatch", ":24112000000048542163": "matched"}


def test_shudian_wrong_total_fails(erp):
    bill = erp.open("FYBX1004", [{**EXPECT_489101796, "totalAmount": "19999.00"}])
    erp.upload("FYBX1004", OFD_489101796)
    bill = submit(bill)
    assert bill.status == "match_failed"
    assert bill.match_result["reasons"] == ["发票 24322000000489101796 金额不一致：应为 19999.00，识别为 20000.00（价税合计）"]
    assert statuses(bill) == {":24322000000489101796": "amount_mismatch"}


def test_legacy_picture_without_total_compares_the_pre_tax_amount(erp):
    # The QR of the rendered image carries only the pre-tax amount: that is what is compared.
    bill = erp.open("FYBX1005", [{**EXPECT_8006, "totalAmount": "1.00"}])
    erp.upload("FYBX1005", JPG_8006)
    bill = submit(bill)
    assert bill.status == "matched", bill.match_result


def test_duplicate_reimbursement_fails_the_match(erp):
    other = erp.open("FYBX0002")
    erp.upload("FYBX0002", PDF_8006)
    bill = erp.open("FYBX1006", [EXPECT_8006])
    erp.upload("FYBX1006", JPG_8006)  # the same invoice, as a picture, on a second bill
    bill = submit(bill)
    assert bill.status == "match_failed"
    assert bill.match_result["reasons"] == ["发票 00008006 重复报销（单据 FYBX0002）"]
    items = bill.match_result["items"]
    assert [(i["key"], i["status"]) for i in items] == [("052002100113:00008006", "matched"),
                                                        ("052002100113:00008006", "duplicate")]
    assert items[1]["other_bills"] == ["FYBX0002"]
    # Once the other bill is deleted by the ERP, the invoice is no longer a duplicate.
    bills.delete_bill(other, "api:test")
    db.session.commit()
    bill = submit(bill)
    assert bill.status == "matched"


def test_same_invoice_expected_from_erp_and_push_counts_once(erp):
    bill = erp.open("FYBX1007", [EXPECT_8006])
    erp.push({**EXPECT_8006, "serialNo": "SN-8006", "billNo": "FYBX1007"})
    erp.upload("FYBX1007", PDF_8006)
    bill = submit(bill)
    assert bill.status == "matched"
    assert [i["expected"]["origin"] for i in bill.match_result["items"]] == ["erp"]


def test_unrecognised_image_does_not_fail_the_match(erp):
    # A cover sheet or a receipt without a readable invoice is kept but not compared.
    bill = erp.open("FYBX1008", [EXPECT_489101796])
    erp.upload("FYBX1008", OFD_489101796, "vat_special_paper_sample_87654321.jpg")
    bill = submit(bill)
    assert bill.status == "matched", bill.match_result["reasons"]


def test_manual_confirm(erp, ent, make_user):
    bill = erp.open("FYBX1009", [EXPECT_8006, EXPECT_48542163])
    erp.upload("FYBX1009", PDF_8006)
    bill = submit(bill)
    assert bill.status == "match_failed"

    with pytest.raises(UserError) as err:
        review.confirm(bill, "   ", "scanner1")
    assert err.value.status == 422 and "理由" in err.value.message
    review.confirm(bill, "纸质发票已核对，数电票由提单人另行补交", "scanner1")
    db.session.commit()
    db.session.refresh(bill)
    assert bill.status == "matched"
    result = bill.match_result
    assert result["result"] == "confirmed" and result["confirmed_by"] == "scanner1"
    assert result["reason"] == "纸质发票已核对，数电票由提单人另行补交"
    assert result["reasons"] == ["发票 24112000000048542163 缺少影像"]  # what was confirmed stays visible
    [ev] = events(bill, "confirm")
    assert (ev.from_status, ev.to_status, ev.actor) == ("match_failed", "matched", "scanner1")
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "confirm"))
    assert audit.actor == "scanner1" and audit.enterprise_id == ent.id and audit.object_id == str(bill.id)
    assert "FYBX1009" in audit.summary and audit.after["reason"] == result["reason"]
    assert len(events(bill, "writeback")) == 1
    assert erp.get("FYBX1009")["match"]["result"] == "confirmed"

    with pytest.raises(UserError) as err:
        review.confirm(bill, "再确认一次", "scanner1")
    assert err.value.status == 409


def test_confirm_refused_unless_match_failed(erp):
    bill = erp.open("FYBX1010", [EXPECT_8006])
    with pytest.raises(UserError) as err:
        review.confirm(bill, "理由", "scanner1")
    assert err.value.status == 409


def test_no_expected_invoices_means_every_image_is_unexpected(erp):
    bill = erp.open("FYBX1011")
    erp.upload("FYBX1011", PNG_33207675)
    bill = submit(bill)
    assert bill.status == "match_failed"
    assert bill.match_result["reasons"] == ["影像中的发票 33207675 不在应收发票中"]


def test_the_same_invoice_twice_on_one_bill_fails_as_duplicate_in_bill(erp):
    # Its PDF and a photo of it: not a 重复报销 across bills, but the bill would count it twice.
    bill = erp.open("FYBX1012", [EXPECT_8006])
    erp.upload("FYBX1012", PDF_8006, JPG_8006)
    bill = submit(bill)
    assert bill.status == "match_failed"
    items = bill.match_result["items"]
    assert [(i["key"], i["status"]) for i in items] == [("052002100113:00008006", "matched"),
                                                        ("052002100113:00008006", "duplicate_in_bill")]
    assert items[1]["images"] == [PDF_8006, JPG_8006]
    assert bill.match_result["reasons"] == [f"发票 00008006 在本单据中出现 2 次（单据内重复：{PDF_8006}、{JPG_8006}）"]
    # Removing the photo leaves the invoice once: the bill matches.
    bills.remove_image(bill, image_of(bill, JPG_8006), "scanner1")
    db.session.commit()
    assert submit(bill).status == "matched"


def test_bill_amount_differs_from_the_invoices_total(erp):
    # A bill of ¥4,449 carrying invoices of ¥4,449 + ¥20,000: the match reports the bill's amount.
    bill = erp.open("FYBX1013", [EXPECT_48542163, EXPECT_489101796], amount="4449.00")
    erp.upload("FYBX1013", OFD_48542163, OFD_489101796)
    bill = submit(bill)
    assert bill.status == "match_failed"
    assert statuses(bill) == {":24112000000048542163": "matched", ":24322000000489101796": "matched",
                              "bill_amount": "amount_mismatch"}
    item = bill.match_result["items"][-1]
    assert item["expected"] == {"total": "4449.00"} and item["found"] == {"total": "24449.00"}
    assert item["difference"] == "20000.00" and item["tolerance"] == "0.00"
    assert bill.match_result["reasons"] == ["单据金额 4449.00 与发票价税合计 24449.00 不一致（相差 20000.00，允许误差 0.00）"]


@pytest.mark.parametrize("amount,tolerance,result", [
    ("24449.00", "0.00", "matched"),
    ("24449.30", "0.50", "matched"),
    ("24449.30", "0.29", "match_failed"),
    ("24448.50", "0.50", "matched"),
    ("24448.49", "0.50", "match_failed"),
])
def test_bill_amount_tolerance(erp, app, amount, tolerance, result):
    app.config["MATCH_AMOUNT_TOLERANCE"] = tolerance
    bill = erp.open("FYBX1014", [EXPECT_48542163, EXPECT_489101796], amount=amount)
    erp.upload("FYBX1014", OFD_48542163, OFD_489101796)
    bill = submit(bill)
    assert bill.status == result, bill.match_result["reasons"]
    assert ("bill_amount" in statuses(bill)) == (result == "match_failed")


@pytest.mark.parametrize("value", ["abc", "-0.01", "NaN", "Infinity"])
def test_a_mistyped_tolerance_stops_the_start(tmp_path, monkeypatch, value):
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("PORTAL_MATCH_AMOUNT_TOLERANCE", value)
    with pytest.raises(ValueError, match="MATCH_AMOUNT_TOLERANCE 应为不小于 0 的金额"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"})


def test_the_tolerance_may_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("PORTAL_MATCH_AMOUNT_TOLERANCE", "0.05")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    with app.app_context():
        assert str(matching.amount_tolerance()) == "0.05"


def test_bill_amount_is_not_compared_when_an_invoice_total_is_unknown(erp):
    # The picture's QR carries the pre-tax amount only: no total to add up, so no verdict on the bill.
    bill = erp.open("FYBX1015", [EXPECT_8006], amount="1.00")
    erp.upload("FYBX1015", JPG_8006)
    assert submit(bill).status == "matched"


def _scanned_by(bill, actor, *names):
    for name in names:
        bills.add_file(bill, corpus(name), name, actor)
    db.session.commit()


def test_confirm_needs_a_second_person_by_default(erp, ent):
    assert ent.confirm_needs_second  # on unless the enterprise turns it off
    bill = erp.open("FYBX1016", [EXPECT_8006, EXPECT_48542163])
    _scanned_by(bill, "scanner1", PDF_8006)
    bill = submit(bill)
    assert bill.status == "match_failed"
    with pytest.raises(UserError) as err:
        review.confirm(bill, "我自己核对过", "scanner1", role="scanner")
    assert err.value.status == 403 and "需他人复核" in err.value.message
    db.session.rollback()
    db.session.refresh(bill)
    assert bill.status == "match_failed" and not events(bill, "confirm")
    assert not review.may_confirm(bill, "scanner1", "scanner")
    assert review.may_confirm(bill, "scanner2", "scanner")  # another scanner
    assert review.may_confirm(bill, "scanner1", "ops")  # an ops user, even one who scanned
    review.confirm(bill, "已复核", "scanner2", role="scanner")
    db.session.commit()
    assert bill.status == "matched" and bill.match_result["confirmed_by"] == "scanner2"


def test_confirm_by_the_scanner_when_the_enterprise_allows_it(erp, ent):
    ent.confirm_needs_second = False
    db.session.commit()
    bill = erp.open("FYBX1017", [EXPECT_8006, EXPECT_48542163])
    _scanned_by(bill, "scanner1", PDF_8006)
    bill = submit(bill)
    review.confirm(bill, "本企业不要求复核", "scanner1", role="scanner")
    db.session.commit()
    assert bill.status == "matched"


# --------------------------------------------------------------------------- other modes

@pytest.mark.parametrize("mode", ["basic", "sync"])
def test_basic_and_sync_modes_complete_on_submit(make_enterprise, browser, mode):
    ent = make_enterprise(client_id=f"{mode}-client", mode=mode)
    erp = Erp(browser, ent)
    bill = erp.open("FYBX2001", [EXPECT_48542163])  # expected invoices are not checked here
    erp.upload("FYBX2001", PNG_33207675)
    bill = submit(bill)
    assert bill.status == "completed" and bill.match_result is None
    assert [e.action for e in db.session.scalars(select(BillEvent).where(BillEvent.bill_id == bill.id)
                                                 .order_by(BillEvent.id))][-2:] == ["complete", "writeback"]
    assert "match" not in erp.get("FYBX2001")
