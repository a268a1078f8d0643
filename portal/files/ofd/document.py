"""The first document of an OFD package, and rendering or counting its pages."""

from __future__ import annotations

import io
import posixpath
import re
from xml.etree.ElementTree import Element

from PIL import Image

from portal.files.limits import SafeZip

from .drawing import _Painter
from .geometry import _box, _compose, _translate
from .package import OFDError, OFDPackage, _Page, _Resources, _child, _child_text, _children, _resolve


MM_PER_INCH = 25.4
DEFAULT_PAGE_MM = (210.0, 297.0)  # A4 portrait when a page says nothing about its size


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
