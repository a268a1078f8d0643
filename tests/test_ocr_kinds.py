"""OCR of every paper kind a reimbursement desk sees, on sheets the tests draw with a CJK font and then blur,
tilt and JPEG-compress: each is read with its checks, and a tampered sheet gives the empty field.

The OCR engine loads once per process and each sheet is read once (module-scoped): OCR costs 1–3 s a page.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from portal.recognition import ocr, recognise
from portal.recognition.model import Invoice
from portal.taxno import uscc_check_char

from . import ocr_images as draw

pytestmark = pytest.mark.skipif(not ocr.available(), reason="OCR engine not installed (pip install '.[ocr]')")

BUYER = "深圳市前海云帆科技有限公司"
SELLER = "广州市天河区星河商贸有限公司"
BUYER_NO = "91440300MA5F00001" + uscc_check_char("91440300MA5F00001")
SELLER_NO = "91440101MA9XABCD7" + uscc_check_char("91440101MA9XABCD7")
# The same code with a wrong check character: one character off, as a misprint or a forgery gives it.
BAD_SELLER_NO = SELLER_NO[:-1] + ("1" if SELLER_NO[-1] != "1" else "2")

VAT_SPECIAL = dict(title="广东增值税专用发票", code="4403191130", number="12345678", date="2023年03月08日",
                   buyer_name=BUYER, buyer_tax_no=BUYER_NO, seller_name=SELLER, seller_tax_no=SELLER_NO,
                   amount="1000.00", tax="130.00", total="1130.00", words="壹仟壹佰叁拾圆整")
VAT_ORDINARY = dict(VAT_SPECIAL, title="深圳增值税普通发票", code="044031800104", number="41108527",
                    date="2019年03月19日", check_code="12345678901234567890", amount="96.72", tax="2.90",
                    total="99.62", words="玖拾玖圆陆角贰分",
                    qr="01,04,044031800104,41108527,96.72,20190319,12345678901234567890,E1BD")
DIGITAL = dict(title="电子发票（增值税专用发票）", number="24442000000123456789", date="2024年05月28日",
               buyer_name=BUYER, buyer_tax_no=BUYER_NO, seller_name=SELLER, seller_tax_no=SELLER_NO,
               amount="4197.17", tax="251.83", total="4449.00", words="肆仟肆佰肆拾玖圆整")
RAILWAY = {"number": "24119110062000123456", "date": "2024年03月15日", "from": "北京南站", "to": "上海虹桥站",
           "train": "G123", "ride": "2024年03月14日 08:00开", "fare": "553.00", "ticket": "E123456789012345678",
           "buyer_name": BUYER, "buyer_tax_no": BUYER_NO}
AIR = dict(number="24442000000987654321", date="2024-05-20", fare="477.06", fuel="45.87", rate="9%", vat="47.07",
           fund="50.00", other="0.00", total="620.00", ticket="7841234567890", buyer_name=BUYER, buyer_tax_no=BUYER_NO)
AIR_OLD = dict(AIR, title="航空运输电子客票行程单", number=None, fuel="0.00", vat="0.00", rate="0%", fare="570.00")
TAXI = dict(title="深圳市出租汽车统一发票", code="144031909110", number="02345678", date="2023-05-01", amount="35.60")
QUOTA = dict(title="广东省深圳市通用定额发票", code="144031600111", number="01234567", words="壹拾圆整", figure="10.00")

SHEETS = {
    "vat_special": (draw.draw_vat_paper, VAT_SPECIAL),
    "vat_ordinary": (draw.draw_vat_paper, VAT_ORDINARY),
    "digital": (draw.draw_digital, DIGITAL),
    "digital_ordinary": (draw.draw_digital, dict(DIGITAL, title="电子发票（普通发票）")),
    "railway": (draw.draw_railway, RAILWAY),
    "air": (draw.draw_air, AIR),
    "air_old": (draw.draw_air, AIR_OLD),
    "taxi": (draw.draw_taxi, TAXI),
    "quota": (draw.draw_quota, QUOTA),
    # Tampered sheets: each breaks the checks of a few fields, the rest of the sheet reads as usual.
    "vat_special_tampered": (draw.draw_vat_paper, dict(VAT_SPECIAL, words="壹仟壹佰捌拾圆整", seller_tax_no=BAD_SELLER_NO,
                                                        date="2023年02月30日")),
    "digital_tampered": (draw.draw_digital, dict(DIGITAL, tax="215.83", seller_tax_no=BAD_SELLER_NO,
                                                 date="2099年01月01日")),
    "railway_tampered": (draw.draw_railway, dict(RAILWAY, buyer_tax_no=BUYER_NO[:-1] + "Z")),
    "air_tampered": (draw.draw_air, dict(AIR, total="630.00")),
    "taxi_tampered": (draw.draw_taxi, dict(TAXI, date="2023-02-29", code="14403190911")),
    "quota_tampered": (draw.draw_quota, dict(QUOTA, words="伍拾圆整")),
}


@pytest.fixture(scope="module")
def photos():
    if not draw.FONT_FILE.exists():
        pytest.fail(f"{draw.FONT_FILE} missing: install Debian's fonts-noto-cjk (see scripts/preflight.py)")
    return {name: draw.photo(render(values)) for name, (render, values) in SHEETS.items()}


@pytest.fixture(scope="module")
def read(photos):
    """Each photo's OCR reading (the extracted invoice, or None), read once."""
    out: dict[str, Invoice | None] = {}
    for name, image in photos.items():
        found = ocr.read_image(image, page=0)
        out[name] = found[0] if found else None
    return out


