"""The portal on S3-compatible object storage (``STORAGE_URL=s3://bucket/prefix``), against moto's
server on loopback: upload → page → original, streamed originals, health, refusals, cleaning."""
from __future__ import annotations

import contextvars
import hashlib
import os
import subprocess
import sys
import tracemalloc

import pytest
from sqlalchemy import func, select

from portal import bills, create_app, housekeeping, links
from portal.blueprints.bills import assets
from portal.extensions import db
from portal.models import Blob, Image
from portal.files.storage import S3Storage, StorageError

from .conftest import REPO, _config, corpus
from .s3_plugin import bucket_keys
from .test_bills_ui import bill, scanner, upload, world  # noqa: F401  (fixtures)

PDF = "vat_e_special_guizhou_00008006.pdf"
OFD_MULTIPAGE = "vat_e_ordinary_chongqing_12235358.ofd"


def _blob_key(sha: str) -> str:
    return f"portal/{sha[:2]}/{sha[2:4]}/{sha}"


def _local_files(app) -> list[str]:
    root = app.config["STORAGE_DIR"]
    return [f for _, _, names in os.walk(root) for f in names] if os.path.isdir(root) else []


def test_upload_page_and_original_round_trip(s3_app, scanner, s3_server, s3_bucket):
    data = corpus(OFD_MULTIPAGE)
    sha = hashlib.sha256(data).hexdigest()
    resp = upload(scanner, "BX-0001", OFD_MULTIPAGE)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert isinstance(bills.storage(), S3Storage)
    assert bucket_keys(s3_server, s3_bucket) == [_blob_key(sha)]
    assert _local_files(s3_app) == []  # nothing went to STORAGE_DIR
    image = bills.live_images(bill("BX-0001"))[0]

    thumb = scanner.get(f"/bills/images/{image.id}/thumb")
    assert thumb.status_code == 200 and thumb.data[:3] == b"\xff\xd8\xff"
    page = scanner.get(f"/bills/images/{image.id}/pages/2")
    assert page.status_code == 200 and page.mimetype == "image/jpeg"
    derived = f"portal/derived/{sha[:2]}/{sha[2:4]}/{sha}/"
    assert bucket_keys(s3_server, s3_bucket, derived) == [derived + "page-2-1800.jpg", derived + "thumb-320.jpg"]
    # Cached: the second request is answered from the stored render.
    assert bills.storage().get_derived(sha, "thumb-320.jpg") == thumb.data
    assert scanner.get(f"/bills/images/{image.id}/thumb").data == thumb.data

    for url in (f"/bills/images/{image.id}/original",
                f"/v/{links.view_link(image.bill_id).token}/images/{image.id}/original"):
        original = scanner.get(url, buffered=True)
        assert original.status_code == 200 and original.data == data
        assert original.mimetype == "application/ofd" and original.content_length == len(data)
        assert original.headers["Content-Disposition"] == f"attachment; filename={OFD_MULTIPAGE}"
        assert original.headers["X-Content-Type-Options"] == "nosniff"
        assert original.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert original.headers["Accept-Ranges"] == "bytes"
        assert "private" in original.headers["Cache-Control"]
        etag = original.headers["ETag"]
        assert sha in etag
        again = scanner.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.data == b""


