"""One set of limits for every reader and renderer of an untrusted file.

Sniffing, page counting, rendering, the OFD renderer and the recognition readers all
ask :func:`current` for their caps, so a deployment changes one config key and every
parser follows (a 60-page PDF passes everywhere once ``MAX_PAGES`` is 200).  The app
builds the set from its config (:func:`from_config`); the child processes that do the
work receive it with each job and install it with :func:`using`.

Pixel budgets are counted in bytes of the decoded bitmap (mode and bit depth), not in
pixels: a 16-bit RGBA image of 49 Mpx needs 392 MB although its pixel count looks
like an ordinary phone photo's.

The guarded parsers live here too, reading their caps from :func:`current`: one ``parse_xml``
(no DTDs, no entities, size-capped), one :class:`SafeZip` (member count, sizes and compression
ratio checked before anything inflates) and one image guard (:func:`open_image` /
:func:`check_image`, decoded bytes counted by mode and bit depth). Refusals raise
:class:`UnsafeFile`, whose message is shown to the uploader as is.

No Flask imports.
"""
from __future__ import annotations

import contextlib
import contextvars
import io
import re
import threading
import warnings
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from PIL import Image

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Caps on one file's size, shape and the work spent on it."""

    max_file_bytes: int = 30 * MiB
    max_pages: int = 200
    # Decoded bitmap bytes of one image frame: an A4 scan at 600 dpi in colour is ~140 MB
    # in Pillow's 4-byte RGB, a 12 Mpx phone photo ~48 MB.
    max_pixel_bytes: int = 160 * MiB
    max_xml_bytes: int = 5 * MiB
    max_zip_members: int = 2000
    max_zip_member_bytes: int = 20 * MiB
    max_zip_total_bytes: int = 100 * MiB
    # A deflate stream can expand ~1000x; real OFD parts compress at most ~60x (mostly XML).
    max_zip_ratio: int = 200
    # Drawing operations of one OFD page (objects, glyphs, path points).
    max_draw_ops: int = 400_000
    # Wall-clock seconds for one step of a job (opening a file, one page of it) and for
    # the whole file; memory a worker may take above its own baseline.
    work_seconds: float = 5.0
    work_total_seconds: float = 60.0
    work_memory_bytes: int = 256 * MiB

    @property
    def max_pixel_bytes_label(self) -> str:
        """The pixel budget as people read it (MB)."""
        return f"{self.max_pixel_bytes // MiB} MB"


DEFAULT = Limits()

# Config key → Limits field.  MAX_PAGES and MAX_FILE_BYTES already existed.
CONFIG_KEYS = {
    "MAX_FILE_BYTES": "max_file_bytes",
    "MAX_PAGES": "max_pages",
    "MAX_PIXEL_BYTES": "max_pixel_bytes",
    "MAX_XML_BYTES": "max_xml_bytes",
    "MAX_ZIP_MEMBERS": "max_zip_members",
    "MAX_ZIP_MEMBER_BYTES": "max_zip_member_bytes",
    "MAX_ZIP_TOTAL_BYTES": "max_zip_total_bytes",
    "MAX_DRAW_OPS": "max_draw_ops",
    "FILE_WORK_SECONDS": "work_seconds",
    "FILE_WORK_TOTAL_SECONDS": "work_total_seconds",
    "FILE_WORK_MEMORY": "work_memory_bytes",
}

_current: contextvars.ContextVar[Limits] = contextvars.ContextVar("portal_limits", default=DEFAULT)
_on_tick: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("portal_tick", default=None)


def from_config(config: Mapping[str, Any]) -> Limits:
    """The limits named by ``config`` (keys of CONFIG_KEYS); absent keys keep the defaults."""
    values = {}
    for key, name in CONFIG_KEYS.items():
        if config.get(key) is not None:
            values[name] = float(config[key]) if name.startswith("work_") and "seconds" in name else int(config[key])
    return Limits(**values)


def current() -> Limits:
    """The limits in force for the running job (the defaults outside any :func:`using`)."""
    return _current.get()


@contextlib.contextmanager
def using(limits: Limits, on_tick: Callable[[], None] | None = None) -> Iterator[Limits]:
    """Install ``limits`` (and a progress callback, see :func:`tick`) for the code inside the block."""
    token = _current.set(limits)
    tick_token = _on_tick.set(on_tick)
    try:
        yield limits
    finally:
        _on_tick.reset(tick_token)
        _current.reset(token)


