"""Content-addressed file storage for uploaded originals and their derived renders.

Blobs are keyed by the sha256 of their bytes (64 lowercase hex digits), so the same
file uploaded twice is stored once and the original is kept byte-exact.  Derived
assets (thumbnails, page renders) live in a separate namespace under the blob's key
and can always be rebuilt from the original.

:class:`Storage` is the interface the app codes against; :class:`LocalStorage` keeps
files on a local filesystem and an S3-compatible backend can implement the same
methods later.  No Flask imports: the app passes the root directory and limits in.
"""

from __future__ import annotations

import abc
import errno
import hashlib
import io
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator

__all__ = [
    "BlobNotFound",
    "InvalidKey",
    "LocalStorage",
    "Storage",
    "StorageError",
    "StoredBlob",
    "TooLarge",
    "validate_sha256",
]

CHUNK = 1024 * 1024
FILE_MODE = 0o640
DIR_MODE = 0o750
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FANOUT = re.compile(r"[0-9a-f]{2}")
_DERIVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class StorageError(Exception):
    """Base class of storage failures."""


class TooLarge(StorageError):
    """The content exceeds the size limit; nothing was stored."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"文件过大，超过 {_human(limit)} 的上限")


class InvalidKey(StorageError, ValueError):
    """A key or derived-asset name is malformed (never used to build a path)."""


class BlobNotFound(StorageError, FileNotFoundError):
    """No blob is stored under this key."""


def _human(n: int) -> str:
    """A byte count for people: ``10 MB``, ``512 KB``, ``300 B``."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f}".rstrip("0").rstrip(".") + " MB"
    if n >= 1024:
        return f"{n / 1024:.1f}".rstrip("0").rstrip(".") + " KB"
    return f"{n} B"


def validate_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lowercase hex digits, else raise :class:`InvalidKey`."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidKey("无效的文件标识")
    return sha256


def _validate_name(name: str) -> str:
    if not isinstance(name, str) or not _DERIVED_NAME.fullmatch(name) or ".." in name:
        raise InvalidKey("无效的派生文件名")
    return name


@dataclass(frozen=True)
class StoredBlob:
    """Result of :meth:`Storage.put`: the key, the byte size and whether it was new."""

    sha256: str
    size: int
    created: bool


class Storage(abc.ABC):
    """What the app needs from a blob store (local disk today, S3-compatible later)."""

    @abc.abstractmethod
    def put(self, data: bytes | bytearray | memoryview | BinaryIO, *, max_bytes: int | None = None) -> StoredBlob:
        """Store content (bytes or a readable binary stream) under its sha256.

        ``created`` is False when identical content was already stored.  Raises
        :class:`TooLarge` (leaving nothing behind) when the content exceeds
        ``max_bytes`` (or the store's default limit).
        """

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool:
        """True when a blob with this key is stored."""

    @abc.abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """A readable binary file object of the blob; raises :class:`BlobNotFound`."""

    @abc.abstractmethod
    def size(self, sha256: str) -> int:
        """Byte size of a stored blob; raises :class:`BlobNotFound`."""

    @abc.abstractmethod
    def path_hint(self, sha256: str) -> str | None:
        """A local filesystem path for zero-copy sending, or None when there is none."""

    @abc.abstractmethod
    def delete(self, sha256: str) -> bool:
        """Remove a blob and all its derived assets; False when it was not stored."""

    @abc.abstractmethod
    def put_derived(self, sha256: str, name: str, data: bytes) -> None:
        """Store (or replace) a derived asset, e.g. ``thumb-320.jpg``, for a blob."""

    @abc.abstractmethod
    def get_derived(self, sha256: str, name: str) -> bytes | None:
        """Bytes of a derived asset, or None when it has not been made yet."""

    def read(self, sha256: str) -> bytes:
        """All bytes of a blob (convenience over :meth:`open`)."""
        with self.open(sha256) as fh:
            return fh.read()


