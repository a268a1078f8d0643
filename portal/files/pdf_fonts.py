"""Chinese substitutes for the CJK fonts a PDF names but does not embed.

Invoice PDFs often name ``STSong-Light``, ``SimSun`` or ``KaiTi`` without embedding
them; pdfium then asks the system for a substitute. Its own Linux lookup ignores the
face name for CJK charsets and takes the first CJK face it scanned, which with Debian's
``fonts-noto-cjk`` is *Noto Serif CJK JP*: Chinese text then shows Japanese glyph forms
(直, 骨, 角 …). This module puts a thin wrapper over pdfium's system font lookup that
answers a Chinese request with the matching Noto CJK face — Serif for Song, Kai, Fang
and Ming faces, Sans for Hei and YaHei; SC for GB charsets and mainland face names, TC
for Big5 — and leaves every other request to pdfium.

When the Noto CJK face is not installed, the request goes on to pdfium's own lookup
(previews render as before, with whatever it finds) and a warning is logged once per
process.

Call :func:`install` before rendering, holding ``media.PDFIUM_LOCK``; it is idempotent.
"""

from __future__ import annotations

import ctypes
import logging
import re
import struct

import pypdfium2 as pdfium

__all__ = ["install", "chinese_face_for"]

log = logging.getLogger(__name__)

# pdfium's FX_Charset values (fpdf_sysfontinfo.h).
_ANSI = 0
_SHIFT_JIS = 128
_HANGUL = 129
_GB2312 = 134
_BIG5 = 136
_TTCF = 0x74746366  # the 'ttcf' tag: asks pdfium for a whole font collection
_CJK_CHARSETS = {_GB2312: "SC", _BIG5: "TC", _SHIFT_JIS: "JP", _HANGUL: "KR"}

# The faces asked for, by style and region; a test may point these at faces that do not exist.
NOTO_FACES = {
    (style, region): f"Noto {style} CJK {region}" for style in ("Serif", "Sans") for region in ("SC", "TC", "JP", "KR")
}

# Face names (ASCII, or GBK bytes decoded) that mean a mainland Chinese font.
_CHINESE_NAME = re.compile(
    r"sim(sun|hei|kai|fang|li|you)|nsimsun|st(song|heiti|kaiti|fangsong|zhongsong|xihei)|kaiti|fangsong|"
    r"yahei|dengxian|songti|heiti|宋|黑|楷|仿|隶|幼圆|等线",
    re.IGNORECASE,
)
_SANS_NAME = re.compile(r"hei|yahei|gothic|sans|dengxian|黑|等线|幼圆", re.IGNORECASE)

_state: dict[str, object] = {"wrapper": None, "warned": False}


def _face_name(info, handle) -> str:
    buffer = ctypes.create_string_buffer(256)
    info.GetFaceName(info, handle, buffer, len(buffer))
    return buffer.value.decode("utf-8", "replace")


