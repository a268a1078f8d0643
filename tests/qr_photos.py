"""A fixed, seeded set of damaged phone photos of invoice QR codes, made on the fly.

Shared by `tests/test_qr_photos.py` (the ≥ 95 % / zero-wrong rule) and `bench/bench_qr.py`
(field rate and timings). Nothing is downloaded or stored: each photo is built from a
corpus file that carries a QR code, or from a QR code rendered here with a made-up but
well-formed payload, and then damaged the way phone photos of paper are — blur, tilt,
JPEG noise, low light, small codes, partial glare, and all but the last at once. The
damage is Pillow only, with one `random.Random` per photo, so a seed gives the same
bytes on every run (with the same Pillow and libjpeg).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import random
from decimal import Decimal
from pathlib import Path

import pypdfium2 as pdfium
import zxingcpp
from PIL import Image, ImageChops, ImageDraw, ImageFilter

CORPUS = Path(__file__).resolve().parent / "corpus"

SEED = 20261130
DAMAGES = ("blur", "tilt", "jpeg", "lowlight", "small", "glare", "mixed")
FIELDS = ("type", "code", "number", "date", "amount", "total", "check_code")


@dataclasses.dataclass(frozen=True)
class Expected:
    """The QR fields a photo must give; None where the QR does not carry the field."""

    type: str
    code: str | None
    number: str
    date: dt.date
    amount: Decimal | None
    total: Decimal | None
    check_code: str | None


@dataclasses.dataclass
class Photo:
    """One damaged photo: JPEG bytes and what it should read as."""

    name: str
    damage: str
    data: bytes
    expected: Expected


# Corpus files whose QR code is known (MANIFEST): the page a phone would photograph.
_CORPUS_QR = {
    "vat_e_special_guizhou_00008006_render.jpg": "01,20,052002100113,00008006,24519.05,20220505,18001801513030862041,88CD",
    "vat_e_ordinary_tianjin_33207675.png": "01,10,012001800311,33207675,46.62,20190508,76939056883466677916,E1BD",
    "vat_e_special_guizhou_00008006.pdf": "01,20,052002100113,00008006,24519.05,20220505,18001801513030862041,88CD",
    "shudian_vat_special_sichuan_23512000000005197325.pdf": "01,31,,23512000000005197325,2150.63,20230130,,F366",
}


def expected_from_payload(payload: str) -> Expected:
    """The fields a correct reader takes from a payload (the reference's D.1 layout)."""
    _, kind, code, number, money, day, check = [p.strip() for p in payload.split(",")][:7]
    value = Decimal(money).quantize(Decimal("0.01"))
    return Expected(
        type=kind,
        code=code or None,
        number=number,
        date=dt.date(int(day[:4]), int(day[4:6]), int(day[6:8])),
        amount=value if code else None,
        total=None if code else value,
        check_code=check or None,
    )


def _random_payload(rng: random.Random) -> str:
    day = dt.date(2019, 1, 1) + dt.timedelta(days=rng.randrange(0, 6 * 365))
    money = f"{rng.randrange(1, 5_000_000) / 100:.2f}"
    crc = f"{rng.randrange(0, 0x10000):04X}"
    if rng.random() < 0.5:
        year = f"{day.year % 100:02d}"
        number = year + "".join(rng.choice("0123456789") for _ in range(18))
        return f"01,{rng.choice(['31', '32'])},,{number},{money},{day:%Y%m%d},,{crc}"
    kind = rng.choice(["01", "04", "10", "20"])
    code = "".join(rng.choice("0123456789") for _ in range(10 if kind in ("01", "04") else 12))
    number = "".join(rng.choice("0123456789") for _ in range(8))
    check = "" if kind == "01" else "".join(rng.choice("0123456789") for _ in range(20))
    return f"01,{kind},{code},{number},{money},{day:%Y%m%d},{check},{crc}"


def _qr_bitmap(payload: str, module_px: int) -> Image.Image:
    code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    matrix = memoryview(code.to_image(scale=module_px, add_quiet_zones=False))
    return Image.frombytes("L", (matrix.shape[1], matrix.shape[0]), bytes(matrix))


def _synthetic_page(rng: random.Random, payload: str, qr_side: int) -> Image.Image:
    """A white invoice-like page: the QR top left, ruled boxes and text-like strokes."""
    page = Image.new("L", (1500, 1000), 250)
    draw = ImageDraw.Draw(page)
    draw.rectangle((50, 330, 1450, 950), outline=120, width=3)
    for y in range(400, 950, 80):
        draw.line((50, y, 1450, y), fill=150, width=2)
    for _ in range(160):
        x, y = rng.randrange(70, 1380), rng.randrange(345, 930)
        draw.rectangle((x, y, x + rng.randrange(12, 60), y + rng.randrange(8, 18)), fill=rng.randrange(30, 110))
    draw.text((600, 70), "INVOICE", fill=90)
    modules = _qr_bitmap(payload, 1).width
    qr = _qr_bitmap(payload, max(2, qr_side // modules))
    page.paste(qr, (80, 50))
    return page


def _corpus_page(name: str) -> Image.Image:
    path = CORPUS / name
    if name.endswith(".pdf"):
        doc = pdfium.PdfDocument(path.read_bytes())
        try:
            page = doc[0]
            width, height = page.get_size()
            bitmap = page.render(scale=1500 / max(width, height))
            image = bitmap.to_pil().convert("L")
            page.close()
        finally:
            doc.close()
        return image
    with Image.open(path) as im:
        im = im.convert("L")
        factor = 1500 / max(im.size)
        return im.resize((round(im.width * factor), round(im.height * factor)), Image.Resampling.LANCZOS)


# --- damage ------------------------------------------------------------------------------


def _on_desk(rng: random.Random, page: Image.Image, tilt: float, turn: float) -> Image.Image:
    """The page photographed on a desk: turned by `turn` degrees, its corners pulled by up to `tilt` of the side."""
    w, h = page.size
    margin = int(0.12 * max(w, h))
    cw, ch = w + 2 * margin, h + 2 * margin
    desk = Image.new("L", (cw, ch), rng.randrange(60, 120))
    desk.paste(page, (margin, margin))
    # One QUAD transform: for each output corner, the desk point it samples (turn + keystone + pulls).
    keystone = rng.uniform(0.3, 1.0) * tilt * cw / 2
    angle = math.radians(turn)
    corners = ((-keystone, 0), (0, ch), (cw, ch), (cw + keystone, 0))
    quad: list[float] = []
    for x, y in corners:
        dx, dy = x - cw / 2, y - ch / 2
        quad.append(cw / 2 + dx * math.cos(angle) - dy * math.sin(angle) + rng.uniform(-1, 1) * tilt * cw / 2)
        quad.append(ch / 2 + dx * math.sin(angle) + dy * math.cos(angle) + rng.uniform(-1, 1) * tilt * ch / 2)
    return desk.transform((cw, ch), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR, fillcolor=90)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _noise(rng: random.Random, image: Image.Image, amplitude: float) -> Image.Image:
    """Sensor noise: seeded uniform noise of ± `amplitude` grey levels added to every pixel."""
    raw = Image.frombytes("L", image.size, rng.randbytes(image.width * image.height))
    scale = amplitude / 128
    noise = raw.point(lambda v: round(128 + (v - 128) * scale))
    return ImageChops.add(image, noise, scale=1.0, offset=-128)


def _glare(rng: random.Random, image: Image.Image, centre: tuple[int, int], radius: int, strength: float) -> Image.Image:
    """A bright, soft-edged blob: flash reflection on glossy paper."""
    mask = Image.new("L", image.size, 0)
    cx, cy = centre
    ImageDraw.Draw(mask).ellipse((cx - radius, cy - radius * 0.7, cx + radius, cy + radius * 0.7), fill=round(255 * strength))
    mask = mask.filter(ImageFilter.GaussianBlur(radius / 3))
    white = Image.new("L", image.size, 255)
    return Image.composite(white, image, mask)


def _damage(rng: random.Random, page: Image.Image, damage: str, qr_box: tuple[int, int, int, int]) -> bytes:
    """JPEG bytes of `page` photographed with one main kind of damage (and the usual mild rest).

    `qr_box` is the QR's left, top, side and modules a side on the page. "mixed" is a
    milder dose of tilt, blur, low light and JPEG loss at once, as real photos have.
    """
    mixed = damage == "mixed"
    qx, qy, qside, modules = qr_box
    if damage == "glare":
        # The reflection covers part of the code, never its three finder patterns at once.
        centre = (qx + rng.randrange(qside // 3, qside), qy + rng.randrange(qside // 3, qside))
        page = _glare(rng, page, centre, rng.randrange(qside // 5, qside // 3), rng.uniform(0.55, 0.8))
    tilt = rng.uniform(0.08, 0.16) if damage == "tilt" else rng.uniform(0.04, 0.08) if mixed else rng.uniform(0.0, 0.03)
    turn = rng.uniform(-15, 15) if damage == "tilt" else rng.uniform(-8, 8) if mixed else rng.uniform(-3, 3)
    photo = _on_desk(rng, page, tilt, turn)
    if damage == "small":
        # The QR ends up 1.5–2.2 px per module: a whole desk shot from far away.
        factor = rng.uniform(1.5, 2.2) / (qside / modules)
        photo = photo.resize((round(photo.width * factor), round(photo.height * factor)), Image.Resampling.BOX)
    else:
        photo = photo.resize((round(photo.width * 0.9), round(photo.height * 0.9)), Image.Resampling.BILINEAR)
    module = qside / modules * (photo.width / (page.width * 1.24))
    if damage == "blur":
        photo = photo.filter(ImageFilter.GaussianBlur(module * rng.uniform(0.3, 0.55)))
    elif mixed:
        photo = photo.filter(ImageFilter.GaussianBlur(module * rng.uniform(0.25, 0.4)))
    else:
        photo = photo.filter(ImageFilter.GaussianBlur(module * rng.uniform(0.1, 0.3)))
    if damage == "lowlight":
        low, high = rng.randrange(5, 25), rng.randrange(55, 90)
        photo = photo.point(lambda v: low + (high - low) * (v / 255) ** 1.4)
        photo = _noise(rng, photo, rng.uniform(6, 12))
    elif mixed:
        low, high = rng.randrange(15, 35), rng.randrange(100, 150)
        photo = photo.point(lambda v: low + (high - low) * (v / 255) ** 1.2)
        photo = _noise(rng, photo, rng.uniform(4, 8))
    quality = rng.randrange(6, 14) if damage == "jpeg" else rng.randrange(20, 35) if mixed else rng.randrange(45, 80)
    if damage == "jpeg":
        photo = _noise(rng, photo, rng.uniform(8, 16))
    return _jpeg(photo, quality)


def _qr_box_of(page: Image.Image) -> tuple[int, int, int, int]:
    """Left, top, side and modules a side of the QR on a clean page (as zxing finds it)."""
    [found] = zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)
    pos = found.position
    xs = [pos.top_left.x, pos.top_right.x, pos.bottom_left.x, pos.bottom_right.x]
    ys = [pos.top_left.y, pos.top_right.y, pos.bottom_left.y, pos.bottom_right.y]
    modules = 17 + 4 * int(found.extra["Version"])
    return min(xs), min(ys), max(max(xs) - min(xs), max(ys) - min(ys)), modules


def photos(count: int = 72, seed: int = SEED) -> list[Photo]:
    """`count` damaged photos, cycling through the damages; the same seed gives the same set."""
    sources = list(_CORPUS_QR.items())  # insertion order: part of what the seed fixes
    pages: dict[str, Image.Image] = {}
    out = []
    for index in range(count):
        rng = random.Random(f"{seed}:{index}")
        damage = DAMAGES[index % len(DAMAGES)]
        if rng.random() < 0.4:
            name, payload = rng.choice(sources)
            if name not in pages:
                pages[name] = _corpus_page(name)
            page = pages[name]
        else:
            payload = _random_payload(rng)
            name = f"synthetic-{index}"
            page = _synthetic_page(rng, payload, rng.randrange(150, 250))
        box = _qr_box_of(page)
        out.append(Photo(f"{index:03d}-{damage}-{name}", damage, _damage(rng, page, damage, box), expected_from_payload(payload)))
    return out


def score(expected: Expected, got) -> tuple[int, int, int]:
    """(fields right, fields wrong, fields expected) for one reading (`got` may be None)."""
    right = wrong = total = 0
    for field in FIELDS:
        want = getattr(expected, field)
        if want is None:
            continue
        total += 1
        have = getattr(got, field, None) if got is not None else None
        if have is None:
            continue
        if have == want:
            right += 1
        else:
            wrong += 1
    return right, wrong, total

