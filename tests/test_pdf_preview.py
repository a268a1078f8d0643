"""PDF previews: every corpus PDF keeps its ink, and Chinese fonts a PDF does not embed are
drawn with a Chinese (not Japanese) Noto CJK face."""

from __future__ import annotations

import io
import logging
import statistics

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageOps

from portal.files import limits, media, pdf_fonts, pdf_legible

from .conftest import CORPUS

# Measured on the preview path (max side 1000 px): share of dark pixels (grey < 160), the
# box around them as fractions of width and height, and the share of pixel rows holding
# any ink. A font that stops being found loses its text's ink; glyphs shrunk to specks
# keep their box but lose most of their ink and rows.
REFERENCE_INK = {
    "shudian_air_itinerary_sample.pdf": (0.0533, (0.031, 0.044, 0.968, 0.952), 0.902),
    # Names STSong-Light without embedding it: the Chinese substitute draws half its text.
    "shudian_vat_ordinary_sichuan_1455.45.pdf": (0.0537, (0.057, 0.019, 1.0, 0.646), 0.469),
    # Embeds its SimSun subset, but at 7.8–19.6 pt on a 1653 × 1100 pt page (its OFD→PDF
    # converter scaled the positions, not the sizes): small text is what the file holds.
    "shudian_vat_special_sichuan_23512000000005197325.pdf": (0.011, (0.022, 0.041, 0.988, 0.931), 0.222),
    "vat_e_special_guizhou_00008006.pdf": (0.0354, (0.026, 0.024, 0.975, 0.918), 0.499),
}


def ink(image: Image.Image) -> tuple[float, tuple[float, float, float, float], float]:
    """(dark share, dark box as fractions, share of rows with ink) of a rendered page."""
    gray = image.convert("L")
    width, height = gray.size
    mask = gray.point(lambda v: 255 if v < 160 else 0)
    share = mask.histogram()[255] / (width * height)
    left, top, right, bottom = mask.getbbox()
    rows = sum(1 for y in range(height) if mask.crop((0, y, width, y + 1)).getbbox())
    return share, (left / width, top / height, right / width, bottom / height), rows / height


def test_every_corpus_pdf_has_a_reference():
    assert {p.name for p in CORPUS.glob("*.pdf")} == set(REFERENCE_INK)


@pytest.mark.parametrize("name", sorted(REFERENCE_INK))
def test_corpus_pdf_previews_with_its_reference_ink(name):
    data = (CORPUS / name).read_bytes()
    share, box, rows = ink(media.render_image(data, media.PDF, 0, max_side=1000))
    want_share, want_box, want_rows = REFERENCE_INK[name]
    assert share == pytest.approx(want_share, rel=0.1)
    assert box == pytest.approx(want_box, abs=0.01)
    assert rows == pytest.approx(want_rows, abs=0.02)


# --- Chinese glyph forms -------------------------------------------------------------------

# 16 × 16 ink grids (row by row, as hex) of each character in Noto Serif CJK SC and JP:
# characters whose mainland and Japanese forms differ plainly.
GLYPHS = {
    "直": ("0180010001067ffe01001ff8100818181ff810081ff8100818181818100affff",
          "01800186fffe01800598641844184418440847f844084418441840027fff4000"),
    "真": ("018001847ffe01081ff810081ff810081ff810181818101a7ffe0c38380e4002",
          "018001867ffc019018181810181018101ff018101ff0000204000e30380e4006"),
    "述": ("0060206c3064106207ff00e0f0f030e8316433623263346030606800c7ff81fe",
          "0068606c306417ff006000600168f364126612621463106310603800c7ff81fe"),
    "区": ("0006fffec000c018c430c220c160c0c0c1e0c130c210c418c800c000c0074000",
          "0004fffe800080308030866083c081c081e083308618881890008006ffff8000"),
}
SIZE = 100  # points per character cell side


