"""Best-effort OFD (GB/T 33190) page renderer on top of Pillow.

An OFD file is a zip package: ``OFD.xml`` names a document root (``Doc_0/Document.xml``),
which lists pages (``Pages/Page_N/Content.xml``), template pages, resource files
(``PublicRes.xml`` / ``DocumentRes.xml``: fonts, draw parameters, images, composite units)
and annotations (stamps, watermarks).  This module reads such a package defensively and
draws one page at a time onto a Pillow canvas.

It is not a conforming OFD viewer.  It aims at making Chinese e-invoices readable:
text at its positions, table lines and boxes, the QR code and stamp images.  Not
supported: embedded font programs (a system CJK font is used instead), shadings,
patterns, dash patterns, blend modes other than a plain paste, digital-signature
appearance streams.

Safety: the zip is checked against member-count and size limits before anything is
read, member names that are absolute or climb out with ``..`` are ignored, every XML
part is parsed with :mod:`defusedxml`, embedded images go through Pillow's
decompression-bomb guard, and the number of drawn objects per page is capped.

No Flask imports here: this is a plain library used by :mod:`portal.files.media`.
"""

from __future__ import annotations

import functools
import io
import math
import os
import posixpath
import re
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Iterator
from xml.etree.ElementTree import Element

from PIL import Image, ImageChops, ImageDraw, ImageFont

from portal.files import limits
from portal.files.guards import PDFIUM_LOCK, SafeZip, UnsafeFile, parse_xml, safe_member_name

__all__ = [
    "OFDError",
    "OFDDocument",
    "is_ofd",
    "page_count",
    "render_page",
]

MM_PER_INCH = 25.4
DEFAULT_PAGE_MM = (210.0, 297.0)  # A4 portrait when a page says nothing about its size
DEFAULT_LINE_WIDTH_MM = 0.353  # spec default: 1/72 inch
CLIP_BUDGET_CANVASES = 64  # scratch pixels for clipped objects, in whole-canvas units
MAX_NESTING = 8  # composite units / page blocks nested deeper than this are ignored
MAX_CURVE_SEGMENTS = 24

# Fonts shipped by Debian's fonts-noto-cjk; serif for Song/Kai/Fang families (closest to
# what invoices use), sans for Hei and everything else.
_CJK_SANS = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
_CJK_SERIF = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
_MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
_SERIF_HINTS = ("宋", "楷", "仿", "song", "kai", "fang", "simsun", "serif", "times", "ming")
_MONO_HINTS = ("courier", "mono", "consol")


class OFDError(ValueError):
    """The OFD package is corrupt, unsafe or unreadable (message is user-facing Chinese)."""


# --------------------------------------------------------------------------- package


def _local(tag: object) -> str:
    """Local name of an element tag, without any ``{namespace}``."""
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rsplit("}", 1)[-1]


def _children(el: Element, name: str) -> Iterator[Element]:
    for child in el:
        if _local(child.tag) == name:
            yield child


def _child(el: Element | None, name: str) -> Element | None:
    if el is None:
        return None
    return next(_children(el, name), None)


def _child_text(el: Element | None, name: str) -> str | None:
    child = _child(el, name)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


_safe_member_name = safe_member_name


class OFDPackage:
    """Read-only OFD view over the one :class:`~portal.files.guards.SafeZip` (limits from config).

    ``source`` may be the bytes or an archive already opened by another reader of the
    same upload, so an OFD is inflated once however many readers look at it.
    """

    def __init__(self, source: bytes | bytearray | memoryview | io.IOBase | SafeZip):
        if isinstance(source, SafeZip):
            self._zip = source
        else:
            data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else source.read()
            try:
                self._zip = SafeZip(data)
            except UnsafeFile as exc:
                raise OFDError(f"OFD {exc}") from exc
            except ValueError as exc:
                raise OFDError("OFD 文件已损坏或无法读取") from exc
        self._xml_cache: dict[str, Element] = {}

    def close(self) -> None:
        """Forget the parsed parts (the archive belongs to whoever opened it)."""
        self._xml_cache.clear()

    @property
    def names(self) -> list[str]:
        """All safe member names."""
        return self._zip.names()

    def find(self, name: str | None) -> str | None:
        """The member name matching ``name`` (exactly, else case-insensitively), or None."""
        return self._zip.find(name)

    def read(self, name: str) -> bytes:
        """Bytes of a member, enforcing the per-member and running total limits."""
        real = self.find(name)
        if real is None:
            raise OFDError("OFD 文件缺少必要的组成部分")
        try:
            data = self._zip.read(real)
        except UnsafeFile as exc:
            raise OFDError(f"OFD {exc}") from exc
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise OFDError("OFD 文件已损坏或无法读取") from exc
        if data is None:
            raise OFDError("OFD 文件解压后过大，已拒绝")
        return data

    def xml(self, name: str) -> Element:
        """Parsed XML of a member (cached); DTDs and entities are refused."""
        real = self.find(name)
        if real is None:
            raise OFDError("OFD 文件缺少必要的组成部分")
        cached = self._xml_cache.get(real)
        if cached is None:
            data = self.read(real)
            try:
                cached = parse_xml(data, limit=len(data))
            except UnsafeFile as exc:
                raise OFDError(f"OFD {exc}") from exc
            except Exception as exc:  # ParseError, unknown encodings and friends
                raise OFDError("OFD 文件已损坏或无法读取") from exc
            self._xml_cache[real] = cached
        return cached


def _resolve(base_dir: str, ref: str | None) -> str | None:
    """Resolve an OFD location: absolute ones from the package root, others from base_dir."""
    if not ref:
        return None
    ref = ref.strip().replace("\\", "/")
    if ref.startswith("/"):
        joined = ref.lstrip("/")
    else:
        joined = posixpath.join(base_dir, ref) if base_dir else ref
    norm = posixpath.normpath(joined)
    if norm.startswith("../") or norm == ".." or norm.startswith("/"):
        return None
    return norm


