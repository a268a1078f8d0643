"""Content-addressed local storage (portal.storage)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
import time

import pytest

from portal.storage import (
    BlobNotFound,
    InvalidKey,
    LocalStorage,
    Storage,
    StoredBlob,
    TooLarge,
)


def _files(root) -> list[str]:
    """Every regular file under root, relative."""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


@pytest.fixture
def store(tmp_path):
    return LocalStorage(tmp_path / "storage")


def test_is_a_storage(store):
    assert isinstance(store, Storage)


def test_put_is_content_addressed(store):
    data = b"%PDF-1.7 invoice bytes"
    sha = hashlib.sha256(data).hexdigest()
    blob = store.put(data)
    assert blob == StoredBlob(sha, len(data), True)
    assert _files(store.root) == [os.path.join(sha[:2], sha[2:4], sha)]
    assert store.exists(sha)
    assert store.read(sha) == data
    assert store.size(sha) == len(data)
    with store.open(sha) as fh:
        assert fh.read() == data
    assert store.path_hint(sha) == os.path.join(store.root, sha[:2], sha[2:4], sha)


def test_put_twice_stores_once(store):
    data = os.urandom(3000)
    first = store.put(data)
    second = store.put(data)
    third = store.put(io.BytesIO(data))  # a stream of the same content
    assert first.created is True
    assert second.created is False and third.created is False
    assert first.sha256 == second.sha256 == third.sha256
    assert len(_files(store.root)) == 1


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
def test_too_large_leaves_nothing(tmp_path, as_stream):
    store = LocalStorage(tmp_path / "s", max_bytes=1000)
    data = os.urandom(5000)
    with pytest.raises(TooLarge) as info:
        store.put(io.BytesIO(data) if as_stream else data)
    assert info.value.limit == 1000
    assert "文件过大" in str(info.value)
    assert _files(store.root) == []
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
    assert len(_files(store.root)) == 11  # one file per distinct content, no temp leftovers
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
    leftovers = [f for f in _files(store.root) if ".part" in f]
    assert leftovers == []


def test_delete_removes_blob_and_derived(store):
    sha = store.put(b"to delete").sha256
    store.put_derived(sha, "thumb-320.jpg", b"t")
    assert store.delete(sha) is True
    assert not store.exists(sha)
    assert store.get_derived(sha, "thumb-320.jpg") is None
    assert store.delete(sha) is False
    assert _files(store.root) == []
    assert store.put(b"to delete").created is True  # can be stored again


def test_cleanup_temp(store):
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


def test_cleanup_temp_takes_stale_derived_part_files_too(store):
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


def test_blobs_older_than_lists_only_untouched_blobs(store):
    old, new = store.put(b"old one").sha256, store.put(b"new one").sha256
    _age(os.path.join(store.root, old[:2], old[2:4], old))
    assert list(store.blobs_older_than(3600)) == [old]
    assert new not in list(store.blobs_older_than(3600))


def test_putting_stored_content_again_makes_it_recent(store):
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
