"""Fonts for OFD text: a system CJK face standing in for the named one, and glyph advances."""

from __future__ import annotations

import functools
import os

from PIL import ImageFont


# Fonts shipped by Debian's fonts-noto-cjk; serif for Song/Kai/Fang families (closest to
# what invoices use), sans for Hei and everything else.
_CJK_SANS = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
_CJK_SERIF = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
_MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
_SERIF_HINTS = ("宋", "楷", "仿", "song", "kai", "fang", "simsun", "serif", "times", "ming")
_MONO_HINTS = ("courier", "mono", "consol")


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


def _advance(font, ch: str, px: int, size_mm: float) -> float:
    """Advance width of one character in millimetres."""
    try:
        return font.getlength(ch) / px * size_mm
    except (AttributeError, TypeError, ValueError):
        return size_mm
