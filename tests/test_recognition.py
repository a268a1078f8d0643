"""Recognition over the invoice corpus (tests/corpus), plus hostile and synthetic inputs."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import re
import struct
import zipfile
import zlib
from decimal import Decimal

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from portal.files import limits, media
from portal.recognition import Invoice, UnsafeFile, recognise
from portal.recognition.qr import parse_payload
from portal.recognition.textparse import words_to_amount

from .conftest import CORPUS


def media_type_of(data: bytes) -> str:
    """Sniff like the upload layer does (some corpus JPEGs were once named .png)."""
    if data.startswith(b"%PDF"):
        return "application/pdf"
    if data.startswith(b"PK\x03\x04"):
        return "application/ofd"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG"):
        return "image/png"
    return "application/xml"


def recognise_file(name: str) -> list[Invoice]:
    data = (CORPUS / name).read_bytes()
    return recognise(data, media_type_of(data))


def expected_rows() -> list[tuple[str, str, str, str, str, str]]:
    """Rows of the MANIFEST table "Expected values, checked by hand"."""
    manifest = CORPUS / "MANIFEST.md"
    text = manifest.read_text(encoding="utf-8")
    section = text.split("## Expected values", 1)[1]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] != "file" and not set(cells[0]) <= {"-"}:
            rows.append(tuple(cells))
    return rows


ROWS = expected_rows()


def test_manifest_table_was_read():
    # Guards against a silently empty parametrisation if the table format changes.
    assert len(ROWS) >= 17


@pytest.mark.parametrize(
    "name,code,number,date,amount,total", ROWS or [("-",) * 6], ids=[r[0] for r in ROWS] or ["none"]
)
def test_expected_values(name, code, number, date, amount, total):
    found = recognise_file(name)
    assert len(found) == 1, found
    inv = found[0]
    assert inv.code == (None if code in ("–", "-", "") else code)
    assert inv.number == number
    assert inv.date == dt.date.fromisoformat(date)
    assert inv.amount == Decimal(amount)
    if total:
        assert inv.total == Decimal(total)
    else:
        # The file does not carry the total: it must be absent, or exact arithmetic.
        assert inv.total is None or (inv.tax is not None and inv.total == inv.amount + inv.tax)
    if inv.total is not None and inv.tax is not None:
        assert inv.amount + inv.tax == inv.total
    json.dumps(inv.raw)  # raw stays JSON-serialisable


def test_same_invoice_in_four_formats_has_one_key():
    names = [
        "vat_e_special_guizhou_00008006.pdf",
        "vat_e_special_guizhou_00008006.ofd",
        "vat_e_special_guizhou_00008006_render.jpg",
        "vat_e_special_guizhou_00008006_original_invoice.xml",
    ]
    keys = {recognise_file(n)[0].key for n in names}
    assert keys == {("052002100113", "00008006")}


@pytest.mark.parametrize(
    "name,source,page",
    [
        ("vat_e_special_guizhou_00008006_original_invoice.xml", "xml", None),
        ("vat_e_special_guizhou_00008006.ofd", "xml", None),  # from the attached XML
        ("shudian_vat_special_24112000000048542163.ofd", "ofd", None),
        ("vat_e_special_guizhou_00008006.pdf", "pdf_text", 0),
        ("vat_ordinary_paper_photo_shenzhen.jpg", "qr", 0),
    ],
)
def test_source_and_page(name, source, page):
    inv = recognise_file(name)[0]
    assert (inv.source, inv.page) == (source, page)


def test_structured_sources_carry_parties_and_type():
    inv = recognise_file("vat_e_special_guizhou_00008006_original_invoice.xml")[0]
    assert inv.type == "20"
    assert inv.check_code == "18001801513030862041"
    assert inv.seller_tax_no == "92522726MA7GNHJ07M"
    assert inv.buyer_name == "中国移动通信集团贵州有限公司黔南分公司"
    assert not inv.is_digital

    pdf = recognise_file("vat_e_special_guizhou_00008006.pdf")[0]
    # The PDF draws the buyer's name out of reading order: it is read from where it sits, beside its label.
    assert (pdf.buyer_name, pdf.buyer_tax_no) == ("中国移动通信集团贵州有限公司黔南分公司", "91522701709696623X")
    assert (pdf.seller_name, pdf.seller_tax_no) == ("独山县城南网格刘梦阳通讯店", "92522726MA7GNHJ07M")
    # A page whose glyph boxes are scrambled gives fragments by position, never taken as a name.
    scrambled = recognise_file("shudian_vat_ordinary_sichuan_1455.45.pdf")[0]
    assert scrambled.buyer_name is None and scrambled.seller_name is None

    shudian = recognise_file("shudian_vat_special_sichuan_23512000000005197325.pdf")[0]
    assert shudian.is_digital and shudian.key == ("", "23512000000005197325")
    assert shudian.type == "31"
    assert shudian.tax == Decimal("21.29")
    assert shudian.buyer_tax_no == "91510000765055994P"
    assert shudian.seller_tax_no == "92510124MA6B1BBY1G"
    assert shudian.seller_name == "郫都区星讯通讯设备经营部"


def test_pdf_text_and_qr_are_combined():
    # The preview itinerary prints its number but not its date: the QR supplies it.
    inv = recognise_file("shudian_air_itinerary_sample.pdf")[0]
    assert inv.number == "9223372036854775807"
    assert inv.source == "pdf_text"
    assert inv.date == dt.date(2021, 7, 28)
    assert inv.total == Decimal("620.00") and inv.amount is None
    assert inv.type == "61"
    assert "qr" in inv.raw


def test_ocr_flag_is_accepted_without_an_engine(monkeypatch):
    """A deployment without the optional OCR extra: asking for OCR finds nothing, and nothing breaks."""
    from portal.recognition import ocr

    assert recognise_file("vat_special_paper_sample_87654321.jpg") == []
    monkeypatch.setattr(ocr, "available", lambda: False)  # as if `pip install '.[ocr]'` had not run
    data = (CORPUS / "vat_special_paper_sample_87654321.jpg").read_bytes()
    assert recognise(data, "image/jpeg", ocr=True) == []


def test_multi_page_tiff_reads_each_frame():
    qr_page = Image.open(CORPUS / "vat_e_ordinary_tianjin_33207675.png").convert("RGB")
    blank = Image.new("RGB", qr_page.size, "white")
    buffer = io.BytesIO()
    blank.save(buffer, format="TIFF", save_all=True, append_images=[qr_page])
    found = recognise(buffer.getvalue(), "image/tiff")
    assert [(inv.number, inv.page) for inv in found] == [("33207675", 1)]


def test_scanned_pdf_is_read_by_qr():
    scan = Image.open(CORPUS / "vat_e_ordinary_tianjin_33207675.png").convert("RGB")
    pdf = pdfium.PdfDocument.new()
    page = pdf.new_page(595, 350)
    image = pdfium.PdfImage.new(pdf)
    image.set_bitmap(pdfium.PdfBitmap.from_pil(scan))
    image.set_matrix(pdfium.PdfMatrix().scale(595, 350))
    page.insert_obj(image)
    page.gen_content()
    [inv] = recognise(_save(pdf), "application/pdf")
    assert (inv.source, inv.page, inv.number, inv.amount) == ("qr", 0, "33207675", Decimal("46.62"))


def test_pdf_with_several_invoices_gives_one_per_page():
    combined = pdfium.PdfDocument.new()
    for name in ("vat_e_special_guizhou_00008006.pdf", "shudian_vat_special_sichuan_23512000000005197325.pdf"):
        combined.import_pages(pdfium.PdfDocument(CORPUS / name))
    found = recognise(_save(combined), "application/pdf")
    assert [(inv.number, inv.page) for inv in found] == [("00008006", 0), ("23512000000005197325", 1)]


def _save(pdf: pdfium.PdfDocument) -> bytes:
    buffer = io.BytesIO()
    pdf.save(buffer)
    pdf.close()
    return buffer.getvalue()


def _bare_qr(text: str) -> bytes:
    """A QR bitmap as OFD issuers embed it: one pixel per module, no quiet zone."""
    matrix = memoryview(zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode).to_image(add_quiet_zones=False))
    image = Image.frombytes("L", (matrix.shape[1], matrix.shape[0]), bytes(matrix))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_ofd_without_semantic_data_falls_back_to_the_qr_bitmap():
    payload = "01,10,050001700111,12235358,10000.00,20200805,16630282980991510014,7257"
    ofd = _zip({
        "OFD.xml": b'<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016"/>',
        "Doc_0/Res/image_80.jb2": b"\x97JB2",  # JBIG2 cannot be decoded and is skipped
        "Doc_0/Res/qrcode.png": _bare_qr(payload),
    })
    [inv] = recognise(ofd, "application/ofd")
    assert (inv.source, inv.number, inv.amount, inv.total) == ("qr", "12235358", Decimal("10000.00"), None)


# --- QR payload ----------------------------------------------------------------------------


def test_qr_payload_digital_amount_is_total():
    inv = parse_payload("01,32,,24312000000136634917,0.01,20240514,,1DD6")
    assert inv.code is None and inv.number == "24312000000136634917"
    assert inv.total == Decimal("0.01") and inv.amount is None
    assert inv.is_digital and inv.key == ("", "24312000000136634917")


def test_qr_payload_legacy_amount_is_pre_tax():
    inv = parse_payload("01,10,011001605111,80100798,64.9,20161018,85342965681116380258,BE2D")
    assert inv.amount == Decimal("64.90") and inv.total is None
    assert inv.type == "10" and inv.date == dt.date(2016, 10, 18)
    assert inv.key == ("011001605111", "80100798")


@pytest.mark.parametrize(
    "payload",
    ["", "hello", "https://example.com/a,b,c", "01,10,x,y,z,20161018,,", "01,10,,123,1.00,20161340,,AAAA"],
)
def test_qr_payload_rejects_other_codes(payload):
    assert parse_payload(payload) is None


def test_unknown_type_code_is_kept():
    assert parse_payload("01,51,,26339132621000219582,56.00,20260423,,219a").type == "51"


def test_key_needs_code_for_legacy_numbers():
    assert Invoice(source="qr", number="00008006").key is None
    assert Invoice(source="qr").key is None


@pytest.mark.parametrize(
    "words,value",
    [("贰万伍仟贰佰伍拾肆圆陆角贰分", "25254.62"), ("壹拾叁圆整", "13"), ("肆仟肆佰肆拾玖圆整", "4449"), ("伍角", "0.5")],
)
def test_amount_in_words(words, value):
    assert words_to_amount(words) == Decimal(value)


# --- synthetic structured files ------------------------------------------------------------

SHUDIAN_XML = """<?xml version="1.0" encoding="UTF-8"?>
<EInvoice xmlns="urn:example:einvoice">
  <Header><EIid>24312000000136634917</EIid>
    <InherentLabel><GeneralOrSpecialVAT><LabelCode>02</LabelCode><LabelName>普通发票</LabelName></GeneralOrSpecialVAT></InherentLabel>
  </Header>
  <EInvoiceData>
    <SellerInformation><SellerIdNum>91310000MA1FL0XX1X</SellerIdNum><SellerName>上海某某科技有限公司</SellerName></SellerInformation>
    <BuyerInformation><BuyerName>张三</BuyerName></BuyerInformation>
    <BasicInformation><TotalAmWithoutTax>100.00</TotalAmWithoutTax><TotalTaxAm>6.00</TotalTaxAm>
      <TotaltaxIncludedAmount>106.00</TotaltaxIncludedAmount></BasicInformation>
    <IssuItemInformation><ItemName>服务费</ItemName><Amount>100.00</Amount><TaxRate>6%</TaxRate><ComTaxAm>6.00</ComTaxAm></IssuItemInformation>
  </EInvoiceData>
  <TaxSupervisionInfo><InvoiceNumber>24312000000136634917</InvoiceNumber><IssueTime>2024-05-14 10:11:12</IssueTime></TaxSupervisionInfo>
