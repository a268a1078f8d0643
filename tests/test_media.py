"""Content sniffing, page counting and rendering (portal.files.media, portal.files.ofd)."""

from __future__ import annotations

import io
import os
import struct
import threading
import zipfile
import zlib

import pypdfium2 as pdfium
import pytest
from PIL import Image

from portal.files import limits, media
from portal.files.ofd import OFDError, page_count
from portal.files.media import JPEG, OFD, PDF, PNG, TIFF, XML, MediaError

from .conftest import CORPUS

BY_SUFFIX = {".pdf": PDF, ".ofd": OFD, ".xml": XML, ".jpg": JPEG, ".png": PNG}
CORPUS_FILES = sorted(p for p in CORPUS.glob("*") if p.suffix in BY_SUFFIX)


def test_corpus_is_in_the_repository():
    # Guards the parametrised tests below against an empty corpus folder.
    assert len(CORPUS_FILES) >= 19


def _ids(paths):
    return [p.name for p in paths]


def _corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims the given dimensions (no real pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _jpeg(size=(200, 100), orientation: int | None = None) -> bytes:
    im = Image.new("RGB", size, "white")
    im.paste((200, 0, 0), (0, 0, size[0] // 2, size[1]))  # left half red: shows rotation
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    im.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES))
def test_sniff_every_corpus_file(path):
    data = path.read_bytes()
    expected = BY_SUFFIX[path.suffix]
    assert media.sniff_file(data) == expected
    assert media.sniff_file(path) == expected
    with open(path, "rb") as fh:
        fh.seek(0)
        assert media.sniff_file(fh) == expected
        assert fh.tell() == 0
    if expected != OFD:  # an OFD needs the zip directory at the end of the file
        assert media.sniff(data[:1024]) == expected
    assert media.sniff(data) == expected


def test_sniff_ignores_file_names(tmp_path):
    pdf = _corpus("vat_e_special_guizhou_00008006.pdf")
    jpeg = _corpus("vat_special_paper_sample_87654321.jpg")
    ofd = _corpus("vat_e_special_guizhou_00008006.ofd")
    for name, data, expected in [
        ("invoice.jpg", pdf, PDF),
        ("scan.pdf", jpeg, JPEG),
        ("invoice.zip", ofd, OFD),
        ("invoice.ofd", pdf, PDF),
    ]:
        target = tmp_path / name
        target.write_bytes(data)
        assert media.sniff_file(target) == expected


def test_sniff_pdf_with_leading_junk():
    pdf = _corpus("vat_e_special_guizhou_00008006.pdf")
    assert media.sniff(b"\x00" * 600 + pdf) == PDF
    assert media.sniff(b"\x00" * 1100 + pdf) is None  # %PDF- must be within the first KiB


@pytest.mark.parametrize(
    "data",
    [
        b"",
        os.urandom(4096),
        b"hello, this is plain text\n",
        b"<!DOCTYPE html><html><body>hi</body></html>",
        b"<html><head><title>x</title></head></html>",
        b"\xef\xbb\xbf  <!doctype HTML>\n<html></html>",
        b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
        b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "x"><html/>',
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<svg onload=alert(1)>",
        b"<div>not a document</div>",
        b"<script>alert(1)</script>%PDF-1.7",
        b"GIF89a\x01\x00\x01\x00",
        b"PK\x03\x04 truncated zip",
    ],
    ids=lambda d: repr(d[:24]),
)
def test_sniff_refuses(data):
    assert media.sniff(data) is None
    assert media.sniff_file(data) is None


def test_sniff_zip_without_ofd_xml():
    plain_zip = _zip({"Doc_0/Document.xml": b"<x/>", "readme.txt": b"hi"})
    assert media.sniff(plain_zip) is None
    assert media.sniff_file(plain_zip) is None
    nested = _zip({"sub/OFD.xml": b"<x/>"})
    assert media.sniff_file(nested) is None


def test_sniff_tiff_both_byte_orders():
    assert media.sniff(b"II*\x00\x08\x00\x00\x00") == TIFF
    assert media.sniff(b"MM\x00*\x00\x00\x00\x08") == TIFF
    out = io.BytesIO()
    Image.new("L", (10, 10)).save(out, "TIFF")
    assert media.sniff_file(out.getvalue()) == TIFF


def test_sniff_xml_variants():
    assert media.sniff(b'\xef\xbb\xbf\n  <?xml version="1.0" encoding="UTF-8"?><EInvoice/>') == XML
    assert media.sniff(b"<EInvoice><Header/></EInvoice>") == XML
    assert media.sniff(b'<xbrl xmlns="http://www.xbrl.org/2003/instance"/>') == XML
    assert media.sniff(b'<inv:Root xmlns:inv="urn:x"/>') == XML
    assert media.sniff(b"<!-- comment --><?xml-stylesheet x?><EInvoiceData/>") == XML
    # the quick head check passes, the full parse does not
    assert media.sniff(b'<?xml version="1.0"?><a><b></a>') == XML
    assert media.sniff_file(b'<?xml version="1.0"?><a><b></a>') is None


def test_sniff_refuses_entity_tricks():
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><EInvoice>&lol2;</EInvoice>'
    )
    assert media.sniff_file(laughs) is None
    with pytest.raises(MediaError):
        media.page_count(laughs, XML)