def _decode(face) -> str:
    raw = ctypes.cast(face, ctypes.c_char_p).value or b""
    for encoding in ("utf-8", "gbk"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def chinese_face_for(charset: int, face: str) -> str | None:
    """The Noto CJK face to use for a request, or None to leave it to pdfium."""
    region = _CJK_CHARSETS.get(charset)
    if region is None and _CHINESE_NAME.search(face):
        region = "SC"
    if region is None:
        return None
    style = "Sans" if _SANS_NAME.search(face) else "Serif"
    return NOTO_FACES[(style, region)]


class _ChineseFonts(pdfium.PdfSysfontBase):
    """pdfium's system font lookup, with Chinese requests answered by Noto CJK."""

    def __init__(self) -> None:
        super().__init__()
        # handle → (size of its font collection, offset of its face in it); see GetFontData.
        self._faces: dict[int, tuple[int, int]] = {}
        self._offsets: dict[tuple[int, str], int | None] = {}

    def MapFont(self, _, weight, italic, charset, pitch_family, face, exact):  # noqa: N802 (pdfium's name)
        wanted = chinese_face_for(charset, _decode(face))
        if wanted is not None:
            # Asked with the ANSI charset, pdfium matches the face *name* (with a CJK
            # charset it would ignore it); every Noto CJK face covers Latin too.
            handle = self.default.MapFont(self.default, weight, italic, _ANSI, pitch_family, wanted.encode(), exact)
            if handle:
                name = _face_name(self.default, handle)
                if name.startswith(wanted):  # "… SC", or "… SC Bold" for a heavy weight
                    self._remember_face(handle, name)
                    return handle
                self.default.DeleteFont(self.default, handle)
            _warn_missing(wanted)
        return self.default.MapFont(self.default, weight, italic, charset, pitch_family, face, exact)

    def GetFontData(self, _, handle, table, buffer, size):  # noqa: N802 (pdfium's name)
        # pdfium finds a face in a collection (.ttc) by `collection size − whole-font
        # size`, but its folder lookup reports 0 for a collection's face, so every face
        # resolves to the first one (Noto … CJK JP). Report the size that points at ours.
        if table == 0 and not buffer and handle in self._faces:
            collection, offset = self._faces[handle]
            return collection - offset
        return self.default.GetFontData(self.default, handle, table, buffer, size)

    def DeleteFont(self, _, handle):  # noqa: N802 (pdfium's name)
        self._faces.pop(handle, None)
        return self.default.DeleteFont(self.default, handle)

    def _remember_face(self, handle: int, name: str) -> None:
        collection = self.default.GetFontData(self.default, handle, _TTCF, None, 0)
        if not collection:
            return  # a single-face file: pdfium finds the face by itself
        key = (collection, name)
        if key not in self._offsets:
            data = (ctypes.c_ubyte * collection)()
            self.default.GetFontData(self.default, handle, _TTCF, data, collection)
            self._offsets[key] = collection_face_offset(memoryview(data).cast("B"), name)
            del data
        offset = self._offsets[key]
        if offset:
            self._faces[handle] = (collection, offset)


def collection_face_offset(data, name: str) -> int | None:
    """Offset of the face called `name` ("family" or "family subfamily") in a .ttc, or None."""
    if bytes(data[:4]) != b"ttcf" or len(data) < 12:
        return None
    count = struct.unpack(">I", bytes(data[8:12]))[0]
    offsets = struct.unpack(f">{count}I", bytes(data[12 : 12 + 4 * count]))
    for offset in offsets:
        family, subfamily = _names(data, offset)
        if name in (family, f"{family} {subfamily}"):
            return offset
    return None


def _names(data, offset: int) -> tuple[str, str]:
    """(family, subfamily) from the name table of the face whose directory is at `offset`."""
    tables = struct.unpack(">H", bytes(data[offset + 4 : offset + 6]))[0]
    for index in range(tables):
        record = offset + 12 + 16 * index
        tag, _checksum, start, _length = struct.unpack(">4sIII", bytes(data[record : record + 16]))
        if tag != b"name":
            continue
        _fmt, count, strings = struct.unpack(">HHH", bytes(data[start : start + 6]))
        found: dict[int, str] = {}
        for n in range(count):
            entry = start + 6 + 12 * n
            platform, encoding, _lang, name_id, length, at = struct.unpack(">HHHHHH", bytes(data[entry : entry + 12]))
            if name_id in (1, 2) and platform == 3 and encoding in (1, 10) and name_id not in found:
                raw = bytes(data[start + strings + at : start + strings + at + length])
                found[name_id] = raw.decode("utf-16-be", "replace")
        return found.get(1, ""), found.get(2, "")
    return "", ""


def _warn_missing(face: str) -> None:
    if _state["warned"]:
        return
    _state["warned"] = True
    log.warning(
        "font %s not found (Debian: fonts-noto-cjk): PDFs that do not embed their Chinese "
        "fonts preview with whatever substitute pdfium finds",
        face,
    )


def install() -> None:
    """Put the Chinese font lookup in place, once per process (pdfium reads it on later loads).

    The caller holds ``media.PDFIUM_LOCK``. A missing Noto CJK face is found out, and
    warned about once, when a PDF first asks for a Chinese substitute.
    """
    if _state["wrapper"] is None:
        wrapper = _ChineseFonts()
        wrapper.setup()
        _state["wrapper"] = wrapper