def _fields(inv: Invoice, *names: str) -> tuple:
    return tuple(getattr(inv, name) for name in names)


def test_vat_special_paper(read):
    inv = read["vat_special"]
    assert (inv.source, inv.type, inv.code, inv.number, inv.date) == ("ocr", "01", "4403191130", "12345678",
                                                                       dt.date(2023, 3, 8))
    assert _fields(inv, "amount", "tax", "total") == (Decimal("1000.00"), Decimal("130.00"), Decimal("1130.00"))
    assert _fields(inv, "buyer_name", "buyer_tax_no", "seller_name", "seller_tax_no") == (BUYER, BUYER_NO, SELLER,
                                                                                           SELLER_NO)


def test_vat_ordinary_paper_with_its_check_code(read):
    inv = read["vat_ordinary"]
    assert _fields(inv, "type", "code", "number", "date", "check_code") == (
        "04", "044031800104", "41108527", dt.date(2019, 3, 19), "12345678901234567890")
    assert _fields(inv, "amount", "tax", "total") == (Decimal("96.72"), Decimal("2.90"), Decimal("99.62"))
    assert (inv.buyer_name, inv.seller_name) == (BUYER, SELLER)


@pytest.mark.parametrize("name,kind", [("digital", "31"), ("digital_ordinary", "32")])
def test_digital_invoice_printed_on_paper(read, name, kind):
    inv = read[name]
    assert (inv.type, inv.code, inv.number, inv.date) == (kind, None, "24442000000123456789", dt.date(2024, 5, 28))
    assert inv.is_digital and inv.key == ("", "24442000000123456789")
    assert _fields(inv, "amount", "tax", "total") == (Decimal("4197.17"), Decimal("251.83"), Decimal("4449.00"))
    # Buyer on the left, seller on the right, on the same printed rows.
    assert _fields(inv, "buyer_name", "buyer_tax_no", "seller_name", "seller_tax_no") == (BUYER, BUYER_NO, SELLER,
                                                                                           SELLER_NO)


def test_railway_e_ticket(read):
    inv = read["railway"]
    # The invoice date, not the day of the ride printed above the fare.
    assert (inv.type, inv.number, inv.date, inv.total) == ("51", "24119110062000123456", dt.date(2024, 3, 15),
                                                           Decimal("553.00"))
    assert (inv.buyer_name, inv.buyer_tax_no) == (BUYER, BUYER_NO)


def test_air_itinerary(read):
    inv = read["air"]
    assert (inv.type, inv.number, inv.date) == ("61", "24442000000987654321", dt.date(2024, 5, 20))
    assert (inv.total, inv.tax) == (Decimal("620.00"), Decimal("47.07"))
    assert (inv.buyer_name, inv.buyer_tax_no) == (BUYER, BUYER_NO)
    old = read["air_old"]
    # The older itinerary has no invoice number: its e-ticket number identifies it.
    assert (old.type, old.number, old.date, old.total) == ("air", "7841234567890", dt.date(2024, 5, 20),
                                                           Decimal("620.00"))


def test_taxi_receipt(read):
    inv = read["taxi"]
    assert _fields(inv, "type", "code", "number", "date", "total") == (
        "taxi", "144031909110", "02345678", dt.date(2023, 5, 1), Decimal("35.60"))


def test_quota_invoice(read):
    inv = read["quota"]
    assert _fields(inv, "type", "code", "number", "date", "total") == (
        "quota", "144031600111", "01234567", None, Decimal("10.00"))


def test_tampered_vat_paper_leaves_the_failing_fields_empty(read):
    inv = read["vat_special_tampered"]
    assert inv.number == "12345678" and inv.buyer_tax_no == BUYER_NO  # the rest still reads
    assert inv.total is None and inv.amount is None and inv.tax is None  # 大写 捌拾 ≠ 小写 1130.00
    assert inv.seller_tax_no is None and inv.seller_name == SELLER  # wrong check character
    assert inv.date is None  # 2月30日