def test_gbk_xml_is_read():
    text = '<?xml version="1.0" encoding="GBK"?><EInvoice><InvoiceNumber>24112000000048542163</InvoiceNumber>' \
           "<SellerName>北京互联三六五科技有限公司</SellerName></EInvoice>"
    data = text.encode("gbk")
    assert media.sniff_file(data) == XML
    title, rows = media.xml_key_fields(media.parse_xml(data))
    assert ("销售方", "北京互联三六五科技有限公司") in rows
    assert media.render_page(data, XML, 0, max_side=300).startswith(b"\x89PNG")


# --------------------------------------------------------------------------- page counts


EXPECTED_PAGES = {
    "vat_e_ordinary_zhejiang_with_list.ofd": 2,  # invoice + 销售货物清单
    "vat_e_ordinary_chongqing_12235358.ofd": 5,
}


@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES))
def test_page_count_corpus(path):
    kind = BY_SUFFIX[path.suffix]
    assert media.page_count(path.read_bytes(), kind) == EXPECTED_PAGES.get(path.name, 1)


def test_with_list_ofd_has_more_than_one_page():
    assert media.page_count(_corpus("vat_e_ordinary_zhejiang_with_list.ofd"), OFD) > 1


def test_page_limit():
    data = _corpus("vat_e_ordinary_chongqing_12235358.ofd")
    with pytest.raises(MediaError, match="页数超过上限"):
        media.page_count(data, OFD, max_pages=3)
    assert media.page_count(data, OFD, max_pages=5) == 5


def _tiff(frames: int) -> bytes:
    out = io.BytesIO()
    images = [Image.new("1", (300, 400), 1) for _ in range(frames)]
    images[0].save(out, "TIFF", save_all=True, append_images=images[1:], compression="group4")
    return out.getvalue()


def test_multipage_tiff():
    data = _tiff(3)
    assert media.page_count(data, TIFF) == 3
    for page in range(3):
        im = Image.open(io.BytesIO(media.render_page(data, TIFF, page, max_side=200)))
        assert im.format == "JPEG" and im.size == (150, 200)
    with pytest.raises(MediaError, match="页码超出范围"):
        media.render_page(data, TIFF, 3, max_side=200)


