"""Content-addressed storage (portal.files.storage): one contract, run on local disk and on a loopback S3 server."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
import time

import pytest

from portal.files.storage import (
    BlobNotFound,
    InvalidKey,
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    StoredBlob,
    TooLarge,
    VerifyFailed,
    open_storage,
    parse_storage_url,
)

from .s3_plugin import bucket_keys, s3_client

PREFIX = "invoices/prod"


def _files(root) -> list[str]:
    """Every regular file under root, relative."""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def _files_of(store: Storage) -> list[str]:
    """What a store holds, as paths relative to its root (local) or keys relative to its prefix (S3)."""
    if isinstance(store, LocalStorage):
        return _files(store.root)
    return [k[len(PREFIX) + 1:] for k in bucket_keys(store.endpoint, store.bucket, PREFIX + "/")]


@pytest.fixture(params=["local", "s3"])
def make_store(request, tmp_path):
    """A factory of empty stores of each backend; ``max_bytes`` as the store's default limit."""
    def make(max_bytes=None) -> Storage:
        if request.param == "local":
            return LocalStorage(tmp_path / "storage", max_bytes=max_bytes)
        endpoint = request.getfixturevalue("s3_server")
        made = S3Storage(request.getfixturevalue("s3_bucket"), PREFIX, endpoint_url=endpoint, max_bytes=max_bytes)
        made.endpoint = endpoint
        return made

    return make


@pytest.fixture
def store(make_store):
    return make_store()


@pytest.fixture
def local(tmp_path):
    """Tests of what only the disk backend has: file modes, part files, mtimes."""
    return LocalStorage(tmp_path / "storage")


def test_is_a_storage(store):
    assert isinstance(store, Storage)


def test_put_is_content_addressed(store):
    data = b"%PDF-1.7 invoice bytes"
    sha = hashlib.sha256(data).hexdigest()
    blob = store.put(data)
    assert blob == StoredBlob(sha, len(data), True)
    assert _files_of(store) == [f"{sha[:2]}/{sha[2:4]}/{sha}"]
    assert store.exists(sha)
    assert store.read(sha) == data
    assert store.size(sha) == len(data)
    with store.open(sha) as fh:
        assert fh.read() == data
    if isinstance(store, LocalStorage):
        assert store.path_hint(sha) == os.path.join(store.root, sha[:2], sha[2:4], sha)
    else:
        assert store.path_hint(sha) is None  # nothing local: originals are streamed from the store


def test_put_twice_stores_once(store):
    data = os.urandom(3000)
    first = store.put(data)
    second = store.put(data)
    third = store.put(io.BytesIO(data))  # a stream of the same content
    assert first.created is True
    assert second.created is False and third.created is False
    assert first.sha256 == second.sha256 == third.sha256
    assert len(_files_of(store)) == 1


def test_put_stream_larger_than_a_chunk(store):
    data = os.urandom(2 * 1024 * 1024 + 123)
    blob = store.put(io.BytesIO(data))
    assert blob.size == len(data)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert store.read(blob.sha256) == data


def test_modes_ignore_umask(tmp_path):
    old = os.umask(0o077)
    try:
        store = LocalStorage(tmp_path / "s")
        blob = store.put(b"abc")
        store.put_derived(blob.sha256, "thumb-320.jpg", b"jpeg")
    finally:
        os.umask(old)
    path = store.path_hint(blob.sha256)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(os.path.dirname(os.path.dirname(path))).st_mode) == 0o750
    derived = os.path.join(store.root, "derived", blob.sha256[:2], blob.sha256[2:4], blob.sha256, "thumb-320.jpg")
    assert stat.S_IMODE(os.stat(derived).st_mode) == 0o640