def is_ofd(source: bytes | io.IOBase) -> bool:
    """True when ``source`` opens as a zip whose root holds ``OFD.xml``."""
    try:
        fileobj = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
        with zipfile.ZipFile(fileobj) as zf:
            return any(_safe_member_name(n) == "OFD.xml" for n in zf.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return False


# --------------------------------------------------------------------------- numbers


def _floats(text: str | None) -> list[float]:
    if not text:
        return []
    return [float(tok) for tok in text.split()]


def _box(text: str | None) -> tuple[float, float, float, float] | None:
    try:
        vals = _floats(text)
    except ValueError:
        return None
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        return None
    return vals[0], vals[1], vals[2], vals[3]


def _deltas(text: str | None) -> list[float]:
    """Expand an OFD DeltaX/DeltaY list where ``g N v`` means N times v."""
    if not text:
        return []
    out: list[float] = []
    toks = text.split()
    i = 0
    while i < len(toks):
        if toks[i] == "g" and i + 2 < len(toks):
            count = min(int(float(toks[i + 1])), 100_000)
            out.extend([float(toks[i + 2])] * max(count, 0))
            i += 3
        else:
            out.append(float(toks[i]))
            i += 1
    return out


# Affine matrices follow OFD's CTM order (a b c d e f): x' = a x + c y + e, y' = b x + d y + f.
Matrix = tuple[float, float, float, float, float, float]
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _compose(outer: Matrix, inner: Matrix) -> Matrix:
    """Matrix applying ``inner`` first, then ``outer``."""
    a1, b1, c1, d1, e1, f1 = inner
    a2, b2, c2, d2, e2, f2 = outer
    return (
        a2 * a1 + c2 * b1,
        b2 * a1 + d2 * b1,
        a2 * c1 + c2 * d1,
        b2 * c1 + d2 * d1,
        a2 * e1 + c2 * f1 + e2,
        b2 * e1 + d2 * f1 + f2,
    )


def _translate(x: float, y: float) -> Matrix:
    return (1.0, 0.0, 0.0, 1.0, x, y)


def _apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def _ctm(text: str | None) -> Matrix:
    try:
        vals = _floats(text)
    except ValueError:
        return IDENTITY
    if len(vals) != 6 or not all(math.isfinite(v) for v in vals):
        return IDENTITY
    return (vals[0], vals[1], vals[2], vals[3], vals[4], vals[5])


def _scale_of(m: Matrix) -> float:
    """Average linear scale of a matrix (sqrt of the absolute determinant)."""
    return math.sqrt(abs(m[0] * m[3] - m[1] * m[2]))


def _axis_aligned(m: Matrix) -> bool:
    return abs(m[1]) < 1e-9 and abs(m[2]) < 1e-9


# --------------------------------------------------------------------------- colours


def _parse_color(el: Element | None, colorspaces: dict[str, str]) -> tuple[int, int, int] | None | bool:
    """RGB of an OFD colour element; None when transparent; False when absent/unparseable."""
    if el is None:
        return False
    alpha = el.get("Alpha")
    if alpha is not None:
        try:
            if float(alpha) <= 0:
                return None
        except ValueError:
            pass
    value = el.get("Value")
    if not value:
        # Shadings (AxialShd/RadialShd) are not drawn; approximate with their first colour.
        for sub in el.iter():
            if sub is not el and _local(sub.tag) == "Color" and sub.get("Value"):
                return _parse_color(sub, colorspaces)
        return False
    try:
        comps = [int(tok[1:], 16) if tok.startswith("#") else float(tok) for tok in value.split()]
    except ValueError:
        return False
    space = colorspaces.get(el.get("ColorSpace", ""), "").upper()
    if len(comps) == 1 or space == "GRAY":
        g = int(max(0, min(255, comps[0])))
        return g, g, g
    if len(comps) >= 4 or space == "CMYK":
        if len(comps) < 4:
            return False
        c, m, y, k = (max(0.0, min(255.0, v)) / 255.0 for v in comps[:4])
        return tuple(int(round(255 * (1 - ch) * (1 - k))) for ch in (c, m, y))  # type: ignore[return-value]
    if len(comps) == 3:
        r, g, b = (int(max(0, min(255, v))) for v in comps)
        return r, g, b
    return False


# --------------------------------------------------------------------------- fonts


@functools.lru_cache(maxsize=1)
def _cjk_face_indexes() -> dict[str, int]:
    """TTC face index of the Simplified Chinese face in each Noto CJK collection."""
    found: dict[str, int] = {}
    for path in (_CJK_SANS, _CJK_SERIF):
        if not os.path.exists(path):
            continue
        found[path] = 0
        for idx in range(12):
            try:
                name = " ".join(ImageFont.truetype(path, 12, index=idx).getname())
            except OSError:
                break
            if " SC" in name and "Mono" not in name:
                found[path] = idx
                break
    return found


def cjk_font_available() -> bool:
    """True when a Noto CJK font is installed (otherwise Chinese text renders as boxes)."""
    return bool(_cjk_face_indexes())


def _font_file_for(name: str) -> tuple[str, int] | None:
    lowered = name.lower()
    faces = _cjk_face_indexes()
    if any(h in lowered for h in _MONO_HINTS) and os.path.exists(_MONO):
        return _MONO, 0
    if any(h in lowered for h in _SERIF_HINTS) and _CJK_SERIF in faces:
        return _CJK_SERIF, faces[_CJK_SERIF]
    if _CJK_SANS in faces:
        return _CJK_SANS, faces[_CJK_SANS]
    if faces:
        path, idx = next(iter(faces.items()))
        return path, idx
    return None


def get_font(name: str, px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A new Pillow font of ``px`` pixels for an OFD font name (Pillow's default as fallback).

    Not cached on purpose: each Noto CJK face costs ~3 MB of FreeType state but only
    ~1 ms to open, so long-lived caches (one face per size) would bloat a worker.
    Use a :class:`FontCache` for the span of one render instead.
    """
    px = max(1, min(px, 4000))
    chosen = _font_file_for(name)
    if chosen is not None:
        try:
            return ImageFont.truetype(chosen[0], px, index=chosen[1])
        except OSError:
            pass
    return ImageFont.load_default(size=px)


class FontCache:
    """Fonts for one render: shared by the glyphs of a page, dropped with it.

    Also keeps FreeType faces out of reach of other threads (a face is not thread-safe).
    """

    def __init__(self) -> None:
        self._fonts: dict[tuple[tuple[str, int] | None, int], ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}

    def get(self, name: str, px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        """Font for an OFD font name at ``px`` pixels."""
        px = max(1, min(px, 4000))
        key = (_font_file_for(name), px)
        font = self._fonts.get(key)
        if font is None:
            font = self._fonts[key] = get_font(name, px)
        return font


# --------------------------------------------------------------------------- paths


def _flatten_path(data: str) -> list[tuple[list[tuple[float, float]], bool]]:
    """Turn OFD AbbreviatedData into polylines: [(points, closed), ...]."""
    toks = data.replace(",", " ").split()
    subpaths: list[tuple[list[tuple[float, float]], bool]] = []
    pts: list[tuple[float, float]] = []
    cur = (0.0, 0.0)
    start = (0.0, 0.0)
    i = 0

    def nums(n: int) -> list[float]:
        nonlocal i
        vals = [float(t) for t in toks[i + 1 : i + 1 + n]]
        if len(vals) != n:
            raise ValueError("short path command")
        i += n + 1
        return vals

    def flush(closed: bool) -> None:
        nonlocal pts
        if len(pts) >= 2 or (closed and pts):
            subpaths.append((pts, closed))
        pts = []

    while i < len(toks):
        cmd = toks[i]
        if cmd in ("M", "S"):
            flush(False)
            x, y = nums(2)
            cur = start = (x, y)
            pts = [cur]
        elif cmd == "L":
            x, y = nums(2)
            if not pts:
                pts = [cur]
            cur = (x, y)
            pts.append(cur)
        elif cmd == "Q":
            x1, y1, x2, y2 = nums(4)
            if not pts:
                pts = [cur]
            x0, y0 = cur
            n = MAX_CURVE_SEGMENTS // 2
            for k in range(1, n + 1):
                t = k / n
                mt = 1 - t
                pts.append((mt * mt * x0 + 2 * mt * t * x1 + t * t * x2, mt * mt * y0 + 2 * mt * t * y1 + t * t * y2))
            cur = (x2, y2)
        elif cmd == "B":
            x1, y1, x2, y2, x3, y3 = nums(6)
            if not pts:
                pts = [cur]
            x0, y0 = cur
            n = MAX_CURVE_SEGMENTS
            for k in range(1, n + 1):
                t = k / n
                mt = 1 - t
                a, b, c, d = mt**3, 3 * mt * mt * t, 3 * mt * t * t, t**3
                pts.append((a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3))
            cur = (x3, y3)
        elif cmd == "A":
            rx, ry, angle, large, sweep, x, y = nums(7)
            if not pts:
                pts = [cur]
            pts.extend(_arc_points(cur, rx, ry, angle, bool(large), bool(sweep), (x, y)))
            cur = (x, y)
        elif cmd in ("C", "Z"):
            i += 1
            if pts:
                flush(True)
            cur = start
        else:
            i += 1  # stray number or unknown command: skip the token
    flush(False)
    return subpaths


def _arc_points(p0, rx, ry, phi_deg, large, sweep, p1) -> list[tuple[float, float]]:
    """Points of an elliptical arc given in endpoint form (same parameters as SVG's A)."""
    (x1, y1), (x2, y2) = p0, p1
    rx, ry = abs(rx), abs(ry)
    if rx < 1e-12 or ry < 1e-12 or (x1 == x2 and y1 == y2):
        return [p1]
    phi = math.radians(phi_deg)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    dx, dy = (x1 - x2) / 2, (y1 - y2) / 2
    x1p = cos_p * dx + sin_p * dy
    y1p = -sin_p * dx + cos_p * dy
    lam = (x1p * x1p) / (rx * rx) + (y1p * y1p) / (ry * ry)
    if lam > 1:
        rx, ry = rx * math.sqrt(lam), ry * math.sqrt(lam)
    num = rx * rx * ry * ry - rx * rx * y1p * y1p - ry * ry * x1p * x1p
    den = rx * rx * y1p * y1p + ry * ry * x1p * x1p
    coef = math.sqrt(max(0.0, num / den)) if den else 0.0
    if large == sweep:
        coef = -coef
    cxp, cyp = coef * rx * y1p / ry, -coef * ry * x1p / rx
    cx = cos_p * cxp - sin_p * cyp + (x1 + x2) / 2
    cy = sin_p * cxp + cos_p * cyp + (y1 + y2) / 2

    def ang(ux, uy, vx, vy):
        return math.atan2(ux * vy - uy * vx, ux * vx + uy * vy)

    t1 = ang(1, 0, (x1p - cxp) / rx, (y1p - cyp) / ry)
    dt = ang((x1p - cxp) / rx, (y1p - cyp) / ry, (-x1p - cxp) / rx, (-y1p - cyp) / ry)
    if not sweep and dt > 0:
        dt -= 2 * math.pi
    elif sweep and dt < 0:
        dt += 2 * math.pi
    n = max(2, int(MAX_CURVE_SEGMENTS * abs(dt) / math.pi))
    out = []
    for k in range(1, n + 1):
        t = t1 + dt * k / n
        ex, ey = rx * math.cos(t), ry * math.sin(t)
        out.append((cos_p * ex - sin_p * ey + cx, sin_p * ex + cos_p * ey + cy))
    return out


def _signed_area(poly: list[tuple[float, float]]) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1]))


def _paint_polys(draw: ImageDraw.ImageDraw, polys: list[list[tuple[float, float]]], even_odd: bool,
                 size: tuple[int, int], on: int | tuple[int, int, int]) -> None:
    """Fill several subpaths honouring the fill rule closely enough for invoices.

    Even-odd is exact (XOR of the subpaths).  Non-zero is approximated by orientation:
    subpaths wound like the largest one add, the others cut holes -- right for glyph-like
    outlines and rings, which is what invoice stamps and symbols are made of.
    ``draw`` must cover ``size`` pixels; holes are cut from this call's shapes only.
    """
    polys = [p for p in polys if len(p) >= 3]
    if not polys:
        return
    if len(polys) == 1:
        draw.polygon(polys[0], fill=on)
        return
    # Masks are "L" images holding 0/255: difference = XOR, subtract = AND NOT.
    if even_odd:
        acc = Image.new("L", size, 0)
        for poly in polys:
            one = Image.new("L", size, 0)
            ImageDraw.Draw(one).polygon(poly, fill=255)
            acc = ImageChops.difference(acc, one)
        draw.bitmap((0, 0), acc, fill=on)
        return
    areas = [_signed_area(p) for p in polys]
    main = max(range(len(polys)), key=lambda i: abs(areas[i]))
    sign = areas[main] >= 0
    solid = Image.new("L", size, 0)
    holes = Image.new("L", size, 0)
    solid_draw, hole_draw = ImageDraw.Draw(solid), ImageDraw.Draw(holes)
    for poly, area in zip(polys, areas):
        (solid_draw if (area >= 0) == sign else hole_draw).polygon(poly, fill=255)
    draw.bitmap((0, 0), ImageChops.subtract(solid, holes), fill=on)


# --------------------------------------------------------------------------- JBIG2


def _jbig2_to_image(data: bytes, target_px: tuple[int, int], max_pixels: int) -> Image.Image | None:
    """Decode a JBIG2 image by wrapping it in a one-page PDF that pdfium renders.

    Pillow cannot read JBIG2, but pdfium (already a dependency for PDFs) decodes
    ``/JBIG2Decode`` image streams.  Legacy e-invoice OFDs draw their QR code this way.
    """
    if data[:8] == b"\x97JB2\r\n\x1a\n":
        flags = data[8]
        body = data[9:] if flags & 0x02 else data[13:]  # page count present unless bit 1 set
        if flags & 0x01 == 0:
            return None  # random-access organisation: not embeddable as-is
    else:
        body = data
    size = _jbig2_page_size(body)
    if size is None:
        return None
    width, height = size
    if width <= 0 or height <= 0 or height == 0xFFFFFFFF or width * height > max_pixels:
        return None
    scale = max(target_px[0] / width, target_px[1] / height, 0.05)
    scale = min(scale, 8.0, math.sqrt(max_pixels / (width * height)))
    pdf = _single_image_pdf(body, width, height)
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            page = doc[0]
            try:
                bitmap = page.render(scale=scale)
                try:
                    return bitmap.to_pil().convert("L").copy()
                finally:
                    bitmap.close()
            finally:
                page.close()
        finally:
            doc.close()


def _jbig2_page_size(body: bytes) -> tuple[int, int] | None:
    """Width/height from the first page-information segment of an embedded JBIG2 stream."""
    pos = 0
    for _ in range(64):
        if pos + 11 > len(body):
            return None
        flags = body[pos + 4]
        seg_type = flags & 0x3F
        page_assoc_4 = bool(flags & 0x40)
        ref = body[pos + 5]
        count = ref >> 5
        hdr = pos + 6
        if count == 7:
            long_count = struct.unpack(">I", body[pos + 5 : pos + 9])[0] & 0x1FFFFFFF
            hdr = pos + 9 + (long_count + 8) // 8
            count = long_count
        seg_num = struct.unpack(">I", body[pos : pos + 4])[0]
        ref_size = 1 if seg_num <= 256 else (2 if seg_num <= 65536 else 4)
        hdr += count * ref_size
        hdr += 4 if page_assoc_4 else 1
        if hdr + 4 > len(body):
            return None
        length = struct.unpack(">I", body[hdr : hdr + 4])[0]
        data_start = hdr + 4
        if seg_type == 48:  # page information
            if data_start + 8 > len(body):
                return None
            return struct.unpack(">II", body[data_start : data_start + 8])
        if length == 0xFFFFFFFF:
            return None
        pos = data_start + length
    return None


def _single_image_pdf(stream: bytes, width: int, height: int) -> bytes:
    """A minimal PDF drawing one JBIG2 image over its whole page."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
        b"/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>" % (width, height),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 1 /Filter /JBIG2Decode /Length %d >>\nstream\n" % (width, height, len(stream))
        + stream
        + b"\nendstream",
    ]
    content = b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % (width, height)
    objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.5\n")
    offsets = []
    for num, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % num + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


# --------------------------------------------------------------------------- document


@dataclass
class _Resources:
    fonts: dict[str, str] = field(default_factory=dict)  # ID -> font name
    draw_params: dict[str, Element] = field(default_factory=dict)
    colorspaces: dict[str, str] = field(default_factory=dict)  # ID -> type
    media: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # ID -> (path, format)
    composites: dict[str, Element] = field(default_factory=dict)

    def load(self, pkg: OFDPackage, res_path: str, doc_dir: str) -> None:
        """Merge the resources declared in one resource file."""
        try:
            root = pkg.xml(res_path)
        except OFDError:
            return  # a missing resource file degrades the rendering, it does not fail it
        res_dir = posixpath.dirname(res_path)
        base = _resolve(res_dir, root.get("BaseLoc")) or res_dir
        self.load_element(root, pkg, base, doc_dir)

    def load_element(self, root: Element, pkg: OFDPackage, base: str, doc_dir: str) -> None:
        for el in root.iter():
            name = _local(el.tag)
            ident = el.get("ID")
            if not ident:
                continue
            if name == "Font":
                self.fonts[ident] = f"{el.get('FontName', '')} {el.get('FamilyName', '')}".strip()
            elif name == "DrawParam":
                self.draw_params[ident] = el
            elif name == "ColorSpace":
                self.colorspaces[ident] = el.get("Type", "RGB")
            elif name == "MultiMedia":
                ref = _child_text(el, "MediaFile")
                path = _resolve(base, ref)
                if path is not None and pkg.find(path) is None and ref:
                    # Producers disagree on what BaseLoc is relative to: try the usual places.
                    for cand in (_resolve(doc_dir, ref), _resolve(doc_dir, "Res/" + posixpath.basename(ref))):
                        if cand and pkg.find(cand):
                            path = cand
                            break
                self.media[ident] = (path, (el.get("Format") or "").upper())
            elif name == "CompositeGraphicUnit":
                self.composites[ident] = el


@dataclass
class _Page:
    ident: str | None
    path: str


@dataclass
class _Style:
    stroke: tuple[int, int, int] | None
    fill: tuple[int, int, int] | None
    line_width: float


class OFDDocument:
    """The first document of an OFD package: its pages, templates, resources and annotations."""

    def __init__(self, source: bytes | io.IOBase | SafeZip):
        self.pkg = OFDPackage(source)
        ofd = self.pkg.xml("OFD.xml")
        body = _child(ofd, "DocBody")
        doc_root = _resolve("", _child_text(body, "DocRoot"))
        if doc_root is None or self.pkg.find(doc_root) is None:
            raise OFDError("OFD 文件已损坏或无法读取")
        self.doc_path = doc_root
        self.doc_dir = posixpath.dirname(doc_root)
        doc = self.pkg.xml(doc_root)
        common = _child(doc, "CommonData")
        self.default_box = _box(_child_text(_child(common, "PageArea"), "PhysicalBox"))

        self.res = _Resources()
        for tag in ("PublicRes", "DocumentRes"):
            for el in _children(common, tag) if common is not None else ():
                path = _resolve(self.doc_dir, el.text)
                if path:
                    self.res.load(self.pkg, path, self.doc_dir)

        self.templates: dict[str, str] = {}
        for el in _children(common, "TemplatePage") if common is not None else ():
            path = _resolve(self.doc_dir, el.get("BaseLoc"))
            if el.get("ID") and path:
                self.templates[el.get("ID", "")] = path

        self.pages: list[_Page] = []
        seen: set[str] = set()
        for el in _children(_child(doc, "Pages") or Element("x"), "Page"):
            path = _resolve(self.doc_dir, el.get("BaseLoc"))
            real = self.pkg.find(path)
            if real and real not in seen:
                seen.add(real)
                self.pages.append(_Page(el.get("ID"), real))
        self.pages.extend(self._orphan_pages(seen))

        self.annotations: dict[str, list[str]] = {}
        annots = _resolve(self.doc_dir, _child_text(doc, "Annotations"))
        if annots and self.pkg.find(annots):
            try:
                root = self.pkg.xml(annots)
            except OFDError:
                root = None
            for el in _children(root, "Page") if root is not None else ():
                loc = _resolve(posixpath.dirname(annots), _child_text(el, "FileLoc"))
                if loc and el.get("PageID"):
                    self.annotations.setdefault(el.get("PageID", ""), []).append(loc)

    def _orphan_pages(self, seen: set[str]) -> list[_Page]:
        """Page content files present in the package but missing from Document.xml.

        Some producers (seen on a signed invoice whose 销售货物清单 page exists as
        ``Pages/Page_1`` but is not listed) leave pages out of the page list; an image
        system must not hide part of an invoice, so such pages are appended in order.
        """
        prefix = (self.doc_dir + "/") if self.doc_dir else ""
        pattern = re.compile(re.escape(prefix) + r"Pages/Page_(\d+)/Content\.xml$", re.IGNORECASE)
        found = []
        for name in self.pkg.names:
            m = pattern.match(name)
            if m and name not in seen:
                found.append((int(m.group(1)), name))
        return [_Page(None, name) for _, name in sorted(found)]

    def __len__(self) -> int:
        return len(self.pages)

    def close(self) -> None:
        """Release the package."""
        self.pkg.close()

    def page_size_mm(self, index: int) -> tuple[float, float, float, float]:
        """PhysicalBox (x, y, width, height) of a page in millimetres."""
        page_el = self.pkg.xml(self.pages[index].path)
        box = _box(_child_text(_child(page_el, "Area"), "PhysicalBox"))
        if box is None:
            for tpl in _children(page_el, "Template"):
                path = self.templates.get(tpl.get("TemplateID", ""))
                if path and self.pkg.find(path):
                    box = _box(_child_text(_child(self.pkg.xml(path), "Area"), "PhysicalBox"))
                    if box:
                        break
        box = box or self.default_box
        if box is None or not (0 < box[2] < 10_000 and 0 < box[3] < 10_000):
            box = (0.0, 0.0, *DEFAULT_PAGE_MM)
        return box

    def render(self, index: int, *, max_side: int, max_pixels: int = 50_000_000) -> Image.Image:
        """Render page ``index`` to an RGB image whose longest side is ``max_side`` pixels."""
        if not 0 <= index < len(self.pages):
            raise IndexError(index)
        x0, y0, w, h = self.page_size_mm(index)
        ppm = max_side / max(w, h)
        size = (max(1, round(w * ppm)), max(1, round(h * ppm)))
        canvas = Image.new("RGB", size, "white")
        base = _compose((ppm, 0.0, 0.0, ppm, 0.0, 0.0), _translate(-x0, -y0))
        _Painter(self, canvas, max_pixels).page(self.pages[index], base)
        return canvas


# --------------------------------------------------------------------------- painter


class _Painter:
    """Draws the objects of one page onto a canvas."""

    def __init__(self, doc: OFDDocument, canvas: Image.Image, max_pixels: int):
        self.doc = doc
        self.res = doc.res
        self.canvas = canvas
        self.target = canvas
        self.draw = ImageDraw.Draw(canvas)
        self.max_pixels = max_pixels
        # Work budgets so that a hostile page cannot keep a worker busy for minutes:
        # objects, glyphs and path points all draw from one count of operations.
        self.budget = limits.current().max_draw_ops
        self.clip_budget = CLIP_BUDGET_CANVASES * canvas.width * canvas.height
        self.image_cache: dict[str, Image.Image | None] = {}
        self.fonts = FontCache()

    # -- structure ----------------------------------------------------------

    def page(self, page: _Page, base: Matrix) -> None:
        page_el = self.doc.pkg.xml(page.path)
        page_res = _Resources(self.res.fonts.copy(), self.res.draw_params.copy(), self.res.colorspaces.copy(),
                              self.res.media.copy(), self.res.composites.copy())
        for el in _children(page_el, "PageRes"):
            path = _resolve(posixpath.dirname(page.path), el.text)
            if path:
                page_res.load(self.doc.pkg, path, self.doc.doc_dir)
        self.res = page_res

        templates = list(_children(page_el, "Template"))
        back = [t for t in templates if t.get("ZOrder", "Background") != "Foreground"]
        front = [t for t in templates if t.get("ZOrder") == "Foreground"]
        for tpl in back:
            self._template(tpl, base)
        self._content(page_el, base)
        for tpl in front:
            self._template(tpl, base)
        if page.ident:
            for loc in self.doc.annotations.get(page.ident, []):
                self._annotations(loc, base)

    def _template(self, tpl: Element, base: Matrix) -> None:
        path = self.doc.templates.get(tpl.get("TemplateID", ""))
        if not path or not self.doc.pkg.find(path):
            return
        try:
            self._content(self.doc.pkg.xml(path), base)
        except OFDError:
            return

    def _content(self, page_el: Element, base: Matrix) -> None:
        content = _child(page_el, "Content")
        if content is None:
            return
        layers = list(_children(content, "Layer"))
        order = {"Background": 0, "Body": 1, "Foreground": 2, "Custom": 1}
        layers.sort(key=lambda el: order.get(el.get("Type", "Body"), 1))  # stable: keeps file order
        for layer in layers:
            self._objects(layer, base, layer.get("DrawParam"), 0)

    def _annotations(self, loc: str, base: Matrix) -> None:
        if not self.doc.pkg.find(loc):
            return
        try:
            root = self.doc.pkg.xml(loc)
        except OFDError:
            return
        for annot in _children(root, "Annot"):
            if annot.get("Visible", "true").lower() == "false":
                continue
            for app in _children(annot, "Appearance"):
                box = _box(app.get("Boundary"))
                origin = _translate(box[0], box[1]) if box else IDENTITY
                self._objects(app, _compose(base, origin), None, 0)

    def _objects(self, container: Element, parent: Matrix, draw_param: str | None, depth: int) -> None:
        if depth > MAX_NESTING:
            return
        for el in container:
            if self.budget <= 0:
                return
            kind = _local(el.tag)
            if kind not in ("TextObject", "PathObject", "ImageObject", "CompositeObject", "PageBlock"):
                continue
            self.budget -= 1
            if kind == "PageBlock":
                self._objects(el, parent, draw_param, depth + 1)
                continue
            try:
                self._object(el, kind, parent, draw_param, depth)
            except (ValueError, OverflowError, ZeroDivisionError, OSError, OFDError, MemoryError):
                continue  # one malformed object must not blank the whole page

    def _object(self, el: Element, kind: str, parent: Matrix, draw_param: str | None, depth: int) -> None:
        if el.get("Visible", "true").lower() == "false":
            return
        box = _box(el.get("Boundary"))
        if box is None:
            return
        placed = _compose(parent, _translate(box[0], box[1]))
        m = _compose(placed, _ctm(el.get("CTM")))
        clips = _child(el, "Clips")
        if clips is not None and len(clips) and self.clip_budget > 0:
            self._clipped(el, kind, parent, placed, m, box, clips, draw_param, depth)
        else:
            self._dispatch(el, kind, m, draw_param, depth)

    def _dispatch(self, el: Element, kind: str, m: Matrix, draw_param: str | None, depth: int) -> None:
        if kind == "PathObject":
            self._path(el, m, draw_param)
        elif kind == "TextObject":
            self._text(el, m, draw_param)
        elif kind == "ImageObject":
            self._image(el, m)
        elif kind == "CompositeObject":
            unit = self.res.composites.get(el.get("ResourceID", ""))
            content = _child(unit, "Content")
            if content is not None:
                self._objects(content, m, draw_param, depth + 1)

    # -- clipping -----------------------------------------------------------

    def _clipped(self, el, kind, parent, placed, m, box, clips, draw_param, depth) -> None:
        """Draw an object into a scratch layer and paste it through its clip mask."""
        corners = [_apply(parent, x, y) for x, y in (
            (box[0], box[1]), (box[0] + box[2], box[1]), (box[0], box[1] + box[3]), (box[0] + box[2], box[1] + box[3]))]
        pad = 2
        x0 = max(0, math.floor(min(p[0] for p in corners)) - pad)
        y0 = max(0, math.floor(min(p[1] for p in corners)) - pad)
        x1 = min(self.target.width, math.ceil(max(p[0] for p in corners)) + pad)
        y1 = min(self.target.height, math.ceil(max(p[1] for p in corners)) + pad)
        if x1 <= x0 or y1 <= y0:
            return
        size = (x1 - x0, y1 - y0)
        self.clip_budget -= size[0] * size[1]
        shift = _translate(-x0, -y0)
        mask = Image.new("L", size, 255)
        for clip in _children(clips, "Clip"):
            layer = Image.new("L", size, 0)
            ldraw = ImageDraw.Draw(layer)
            for area in _children(clip, "Area"):
                base = m if clips.get("TransFlag", "false").lower() == "true" else placed
                area_m = _compose(shift, _compose(base, _ctm(area.get("CTM"))))
                for shape in area:
                    if _local(shape.tag) != "Path":
                        continue
                    pbox = _box(shape.get("Boundary"))
                    pm = _compose(area_m, _translate(pbox[0], pbox[1])) if pbox else area_m
                    data = _child_text(shape, "AbbreviatedData")
                    polys = [[_apply(pm, x, y) for x, y in pts] for pts, _closed in _flatten_path(data or "")]
                    even_odd = shape.get("Rule", "NonZero").lower().replace("-", "") == "evenodd"
                    _paint_polys(ldraw, polys, even_odd, size, 255)
                    for poly in polys:
                        if len(poly) == 2:  # a degenerate clip still lets a hairline through
                            ldraw.line(poly, fill=255, width=1)
            mask = ImageChops.darker(mask, layer)
        scratch = Image.new("RGBA", size, (0, 0, 0, 0))
        saved = (self.target, self.draw)
        self.target, self.draw = scratch, ImageDraw.Draw(scratch)
        try:
            self._dispatch(el, kind, _compose(shift, m), draw_param, depth)
        finally:
            self.target, self.draw = saved
        alpha = ImageChops.multiply(scratch.getchannel("A"), mask)
        self.target.paste(scratch.convert("RGB"), (x0, y0), alpha)

    # -- style --------------------------------------------------------------

    def _style(self, el: Element, draw_param: str | None, *, text: bool) -> _Style:
        """Colours and line width: the object's own, then its DrawParam chain, then the layer's."""
        stroke: object = False
        fill: object = False
        width: float | None = None
        cs = self.res.colorspaces

        def take(node: Element) -> None:
            nonlocal stroke, fill, width
            if stroke is False:
                stroke = _parse_color(_child(node, "StrokeColor"), cs)
            if fill is False:
                fill = _parse_color(_child(node, "FillColor"), cs)
            if width is None and node.get("LineWidth"):
                try:
                    width = float(node.get("LineWidth", ""))
                except ValueError:
                    pass

        take(el)
        for ref in (el.get("DrawParam"), draw_param):
            hops = 0
            while ref and ref in self.res.draw_params and hops < 16:
                param = self.res.draw_params[ref]
                take(param)
                ref = param.get("Relative")
                hops += 1
        if text:
            stroke_c = stroke if stroke is not False else None
            fill_c = fill if fill is not False else (0, 0, 0)
        else:
            stroke_c = stroke if stroke is not False else (0, 0, 0)
            fill_c = fill if fill is not False else None  # spec: path fill defaults to transparent
        return _Style(stroke_c, fill_c, width if width is not None else DEFAULT_LINE_WIDTH_MM)  # type: ignore[arg-type]

    # -- paths --------------------------------------------------------------

    def _path(self, el: Element, m: Matrix, draw_param: str | None) -> None:
        data = _child_text(el, "AbbreviatedData")
        if not data:
            return
        style = self._style(el, draw_param, text=False)
        do_stroke = el.get("Stroke", "true").lower() != "false" and style.stroke is not None
        do_fill = el.get("Fill", "false").lower() == "true" and style.fill is not None
        if not (do_stroke or do_fill):
            return
        if len(data) // 4 > self.budget:
            self.budget = 0  # more coordinates than the page may still draw: stop here
            return
        flat = _flatten_path(data)
        self.budget -= sum(len(pts) for pts, _ in flat)
        if self.budget < 0:
            return
        subpaths = [([_apply(m, x, y) for x, y in pts], closed) for pts, closed in flat]
        if do_fill:
            # Filling costs its area, not its points: a page of full-canvas polygons is
            # a few hundred points but minutes of scan conversion.
            self.budget -= self._area(subpaths) // 100
            if self.budget < 0:
                return
        if do_fill:
            polys = [pts for pts, _ in subpaths if len(pts) >= 3]
            even_odd = el.get("Rule", "NonZero").lower().replace("-", "") == "evenodd"
            if len(polys) > 1:
                self._multi_fill(polys, even_odd, style.fill)
            elif polys:
                self.draw.polygon(polys[0], fill=style.fill)
        if do_stroke:
            width = max(1, round(style.line_width * _scale_of(m)))
            for pts, closed in subpaths:
                line = pts + [pts[0]] if closed and len(pts) > 2 else pts
                if len(line) >= 2:
                    self.draw.line(line, fill=style.stroke, width=width, joint="curve" if width > 2 else None)

    def _area(self, subpaths: list[tuple[list[tuple[float, float]], bool]]) -> int:
        """Pixels of the canvas the subpaths' bounding box covers."""
        xs = [p[0] for pts, _ in subpaths for p in pts]
        ys = [p[1] for pts, _ in subpaths for p in pts]
        if not xs:
            return 0
        w = min(self.target.width, max(xs)) - max(0.0, min(xs))
        h = min(self.target.height, max(ys)) - max(0.0, min(ys))
        return int(max(0.0, w) * max(0.0, h))

    def _multi_fill(self, polys: list[list[tuple[float, float]]], even_odd: bool, colour) -> None:
        """Fill several subpaths within their bounding box, honouring the fill rule."""
        xs = [p[0] for poly in polys for p in poly]
        ys = [p[1] for poly in polys for p in poly]
        x0, y0 = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
        x1, y1 = min(self.target.width, math.ceil(max(xs)) + 1), min(self.target.height, math.ceil(max(ys)) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        size = (x1 - x0, y1 - y0)
        mask = Image.new("L", size, 0)
        shifted = [[(x - x0, y - y0) for x, y in poly] for poly in polys]
        _paint_polys(ImageDraw.Draw(mask), shifted, even_odd, size, 255)
        self.target.paste(colour, (x0, y0, x1, y1), mask)

    # -- text ---------------------------------------------------------------

    def _text(self, el: Element, m: Matrix, draw_param: str | None) -> None:
        style = self._style(el, draw_param, text=True)
        colour = style.fill if el.get("Fill", "true").lower() != "false" else None
        if colour is None:
            colour = style.stroke if el.get("Stroke", "false").lower() == "true" else None
        if colour is None:
            return
        size_mm = float(el.get("Size", "3.5"))
        font_name = self.res.fonts.get(el.get("Font", ""), "")
        scale = _scale_of(m)
        px = round(size_mm * scale)
        if px < 1:
            return
        px = min(px, max(self.canvas.size) * 2)
        font = self.fonts.get(font_name, px)
        upright = _axis_aligned(m) and m[0] > 0 and m[3] > 0
        angle = math.degrees(math.atan2(m[1], m[0]))
        x = y = 0.0
        for code in _children(el, "TextCode"):
            text = code.text or ""
            if code.get("X") is not None:
                x = float(code.get("X", "0"))
            if code.get("Y") is not None:
                y = float(code.get("Y", "0"))
            dxs = _deltas(code.get("DeltaX"))
            dys = _deltas(code.get("DeltaY"))
            for i, ch in enumerate(text):
                if not ch.isspace() and self.budget > 0:
                    self.budget -= 1
                    px_x, px_y = _apply(m, x, y)
                    if upright:
                        self.draw.text((px_x, px_y), ch, font=font, fill=colour, anchor="ls")
                    else:
                        self._rotated_glyph(ch, font, px, colour, (px_x, px_y), angle)
                if i < len(text) - 1:
                    if dxs:
                        # Producers often give one value for a whole monospaced run: repeat the last.
                        x += dxs[i] if i < len(dxs) else dxs[-1]
                    elif not dys:
                        x += _advance(font, ch, px, size_mm)
                    # DeltaY without DeltaX is vertical text (购/买/方): x stays put.
                    if dys:
                        y += dys[i] if i < len(dys) else 0.0
            # A following TextCode without X continues after the last glyph.
            if text:
                x += _advance(font, text[-1], px, size_mm)

    def _rotated_glyph(self, ch, font, px, colour, at, angle) -> None:
        if px > max(self.canvas.size):
            return  # a glyph larger than the page is noise, not text
        side = px * 2 + 4
        glyph = Image.new("L", (side, side), 0)
        ImageDraw.Draw(glyph).text((side // 2, side // 2), ch, font=font, fill=255, anchor="ls")
        glyph = glyph.rotate(-angle, resample=Image.Resampling.BICUBIC, center=(side // 2, side // 2))
        self.target.paste(colour, (round(at[0]) - side // 2, round(at[1]) - side // 2), glyph)

    # -- images -------------------------------------------------------------

    def _image(self, el: Element, m: Matrix) -> None:
        corners = [_apply(m, u, v) for u, v in ((0, 0), (1, 0), (0, 1), (1, 1))]
        xs = [p[0] for p in corners]
        ys = [p[1] for p in corners]
        width = max(xs) - min(xs)
        height = max(ys) - min(ys)
        if width < 1 or height < 1 or width * height > self.max_pixels:
            return
        src = self._load_image(el.get("ResourceID", ""), (round(width), round(height)))
        if src is None:
            return
        has_alpha = src.mode in ("RGBA", "LA") or (src.mode == "P" and "transparency" in src.info)
        src = src.convert("RGBA" if has_alpha else "RGB")
        if _axis_aligned(m):
            size = (max(1, round(abs(m[0]))), max(1, round(abs(m[3]))))
            if size[0] * size[1] > self.max_pixels:
                return
            upscale = size[0] > src.width
            resample = Image.Resampling.NEAREST if upscale and src.width <= 400 else Image.Resampling.LANCZOS
            placed = src.resize(size, resample)
            if m[0] < 0:
                placed = placed.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if m[3] < 0:
                placed = placed.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
            pos = (round(min(xs)), round(min(ys)))
        else:
            x0, y0 = math.floor(min(xs)), math.floor(min(ys))
            size = (max(1, math.ceil(max(xs)) - x0), max(1, math.ceil(max(ys)) - y0))
            a, b, c, d, e, f = m
            det = a * d - b * c
            if abs(det) < 1e-12:
                return
            # Pillow wants output pixel -> source pixel; invert m and scale the unit square.
            ia, ib, ic, id_ = d / det, -c / det, -b / det, a / det
            ox, oy = x0 - e, y0 - f
            coeffs = (
                ia * src.width, ib * src.width, (ia * ox + ib * oy) * src.width,
                ic * src.height, id_ * src.height, (ic * ox + id_ * oy) * src.height,
            )
            placed = src.convert("RGBA").transform(size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
            pos = (x0, y0)
        alpha = placed.getchannel("A") if placed.mode == "RGBA" else None
        rgb = placed.convert("RGB")
        if el.get("BlendMode") == "Darken" and self.target.mode == "RGB":
            # Stamps over text: keep the darker pixel so the text under the seal stays legible.
            region = self.target.crop((pos[0], pos[1], pos[0] + rgb.width, pos[1] + rgb.height))
            rgb = ImageChops.darker(region, rgb)
        self.target.paste(rgb, pos, alpha)

    def _load_image(self, resource_id: str, target_px: tuple[int, int]) -> Image.Image | None:
        if resource_id in self.image_cache:
            return self.image_cache[resource_id]
        image = None
        path, fmt = self.res.media.get(resource_id, (None, ""))
        if path and self.doc.pkg.find(path):
            data = self.doc.pkg.read(path)
            if fmt in ("GBIG2", "JBIG2", "JB2") or data[:8] == b"\x97JB2\r\n\x1a\n" or path.lower().endswith(".jb2"):
                try:
                    image = _jbig2_to_image(data, target_px, self.max_pixels)
                except Exception:  # pdfium errors, malformed segment headers: draw nothing
                    image = None
            else:
                image = _open_embedded_image(data, self.max_pixels)
        self.image_cache[resource_id] = image
        return image


def _advance(font, ch: str, px: int, size_mm: float) -> float:
    """Advance width of one character in millimetres."""
    try:
        return font.getlength(ch) / px * size_mm
    except (AttributeError, TypeError, ValueError):
        return size_mm


def _open_embedded_image(data: bytes, max_pixels: int) -> Image.Image | None:
    """Decode an embedded raster image, refusing oversized ones; None when unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                return None
            im.load()
            return im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, Warning):
        return None


# --------------------------------------------------------------------------- helpers


def page_count(source: bytes | io.IOBase | SafeZip) -> int:
    """Number of pages of an OFD package."""
    doc = OFDDocument(source)
    try:
        return len(doc)
    finally:
        doc.close()


def render_page(source: bytes | io.IOBase, index: int, *, max_side: int,
                max_pixels: int = 50_000_000) -> Image.Image:
    """Render one OFD page to an RGB Pillow image with its longest side = ``max_side``."""
    doc = OFDDocument(source)
    try:
        if not 0 <= index < len(doc):
            raise OFDError("页码超出范围")
        return doc.render(index, max_side=max_side, max_pixels=max_pixels)
    finally:
        doc.close()