@pytest.mark.parametrize(
    "data, kind",
    [
        (b"%PDF-1.7\n1 0 obj garbage", PDF),
        (b"\xff\xd8\xff\xe0 broken", JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", PNG),
        (b"II*\x00\xff\xff\xff\xff", TIFF),
        (b"PK\x03\x04 not a zip", OFD),
        (b"<?xml version='1.0'?><a>", XML),
    ],
    ids=["pdf", "jpeg", "png", "tiff", "ofd", "xml"],
)
def test_corrupt_files_raise_media_error(data, kind):
    with pytest.raises(MediaError, match="损坏|无法读取"):
        media.page_count(data, kind)
    with pytest.raises(MediaError):
        media.render_page(data, kind, 0, max_side=100)


def test_truncated_pdf_and_jpeg():
    pdf = _corpus("vat_e_special_guizhou_00008006.pdf")
    with pytest.raises(MediaError):
        media.page_count(pdf[: len(pdf) // 3], PDF)
    jpeg = _corpus("vat_special_paper_sample_87654321.jpg")
    with pytest.raises(MediaError):
        media.render_page(jpeg[: len(jpeg) // 2], JPEG, 0, max_side=300)


def test_unsupported_type_and_bad_arguments():
    with pytest.raises(MediaError, match="不支持"):
        media.page_count(b"GIF89a", "image/gif")
    with pytest.raises(ValueError):
        media.render_page(_jpeg(), JPEG, 0, max_side=0)
    with pytest.raises(MediaError, match="页码超出范围"):
        media.render_page(_corpus("vat_e_special_guizhou_00008006.pdf"), PDF, 1, max_side=100)


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES))
def test_render_first_page_of_every_corpus_file(path):
    kind = BY_SUFFIX[path.suffix]
    data = path.read_bytes()
    rendered = media.render_page(data, kind, 0, max_side=480)
    im = Image.open(io.BytesIO(rendered))
    im.load()
    assert im.format == ("PNG" if media.render_media_type(kind) == PNG else "JPEG")
    assert max(im.size) == 480  # every corpus raster is larger than 480 px
    # not a blank page
    extrema = im.convert("L").getextrema()
    assert extrema[0] < 128 < extrema[1]

    thumb = Image.open(io.BytesIO(media.thumbnail(data, kind)))
    assert thumb.format == "JPEG" and max(thumb.size) == 320


def test_render_every_page_of_multipage_ofd():
    data = _corpus("vat_e_ordinary_chongqing_12235358.ofd")
    sizes = [Image.open(io.BytesIO(media.render_page(data, OFD, i, max_side=300))).size for i in range(5)]
    assert sizes[0] == (300, 200)  # 210 x 140 mm invoice
    assert all(s == (212, 300) for s in sizes[1:])  # A4 list pages


def test_ofd_text_lands_where_the_file_says():
    """The 发票号码 digits sit at x=170..208 mm, y≈14 mm on the 数电 invoice."""
    data = _corpus("shudian_vat_special_24112000000048542163.ofd")
    im = media.render_image(data, OFD, 0, max_side=2100)  # 10 px per mm
    number_box = im.crop((1700, 105, 2080, 150)).convert("L")
    empty_box = im.crop((1000, 700, 1400, 850)).convert("L")  # empty middle of the item table
    dark = lambda img: sum(1 for v in img.get_flattened_data() if v < 100)  # noqa: E731
    assert dark(number_box) > 500
    assert dark(empty_box) == 0


def test_ofd_jbig2_qr_code_is_drawn():
    """Legacy OFDs store the QR code as JBIG2; it is decoded through pdfium."""
    data = _corpus("vat_e_ordinary_zhejiang_83089647.ofd")
    im = media.render_image(data, OFD, 0, max_side=2100)
    qr = im.crop((85, 35, 285, 235)).convert("L")  # Boundary 8.5 3.5 20 20 (mm)
    values = qr.get_flattened_data()
    black = sum(1 for v in values if v < 64)
    assert 0.3 < black / len(values) < 0.7


def test_ofd_png_qr_code_is_drawn():
    data = _corpus("vat_e_ordinary_chongqing_99999951_test.ofd")
    im = media.render_image(data, OFD, 0, max_side=2100)
    box = im.crop((80, 30, 240, 190)).convert("L")
    values = box.get_flattened_data()
    assert sum(1 for v in values if v < 64) / len(values) > 0.25


def test_exif_orientation_is_honoured():
    rotated = _jpeg((200, 100), orientation=6)  # stored landscape, displayed portrait
    im = Image.open(io.BytesIO(media.render_page(rotated, JPEG, 0, max_side=100)))
    assert im.size == (50, 100)
    top, bottom = im.getpixel((25, 10)), im.getpixel((25, 90))
    assert top[0] > 150 and top[1] < 100  # left half (red) is now on top
    assert bottom[1] > 200


def test_small_raster_is_not_enlarged():
    im = Image.open(io.BytesIO(media.render_page(_jpeg((200, 100)), JPEG, 0, max_side=1000)))
    assert im.size == (200, 100)


def test_png_with_alpha_renders_on_white():
    out = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 0, 0, 0)).save(out, "PNG")
    im = Image.open(io.BytesIO(media.render_page(out.getvalue(), PNG, 0, max_side=50)))
    assert im.getpixel((10, 10))[0] > 240


def test_xml_card_lists_key_fields():
    data = _corpus("vat_e_special_guizhou_00008006_original_invoice.xml")
    title, rows = media.xml_key_fields(media.parse_xml(data))
    fields = dict(rows)
    assert fields["发票代码"] == "052002100113"
    assert fields["发票号码"] == "00008006"
    assert fields["价税合计"] == "25254.62"
    card = Image.open(io.BytesIO(media.render_page(data, XML, 0, max_side=600)))
    assert card.format == "PNG" and card.width == 600
    bare = media.xml_key_fields(media.parse_xml(b"<?xml version='1.0'?><Other><x>1</x></Other>"))
    assert bare == (None, [])
    assert media.render_page(b"<?xml version='1.0'?><Other/>", XML, 0, max_side=200)


def test_concurrent_pdf_rendering_is_serialised_safely():
    data = _corpus("shudian_vat_special_sichuan_23512000000005197325.pdf")
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(3):
                media.thumbnail(data, PDF, max_side=160)
                media.page_count(data, PDF)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --------------------------------------------------------------------------- bombs


def test_decompression_bomb_png_is_refused():
    bomb = _png_header_only(100_000, 100_000)
    assert media.sniff_file(bomb) == PNG
    with pytest.raises(MediaError, match="图片尺寸过大|像素数据过大"):
        media.page_count(bomb, PNG)
    with pytest.raises(MediaError, match="图片尺寸过大|像素数据过大"):
        media.thumbnail(bomb, PNG)


def test_image_just_over_the_pixel_limit_is_refused():
    # An 8-bit greyscale frame: one byte a pixel, so the side follows from the byte budget.
    side = int((limits.DEFAULT.max_pixel_bytes * 1.2) ** 0.5)
    with pytest.raises(MediaError, match="像素数据过大"):
        media.page_count(_png_header_only(side, side), PNG)


def test_zip_bomb_ofd_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("OFD.xml", b"<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>")
        with zf.open("Doc_0/Res/huge.bin", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(40):  # 40 MiB of zeros, ~40 KiB compressed
                member.write(block)
    bomb = buf.getvalue()
    assert len(bomb) < 1 << 20
    assert media.sniff_file(bomb) == OFD  # it is an OFD by content ...
    with pytest.raises(MediaError, match="过大"):  # ... but it is never unpacked
        media.page_count(bomb, OFD)
    with pytest.raises(MediaError, match="过大"):
        media.render_page(bomb, OFD, 0, max_side=100)


def test_ofd_with_too_many_members_is_refused():
    members = {f"Doc_0/f{i}.xml": b"" for i in range(limits.DEFAULT.max_zip_members + 1)}
    members["OFD.xml"] = b"<x/>"
    with pytest.raises(MediaError, match="文件过多"):
        media.page_count(_zip(members), OFD)


def test_ofd_total_size_limit():
    data = _corpus("vat_e_ordinary_chongqing_12235358.ofd")
    with limits.using(limits.Limits(max_zip_total_bytes=64 * 1024)):
        with pytest.raises(OFDError, match="过大"):
            page_count(data)
    assert page_count(data) == 5


def test_ofd_path_tricks_are_ignored():
    page = (
        b"<ofd:Page xmlns:ofd='http://www.ofdspec.org/2016'><ofd:Area><ofd:PhysicalBox>0 0 100 50"
        b"</ofd:PhysicalBox></ofd:Area><ofd:Content><ofd:Layer><ofd:TextObject Boundary='0 0 100 50' Size='5'>"
        b"<ofd:TextCode X='5' Y='10'>ok</ofd:TextCode></ofd:TextObject></ofd:Layer></ofd:Content></ofd:Page>"
    )
    doc = (
        b"<ofd:Document xmlns:ofd='http://www.ofdspec.org/2016'><ofd:CommonData>"
        b"<ofd:PublicRes>../../etc/passwd</ofd:PublicRes></ofd:CommonData><ofd:Pages>"
        b"<ofd:Page ID='1' BaseLoc='Pages/Page_0/Content.xml'/><ofd:Page ID='2' BaseLoc='../../../evil.xml'/>"
        b"</ofd:Pages></ofd:Document>"
    )
    ofd_xml = (
        b"<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'><ofd:DocBody>"
        b"<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"
    )
    data = _zip({
        "OFD.xml": ofd_xml,
        "Doc_0/Document.xml": doc,
        "Doc_0/Pages/Page_0/Content.xml": page,
        "../evil.xml": page,
        "/abs/evil.xml": page,
    })
    assert media.page_count(data, OFD) == 1
    im = Image.open(io.BytesIO(media.render_page(data, OFD, 0, max_side=200)))
    assert im.size == (200, 100)
    escaping_root = _zip({"OFD.xml": ofd_xml.replace(b"Doc_0/Document.xml", b"../Document.xml")})
    with pytest.raises(MediaError, match="损坏"):
        media.page_count(escaping_root, OFD)


def test_pdf_rendering_scales_from_page_size():
    """A huge page size must not produce a huge bitmap."""
    out = io.BytesIO()
    with media.PDFIUM_LOCK:  # pdfium is not thread-safe: every caller shares this lock
        doc = pdfium.PdfDocument.new()
        doc.new_page(14400, 14400).close()  # 5 m x 5 m, the PDF maximum
        doc.save(out)
        doc.close()
    im = Image.open(io.BytesIO(media.render_page(out.getvalue(), PDF, 0, max_side=256)))
    assert im.size == (256, 256)
