"""Content-addressed file storage for uploaded originals and their derived renders.

Blobs are keyed by the sha256 of their bytes (64 lowercase hex digits), so the same
file uploaded twice is stored once and the original is kept byte-exact.  Derived
assets (thumbnails, page renders) live in a separate namespace under the blob's key
and can always be rebuilt from the original.

:class:`Storage` is the interface the app codes against; :class:`LocalStorage` keeps
files on a local filesystem and :class:`S3Storage` in an S3-compatible bucket (AWS S3,
MinIO, ...) with the same layout under a key prefix; :func:`open_storage` picks one from
the configuration.  No Flask imports: the app passes the settings in.
"""

from __future__ import annotations

import abc
import base64
import errno
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator, Mapping
from urllib.parse import urlsplit

__all__ = [
    "BlobNotFound",
    "InvalidKey",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StorageError",
    "StoredBlob",
    "TooLarge",
    "VerifyFailed",
    "open_storage",
    "parse_storage_url",
    "validate_sha256",
]

log = logging.getLogger("portal.storage")

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


class VerifyFailed(StorageError):
    """What the store holds after a write is not what was written; nothing was kept."""

    def __init__(self):
        super().__init__("文件写入存储后校验不一致（大小或 SHA-256 不符），未保存，请重新上传")


class StoreUnavailable(StorageError):
    """The object store refused or did not answer.

    The message is for people and names no host; ``detail`` keeps the store's own words for the log.
    """

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__("对象存储暂不可用或拒绝了请求，请稍后重试；仍失败请联系运维")


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
    """What the app needs from a blob store (local disk or an S3-compatible bucket)."""

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

    @abc.abstractmethod
    def check(self) -> None:
        """Prove the store takes a write now (for ``/healthz``); raises when it does not."""


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
            with os.fdopen(fd, "wb") as out:
                fd = -1  # now owned by ``out``
                digest, size = _copy_hashing(stream, out, limit)
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

    def check(self) -> None:
        """See :meth:`Storage.check`: a probe file written, fsynced and removed in the root."""
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".healthz-") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())

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


# --------------------------------------------------------------------------- S3-compatible

# Bucket names as S3 accepts them (3-63 lowercase letters, digits, dots and hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → ``(bucket, prefix)``; raises :class:`StorageError` naming what is wrong.

    The prefix may be empty or several ``/``-separated parts of letters, digits, ``.``, ``_`` and
    ``-``; credentials never go into the URL (they come from the standard AWS variables).
    """
    parts = urlsplit(url or "")
    if parts.scheme != "s3":
        raise StorageError(f"PORTAL_STORAGE_URL 无效：只支持 s3://存储桶/前缀（收到 {url!r}）")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise StorageError("PORTAL_STORAGE_URL 无效：只写 s3://存储桶/前缀，密钥请用 AWS_ACCESS_KEY_ID 等环境变量提供")
    bucket = parts.netloc  # not .hostname, which lowercases: S3 refuses upper-case names
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise StorageError(f"PORTAL_STORAGE_URL 无效：存储桶名称 {bucket!r} 不合法")
    prefix = parts.path.strip("/")
    if prefix and not all(_PREFIX_PART.fullmatch(p) for p in prefix.split("/")):
        raise StorageError(f"PORTAL_STORAGE_URL 无效：前缀 {prefix!r} 只能含字母、数字、点、下划线和短横线")
    return bucket, prefix


def open_storage(config: Mapping[str, Any]) -> Storage:
    """The store a configuration names: ``STORAGE_URL`` ``s3://…`` or, when empty, ``STORAGE_DIR`` on disk."""
    url = config.get("STORAGE_URL") or ""
    if not url:
        return LocalStorage(config["STORAGE_DIR"])
    bucket, prefix = parse_storage_url(url)
    return S3Storage(
        bucket, prefix,
        endpoint_url=config.get("S3_ENDPOINT_URL") or None,
        region=config.get("S3_REGION") or None,
        addressing_style=config.get("S3_ADDRESSING_STYLE") or None,
        connect_timeout=float(config.get("S3_CONNECT_TIMEOUT") or 3.05),
        read_timeout=float(config.get("S3_READ_TIMEOUT") or 30.0),
    )