def tick() -> None:
    """A reader finished one page: whoever budgets this work gives the next page its own time.

    A 60-page scan batch needs more time than one page, but no single page may take
    more than one step's budget (``work_seconds``); the whole file stays within
    ``work_total_seconds``.
    """
    callback = _on_tick.get()
    if callback is not None:
        callback()


# Bytes per pixel as Pillow holds each mode in memory (RGB and friends take 4 bytes).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16L": 2, "I;16B": 2,
               "I;16N": 2, "BGR;15": 2, "BGR;16": 2, "BGR;24": 3}


def bitmap_bytes(width: int, height: int, mode: str, bits_per_sample: int = 8) -> int:
    """Bytes a decoded frame needs: the larger of Pillow's in-memory mode and the file's own depth.

    ``bits_per_sample`` is the file's sample depth (16 for a 16-bit PNG or TIFF); a
    decoder works through rows at that depth before Pillow narrows them to its mode.
    """
    held = _MODE_BYTES.get(mode, 4)
    bands = {"1": 1, "L": 1, "P": 1, "I;16": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3,
             "HSV": 3}.get(mode, 4)
    source = -(-bands * max(1, bits_per_sample) // 8)
    return max(0, width) * max(0, height) * max(held, source)


# --------------------------------------------------------------------------- guarded parsers

# Pillow's own pixel guard stays as a last resort far above anything our byte budget
# lets through; ours refuses first, with a message a person understands.
Image.MAX_IMAGE_PIXELS = 250_000_000

MSG_PIXELS = "图片像素数据过大（解码后超过 {limit}），已拒绝"

PDFIUM_LOCK = threading.RLock()
"""Serialises every pdfium call in the process (pdfium is not thread-safe, not even across
documents); here, below the media module and the OFD renderer, so both hold the same lock."""


class UnsafeFile(Exception):
    """The file is refused as dangerous or over a limit; str(exc) is a Chinese message for the user."""


# --- XML ---------------------------------------------------------------------------------

_DECL_ENCODING = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])([A-Za-z0-9_.\-]+)([\"'])", re.I)
_EXPAT_ENCODINGS = {"utf-8", "utf8", "utf-16", "utf16", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"}
_UTF8_BOM = b"\xef\xbb\xbf"


def parse_xml(data: bytes, *, limit: int | None = None) -> Element:
    """Parse XML with DTDs, entities and external references forbidden.

    GBK/GB18030 documents (common from Chinese issuers; expat reads only UTF-8/16 and
    single-byte encodings) are transcoded first.  Raises UnsafeFile for an over-size
    document or one that declares a DTD or entities (billion laughs, XXE); other
    malformed input raises the parser's own error (ValueError or a subclass).
    """
    cap = current().max_xml_bytes if limit is None else limit
    if len(data) > cap:
        raise UnsafeFile("XML 文件过大，已拒绝")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    match = _DECL_ENCODING.match(data)
    if match and match.group(2).decode("ascii").lower() not in _EXPAT_ENCODINGS:
        text = data.decode(match.group(2).decode("ascii"))  # LookupError/UnicodeDecodeError: malformed
        data = _DECL_ENCODING.sub(rb"\g<1>UTF-8\g<3>", text.encode("utf-8"), count=1)
    try:
        return DefusedET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise UnsafeFile("XML 含有 DTD 或实体声明，已拒绝") from exc


def local_name(tag: object) -> str:
    """Element tag without its namespace ('{ns}Name' or 'p:Name' → 'Name')."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


# --- ZIP (OFD) ---------------------------------------------------------------------------


def safe_member_name(name: str) -> str | None:
    """Normalised zip member name, or None when it is absolute or climbs out with '..'."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


class SafeZip:
    """Read-only view of a zip archive that checks every limit before inflating.

    Members are looked up by name only (exactly, else case-insensitively); names are
    never joined to a file-system path, and absolute or '../' names are left out.
    Each member is inflated at most once (kept for the next reader of the same file).
    """

    def __init__(self, data: bytes) -> None:
        cap = current()
        if len(data) > cap.max_file_bytes:
            raise UnsafeFile("文件过大，已拒绝")
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise ValueError("not a readable zip") from exc
        if len(infos) > cap.max_zip_members:
            raise UnsafeFile("压缩包内文件过多，已拒绝")
        total = 0
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._folded: dict[str, str] = {}
        for info in infos:
            if info.is_dir():
                continue
            if info.file_size > cap.max_zip_member_bytes:
                raise UnsafeFile("文件解压后过大，已拒绝")
            if (info.compress_size and info.file_size / info.compress_size > cap.max_zip_ratio
                    and info.file_size > 1024 * 1024):
                raise UnsafeFile("文件压缩比异常（疑似压缩炸弹），已拒绝")
            total += info.file_size
            safe = safe_member_name(info.filename)
            if safe is None:
                continue
            self._infos.setdefault(safe, info)
            self._folded.setdefault(safe.lower(), safe)
        if total > cap.max_zip_total_bytes:
            raise UnsafeFile("文件解压后过大，已拒绝")
        self._limits = cap
        self._read_total = 0
        self._inflated: dict[str, bytes] = {}

    def names(self) -> list[str]:
        """Member names (directories and unsafe names left out), in archive order."""
        return list(self._infos)

    def find(self, name: str | None) -> str | None:
        """The member matching ``name`` (exactly, else ignoring case), or None."""
        if not name:
            return None
        name = name.lstrip("/")
        if name in self._infos:
            return name
        return self._folded.get(name.lower())

    def read(self, name: str, limit: int | None = None) -> bytes | None:
        """Bytes of one member; None when absent or declared larger than ``limit``.

        The declared size can lie, so inflating stops one byte past it: a member that
        inflates beyond its declared size (or the running total past its cap) is refused.
        """
        real = self.find(name)
        if real is None:
            return None
        info = self._infos[real]
        if info.file_size > (self._limits.max_zip_member_bytes if limit is None else limit):
            return None
        cached = self._inflated.get(real)
        if cached is not None:
            return cached
        with self._zip.open(info) as fh:
            data = fh.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise UnsafeFile("文件解压后大小与声明不符，已拒绝")
        self._read_total += len(data)
        if self._read_total > self._limits.max_zip_total_bytes:
            raise UnsafeFile("文件解压后过大，已拒绝")
        self._inflated[real] = data
        return data

    def close(self) -> None:
        """Release the archive and what was inflated from it."""
        self._inflated.clear()
        self._zip.close()


# --- images ------------------------------------------------------------------------------

_IMAGE_FORMATS = {"image/jpeg": ["JPEG"], "image/png": ["PNG"], "image/tiff": ["TIFF"]}


def open_image(data: bytes, media_type: str) -> Image.Image:
    """Open (header only) an image of the given type and check its pixel budget.

    Raises UnsafeFile for an over-size file or a frame whose decoded bitmap is over
    the byte budget; other broken input raises Pillow's error (unreadable).
    """
    if len(data) > current().max_file_bytes:
        raise UnsafeFile("图片文件过大，已拒绝")
    formats = _IMAGE_FORMATS.get(media_type, ["JPEG", "PNG", "TIFF"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsafeFile(_pixel_message()) from exc
    check_image(image)
    return image


def sample_bits(image: Image.Image) -> int:
    """Bits per sample of the frame as stored in the file (16 for 16-bit PNG/TIFF, else 8)."""
    try:
        if image.format == "TIFF":
            bits = image.tag_v2.get(258)
            if isinstance(bits, (tuple, list)) and bits:
                return int(max(bits))
            if isinstance(bits, int):
                return bits
        for tile in image.tile or ():
            raw = tile[3][0] if isinstance(tile[3], tuple) else tile[3]
            if isinstance(raw, str) and (";16" in raw or ";32" in raw):
                return 32 if ";32" in raw else 16
    except (AttributeError, IndexError, TypeError, ValueError):
        pass
    return 8


def image_bytes(image: Image.Image) -> int:
    """Decoded bytes of the current frame (mode and bit depth counted)."""
    w, h = image.size
    return bitmap_bytes(w, h, image.mode, sample_bits(image))


def check_image(image: Image.Image) -> None:
    """Refuse a frame with no pixels or over the pixel byte budget (also each TIFF frame)."""
    w, h = image.size
    if w <= 0 or h <= 0 or image_bytes(image) > current().max_pixel_bytes:
        raise UnsafeFile(_pixel_message())


def _pixel_message() -> str:
    return MSG_PIXELS.format(limit=current().max_pixel_bytes_label)
