"""The invoice list (发票) in a real browser: the filter checkboxes search at once, through htmx, in place."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from playwright.sync_api import expect

from portal.crypto import encrypt
from portal.extensions import db
from portal.invoice_fields import invoice_key
from portal.models import Bill, Blob, Enterprise, Image, Invoice, InvoiceVerification
from tests.conftest import tax_no
from tests.e2e.conftest import login


def _world() -> int:
    """One verifying enterprise: a bill with four invoices, one 查验不符 and one 作废; return its id."""
    ent = Enterprise(tax_no=tax_no(1), name="查验浏览器企业", client_id="browser-verify", image_mode="match",
                     client_secret_enc=encrypt("s3cret-value-1234567890"), encrypt_key_enc=encrypt("0123456789abcdef"),
                     verify_invoices=True)
    db.session.add(ent)
    db.session.flush()
    bill = Bill(enterprise_id=ent.id, bill_no="FYBX-E2E-1", status="completed")
    db.session.add(bill)
    db.session.add(Blob(sha256="e" * 64, size=10, media_type="application/pdf"))
    db.session.flush()
    image = Image(bill_id=bill.id, sha256="e" * 64, filename="a.pdf", position=1)
    db.session.add(image)
    db.session.flush()
    for n, status in enumerate(("verified", "failed", "void", None), start=1):
        number = f"2444200000000000000{n}"
        db.session.add(Invoice(enterprise_id=ent.id, bill_id=bill.id, image_id=image.id, type="31", number=number,
                               date=date(2024, 5, n), total=Decimal("100.00") * n, source="ofd",
                               seller_name="深圳市浏览器销售有限公司", invoice_key=invoice_key(None, number)))
        if status:
            db.session.add(InvoiceVerification(enterprise_id=ent.id, invoice_key=invoice_key(None, number),
                                               status=status))
    db.session.commit()
    return ent.id


def test_only_failed_verifications_in_place_and_back(live_app, page):
    ent_id = live_app.call(_world)
    live_app.make_user("look", "viewer", [ent_id])
    login(page, live_app, "look")
    page.goto(live_app.url + "/invoices/")
    rows = page.locator("#invoice-results tbody tr[id^=invoice-]")
    expect(rows).to_have_count(4)
    documents = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)

    page.get_by_label("只看查验不符").check()
    expect(rows).to_have_count(2)
    expect(page.locator("#invoice-results")).to_contain_text("查验不符")
    expect(page.locator("#invoice-results")).not_to_contain_text("查验通过")
    assert "vf=1" in page.url  # the search is in the address: a reload or a shared link shows the same
    assert documents == []

    page.get_by_label("只看查验不符").uncheck()
    expect(rows).to_have_count(4)
    page.reload()
    expect(rows).to_have_count(4)
    page.goto(live_app.url + "/invoices/?vf=1")
    expect(rows).to_have_count(2)
    expect(page.get_by_label("只看查验不符")).to_be_checked()