def pdf_naming_stsong(text: str) -> bytes:
    """A PDF showing `text` in STSong-Light, named (Adobe-GB1, UniGB-UCS2-H) and not embedded."""
    width, height = 20 + len(text) * (SIZE + 20), SIZE + 40
    shows = " ".join(f"1 0 0 1 {20 + i * (SIZE + 20)} 30 Tm <{ord(c):04X}> Tj" for i, c in enumerate(text))
    content = f"BT /F1 {SIZE} Tf {shows} ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts [6 0 R] >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> /FontDescriptor 7 0 R /DW 1000 >>",
        "<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] "
        "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 58 >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode())
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.write("".join(f"{o:010d} 00000 n \n" for o in offsets).encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def grid(cell: Image.Image) -> int:
    """The 16 × 16 ink grid of the glyph in a cell, as an integer (first pixel = top bit)."""
    gray = cell.convert("L")
    glyph = gray.crop(ImageOps.invert(gray).getbbox()).resize((16, 16), Image.Resampling.BOX)
    return int("".join("1" if v < 160 else "0" for v in glyph.tobytes()), 2)


def rendered_grids(text: str) -> list[int]:
    data = pdf_naming_stsong(text)
    width = 20 + len(text) * (SIZE + 20)
    image = media.render_image(data, media.PDF, 0, max_side=1200)
    scale = image.width / width
    cells = [
        image.crop((round((10 + i * (SIZE + 20)) * scale), 0, round((10 + (i + 1) * (SIZE + 20)) * scale), image.height))
        for i in range(len(text))
    ]
    return [grid(c) for c in cells]


def test_a_chinese_font_the_pdf_does_not_embed_is_drawn_with_chinese_glyph_forms():
    text = "".join(GLYPHS)
    for char, got in zip(text, rendered_grids(text)):
        chinese, japanese = (int(h, 16) for h in GLYPHS[char])
        to_chinese, to_japanese = bin(got ^ chinese).count("1"), bin(got ^ japanese).count("1")
        assert to_chinese < 30 and to_chinese < to_japanese, (char, to_chinese, to_japanese)


@pytest.mark.parametrize(
    "charset,face,expected",
    [
        (134, "STSong-Light", "Noto Serif CJK SC"),
        (134, "SimHei", "Noto Sans CJK SC"),
        (0, "SimSun", "Noto Serif CJK SC"),
        (1, "Microsoft YaHei", "Noto Sans CJK SC"),
        (0, "黑体", "Noto Sans CJK SC"),
        (136, "MingLiU", "Noto Serif CJK TC"),
        (0, "Helvetica", None),
        (0, "Arial,Bold", None),
    ],
)
def test_which_chinese_face_answers_a_request(charset, face, expected):
    assert pdf_fonts.chinese_face_for(charset, face) == expected


def test_without_the_noto_font_the_preview_still_renders_and_warns_once(monkeypatch, caplog):
    """As on a machine without fonts-noto-cjk: pdfium's own substitute, one warning."""
    for key in pdf_fonts.NOTO_FACES:
        monkeypatch.setitem(pdf_fonts.NOTO_FACES, key, f"No Such Font CJK {key[1]}")
    monkeypatch.setitem(pdf_fonts._state, "warned", False)
    caplog.set_level(logging.WARNING, logger="portal.files.pdf_fonts")
    data = pdf_naming_stsong("直真述区")
    for _ in range(2):
        share, _box, _rows = ink(media.render_image(data, media.PDF, 0, max_side=600))
        assert share > 0.02  # pdfium's own substitute still draws the text
    warnings = [r for r in caplog.records if r.name == "portal.files.pdf_fonts"]
    assert len(warnings) == 1 and "No Such Font CJK SC" in warnings[0].getMessage()


# --- legible previews ------------------------------------------------------------------------

LEGIBLE_PX = 12  # a median Chinese glyph at least this many pixels tall reads at 100 %
VIEWER_SIDE = 1800  # the bill pages' page render (assets.PAGE_SIDE)


def median_glyph_px(data: bytes, image: Image.Image) -> float:
    """Median ink height in pixels of the Chinese characters of page 1 as drawn in ``image``.

    Each character's box comes from pdfium's text page (points), mapped onto the bitmap;
    the height is that of the dark pixels found inside it, so glyphs shrunk to specks count small.
    """
    doc = pdfium.PdfDocument(data)
    try:
        page = doc[0]
        # Undo the page's /Rotate (clockwise on screen) so the bitmap lies as the text page does.
        image = image.rotate(page.get_rotation(), expand=True) if page.get_rotation() else image
        across = page.get_rotation() in (90, 270)
        left0, bottom0, right0, top0 = page.get_cropbox()
        sx, sy = image.width / (right0 - left0), image.height / (top0 - bottom0)
        textpage = page.get_textpage()
        gray = image.convert("L")
        heights = []
        for i in range(textpage.count_chars()):
            if not 0x4E00 <= pdfium.raw.FPDFText_GetUnicode(textpage, i) <= 0x9FFF:
                continue
            left, bottom, right, top = textpage.get_charbox(i)
            box = (round((left - left0) * sx) - 2, round((top0 - top) * sy) - 2,
                   round((right - left0) * sx) + 2, round((top0 - bottom) * sy) + 2)
            # Below 200, not 160: some labels are printed in a light grey (160 in the air itinerary).
            inked = gray.crop(box).point(lambda v: 255 if v < 200 else 0).getbbox()
            # On a page shown turned by a quarter, the glyph's height on screen is its width here.
            heights.append((inked[2] - inked[0] if across else inked[3] - inked[1]) if inked else 0)
        textpage.close()
        page.close()
    finally:
        doc.close()
    return statistics.median(heights)


def preview(name_or_data: str | bytes) -> tuple[bytes, Image.Image]:
    data = (CORPUS / name_or_data).read_bytes() if isinstance(name_or_data, str) else name_or_data
    return data, Image.open(io.BytesIO(media.render_preview(data, media.PDF, 0, max_side=VIEWER_SIDE)))


def test_small_text_on_a_large_page_previews_legibly():
    """The Sichuan 数电 page draws 8–20 pt text on a 1653 pt page: its preview grows until the text reads."""
    data, image = preview("shudian_vat_special_sichuan_23512000000005197325.pdf")
    assert median_glyph_px(data, image) >= LEGIBLE_PX
    assert VIEWER_SIDE < max(image.size) <= pdf_legible.MAX_PREVIEW_SIDE
    # As the page alone would size it, the same glyphs are too small to read.
    plain = media.render_image(data, media.PDF, 0, max_side=VIEWER_SIDE)
    assert median_glyph_px(data, plain) < LEGIBLE_PX


@pytest.mark.parametrize("name", sorted(n for n in REFERENCE_INK if "23512000000005197325" not in n))
def test_pdfs_with_legible_text_keep_their_preview_size(name):
    data, image = preview(name)
    assert max(image.size) == VIEWER_SIDE
    assert median_glyph_px(data, image) >= LEGIBLE_PX


def pdf_with_text(page_side: int, size: float, text: str = "发票") -> bytes:
    """A one-page square PDF showing ``text`` at ``size`` pt in STSong-Light (or no text)."""
    body = pdf_naming_stsong(text) if text else None
    doc = pdfium.PdfDocument.new()
    page = doc.new_page(page_side, page_side)
    if body:
        src = pdfium.PdfDocument(body)
        xobject = src.page_as_xobject(0, doc)
        obj = xobject.as_pageobject()
        scale = size / SIZE
        obj.transform(pdfium.PdfMatrix().scale(scale, scale).translate(10, page_side / 2))
        page.insert_obj(obj)
        page.gen_content()
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def test_tiny_text_grows_the_preview_only_up_to_its_cap():
    _data, image = preview(pdf_with_text(3000, 1.0))
    assert max(image.size) == pdf_legible.MAX_PREVIEW_SIDE


def test_a_pdf_page_without_text_keeps_its_preview_size():
    _data, image = preview(pdf_with_text(3000, 0, text=""))
    assert image.size == (VIEWER_SIDE, VIEWER_SIDE)


def test_the_legible_size_respects_the_pixel_budget():
    small = limits.Limits(max_pixel_bytes=4 * 2000 * 2000)
    with limits.using(small):
        _data, image = preview(pdf_with_text(3000, 1.0))
    assert image.size == (2000, 2000)


def test_thumbnails_keep_their_size():
    data = (CORPUS / "shudian_vat_special_sichuan_23512000000005197325.pdf").read_bytes()
    assert max(Image.open(io.BytesIO(media.thumbnail(data, media.PDF))).size) == 320
