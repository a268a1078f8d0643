"""The VAT invoice QR code: payload parsing and a tiered zxing-cpp scan of images.

Payload: `01,<type>,<code>,<number>,<amount>,<yyyyMMdd>,<check code>,<crc>`. For 数电
invoices the code (and check code) is empty, the number has 20 digits and the amount
field is the total including tax; for legacy invoices it is the pre-tax amount.

The scan is tiered because almost all files decode at once at a modest resolution
(rendered e-invoices, scans, most photos) while a few phone photos need the QR corner
blown up: the cheap tries come first and the expensive ones run only when those fail.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator

import zxingcpp
from PIL import Image, ImageOps

from portal.files.guards import check_image as check_image_size

from .model import Invoice, clean_digits, parse_date, parse_money

_QR_ONLY = zxingcpp.BarcodeFormat.QRCode
_VERSION_RE = re.compile(r"^\d{2}$")

# Long side of the first, fast attempt. Invoice QR modules stay ≥ 3 px at this size on a
# whole-invoice photo, and decoding 1.4 MP takes a few ms.
FAST_SIDE = 1400
# A large JPEG is first decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps at
# least this long side.
DRAFT_SIDE = 1000
# Upscaled retries are bounded so a large photo cannot make a retry cost seconds.
MAX_RETRY_PIXELS = 6_000_000
# The whole ladder gives up after this long; a photo with no QR must not hold a worker.
SCAN_BUDGET_S = 0.6


def parse_payload(text: str | None) -> Invoice | None:
    """Invoice fields from a VAT QR payload, or None when the text is not one."""
    if not text or len(text) > 300:
        return None
    parts = [p.strip() for p in text.strip().split(",")]
    if len(parts) < 7 or not _VERSION_RE.match(parts[0]):
        return None
    kind, code, number, money, day, check = parts[1:7]
    number = clean_digits(number)
    date = parse_date(day) if re.fullmatch(r"\d{8}", day) else None
    value = parse_money(money)
    if not number or not (8 <= len(number) <= 20) or date is None or value is None:
        return None
    code = clean_digits(code) if code else None
    inv = Invoice(
        source="qr",
        type=kind if re.fullmatch(r"\d{1,3}", kind) else None,
        code=code,
        number=number,
        date=date,
        check_code=clean_digits(check) if check else None,
        raw={"qr": text.strip()},
    )
    # No invoice code means 数电 (see module docstring): the figure is the tax-included total.
    if code:
        inv.amount = value
    else:
        inv.total = value
    return inv


def _read(image: Image.Image, **options: object) -> list[str]:
    results = zxingcpp.read_barcodes(image, formats=_QR_ONLY, try_invert=False, **options)
    return [r.text for r in results if r.text]


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if factor < 1:
        # reducing_gap lets Pillow box-reduce first: several times faster on big photos.
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image.resize(size, Image.Resampling.BILINEAR)


def _corners(image: Image.Image, part: float = 0.6) -> Iterator[Image.Image]:
    """The four overlapping corner crops, top-left first (where VAT invoices print the QR)."""
    w, h = image.size
    cw, ch = round(w * part), round(h * part)
    for left, top in ((0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch)):
        yield image.crop((left, top, left + cw, top + ch))


def scan_gray(gray: Image.Image, load_full: Callable[[], Image.Image] | None = None) -> list[str]:
    """QR texts found in a grayscale image, trying cheap passes before expensive ones.

    `gray` may be a reduced decode (a JPEG at 1/4 scale); `load_full` then returns the
    full-resolution image, decoded only if the cheap passes fail.
    """
    started = time.perf_counter()
    w, h = gray.size
    # Reducing costs a resize; only worth it when the image is well over the fast size.
    fast = gray if max(w, h) <= 1.5 * FAST_SIDE else _scaled(gray, FAST_SIDE / max(w, h))
    found = _read(fast)
    if found:
        return found
    base = load_full() if load_full is not None else gray
    if base.size != fast.size:
        # The reduction lost the modules of a small QR; look at the native pixels.
        found = _read(base)
        if found:
            return found
    # Blur and low contrast in phone photos: magnify the QR corner first, then the rest.
    bw, bh = base.size
    for factor in (1.5, 2.0):
        crop_pixels = bw * bh * 0.36 * factor * factor
        for crop in _corners(base if crop_pixels <= MAX_RETRY_PIXELS else fast):
            if time.perf_counter() - started > SCAN_BUDGET_S:
                return []
            found = _read(_scaled(crop, factor), try_downscale=False)
            if found:
                return found
    if time.perf_counter() - started <= SCAN_BUDGET_S:
        # A last look with the global binariser, which copes with uneven lighting differently.
        found = _read(fast, binarizer=zxingcpp.Binarizer.GlobalHistogram)
    return found


def scan_small_qr_image(image: Image.Image) -> list[str]:
    """QR texts from a bare QR bitmap (an OFD resource): add a quiet zone, enlarge if tiny."""
    check_image_size(image)
    gray = _to_gray(image)
    w, h = gray.size
    if max(w, h) < 300:
        factor = max(1, 300 // max(w, h, 1))
        gray = gray.resize((w * factor, h * factor), Image.Resampling.NEAREST)
    gray = ImageOps.expand(gray, border=max(16, gray.size[0] // 10), fill=255)
    return _read(gray) or _read(gray, binarizer=zxingcpp.Binarizer.GlobalHistogram)


def _to_gray(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels would turn black in a plain convert; put them on white paper.
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("L")
    return image.convert("L")


def scan_image(image: Image.Image, data: bytes | None = None) -> list[str]:
    """QR texts from an opened, not yet loaded image (one frame).

    A large JPEG is decoded at a reduced DCT scale first (Pillow's draft mode): several
    times cheaper than decoding a 12 MP photo, and enough for most QR codes. The full
    image is decoded from `data` only when the reduced one yields nothing.
    """
    check_image_size(image)
    w, h = image.size
    ratio = DRAFT_SIDE / max(w, h)
    if image.format == "JPEG" and data is not None and ratio < 0.5:
        image.draft("L", (max(1, int(w * ratio)), max(1, int(h * ratio))))

        def load_full() -> Image.Image:
            return _to_gray(Image.open(io.BytesIO(data), formats=["JPEG"]))

        return scan_gray(_to_gray(image), load_full)
    return scan_gray(_to_gray(image))