class S3Storage(Storage):
    """Blobs as objects ``<prefix>/ab/cd/<sha256>`` and derived assets under
    ``<prefix>/derived/ab/cd/<sha256>/<name>`` in one bucket of an S3-compatible store.

    Every write is verified: the object is read back after the put and its size and sha256
    must match what was written, otherwise it is deleted and :class:`VerifyFailed` raised, so
    a row never refers to damaged content.  A stored blob found damaged by a later put of the
    same content is replaced.  Streams are spooled to a local temporary file first (the key is
    their sha256, known only at the end); reads are streamed in bounded chunks.  boto3 is
    imported here, not at module level, so a deployment on local disk does not need it.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, addressing_style: str | None = None,
                 connect_timeout: float = 3.05, read_timeout: float = 30.0, max_bytes: int | None = None):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise StorageError("S3 存储需要 boto3：请安装 pip install '.[s3]'") from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.max_bytes = max_bytes
        # MinIO and most self-hosted stores answer only path-style requests; AWS itself wants virtual hosts.
        style = addressing_style or ("path" if endpoint_url else "auto")
        config = Config(
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},  # every call here is idempotent
            s3={"addressing_style": style},
            # The sha256 header we send is the only body checksum: the optional CRC32 trailers of
            # newer botocore are not understood by every S3-compatible store.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        self._client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region,
                                                      config=config)

    # -- keys ---------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _blob_key(self, sha256: str) -> str:
        validate_sha256(sha256)
        return self._key(sha256[:2], sha256[2:4], sha256)

    def _derived_prefix(self, sha256: str) -> str:
        validate_sha256(sha256)
        return self._key("derived", sha256[:2], sha256[2:4], sha256) + "/"

    # -- calls --------------------------------------------------------------

    def _call(self, op: str, **kw):
        """One client call with the store's failures mapped to :class:`StorageError`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, op)(Bucket=self.bucket, **kw)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise BlobNotFound(errno.ENOENT, "文件不存在", kw.get("Key", "")) from None
            if code in ("412", "PreconditionFailed", "ConditionalRequestConflict"):
                raise _Exists() from None
            detail = f"{op} refused ({code}): {err.get('Message') or exc}"
        except BotoCoreError as exc:
            detail = f"{op} failed: {exc}"
        log.warning("object store s3://%s/%s: %s", self.bucket, self.prefix, detail)
        raise StoreUnavailable(detail)

    # -- blobs --------------------------------------------------------------

    def put(self, data, *, max_bytes: int | None = None) -> StoredBlob:
        """See :meth:`Storage.put`."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
            if limit is not None and len(data) > limit:
                raise TooLarge(limit)
            digest = hashlib.sha256(data)
            body: Any = data
            size = len(data)
        else:
            body, digest, size = _spool(data, limit)
        try:
            return self._put(body, digest, size)
        finally:
            if not isinstance(body, bytes):
                body.close()

    def _put(self, body, digest, size: int) -> StoredBlob:
        sha = digest.hexdigest()
        key = self._blob_key(sha)
        state = self._state(key, sha, size)
        if state == "ok":
            self._touch(key)
            return StoredBlob(sha, size, False)
        checksum = base64.b64encode(digest.digest()).decode("ascii")
        for _attempt in range(3):
            if not isinstance(body, bytes):
                body.seek(0)
            # Only the first of racing writers creates; a damaged object is replaced unconditionally.
            extra = {"IfNoneMatch": "*"} if state == "missing" else {}
            try:
                self._call("put_object", Key=key, Body=body, ContentLength=size, ChecksumSHA256=checksum, **extra)
                created = True
            except _Exists:
                created = False  # a concurrent put of the same content got there (or is getting there) first
            state = self._state(key, sha, size)
            if state == "ok":
                return StoredBlob(sha, size, created)
            if state == "damaged":
                # Content-addressed: no right content differs from ours, so removing it loses nothing.
                self._delete_keys([key])
                raise VerifyFailed()
            # missing: the concurrent write we yielded to did not land; write again.
        raise VerifyFailed()

    def _state(self, key: str, sha: str, size: int) -> str:
        """``missing``, ``ok`` or ``damaged``: the stored object is read back and hashed, so
        the check holds on stores that keep no checksum of their own."""
        try:
            got = self._call("get_object", Key=key)
        except BlobNotFound:
            return "missing"
        body = got["Body"]
        try:
            if got.get("ContentLength") != size:
                return "damaged"
            digest = hashlib.sha256()
            n = 0
            for chunk in body.iter_chunks(CHUNK):
                n += len(chunk)
                digest.update(chunk)
        finally:
            body.close()
        return "ok" if n == size and digest.hexdigest() == sha else "damaged"

    def _touch(self, key: str) -> None:
        """Renew the object's modification time (a copy onto itself): a row about to refer to it
        is younger than the cleaner's age threshold, so :meth:`delete_unless_recent` leaves it."""
        try:
            self._call("copy_object", Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                       MetadataDirective="REPLACE", Metadata={"touched": str(int(time.time()))})
        except BlobNotFound:
            pass

    def exists(self, sha256: str) -> bool:
        """See :meth:`Storage.exists`."""
        try:
            self._call("head_object", Key=self._blob_key(sha256))
        except BlobNotFound:
            return False
        return True

    def open(self, sha256: str) -> BinaryIO:
        """See :meth:`Storage.open`: a seekable reader that fetches in bounded chunks."""
        return io.BufferedReader(_S3Reader(self, self._blob_key(sha256), self.size(sha256)), CHUNK)

    def size(self, sha256: str) -> int:
        """See :meth:`Storage.size`."""
        return int(self._call("head_object", Key=self._blob_key(sha256))["ContentLength"])

    def path_hint(self, sha256: str) -> str | None:
        """See :meth:`Storage.path_hint`: objects have no local path."""
        validate_sha256(sha256)
        return None

    def delete(self, sha256: str) -> bool:
        """See :meth:`Storage.delete`."""
        key = self._blob_key(sha256)
        existed = self.exists(sha256)
        self._delete_keys([k for k, _ in self._list(self._derived_prefix(sha256))])
        if existed:
            self._delete_keys([key])
        return existed

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start:start + 1000]
            if batch:
                self._call("delete_objects", Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})

    def _list(self, prefix: str) -> Iterator[tuple[str, float]]:
        """``(key, last-modified epoch seconds)`` of every object under ``prefix``."""
        token = None
        while True:
            page = self._call("list_objects_v2", Prefix=prefix, **({"ContinuationToken": token} if token else {}))
            for obj in page.get("Contents", []):
                yield obj["Key"], obj["LastModified"].timestamp()
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    # -- derived ------------------------------------------------------------

    def put_derived(self, sha256: str, name: str, data: bytes) -> None:
        """See :meth:`Storage.put_derived` (a put replaces the object atomically)."""
        key = self._derived_prefix(sha256) + _validate_name(name)
        self._call("put_object", Key=key, Body=bytes(data),
                   ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode("ascii"))

    def get_derived(self, sha256: str, name: str) -> bytes | None:
        """See :meth:`Storage.get_derived`."""
        key = self._derived_prefix(sha256) + _validate_name(name)
        try:
            got = self._call("get_object", Key=key)
        except BlobNotFound:
            return None
        with got["Body"] as body:
            return body.read()

    def check(self) -> None:
        """See :meth:`Storage.check`: a probe object written and removed under ``tmp/``."""
        key = self._key("tmp", f"healthz-{uuid.uuid4().hex}")
        self._call("put_object", Key=key, Body=b"ok")
        self._delete_keys([key])

    # -- housekeeping -------------------------------------------------------

    def cleanup_temp(self, older_than: float = 3600.0) -> int:
        """Nothing to clean: streams are spooled to local temporary files that vanish when
        closed, and a single put is atomic in the store; returns 0."""
        return 0

    def blobs_older_than(self, older_than: float) -> Iterator[str]:
        """Keys of the stored blobs not written or touched in the last ``older_than`` seconds."""
        cutoff = time.time() - older_than
        skip = self._key("derived") + "/", self._key("tmp") + "/"
        for key, modified in self._list(self._key("") + "/" if self.prefix else ""):
            if key.startswith(skip):
                continue
            name = key.rsplit("/", 1)[-1]
            if _SHA256.fullmatch(name) and key == self._blob_key(name) and modified < cutoff:
                yield name

    def delete_unless_recent(self, sha256: str, older_than: float) -> bool:
        """Delete a blob (and its derived assets) unless it was written or touched in the last
        ``older_than`` seconds, e.g. by a :meth:`put` whose row is about to commit."""
        try:
            head = self._call("head_object", Key=self._blob_key(sha256))
        except BlobNotFound:
            return False
        if head["LastModified"].timestamp() >= time.time() - older_than:
            return False
        return self.delete(sha256)


