"""The VAT invoice QR code: payload parsing and a tiered zxing-cpp scan of images.

Payload: `01,<type>,<code>,<number>,<amount>,<yyyyMMdd>,<check code>,<crc>`. For 数电
invoices the code (and check code) is empty, the number has 20 digits and the amount
field is the total including tax; for legacy invoices it is the pre-tax amount.

The scan is tiered because almost all files decode at once at a modest resolution
(rendered e-invoices, scans, most photos) while a few phone photos need help: the first
read also reports codes zxing located but could not decode, and the rescue passes then
enlarge, sharpen, contrast-stretch and globally binarise crops around those codes, then
around the page corners, cheapest first, stopping at the first success. zxing's own
detector already handles rotation and perspective, so there are no rotated retries.

A payload is taken only when every field passes its own check (kind, code and number
lengths, a real date, money to the cent, a 20-digit check code): the QR's error
correction makes a misread rare, and the checks make a wrong value rarer still.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
from collections.abc import Callable, Iterator

import zxingcpp
from PIL import Image, ImageFilter, ImageOps

from portal.files.limits import check_image as check_image_size

from .model import Invoice, parse_date, parse_money

_QR_ONLY = zxingcpp.BarcodeFormat.QRCode
_VERSION_RE = re.compile(r"^\d{2}$")
_KIND_RE = re.compile(r"\d{2}")
_CODE_RE = re.compile(r"\d{10}|\d{12}")
# The QR's amount: plain decimal with at most two decimals (a red-letter invoice is negative).
_MONEY_RE = re.compile(r"-?\d{1,12}(?:\.\d{1,2})?")

# Long side of the first, fast attempt. Invoice QR modules stay ≥ 3 px at this size on a
# whole-invoice photo, and decoding 1.4 MP takes a few ms.
FAST_SIDE = 1400
# A large JPEG is first decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps at
# least this long side.
DRAFT_SIDE = 1000
# A located but unreadable code is cropped and enlarged to this long side (≥ 6 px a module
# for the version 4–8 codes on VAT invoices); a corner crop to at most CORNER_SIDE.
LOCATED_SIDE = 700
CORNER_SIDE = 1400
# At most this many located codes are retried (a page of noise can "locate" dozens).
MAX_LOCATED = 3
# The rescue passes may hand zxing this many pixels in all: what bounds a photo without a
# QR code, the same on a fast or a loaded machine.
RESCUE_PIXELS = 8_000_000
# ... and the ladder gives up after this long whatever the pixels: a worker is never held.
SCAN_BUDGET_S = 1.5


def parse_payload(text: str | None) -> Invoice | None:
    """Invoice fields from a VAT QR payload, or None when the text is not a valid one.

    Every field must pass its check (reference D.1/D.2): a legacy code has 10 or 12
    digits and then the number 8; without a code the number has 8–20 digits; the check
    code, when present, 20 digits; the date is a real day from 1990 to next year; the
    money has at most two decimals. One failed check refuses the whole payload — a field
    is never taken from a payload another field shows to be damaged.
    """
    if not text or len(text) > 300:
        return None
    parts = [p.strip() for p in text.strip().split(",")]
    if len(parts) < 7 or not _VERSION_RE.match(parts[0]):
        return None
    kind, code, number, money, day, check = parts[1:7]
    if not _KIND_RE.fullmatch(kind):
        return None
    if code and not (_CODE_RE.fullmatch(code) and re.fullmatch(r"\d{8}", number)):
        return None
    if not re.fullmatch(r"\d{8,20}", number):
        return None
    if check and not re.fullmatch(r"\d{20}", check):
        return None
    if not _MONEY_RE.fullmatch(money):
        return None
    date = parse_date(day) if re.fullmatch(r"\d{8}", day) else None
    if date is None or date.year > dt.date.today().year + 1:
        return None
    value = parse_money(money)
    if value is None:
        return None
    inv = Invoice(
        source="qr",
        type=kind,
        code=code or None,
        number=number,
        date=date,
        check_code=check or None,
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
    return [r.text for r in results if r.valid and r.text]


def _read_locating(image: Image.Image) -> tuple[list[str], list[tuple[int, int, int, int]]]:
    """Decoded texts, and the boxes of QR codes zxing located but could not decode.

    Asking for the failures costs nothing extra: the detector has found them anyway, and
    a located code is where the rescue passes should look first.
    """
    texts, boxes = [], []
    for r in zxingcpp.read_barcodes(image, formats=_QR_ONLY, try_invert=False, return_errors=True):
        if r.valid and r.text:
            texts.append(r.text)
            continue
        p = r.position
        xs = (p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x)
        ys = (p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y)
        if max(xs) - min(xs) >= 8 and max(ys) - min(ys) >= 8:
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
    return texts, boxes


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if factor < 1:
        # reducing_gap lets Pillow box-reduce first: several times faster on big photos.
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image.resize(size, Image.Resampling.BICUBIC)


def _corners(image: Image.Image, part: float = 0.5) -> Iterator[Image.Image]:
    """The four corner crops, top-left first (where VAT invoices print the QR)."""
    w, h = image.size
    cw, ch = round(w * part), round(h * part)
    for left, top in ((0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch)):
        yield image.crop((left, top, left + cw, top + ch))


def _located_crops(base: Image.Image, fast: Image.Image, boxes: list[tuple[int, int, int, int]]) -> Iterator[Image.Image]:
    """Crops of `base` around the codes located on `fast`, with a margin for the quiet zone."""
    ratio = base.width / fast.width
    seen: list[tuple[int, int, int, int]] = []
    for left, top, right, bottom in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        # Several partial detections of one code overlap: look at each region once.
        cx, cy = (left + right) / 2, (top + bottom) / 2
        if any(s[0] <= cx <= s[2] and s[1] <= cy <= s[3] for s in seen):
            continue
        seen.append((left, top, right, bottom))
        margin = 0.6 * max(right - left, bottom - top)
        box = (
            max(0, round((left - margin) * ratio)),
            max(0, round((top - margin) * ratio)),
            min(base.width, round((right + margin) * ratio)),
            min(base.height, round((bottom + margin) * ratio)),
        )
        yield base.crop(box)
        if len(seen) >= MAX_LOCATED:
            return


def _variants(crop: Image.Image, side: int, *, all_kinds: bool = True) -> Iterator[tuple[Image.Image, dict]]:
    """A crop enlarged to about `side` pixels, then sharpened, contrast-stretched, globally binarised.

    Cheapest first. Enlarging gives a small or blurred code's modules enough pixels for
    the detector; unsharp masking undoes a mild defocus (done before enlarging: a quarter
    of the pixels, and the radius then matches the photo's own blur); stretching the grey
    range first helps a dark photo; the global binariser copes with glare that fools the
    local one. Without `all_kinds`, only the sharpened enlargement, which rescues most.
    """
    factor = side / max(crop.size)

    def enlarged(image: Image.Image) -> Image.Image:
        return _scaled(image, factor) if factor > 1.05 else image

    if not all_kinds:
        yield enlarged(crop.filter(ImageFilter.UnsharpMask(2, 250, 0))), {}
        return
    big = enlarged(crop)
    yield big, {}
    yield enlarged(crop.filter(ImageFilter.UnsharpMask(2, 250, 0))), {}
    yield enlarged(ImageOps.autocontrast(crop, cutoff=1).filter(ImageFilter.UnsharpMask(2, 250, 0))), {}
    yield big, {"binarizer": zxingcpp.Binarizer.GlobalHistogram}


def scan_gray(gray: Image.Image, load_full: Callable[[], Image.Image] | None = None) -> list[str]:
    """QR texts found in a grayscale image, trying cheap passes before expensive ones.

    `gray` may be a reduced decode (a JPEG at 1/4 scale); `load_full` then returns the
    full-resolution image, decoded only if the cheap passes fail.
    """
    w, h = gray.size
    # Reducing costs a resize; only worth it when the image is well over the fast size.
    fast = gray if max(w, h) <= 1.5 * FAST_SIDE else _scaled(gray, FAST_SIDE / max(w, h))
    found, located = _read_locating(fast)
    if found:
        return found
    return _rescue(fast, located, load_full() if load_full is not None else gray)


def _rescue(fast: Image.Image, located: list[tuple[int, int, int, int]], base: Image.Image) -> list[str]:
    """The retries for a photo whose QR the first read missed, in order of cost.

    Bounded twice: by the pixels handed to zxing (deterministic: the same photo always
    gets the same tries) and by a wall-clock budget, so a photo without any QR code
    cannot hold a worker.
    """
    started = time.perf_counter()
    spent = 0

    def attempts() -> Iterator[tuple[Image.Image, dict]]:
        if base.size != fast.size:
            # The reduction lost the modules of a small QR; look at the native pixels.
            yield base, {}
        # A code the detector located but could not decode: enlarge and sharpen just that.
        for crop in _located_crops(base, fast, located):
            yield from _variants(crop, LOCATED_SIDE)
        # Then the corners, where VAT invoices print the code: the top-left one (the QR
        # corner) gets every variant, the others the sharpened enlargement only.
        for index, crop in enumerate(_corners(base)):
            if max(crop.size) > CORNER_SIDE:
                crop = _scaled(crop, CORNER_SIDE / max(crop.size))
            yield from _variants(crop, min(CORNER_SIDE, 2 * max(crop.size)), all_kinds=index == 0)
        # Uneven light over the whole page.
        yield fast, {"binarizer": zxingcpp.Binarizer.GlobalHistogram}

    for image, options in attempts():
        if time.perf_counter() - started > SCAN_BUDGET_S:
            break
        if image is base:
            found = _read(base)  # the native pixels: counted apart, as their size is the photo's own
        else:
            spent += image.width * image.height
            if spent > RESCUE_PIXELS:
                break
            found = _read(image, try_downscale=False, **options)
        if found:
            return found
    return []


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