</EInvoice>"""


def test_shudian_xml_with_namespace_and_variant_names():
    [inv] = recognise(SHUDIAN_XML.encode(), "application/xml")
    assert inv.number == "24312000000136634917" and inv.code is None
    assert inv.date == dt.date(2024, 5, 14)
    assert (inv.amount, inv.tax, inv.total) == (Decimal("100.00"), Decimal("6.00"), Decimal("106.00"))
    assert inv.type == "32"
    assert inv.seller_tax_no == "91310000MA1FL0XX1X" and inv.buyer_name == "张三"
    assert inv.buyer_tax_no is None


def test_shudian_xml_missing_nodes_and_gbk():
    xml = (
        '<?xml version="1.0" encoding="GBK"?><EInvoice><Header><EIid>24312000000136634917</EIid></Header>'
        "<EInvoiceData><BasicInformation><TotalTax-includedAmount>0.01</TotalTax-includedAmount>"
        "</BasicInformation><SellerInformation><SellerName>某某店</SellerName></SellerInformation>"
        "</EInvoiceData></EInvoice>"
    ).encode("gbk")
    [inv] = recognise(xml, "application/xml")
    assert inv.total == Decimal("0.01") and inv.amount is None and inv.tax is None
    assert inv.date is None and inv.seller_name == "某某店"


def test_tax_is_derived_only_from_exact_figures():
    xml = SHUDIAN_XML.replace("<TotalTaxAm>6.00</TotalTaxAm>", "")
    [inv] = recognise(xml.encode(), "application/xml")
    assert inv.tax == Decimal("6.00")  # 106.00 - 100.00


def test_railway_xbrl():
    xml = """<xbrl xmlns="http://www.xbrl.org/2003/instance" xmlns:rai="http://xbrl.mof.gov.cn/taxonomy/2021-11-30/rai">
      <rai:ElectronicInvoiceRailwayETicketNumber contextRef="c1">24429165811000012345</rai:ElectronicInvoiceRailwayETicketNumber>
      <rai:DateOfIssue contextRef="c1">2024-03-01</rai:DateOfIssue>
      <rai:TypeOfVoucher contextRef="c1">电子发票（铁路电子客票）</rai:TypeOfVoucher>
      <rai:DepartureStation contextRef="c1">广州南</rai:DepartureStation>
      <rai:Fare contextRef="c1" unitRef="u1" decimals="2">74.50</rai:Fare>
    </xbrl>"""
    [inv] = recognise(xml.encode(), "application/xml")
    assert inv.number == "24429165811000012345" and inv.date == dt.date(2024, 3, 1)
    assert inv.total == Decimal("74.50") and inv.amount is None
    assert inv.type is None  # the railway kind code is not certain


# --- hostile input -------------------------------------------------------------------------

MEDIA_TYPES = ["application/xml", "application/ofd", "application/pdf", "image/jpeg", "image/png", "image/tiff"]


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_random_bytes_give_nothing(media_type):
    rng = random.Random(7)
    for size in (0, 1, 17, 4096):
        data = bytes(rng.getrandbits(8) for _ in range(size))
        assert recognise(data, media_type) == []


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_wrong_kind_of_file_gives_nothing(media_type):
    assert recognise(b"%PDF-1.7\n" + b"x" * 100, media_type) == []
    assert recognise(b"<html><body>not an invoice</body></html>", media_type) == []


def test_unknown_media_type():
    assert recognise(SHUDIAN_XML.encode(), "text/plain") == []


@pytest.mark.parametrize(
    "name", ["vat_e_special_guizhou_00008006.pdf", "vat_e_special_guizhou_00008006.ofd", "vat_ordinary_paper_photo_shenzhen.jpg"]
)
def test_truncated_files_never_raise(name):
    data = (CORPUS / name).read_bytes()
    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 10):
        result = recognise(data[:cut], media_type_of(data))
        assert isinstance(result, list)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buffer.getvalue()


def test_zip_bomb_ofd_is_refused():
    bomb = _zip({"OFD.xml": b"<ofd:OFD/>", "Doc_0/Attachs/a.xml": b"\0" * (25 * 1024 * 1024)})
    assert len(bomb) < 100_000
    with pytest.raises(UnsafeFile) as err:
        recognise(bomb, "application/ofd")
    assert "已拒绝" in str(err.value)


def test_zip_with_lying_size_header_is_refused_or_ignored():
    data = bytearray(_zip({"Doc_0/Attachs/a.xml": b"<a>" + b" " * 2_000_000 + b"</a>"}))
    # Claim 10 bytes uncompressed in both the local and the central header.
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(sig)
        data[at + offset:at + offset + 4] = struct.pack("<I", 10)
    try:
        assert recognise(bytes(data), "application/ofd") == []
    except UnsafeFile:
        pass


def test_zip_with_too_many_members_is_refused():
    many = _zip({f"Doc_0/Res/{i}.png": b"" for i in range(2100)})
    with pytest.raises(UnsafeFile):
        recognise(many, "application/ofd")


def test_ofd_path_tricks_are_only_names():
    data = _zip({"../../etc/passwd": b"root", "/abs/OFD.xml": b"<x/>", "Doc_0/Attachs/../../evil.xml": b"<a/>"})
    assert recognise(data, "application/ofd") == []


def _png_header(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(100_000, 100_000, 8, 0), (14_000, 14_000, 8, 0), (60_000, 3_000, 8, 0)])
def test_huge_image_header_is_refused(size):
    with pytest.raises(UnsafeFile, match="像素数据过大"):
        recognise(_png_header(*size), "image/png")


def test_pixel_budget_counts_bytes_of_mode_and_bit_depth():
    """7,000 x 7,000 is 49 Mpx: 49 MB as 8-bit grey but 392 MB as 16-bit RGBA."""
    assert recognise(_png_header(7_000, 7_000, 8, 0), "image/png") == []  # within the budget, unreadable pixels
    with pytest.raises(UnsafeFile, match="像素数据过大"):
        recognise(_png_header(7_000, 7_000, 16, 6), "image/png")  # 16-bit RGBA
    with pytest.raises(UnsafeFile, match="像素数据过大"):
        recognise(_png_header(7_000, 7_000, 8, 6), "image/png")  # 8-bit RGBA, 4 bytes a pixel


def test_image_with_broken_pixels_gives_nothing():
    assert recognise(_png_header(800, 600), "image/png") == []


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE eInvoice [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<eInvoice><InvoiceNo>&secret;</InvoiceNo></eInvoice>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<eInvoice><InvoiceNo>&lol4;</InvoiceNo></eInvoice>"""


