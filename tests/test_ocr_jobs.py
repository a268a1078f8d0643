"""Background OCR of paper invoices (识别中 → values, 待确认) through both executors of the job model.

The upload answers at once; the OCR of the no-QR paper sample runs in the runner's pass, or in a real
``flask worker`` subprocess on the local Redis, with the file in moto's S3 server — killed mid-OCR and
replaced by another worker, the job finishes once. Run with ``PORTAL_TEST_DATABASE_URL`` for PostgreSQL.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select

from portal import bills, ocr_jobs, ocr_state
from portal.blueprints.api.serializers import bill_json
from portal.extensions import db
from portal.jobs import redis_queue, runner
from portal.models import AuditEvent, BillEvent, Image, Invoice
from portal.recognition import Invoice as Reading

from .conftest import DATA_KEY
from .s3_plugin import bucket_keys
from .test_bills_ui import bill, scanner, upload, world  # noqa: F401  (fixtures)
from .test_jobs import ROOT, on_redis, redis_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(not ocr_state.installed(), reason="OCR（rapidocr-onnxruntime）未安装")

PAPER = "vat_special_paper_sample_87654321.jpg"
PNG_QR = "vat_e_ordinary_tianjin_33207675.png"


@pytest.fixture
def ocr_on(app):
    app.config["OCR_BACKGROUND"] = True
    return app


def image_of(no: str) -> Image:
    db.session.expire_all()
    return db.session.scalar(select(Image).where(Image.bill_id == bill(no).id))


def card(browser, no: str, image: Image):
    return browser.get(f"/bills/{no}/images/{image.id}/card", htmx=f"image-{image.id}")


def ocr_invoices(image: Image) -> list[Invoice]:
    return list(db.session.scalars(select(Invoice).where(Invoice.image_id == image.id)))


# --------------------------------------------------------------------------- the runner


def test_upload_answers_at_once_and_one_pass_fills_the_card_with_values_to_confirm(ocr_on, scanner):
    started = time.monotonic()
    resp = upload(scanner, "BX-0001", PAPER)
    elapsed = time.monotonic() - started
    html = resp.get_data(as_text=True)
    assert resp.status_code == 201, html
    # No OCR in the request: it answers with the card 识别中 and no readings (below). The bound is loose
    # because the file-work child starts cold here on a shared 2-core box; OCR of this page alone takes 4–30 s.
    assert elapsed < 15, elapsed
    assert "识别中" in html and 'hx-trigger="every 2s"' in html
    image = image_of("BX-0001")
    assert f'hx-get="/bills/BX-0001/images/{image.id}/card"' in html
    assert image.ocr_state == "queued" and ocr_invoices(image) == []
    assert "<script" not in html  # CSP script-src 'self': the polling is htmx attributes only
    # Still recognising: the polled card says so and keeps polling.
    polled = card(scanner, "BX-0001", image)
    assert 'hx-trigger="every 2s"' in polled.get_data(as_text=True) and "HX-Trigger" not in polled.headers
    api = bill_json(bill("BX-0001"))
    assert api["images"][0]["recognition"] == {"state": "queued", "attempts": 0, "error": None}

    result = runner.one_pass()
    assert result.recognised["done"] == 1
    assert "OCR 识别：完成 1" in result.summary()
    image = image_of("BX-0001")
    assert (image.ocr_state, image.ocr_attempts, image.ocr_error) == ("done", 1, None)
    [inv] = ocr_invoices(image)
    assert (inv.source, inv.code, inv.number, str(inv.total)) == ("ocr", "1100094140", "87654321", "7018.83")
    assert inv.needs_confirm
    resp = card(scanner, "BX-0001", image)
    html = resp.get_data(as_text=True)
    assert "87654321" in html and ("7,018.83" in html or "7018.83" in html)
    assert "待确认" in html and "确认</button>" in html
    assert "every 2s" not in html and "识别中" not in html  # the polling stops
    assert "bill-changed" in resp.headers["HX-Trigger"]  # the page's head and history refresh once
    [ev] = db.session.scalars(select(BillEvent).where(BillEvent.action == "ocr"))
    assert ev.detail["to_confirm"] == 1
    api = bill_json(bill("BX-0001"))
    assert api["images"][0]["recognition"]["state"] == "done"
    assert api["invoices"][0]["needs_confirmation"] is True and api["invoices"][0]["number"] == "87654321"

    # A second pass finds nothing due: the job ran once.
    assert runner.one_pass().recognised == {"done": 0, "retry": 0, "failed": 0, "skipped": 0}
    assert len(ocr_invoices(image)) == 1

    # Submit is refused while the OCR'd invoice is unconfirmed, naming it; 确认 is audited; then it goes.
    resp = scanner.post("/bills/BX-0001/submit")
    assert resp.status_code == 409
    text = resp.get_data(as_text=True)
    assert "尚未确认" in text and "87654321" in text and PAPER in text
    assert bill("BX-0001").status == "uploaded"
    resp = scanner.post(f"/bills/BX-0001/invoices/{inv.id}/confirm", htmx=f"invoice-{inv.id}")
    assert resp.status_code == 200 and "待确认" not in resp.get_data(as_text=True)
    assert "已确认" in resp.get_data(as_text=True)
    inv = db.session.get(Invoice, inv.id)
    assert not inv.needs_confirm and inv.confirmed_by == "scanner1" and inv.confirmed_at is not None
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "confirm",
                                                       AuditEvent.object_type == "invoice"))
    assert audit is not None and "87654321" in audit.summary
    assert scanner.post("/bills/BX-0001/submit").status_code == 303
    assert bill("BX-0001").status != "uploaded"


def test_submit_is_refused_while_an_image_is_still_recognising(ocr_on, scanner):
    assert upload(scanner, "BX-0001", PAPER).status_code == 201
    resp = scanner.post("/bills/BX-0001/submit")
    assert resp.status_code == 409
    assert "识别中" in resp.get_data(as_text=True) and PAPER in resp.get_data(as_text=True)
    assert bill("BX-0001").status == "uploaded"


def test_an_image_whose_qr_reads_waits_only_for_a_fill(ocr_on, scanner):
    """Its QR gave the invoice but no names: OCR may fill them later; the bill need not wait for it."""
    assert upload(scanner, "BX-0001", PNG_QR).status_code == 201
    image = image_of("BX-0001")
    assert image.ocr_state == "queued" and ocr_state.fill_only(image)
    assert [i.needs_confirm for i in ocr_invoices(image)] == [False]
    assert scanner.post("/bills/BX-0001/submit").status_code == 303


def test_without_ocr_installed_the_card_says_so_and_nothing_is_queued(ocr_on, scanner, monkeypatch):
    monkeypatch.setattr(ocr_state, "_installed", False)
    resp = upload(scanner, "BX-0001", PAPER)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 201 and "OCR 未安装" in html and "every 2s" not in html
    assert image_of("BX-0001").ocr_state == "unavailable" and ocr_jobs.due_ids() == []
    assert scanner.post("/bills/BX-0001/submit").status_code == 303  # nothing to wait for


def test_a_correction_clears_the_confirmation_flag(app, scanner):
    image = upload(scanner, "BX-0001", PNG_QR) and image_of("BX-0001")
    [inv] = ocr_invoices(image)
    inv.needs_confirm = True  # as if OCR had read it
    db.session.commit()
    assert scanner.post("/bills/BX-0001/submit").status_code == 409
    bills.correct_invoice(inv, {"seller_name": "天津某某有限公司"}, "scanner1")
    db.session.commit()
    assert not db.session.get(Invoice, inv.id).needs_confirm
    assert scanner.post("/bills/BX-0001/submit").status_code == 303


def test_a_claim_that_lost_its_lease_stores_nothing(ocr_on, scanner):
    upload(scanner, "BX-0001", PAPER)
    image = image_of("BX-0001")
    ocr_on.config["OCR_LEASE"] = 0.2
    stale = ocr_jobs._claim(image.id)  # a worker that took the job and then hung
    assert stale and ocr_jobs._claim(image.id) is None  # held while the lease runs
    time.sleep(0.3)
    assert ocr_jobs.due_ids() == [image.id]
    ocr_on.config["OCR_LEASE"] = 300
    fresh = ocr_jobs._claim(image.id)  # another worker takes it over
    assert fresh and fresh != stale and ocr_jobs.due_ids() == []
    reading = Reading(source="ocr", type="01", code="1100094140", number="87654321")
    # The hung worker wakes up first: its result and its failure are both dropped.
    assert ocr_jobs._store(image.id, stale, [reading]) == "skipped"
    assert ocr_jobs._failed(image.id, stale, "x") == "skipped"
    assert ocr_invoices(image_of("BX-0001")) == [] and image_of("BX-0001").ocr_state == "running"
    assert ocr_jobs._store(image.id, fresh, [reading]) == "done"
    assert ocr_jobs._store(image.id, fresh, [reading]) == "skipped"  # and only once
    assert ocr_jobs.run(image.id) == "skipped"
    image = image_of("BX-0001")
    assert (image.ocr_state, image.ocr_attempts) == ("done", 2)
    assert [(i.number, i.needs_confirm) for i in ocr_invoices(image)] == [("87654321", True)]


def test_a_pass_starts_no_further_ocr_after_its_budget(ocr_on, scanner):
    upload(scanner, "BX-0001", PAPER)
    upload(scanner, "BX-0002", PAPER)
    ocr_on.config["OCR_PASS_SECONDS"] = 0.001  # write-backs and pulls of the pass are not held up
    assert runner.one_pass().recognised == {"done": 1, "retry": 0, "failed": 0, "skipped": 0}
    assert len(ocr_jobs.due_ids()) == 1  # the other one is due on the next pass
    assert runner.one_pass().recognised["done"] == 1 and ocr_jobs.due_ids() == []


def test_an_image_removed_while_recognising_gets_no_readings(ocr_on, scanner):
    upload(scanner, "BX-0001", PAPER)
    image = image_of("BX-0001")
    token = ocr_jobs._claim(image.id)
    resp = scanner.post(f"/bills/BX-0001/images/{image.id}/remove", htmx=f"image-{image.id}")
    assert resp.status_code == 200
    reading = Reading(source="ocr", code="1100094140", number="87654321")
    assert ocr_jobs._store(image.id, token, [reading]) == "skipped"
    assert ocr_invoices(image_of("BX-0001")) == [] and ocr_jobs.due_ids() == []
    assert scanner.post("/bills/BX-0001/submit").status_code == 409  # no images left, not "识别中"


def test_a_failing_ocr_is_retried_then_failed_and_shows_on_the_jobs_page(ocr_on, world, browser, make_user):
    upload_browser = browser
    assert upload_browser.login("scanner1").status_code == 302
    upload(upload_browser, "BX-0001", PAPER)
    image = image_of("BX-0001")
    # A budget no OCR fits in: the file-work child is stopped and the job fails with the pool's message.
    ocr_on.config.update(FILE_WORK_SECONDS=0.05, FILE_WORK_TOTAL_SECONDS=0.1, OCR_PAGE_SECONDS=0.05,
                         OCR_TOTAL_SECONDS=0.1, OCR_MAX_ATTEMPTS=2, OCR_RETRY_BASE=0.01)
    assert ocr_jobs.run(image.id) == "retry"
    image = image_of("BX-0001")
    assert image.ocr_state == "queued" and image.ocr_attempts == 1 and "限定时间" in image.ocr_error
    time.sleep(0.05)
    assert ocr_jobs.run(image.id) == "failed"
    image = image_of("BX-0001")
    assert (image.ocr_state, image.ocr_attempts) == ("failed", 2) and ocr_jobs.due_ids() == []
    html = card(upload_browser, "BX-0001", image).get_data(as_text=True)
    assert "识别失败" in html and "限定时间" in html and "every 2s" not in html
    assert upload_browser.post("/bills/BX-0001/submit").status_code == 303  # nothing left to wait for

    upload_browser.post("/logout")
    assert browser.login("ops1").status_code == 302
    html = browser.get("/writeback/").get_data(as_text=True)
    row = html[html.index(f'id="ocrjob-{image.id}"'):]
    row = row[:row.index("</tr>")]
    assert "BX-0001" in row and "识别失败" in row and "限定时间" in row and ">2<" in row
    assert "进程内任务" in html


# --------------------------------------------------------------------------- RQ workers, S3, PostgreSQL


def _worker_env(app, redis: str, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE=str(tmp_path / "instance"), PORTAL_DATA_KEY=DATA_KEY, PORTAL_SECRET_KEY="worker",
               PORTAL_SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
               PORTAL_STORAGE_DIR=str(tmp_path / "worker-storage"),  # unused: the files are in S3
               PORTAL_STORAGE_URL=app.config["STORAGE_URL"], PORTAL_S3_ENDPOINT_URL=app.config["S3_ENDPOINT_URL"],
               PORTAL_REDIS_URL=redis, PORTAL_OCR_LEASE=json.dumps(app.config["OCR_LEASE"]),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return env


def _start_worker(env: dict, log) -> subprocess.Popen:
    """``flask worker --burst`` on queue recognise, in a session of its own (killed with its file-work children)."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal", "worker", "--burst",
                                 "--queues", "recognise"], env=env, cwd=log.parent, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def test_a_worker_recognises_the_upload_from_s3_and_a_killed_worker_finishes_once(
        ocr_on, s3_app, scanner, s3_server, s3_bucket, on_redis, tmp_path):
    ocr_on.config["OCR_LEASE"] = 4  # the killed worker's claim runs out quickly
    resp = upload(scanner, "BX-0001", PAPER)
    assert resp.status_code == 201 and "识别中" in resp.get_data(as_text=True)
    image = image_of("BX-0001")
    assert f"portal/{image.sha256[:2]}/{image.sha256[2:4]}/{image.sha256}" in bucket_keys(s3_server, s3_bucket)
    assert not os.path.isdir(ocr_on.config["STORAGE_DIR"]) or not any(os.scandir(ocr_on.config["STORAGE_DIR"]))
    conn = Redis.from_url(on_redis)
    # The upload's commit put the job on queue "recognise" (no pass needed).
    assert Queue("recognise", connection=conn).job_ids == [ocr_jobs.job_id(image.id)]

    env = _worker_env(ocr_on, on_redis, tmp_path)
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None and image_of("BX-0001").ocr_state != "running":
            time.sleep(0.05)
        assert worker.poll() is None, log.read_text()
        time.sleep(1.0)  # reading the file from S3 and starting OCR (the engine loads for seconds)
        assert image_of("BX-0001").ocr_state == "running", log.read_text()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its file-work children, mid-OCR
        worker.wait()
    image = image_of("BX-0001")
    assert (image.ocr_state, image.ocr_attempts) == ("running", 1)  # the DB says where it stands
    assert ocr_invoices(image) == []

    # Once the lease ran out the pass queues it again; another worker finishes it, once.
    deadline = time.monotonic() + 30
    while not redis_queue.dispatch()["recognise_image"] and time.monotonic() < deadline:
        time.sleep(0.2)
    worker = _start_worker(env, log)
    try:
        worker.wait(timeout=180)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    image = image_of("BX-0001")
    assert (image.ocr_state, image.ocr_attempts, image.ocr_error) == ("done", 2, None), log.read_text()
    [inv] = ocr_invoices(image)  # one set of readings
    assert (inv.number, str(inv.total), inv.source, inv.needs_confirm) == ("87654321", "7018.83", "ocr", True)
    assert db.session.scalar(select(db.func.count()).select_from(BillEvent).where(BillEvent.action == "ocr")) == 1
    # Nothing left to do for anybody.
    assert ocr_jobs.due_ids() == [] and redis_queue.dispatch()["recognise_image"] == 0
    html = card(scanner, "BX-0001", image).get_data(as_text=True)
    assert "87654321" in html and "待确认" in html
    conn.close()