class LocalStorage(Storage):
    """Blobs under ``root/ab/cd/<sha256>``; derived assets under ``root/derived/ab/cd/<sha256>/``.

    Writes are atomic: content streams into a temporary file under ``root/tmp`` (same
    filesystem, computing the sha256 on the way), is fsynced, and is then linked into
    place, so readers never see a partial file and concurrent puts of the same content
    end with exactly one file and exactly one ``created=True``.  Files are 0640 and
    directories 0750 whatever the process umask.
    """

    def __init__(self, root: str | os.PathLike, *, max_bytes: int | None = None):
        self.root = os.path.abspath(os.fspath(root))
        self.max_bytes = max_bytes
        self._tmp = os.path.join(self.root, "tmp")
        self._derived = os.path.join(self.root, "derived")
        _ensure_dir(self.root)
        _ensure_dir(self._tmp)

    # -- paths --------------------------------------------------------------

    def _blob_path(self, sha256: str) -> str:
        validate_sha256(sha256)
        return os.path.join(self.root, sha256[:2], sha256[2:4], sha256)

    def _derived_dir(self, sha256: str) -> str:
        validate_sha256(sha256)
        return os.path.join(self._derived, sha256[:2], sha256[2:4], sha256)

    # -- blobs --------------------------------------------------------------

    def put(self, data, *, max_bytes: int | None = None) -> StoredBlob:
        """See :meth:`Storage.put`."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
            if limit is not None and len(data) > limit:
                raise TooLarge(limit)
            sha = hashlib.sha256(data).hexdigest()
            if self._present(sha, len(data)):
                self._touch(sha)
                return StoredBlob(sha, len(data), False)
            stream: BinaryIO = io.BytesIO(data)
        else:
            stream = data
        tmp_path, sha, size = self._spool(stream, limit)
        try:
            created = self._publish(tmp_path, self._blob_path(sha))
        finally:
            _unlink_quietly(tmp_path)
        if not created:
            self._touch(sha)
        return StoredBlob(sha, size, created)

    def _touch(self, sha: str) -> None:
        """Mark an existing blob as just written: a row about to refer to it is younger than the
        cleaner's age threshold, so :meth:`delete_unless_recent` must leave it alone."""
        try:
            os.utime(self._blob_path(sha))
        except FileNotFoundError:
            pass

    def _present(self, sha: str, size: int) -> bool:
        try:
            return os.stat(self._blob_path(sha)).st_size == size
        except FileNotFoundError:
            return False

    def _spool(self, stream: BinaryIO, limit: int | None) -> tuple[str, str, int]:
        """Copy a stream into a fresh temp file; returns (temp path, sha256, size)."""
        fd, tmp_path = tempfile.mkstemp(prefix="put-", suffix=".part", dir=self._tmp)
        try:
            os.fchmod(fd, FILE_MODE)
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                fd = -1  # now owned by ``out``
                while True:
                    chunk = stream.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise TooLarge(limit)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            if fd >= 0:
                os.close(fd)
            _unlink_quietly(tmp_path)
            raise
        return tmp_path, digest.hexdigest(), size

    def _publish(self, tmp_path: str, final: str) -> bool:
        """Move a finished temp file to ``final``; False when it was already there."""
        directory = os.path.dirname(final)
        _ensure_dir(directory)
        try:
            # link() never replaces: exactly one of several racing writers "creates".
            os.link(tmp_path, final)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # Filesystems without hard links: replace is still atomic, and the content is
            # identical by construction, so a racing replace is harmless.
            existed = os.path.exists(final)
            os.replace(tmp_path, final)
            _fsync_dir(directory)
            return not existed
        _fsync_dir(directory)
        return True

    def exists(self, sha256: str) -> bool:
        """See :meth:`Storage.exists`."""
        return os.path.isfile(self._blob_path(sha256))

    def open(self, sha256: str) -> BinaryIO:
        """See :meth:`Storage.open`."""
        try:
            return open(self._blob_path(sha256), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(errno.ENOENT, "文件不存在", sha256) from exc

    def size(self, sha256: str) -> int:
        """See :meth:`Storage.size`."""
        try:
            return os.stat(self._blob_path(sha256)).st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(errno.ENOENT, "文件不存在", sha256) from exc

    def path_hint(self, sha256: str) -> str | None:
        """See :meth:`Storage.path_hint`."""
        path = self._blob_path(sha256)
        return path if os.path.isfile(path) else None

    def delete(self, sha256: str) -> bool:
        """See :meth:`Storage.delete`."""
        path = self._blob_path(sha256)
        shutil.rmtree(self._derived_dir(sha256), ignore_errors=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    # -- derived ------------------------------------------------------------

    def put_derived(self, sha256: str, name: str, data: bytes) -> None:
        """See :meth:`Storage.put_derived`."""
        directory = self._derived_dir(sha256)
        final = os.path.join(directory, _validate_name(name))
        _ensure_dir(directory)
        fd, tmp_path = tempfile.mkstemp(prefix=".part-", dir=directory)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as out:
                fd = -1
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_path, final)  # last writer wins; renders are deterministic
        except BaseException:
            if fd >= 0:
                os.close(fd)
            _unlink_quietly(tmp_path)
            raise

    def get_derived(self, sha256: str, name: str) -> bytes | None:
        """See :meth:`Storage.get_derived`."""
        path = os.path.join(self._derived_dir(sha256), _validate_name(name))
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    # -- housekeeping -------------------------------------------------------

    def cleanup_temp(self, older_than: float = 3600.0) -> int:
        """Remove temp files left by crashed writers; returns how many were removed.

        A writer in progress touches its file with every chunk, so only files untouched for
        ``older_than`` seconds go: ``tmp/put-*.part`` and the ``.part-*`` of derived assets.
        """
        removed = 0
        cutoff = time.time() - older_than
        for entry in os.scandir(self._tmp):
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        for dirpath, _dirs, names in os.walk(self._derived):
            for name in names:
                if not name.startswith(".part-"):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def blobs_older_than(self, older_than: float) -> Iterator[str]:
        """Keys of the stored blobs not written or touched in the last ``older_than`` seconds."""
        cutoff = time.time() - older_than
        for top in _subdirs(self.root):
            for sub in _subdirs(top.path):
                for entry in os.scandir(sub.path):
                    try:
                        if _SHA256.fullmatch(entry.name) and entry.is_file() and entry.stat().st_mtime < cutoff:
                            yield entry.name
                    except FileNotFoundError:
                        continue

    def delete_unless_recent(self, sha256: str, older_than: float) -> bool:
        """Delete a blob (and its derived assets) unless it was written or touched in the last
        ``older_than`` seconds, e.g. by a :meth:`put` whose row is about to commit."""
        try:
            if os.stat(self._blob_path(sha256)).st_mtime >= time.time() - older_than:
                return False
        except FileNotFoundError:
            return False
        return self.delete(sha256)


def _subdirs(path: str) -> list[os.DirEntry]:
    """The two-hex-digit fan-out directories directly under ``path`` (never ``tmp`` or ``derived``)."""
    try:
        return [e for e in os.scandir(path) if _FANOUT.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _ensure_dir(path: str) -> None:
    """Create ``path`` and missing parents with mode 0750 (explicitly, not via umask)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _ensure_dir(parent)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        return
    os.chmod(path, DIR_MODE)


def _fsync_dir(path: str) -> None:
    """Make a rename/link in ``path`` durable (best effort on platforms without it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