@pytest.mark.parametrize("xml", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_xml_entities_are_refused(xml):
    with pytest.raises(UnsafeFile):
        recognise(xml, "application/xml")
    with pytest.raises(UnsafeFile):
        recognise(_zip({"OFD.xml": b"<OFD/>", "Doc_0/Attachs/original_invoice.xml": xml}), "application/ofd")


def test_oversize_xml_is_refused():
    with pytest.raises(UnsafeFile):
        recognise(b"<a>" + b" " * (6 * 1024 * 1024) + b"</a>", "application/xml")


def test_deeply_nested_xml_does_not_crash():
    depth = 50_000
    xml = b"<a>" * depth + b"</a>" * depth
    assert recognise(xml, "application/xml") == []


def test_pdf_page_limit_is_the_configured_one():
    """One limit for every reader: a 60-page PDF passes under MAX_PAGES=200, not under 50."""
    pdf = pdfium.PdfDocument.new()
    for _ in range(60):
        pdf.new_page(595, 842).close()
    data = _save(pdf)
    with limits.using(limits.Limits(max_pages=200)):
        assert recognise(data, "application/pdf") == []
        assert media.page_count(data, "application/pdf") == 60
    with limits.using(limits.Limits(max_pages=50)):
        with pytest.raises(UnsafeFile, match="超过 50 页"):
            recognise(data, "application/pdf")
        with pytest.raises(media.MediaError, match="50 页"):
            media.page_count(data, "application/pdf")


def test_blank_pdf_gives_nothing():
    pdf = pdfium.PdfDocument.new()
    pdf.new_page(595, 842).close()
    assert recognise(_save(pdf), "application/pdf") == []


def test_invoice_numbers_in_text_need_their_labels():
    # A bare 8-digit number on a page is not an invoice number.
    from portal.recognition.textparse import parse_text

    inv = parse_text(["合同编号 12345678", "2024年01月02日"], source="pdf_text", page=0)
    assert inv.number is None and not inv.is_useful
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", inv.date.isoformat())


def test_digital_ofd_gets_its_kind_from_the_embedded_qr():
    """The 数电 OFDs carry no kind in their text; the QR bitmap tells 31 (专用发票)."""
    for name in ("shudian_vat_special_24112000000048542163.ofd", "shudian_vat_special_24322000000489101796.ofd"):
        [inv] = recognise((CORPUS / name).read_bytes(), "application/ofd")
        assert inv.type == "31" and inv.source == "ofd"
