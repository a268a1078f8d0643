"""Numbers, boxes and affine matrices of OFD, and drawing paths (AbbreviatedData) as polygons."""

from __future__ import annotations

import math

from PIL import Image, ImageChops, ImageDraw


MAX_CURVE_SEGMENTS = 24


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