def test_tampered_digital_invoice_leaves_the_failing_fields_empty(read):
    inv = read["digital_tampered"]
    assert inv.number == "24442000000123456789" and inv.total == Decimal("4449.00")
    assert inv.amount is None and inv.tax is None  # 4197.17 + 215.83 ≠ 4449.00
    assert inv.seller_tax_no is None and inv.buyer_tax_no == BUYER_NO
    assert inv.date is None  # in the future


def test_tampered_travel_and_receipts_leave_the_failing_fields_empty(read):
    railway = read["railway_tampered"]
    assert railway.total == Decimal("553.00") and railway.buyer_tax_no is None
    air = read["air_tampered"]
    assert air.number == "24442000000987654321" and air.total is None and air.tax is None  # fares ≠ 合计
    taxi = read["taxi_tampered"]
    assert taxi.number == "02345678" and taxi.total == Decimal("35.60")
    assert taxi.date is None and taxi.code is None  # 2023 has no 29 February; an 11-digit code
    quota = read["quota_tampered"]
    assert quota.number == "01234567" and quota.total is None  # 伍拾圆 printed over ¥10.00


def test_qr_reading_completed_by_ocr_of_the_same_page(photos, read):
    """The QR gives number, date and the pre-tax amount; OCR of the page adds the names and the total."""
    data = draw.jpeg_bytes(photos["vat_ordinary"])
    [qr] = recognise(data, "image/jpeg")
    assert qr.source == "qr" and qr.number == "41108527" and qr.seller_name is None and qr.total is None
    filled = ocr.fill_from_ocr(qr, read["vat_ordinary"])
    assert (filled.source, filled.number, filled.amount) == ("qr", "41108527", Decimal("96.72"))
    assert _fields(filled, "seller_name", "seller_tax_no", "buyer_name", "buyer_tax_no", "total") == (
        SELLER, SELLER_NO, BUYER, BUYER_NO, Decimal("99.62"))
    assert filled.raw["ocr_fields"] == ["buyer_name", "buyer_tax_no", "seller_name", "seller_tax_no", "total"]
    assert qr.seller_name is None  # the QR reading itself is left as it was


def test_ocr_of_another_invoice_fills_nothing(read):
    qr = Invoice(source="qr", type="04", code="044031800104", number="41108528", date=dt.date(2019, 3, 19),
                 amount=Decimal("96.72"))
    assert ocr.fill_from_ocr(qr, read["vat_ordinary"]) == qr
    other_day = Invoice(source="qr", type="04", code="044031800104", date=dt.date(2019, 3, 20))
    assert ocr.fill_from_ocr(other_day, read["vat_ordinary"]) == other_day


def test_fill_takes_only_checked_values_that_fit(read):
    ocr_reading = read["vat_special_tampered"]  # total and seller tax number failed their checks
    qr = Invoice(source="qr", type="01", code="4403191130", number="12345678", amount=Decimal("1000.00"))
    filled = ocr.fill_from_ocr(qr, ocr_reading)
    assert filled.total is None and filled.seller_tax_no is None
    assert (filled.seller_name, filled.buyer_tax_no) == (SELLER, BUYER_NO)
    # A total below the QR's pre-tax amount is not this invoice's total.
    bigger = Invoice(source="qr", type="01", code="4403191130", number="12345678", amount=Decimal("1200.00"))
    assert ocr.fill_from_ocr(bigger, read["vat_special"]).total is None
    assert ocr.fill_from_ocr(qr, read["vat_special"]).total == Decimal("1130.00")


@pytest.mark.parametrize("name,filled", [
    ("vat_ordinary_paper_photo_shenzhen.jpg", dict(
        total=Decimal("112.20"), buyer_name="深圳市华云中盛科技有限公司", buyer_tax_no="91440300708436854B",
        seller_name="深圳市南山区江南百货商场", seller_tax_no="92440300L08175019R")),
    # 代开 invoice: the seller's name is printed beside the issuing office's marks and is not read.
    ("vat_special_paper_photo_sichuan_00472703.jpg", dict(
        total=Decimal("1500.00"), buyer_name="小米商业保理（天津）有限责任公司", buyer_tax_no="91120118MA06APGQXE",
        seller_name=None, seller_tax_no="51019800DK01187")),
])
def test_phone_photos_qr_completed_by_ocr(name, filled):
    """Real phone photos: the QR gives number, date and pre-tax amount, OCR the rest, every value as printed."""
    from PIL import Image

    from .conftest import corpus

    data = corpus(name)
    [qr] = recognise(data, "image/jpeg")
    with Image.open(draw.io.BytesIO(data)) as image:
        [read] = ocr.read_image(image.convert("L"), page=0)
    inv = ocr.fill_from_ocr(qr, read)
    assert {field: getattr(inv, field) for field in filled} == filled
    assert inv.amount + (read.tax or 0) == inv.total  # the OCR'd 合计 pair adds up to the filled total