@pytest.mark.parametrize("as_stream", [False, True])
def test_too_large_leaves_nothing(make_store, as_stream):
    store = make_store(max_bytes=1000)
    data = os.urandom(5000)
    with pytest.raises(TooLarge) as info:
        store.put(io.BytesIO(data) if as_stream else data)
    assert info.value.limit == 1000
    assert "文件过大" in str(info.value)
    assert _files_of(store) == []
    assert not store.exists(hashlib.sha256(data).hexdigest())
    # a per-call limit overrides the store default
    assert store.put(data, max_bytes=10_000).created
    with pytest.raises(TooLarge):
        store.put(b"x" * 11, max_bytes=10)


def test_concurrent_puts(store):
    shared = os.urandom(1024 * 1024 + 7)  # more than one chunk when streamed
    distinct = [os.urandom(50_000) + bytes([i]) for i in range(10)]
    jobs = [("shared", shared, i % 2 == 0) for i in range(10)] + [("own", d, i % 2 == 1) for i, d in enumerate(distinct)]
    barrier = threading.Barrier(len(jobs))
    results: list[tuple[str, StoredBlob]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(kind: str, data: bytes, stream: bool) -> None:
        try:
            barrier.wait()
            blob = store.put(io.BytesIO(data) if stream else data)
            with lock:
                results.append((kind, blob))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20

    shared_sha = hashlib.sha256(shared).hexdigest()
    shared_results = [b for kind, b in results if kind == "shared"]
    assert {b.sha256 for b in shared_results} == {shared_sha}
    assert sum(b.created for b in shared_results) == 1
    assert all(b.created for kind, b in results if kind == "own")

    for data in [shared, *distinct]:
        assert store.read(hashlib.sha256(data).hexdigest()) == data
    assert len(_files_of(store)) == 11  # one file per distinct content, no temp leftovers
    if isinstance(store, LocalStorage):
        assert os.listdir(os.path.join(store.root, "tmp")) == []


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "A" * 64, "ab" * 31, "g" * 64, "", "0" * 63 + "/", None, "0" * 64 + "\n"],
)
def test_keys_are_validated(store, key):
    for call in (store.exists, store.open, store.path_hint, store.delete, store.size):
        with pytest.raises(InvalidKey):
            call(key)
    with pytest.raises(InvalidKey):
        store.get_derived(key, "thumb.jpg")


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x" * 101, "a\x00b", "a..b"])
def test_derived_names_are_validated(store, name):
    sha = store.put(b"data").sha256
    with pytest.raises(InvalidKey):
        store.put_derived(sha, name, b"x")
    with pytest.raises(InvalidKey):
        store.get_derived(sha, name)


def test_missing_blob(store):
    sha = "0" * 64
    assert not store.exists(sha)
    assert store.path_hint(sha) is None
    with pytest.raises(BlobNotFound):
        store.open(sha)
    with pytest.raises(FileNotFoundError):  # BlobNotFound is also a FileNotFoundError
        store.size(sha)
    assert store.delete(sha) is False


def test_derived_assets(store):
    sha = store.put(b"original").sha256
    assert store.get_derived(sha, "thumb-320.jpg") is None
    store.put_derived(sha, "thumb-320.jpg", b"one")
    store.put_derived(sha, "thumb-320.jpg", b"two")  # replaced atomically
    store.put_derived(sha, "page-2-1600.jpg", b"page")
    assert store.get_derived(sha, "thumb-320.jpg") == b"two"
    assert store.get_derived(sha, "page-2-1600.jpg") == b"page"
    leftovers = [f for f in _files_of(store) if ".part" in f]
    assert leftovers == []


def test_delete_removes_blob_and_derived(store):
    sha = store.put(b"to delete").sha256
    store.put_derived(sha, "thumb-320.jpg", b"t")
    assert store.delete(sha) is True
    assert not store.exists(sha)
    assert store.get_derived(sha, "thumb-320.jpg") is None
    assert store.delete(sha) is False
    assert _files_of(store) == []
    assert store.put(b"to delete").created is True  # can be stored again


