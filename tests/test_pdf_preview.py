"""PDF previews: every corpus PDF keeps its ink, and Chinese fonts a PDF does not embed are
drawn with a Chinese (not Japanese) Noto CJK face."""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image, ImageOps

from portal.files import media, pdf_fonts

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