def test_original_answers_range_requests_from_the_store(s3_app, scanner):
    data = corpus(PDF)
    image = bills.add_file(bill("BX-0001"), data, PDF, "tester").image
    db.session.commit()
    url = f"/bills/images/{image.id}/original"
    part = scanner.get(url, headers={"Range": "bytes=100-1099"}, buffered=True)
    assert part.status_code == 206 and part.data == data[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
    tail = scanner.get(url, headers={"Range": "bytes=-10"}, buffered=True)
    assert tail.status_code == 206 and tail.data == data[-10:]
    assert scanner.get(url, headers={"Range": f"bytes={len(data) + 5}-"}).status_code == 416


def test_a_30_mb_original_is_streamed_in_bounded_chunks(s3_app, scanner):
    data = os.urandom(30 * 1024 * 1024)
    sha = bills.storage().put(data).sha256
    expected = hashlib.sha256(data).hexdigest()
    del data
    db.session.add(Blob(sha256=sha, size=30 * 1024 * 1024, media_type="application/pdf", pages=1))
    image = Image(bill_id=bill("BX-0001").id, sha256=sha, filename="大文件.pdf", uploaded_by="tester", position=1)
    db.session.add(image)
    db.session.commit()

    # The view alone: the test client would fetch the first chunk, which is not the view's doing.
    with s3_app.test_request_context(f"/bills/images/{image.id}/original"):
        tracemalloc.start()
        try:
            resp = assets.original(image)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        resp.close()
    assert peak < 2 * 1024 * 1024  # answering did not read the file

    resp = contextvars.Context().run(scanner.client.get, f"/bills/images/{image.id}/original")
    assert resp.status_code == 200 and resp.is_streamed and resp.content_length == 30 * 1024 * 1024
    digest, total, chunks, largest = hashlib.sha256(), 0, 0, 0
    try:
        for chunk in resp.response:
            digest.update(chunk)
            total += len(chunk)
            chunks += 1
            largest = max(largest, len(chunk))
    finally:
        resp.close()
    assert total == 30 * 1024 * 1024 and digest.hexdigest() == expected
    assert largest <= 1024 * 1024 and chunks >= 30


def test_upload_is_refused_in_chinese_when_the_store_fails(app, scanner, s3_server, s3_credentials):
    app.config.update(STORAGE_URL="s3://no-such-bucket-here/portal", S3_ENDPOINT_URL=s3_server)
    app.extensions.pop("portal_storage", None)
    resp = upload(scanner, "BX-0001", PDF)
    assert resp.status_code == 503
    text = resp.get_data(as_text=True)
    assert f"文件 {PDF} 未能保存：对象存储暂不可用" in text
    assert "127.0.0.1" not in text and "no-such-bucket" not in text  # the store's details go to the log only
    assert db.session.scalar(select(func.count()).select_from(Image)) == 0
    assert db.session.scalar(select(func.count()).select_from(Blob)) == 0
    assert bill("BX-0001").status == "pending"


def test_healthz_asks_the_object_store(s3_app, scanner, s3_server, s3_bucket):
    resp = scanner.get("/healthz")
    assert resp.status_code == 200 and resp.get_json()["storage"] == "ok"
    assert bucket_keys(s3_server, s3_bucket) == []  # the probe object is removed
    assert _local_files(s3_app) == []
    s3_app.config["STORAGE_URL"] = "s3://no-such-bucket-here/portal"
    s3_app.extensions.pop("portal_storage", None)
    resp = scanner.get("/healthz")
    assert resp.status_code == 503 and resp.get_json()["storage"] == "error"


def test_cleaning_removes_orphans_from_the_bucket_and_keeps_used_blobs(s3_app, world, s3_server, s3_bucket):
    store = bills.storage()
    orphan = store.put(b"stored, then the process was killed").sha256
    store.put_derived(orphan, "thumb-320.jpg", b"jpeg")
    used = bills.add_file(bill("BX-0001"), corpus(PDF), PDF, "erp").image.sha256
    db.session.commit()
    assert housekeeping.clean_storage(older_than=3600) == housekeeping.Cleaned(0, 0)  # all too recent
    assert housekeeping.clean_storage(older_than=-60) == housekeeping.Cleaned(0, 1)
    assert bucket_keys(s3_server, s3_bucket) == [_blob_key(used)]


def test_a_bad_storage_url_stops_the_start(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    with pytest.raises(StorageError, match="PORTAL_STORAGE_URL 无效"):
        create_app(_config(tmp_path, STORAGE_URL="s3://Invoices/x"))


def test_local_storage_needs_no_boto3(tmp_path):
    """boto3 is imported by the S3 backend only: the default deployment does not install it."""
    code = ("import sys\nfrom portal import create_app\nfrom portal.files.storage import open_storage\n"
            f"app = create_app({{'TESTING': True, 'SECRET_KEY': 'x', 'DATA_KEY': 'x', 'STORAGE_DIR': {str(tmp_path / 's')!r},"
            f" 'SQLALCHEMY_DATABASE_URI': 'sqlite:///{tmp_path / 'db.sqlite3'}'}})\n"
            "open_storage(app.config).check()\n"
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE=str(tmp_path / "instance"), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