def test_cleanup_temp(local):
    store = local
    stale = os.path.join(store.root, "tmp", "put-crashed.part")
    with open(stale, "wb") as fh:
        fh.write(b"partial")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = os.path.join(store.root, "tmp", "put-running.part")
    with open(fresh, "wb") as fh:
        fh.write(b"partial")
    assert store.cleanup_temp(older_than=3600) == 1
    assert os.listdir(os.path.join(store.root, "tmp")) == ["put-running.part"]


# --------------------------------------------------------------------------- cleaning what killed uploads left

def _age(path: str, seconds: float = 7200) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_cleanup_temp_takes_stale_derived_part_files_too(local):
    store = local
    sha = store.put(b"rendered").sha256
    store.put_derived(sha, "thumb-320.jpg", b"jpeg")
    directory = os.path.dirname(os.path.join(store.root, "derived", sha[:2], sha[2:4], sha, "x"))
    stale, fresh = os.path.join(directory, ".part-killed"), os.path.join(directory, ".part-running")
    for path in (stale, fresh):
        with open(path, "wb") as fh:
            fh.write(b"half")
    _age(stale)
    assert store.cleanup_temp(older_than=3600) == 1
    assert sorted(os.listdir(directory)) == [".part-running", "thumb-320.jpg"]


def test_blobs_older_than_lists_only_untouched_blobs(local):
    store = local
    old, new = store.put(b"old one").sha256, store.put(b"new one").sha256
    _age(os.path.join(store.root, old[:2], old[2:4], old))
    assert list(store.blobs_older_than(3600)) == [old]
    assert new not in list(store.blobs_older_than(3600))


def test_putting_stored_content_again_makes_it_recent(local):
    store = local
    sha = store.put(b"kept by a new upload").sha256
    path = os.path.join(store.root, sha[:2], sha[2:4], sha)
    _age(path)
    assert store.put(b"kept by a new upload").created is False
    assert store.delete_unless_recent(sha, 3600) is False and store.exists(sha)
    _age(path)
    assert store.put(io.BytesIO(b"kept by a new upload")).created is False  # the stream path too
    assert store.delete_unless_recent(sha, 3600) is False and store.exists(sha)
    _age(path)
    assert store.delete_unless_recent(sha, 3600) is True and not store.exists(sha)


def test_check_proves_a_write_and_leaves_nothing(store):
    store.check()
    assert _files_of(store) == []


def test_reader_streams_and_seeks(store):
    data = os.urandom(3 * 1024 * 1024 + 5)
    sha = store.put(data).sha256
    with store.open(sha) as fh:
        assert fh.seek(0, io.SEEK_END) == len(data)
        fh.seek(2 * 1024 * 1024 - 3)
        assert fh.read(10) == data[2 * 1024 * 1024 - 3:2 * 1024 * 1024 + 7]
        fh.seek(1)
        assert fh.read(4) == data[1:5]
        assert fh.read() == data[5:]


# --------------------------------------------------------------------------- S3 only

@pytest.fixture
def s3(s3_server, s3_bucket):
    made = S3Storage(s3_bucket, PREFIX, endpoint_url=s3_server)
    made.endpoint = s3_server
    return made


def test_s3_keeps_the_layout_under_its_prefix(s3, s3_server, s3_bucket):
    sha = s3.put(b"pdf bytes").sha256
    s3.put_derived(sha, "thumb-320.jpg", b"jpeg")
    assert bucket_keys(s3_server, s3_bucket) == [
        f"{PREFIX}/{sha[:2]}/{sha[2:4]}/{sha}",
        f"{PREFIX}/derived/{sha[:2]}/{sha[2:4]}/{sha}/thumb-320.jpg",
    ]
    assert list(s3.blobs_older_than(-60)) == [sha]  # derived objects are never taken for blobs