class _Exists(StorageError):
    """A conditional put found the key taken (internal)."""


class _S3Reader(io.RawIOBase):
    """A seekable read-only view of one object: each read continues one ranged GET from the
    current position, and a seek drops it, so bytes are fetched as they are consumed."""

    def __init__(self, store: S3Storage, key: str, size: int):
        super().__init__()
        self._store = store
        self._key = key
        self._size = size
        self._pos = 0
        self._body = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = max(0, base + offset)
        if pos != self._pos:
            self._drop()
            self._pos = pos
        return pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        if self._body is None:
            got = self._store._call("get_object", Key=self._key, Range=f"bytes={self._pos}-")
            self._body = got["Body"]
        view = memoryview(buffer).cast("B")
        chunk = self._body.read(len(view))
        if not chunk:
            raise StoreUnavailable(f"{self._key} ended at byte {self._pos} of {self._size}")
        view[:len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()


def _spool(stream: BinaryIO, limit: int | None):
    """Copy a stream into a local temporary file (in memory while small); returns (file, sha256 object, size)."""
    out = tempfile.SpooledTemporaryFile(max_size=CHUNK, prefix="put-", suffix=".part")
    try:
        digest, size = _copy_hashing(stream, out, limit)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out, digest, size


def _copy_hashing(stream: BinaryIO, out: BinaryIO, limit: int | None):
    """Copy ``stream`` into ``out`` chunk by chunk; returns (sha256 object, size). TooLarge past ``limit``."""
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if limit is not None and size > limit:
            raise TooLarge(limit)
        digest.update(chunk)
        out.write(chunk)
    return digest, size


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
