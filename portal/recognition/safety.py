"""Limits and guarded parsers for untrusted invoice files.

Every file handed to recognition comes from an upload or a mailbox. Parsers here refuse
bombs (XML entities, zip and image decompression bombs, oversized inputs) by raising
`UnsafeFile`, whose message is shown to the uploader as is.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from PIL import Image

# Input caps. They are far above any real invoice file and keep one worker's memory bounded.
MAX_XML_BYTES = 5 * 1024 * 1024
MAX_PDF_BYTES = 50 * 1024 * 1024
MAX_PDF_PAGES = 50
MAX_IMAGE_BYTES = 40 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000  # about A4 at 900 dpi; a 12 MP phone photo is 12 M
MAX_TIFF_FRAMES = 50
MAX_OFD_BYTES = 50 * 1024 * 1024
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_MEMBER_BYTES = 20 * 1024 * 1024
MAX_ZIP_TOTAL_BYTES = 100 * 1024 * 1024
# A deflate stream can expand ~1000x; real OFD parts compress at most ~60x (mostly XML).
MAX_ZIP_RATIO = 200

# Pillow's own guard stays on, set to our limit: above it Pillow warns, above twice it
# raises. `open_image` turns both into UnsafeFile.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class UnsafeFile(Exception):
    """The file is refused as dangerous or over a limit; str(exc) is a Chinese message for the user."""


# --- XML ---------------------------------------------------------------------------------

_DECL_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"']", re.I)


def parse_xml(data: bytes, *, limit: int = MAX_XML_BYTES) -> Element:
    """Parse XML with DTDs, entities and external references forbidden.

    Raises UnsafeFile for an over-size document or one that declares a DTD or entities
    (billion laughs, XXE); other malformed input raises the parser's own error.
    """
    if len(data) > limit:
        raise UnsafeFile("XML 文件过大，已拒绝")
    try:
        return DefusedET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise UnsafeFile("XML 含有 DTD 或实体声明，已拒绝") from exc
    except ValueError as exc:
        # expat decodes only single-byte encodings and UTF-8/16; GBK/GB18030 files are
        # common from Chinese issuers, so transcode them to UTF-8 and parse again.
        m = _DECL_ENCODING.match(data)
        if not m or "multi-byte" not in str(exc):
            raise
        text = data.decode(m.group(1).decode("ascii"))
        text = text.replace(m.group(1).decode("ascii"), "UTF-8", 1)
        try:
            return DefusedET.fromstring(text.encode("utf-8"), forbid_dtd=True)
        except DefusedXmlException as exc2:
            raise UnsafeFile("XML 含有 DTD 或实体声明，已拒绝") from exc2


def local_name(tag: object) -> str:
    """Element tag without its namespace ('{ns}Name' or 'p:Name' → 'Name')."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


# --- ZIP (OFD) ---------------------------------------------------------------------------


class SafeZip:
    """Read-only view of a zip archive that checks every limit before inflating.

    Members are looked up by exact name only; names are never joined to a file-system
    path, so '../' tricks have nothing to escape to.
    """

    def __init__(self, data: bytes) -> None:
        if len(data) > MAX_OFD_BYTES:
            raise UnsafeFile("文件过大，已拒绝")
        self._zip = zipfile.ZipFile(io.BytesIO(data))
        infos = self._zip.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise UnsafeFile("压缩包内文件过多，已拒绝")
        total = 0
        self._infos: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.is_dir():
                continue
            if info.file_size > MAX_ZIP_MEMBER_BYTES:
                raise UnsafeFile("文件解压后过大，已拒绝")
            if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO and info.file_size > 1024 * 1024:
                raise UnsafeFile("文件压缩比异常（疑似压缩炸弹），已拒绝")
            total += info.file_size
            # Names are normalised only for lookup ('/Doc_0/x' and 'Doc_0/x' are the same part).
            self._infos.setdefault(info.filename.lstrip("/"), info)
        if total > MAX_ZIP_TOTAL_BYTES:
            raise UnsafeFile("文件解压后过大，已拒绝")
        self._read_total = 0

    def names(self) -> list[str]:
        """Member names (directories left out), in archive order."""
        return list(self._infos)

    def read(self, name: str, limit: int = MAX_ZIP_MEMBER_BYTES) -> bytes | None:
        """Bytes of one member; None when absent or declared larger than `limit`.

        The declared size can lie, so inflating stops one byte past it: a member that
        inflates beyond its declared size (or the running total past its cap) is refused.
        """
        info = self._infos.get(name.lstrip("/"))
        if info is None or info.file_size > limit:
            return None
        with self._zip.open(info) as fh:
            data = fh.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise UnsafeFile("文件解压后大小与声明不符，已拒绝")
        self._read_total += len(data)
        if self._read_total > MAX_ZIP_TOTAL_BYTES:
            raise UnsafeFile("文件解压后过大，已拒绝")
        return data


# --- images ------------------------------------------------------------------------------

_IMAGE_FORMATS = {"image/jpeg": ["JPEG"], "image/png": ["PNG"], "image/tiff": ["TIFF"]}


def open_image(data: bytes, media_type: str) -> Image.Image:
    """Open (header only) an image of the given type with the decompression-bomb guard on.

    Raises UnsafeFile for an over-size file or an image over MAX_IMAGE_PIXELS; other
    broken input raises Pillow's error (the caller treats it as unreadable).
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise UnsafeFile("图片文件过大，已拒绝")
    formats = _IMAGE_FORMATS.get(media_type, ["JPEG", "PNG", "TIFF"])
    try:
        with warnings.catch_warnings():
            # Pillow only warns between the limit and twice the limit; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsafeFile("图片像素过多（疑似解压炸弹），已拒绝") from exc
    check_image_size(image)
    return image


def check_image_size(image: Image.Image) -> None:
    """Refuse a frame whose pixel count exceeds the limit (also used for each TIFF frame)."""
    w, h = image.size
    if w <= 0 or h <= 0 or w * h > MAX_IMAGE_PIXELS:
        raise UnsafeFile("图片像素过多（疑似解压炸弹），已拒绝")
