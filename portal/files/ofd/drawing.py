"""Drawing the objects of one OFD page (paths, text, images, composites) onto a Pillow canvas."""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from PIL import Image, ImageChops, ImageDraw

from portal.files import limits

from .geometry import (IDENTITY, Matrix, _apply, _axis_aligned, _box, _compose, _ctm, _deltas, _flatten_path,
                       _paint_polys, _scale_of, _translate)
from .images import _jbig2_to_image, _open_embedded_image
from .package import OFDError, _Page, _Resources, _child, _child_text, _children, _local, _resolve
from .text import FontCache, _advance

if TYPE_CHECKING:
    from .document import OFDDocument


DEFAULT_LINE_WIDTH_MM = 0.353  # spec default: 1/72 inch
CLIP_BUDGET_CANVASES = 64  # scratch pixels for clipped objects, in whole-canvas units
MAX_NESTING = 8  # composite units / page blocks nested deeper than this are ignored


@dataclass
class _Style:
    stroke: tuple[int, int, int] | None
    fill: tuple[int, int, int] | None
    line_width: float


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