def test_s3_put_replaces_a_damaged_object(s3, s3_server, s3_bucket):
    data = b"the real invoice bytes"
    sha = hashlib.sha256(data).hexdigest()
    key = f"{PREFIX}/{sha[:2]}/{sha[2:4]}/{sha}"
    damaged = bytes([data[0] ^ 1]) + data[1:]  # same size, one bit off
    s3_client(s3_server).put_object(Bucket=s3_bucket, Key=key, Body=damaged)
    assert s3.put(data) == StoredBlob(sha, len(data), True)
    assert s3.read(sha) == data


@pytest.mark.parametrize("as_stream", [False, True])
def test_s3_write_that_does_not_verify_is_refused_and_removed(s3, as_stream):
    """Bytes damaged on the way to the store: the read-back sha256 differs, the put is refused."""
    data = os.urandom(4096)

    def damage(request, **_kw):
        if request.method == "PUT" and "/derived/" not in request.url:
            body = request.body.read() if hasattr(request.body, "read") else bytes(request.body)
            request.body = bytes([body[0] ^ 1]) + body[1:]

    s3._client.meta.events.register("before-send.s3.PutObject", damage)
    with pytest.raises(VerifyFailed) as info:
        s3.put(io.BytesIO(data) if as_stream else data)
    assert "校验不一致" in str(info.value)
    assert not s3.exists(hashlib.sha256(data).hexdigest())
    assert _files_of(s3) == []


def test_s3_putting_stored_content_again_renews_it(s3, s3_server, s3_bucket):
    sha = s3.put(b"kept by a new upload").sha256
    key = f"{PREFIX}/{sha[:2]}/{sha[2:4]}/{sha}"
    assert "touched" not in s3_client(s3_server).head_object(Bucket=s3_bucket, Key=key)["Metadata"]
    assert s3.put(b"kept by a new upload").created is False
    # The copy onto itself is what renews LastModified, the age the cleaner goes by.
    assert "touched" in s3_client(s3_server).head_object(Bucket=s3_bucket, Key=key)["Metadata"]


def test_s3_cleaning_spares_recent_blobs(s3):
    sha = s3.put(b"orphan").sha256
    assert list(s3.blobs_older_than(3600)) == []
    assert s3.delete_unless_recent(sha, 3600) is False and s3.exists(sha)
    assert s3.delete_unless_recent(sha, -60) is True and not s3.exists(sha)
    assert s3.cleanup_temp(0) == 0


def test_s3_store_failures_are_storage_errors(s3_server, s3_credentials):
    missing = S3Storage("no-such-bucket-here", endpoint_url=s3_server)
    with pytest.raises(StorageError, match="对象存储暂不可用") as info:
        missing.check()
    assert "NoSuchBucket" in info.value.detail  # for the log; the message names no host
    with pytest.raises(StorageError):
        missing.put(b"x")


@pytest.mark.parametrize("url, bucket, prefix", [
    ("s3://invoices", "invoices", ""),
    ("s3://invoices/", "invoices", ""),
    ("s3://my.bucket-1/portal/prod/", "my.bucket-1", "portal/prod"),
])
def test_storage_url(url, bucket, prefix):
    assert parse_storage_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url", [
    "file:///srv/storage", "invoices/prefix", "s3://AB/x", "s3://a", "s3://key:secret@bucket/x",
    "s3://bucket:9000/x", "s3://bucket/x?region=cn", "s3://bucket/../x", "s3://bucket/a//b", "s3://bucket/a b",
])
def test_bad_storage_url_is_refused(url):
    with pytest.raises(StorageError, match="PORTAL_STORAGE_URL 无效"):
        parse_storage_url(url)


def test_open_storage_picks_the_backend(tmp_path, s3_server, s3_bucket):
    assert isinstance(open_storage({"STORAGE_URL": "", "STORAGE_DIR": str(tmp_path)}), LocalStorage)
    s3 = open_storage({"STORAGE_URL": f"s3://{s3_bucket}/p", "STORAGE_DIR": str(tmp_path), "S3_ENDPOINT_URL": s3_server})
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == (s3_bucket, "p")
    s3.check()
