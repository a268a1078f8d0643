"""Reading an OFD package: the zip, its XML parts, the document's resources and pages."""

from __future__ import annotations

import io
import posixpath
import zipfile
from dataclasses import dataclass, field
from typing import Iterator
from xml.etree.ElementTree import Element

from portal.files.limits import SafeZip, UnsafeFile, parse_xml, safe_member_name


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
    """Read-only OFD view over the one :class:`~portal.files.limits.SafeZip` (limits from config).

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
