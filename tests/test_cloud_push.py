"""Pushes as the receipt assistant sends them: the invoice cloud's own records, built by the cloud sandbox."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import bills
from portal.extensions import db
from portal.models import ExpectedInvoice, PushReceipt
from portal.sandbox.seed import TEST_CLOUD_CLIENT

URL = "/api/v1/push/invoices"


def _enterprise(make_enterprise, mode="match"):
    c = TEST_CLOUD_CLIENT
    return make_enterprise("测试企业", client_id=c.client_id, secret=c.client_secret, key=c.encrypt_key,
                           tax_no=c.tax_no, mode=mode)


def test_a_cloud_record_lands_with_kind_amounts_file_and_verdicts(browser, cloud, make_enterprise):
    ent = _enterprise(make_enterprise)
    pdf = cloud.file_url("a.pdf")
    records = [cloud.record(1, billNo="FYBX0001", pdfUrl=pdf, snapshotUrl=cloud.file_url("a.jpg"), amount="",
                            taxAmount=""),
               cloud.record(2, billNo="FYBX0001", invoiceType="10", invoiceNo="24512000000012345678",
                            invoiceCode="", isRepeat=True, cancelMark="Y", someNewField={"kept": True})]
    resp = browser.request("POST", URL, json=cloud.push_envelope(TEST_CLOUD_CLIENT.client_id, records))
    assert resp.status_code == 200, resp.get_json()
    paper, air = db.session.scalars(select(ExpectedInvoice).where(ExpectedInvoice.enterprise_id == ent.id)
                                    .order_by(ExpectedInvoice.id)).all()
    # 专用纸质发票 (cloud type 4) is a VAT special paper invoice; the pre-tax amount and tax come from the
    # cloud's alternative fields; the original PDF wins over the snapshot picture.
    assert (paper.type, paper.cloud_type, paper.amount, paper.tax, paper.total) == (
        "01", "4", Decimal("1456.31"), Decimal("43.69"), Decimal("1500.00"))
    assert paper.download_url == pdf and paper.serial_no == "cloud-00000001"
    assert paper.cloud["verifyResult"][0]["msg"] == "购方名称与企业名称一致" and paper.extra["machineNo"] == "661616257386"
    # 飞机票 with a 20-digit number is the 数电 air itinerary; unknown fields are kept, never refused.
    assert (air.type, air.cloud_type, air.invoice_key) == ("61", "10", ":24512000000012345678")
    assert air.cloud["isRepeat"] is True and air.extra["someNewField"] == {"kept": True}

    bill = bills.open_bill(ent, {"bill_no": "FYBX0001"}, "erp").bill
    db.session.commit()
    from portal.blueprints.bills.service import cloud_summary, pushed_invoices

    assert [row.id for row in pushed_invoices(bill)] == [paper.id, air.id]
    assert cloud_summary(air.cloud) == ["查验：购方名称与企业名称一致", "发票云判定重复", "已作废", "发票状态 0"]


def test_the_bill_page_shows_what_the_cloud_said(browser, cloud, make_enterprise, make_user):
    ent = _enterprise(make_enterprise)
    record = cloud.record(3, billNo="FYBX0002", cancelMark="Y")
    browser.request("POST", URL, json=cloud.push_envelope(TEST_CLOUD_CLIENT.client_id, [record]))
    bills.open_bill(ent, {"bill_no": "FYBX0002"}, "erp")
    db.session.commit()
    make_user("viewer1", "viewer", [ent])
    browser.login("viewer1")
    page = browser.get("/bills/FYBX0002").get_data(as_text=True)
    assert "收票推送的发票" in page and "发票云类型 4" in page and "已作废" in page and "增值税专用发票" in page


@pytest.mark.parametrize("style", ["ms", "s", "written"])
@pytest.mark.parametrize("encrypt", [True, False])
def test_each_timestamp_form_the_assistant_may_sign(browser, cloud, make_enterprise, style, encrypt):
    """The reference does not say which timestamp the assistant signs: Unix ms, Unix s or yyyyMMddHHmmssffff."""
    ent = _enterprise(make_enterprise)
    ent.encrypted_push_only = encrypt
    db.session.commit()
    body = cloud.push_envelope(TEST_CLOUD_CLIENT.client_id, [cloud.record(7, billNo="FYBX0007")], encrypt=encrypt,
                               timestamp_style=style)
    assert len(str(body["timestamp"])) == {"ms": 13, "s": 10, "written": 18}[style]
    resp = browser.request("POST", URL, json=body)
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 1, resp.get_json()
    # The receipt keeps the timestamp as signed: the same push again is a harmless repeat.
    again = browser.request("POST", URL, json=body)
    assert again.status_code == 200 and again.get_json()["duplicates"] == 1
    assert db.session.scalar(select(func.count()).select_from(PushReceipt)) == 1
