"""ERP write-back: images land in the Galaxy sandbox byte-exact, once; failures are kept and retried."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import bills, writeback
from portal.crypto import encrypt
from portal.extensions import db
from portal.integration.galaxy import GalaxyClient
from portal.models import (
    AuditEvent,
    Bill,
    BillEvent,
    DockingConnection,
    WritebackJob,
    utcnow,
)
from portal.sandbox.seed import TEST_GALAXY

from .conftest import corpus

FILES = ["vat_e_ordinary_zhejiang_83089647_original_invoice.xml", "vat_e_ordinary_chongqing_99999951_test.ofd",
         "shudian_vat_ordinary_sichuan_1455.45.pdf"]
EXTRA_FILE = "vat_e_special_guizhou_00008006_original_invoice.xml"
FORM = "ER_ExpReimbursement"
STATUS_FIELD = "F_PAEZ_ImageStatus"
LATER = timedelta(hours=2)  # past any backoff of the first few attempts




def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def setup(app, galaxy, make_enterprise):
    """Build an enterprise docked to the Galaxy sandbox and a completed bill with the corpus images."""

    def make(status_field: str = "", files=FILES, status: str = "completed", bill_no: str = "FYBX0001",
             erp_id: str | None = "100001", docked: bool = True):
        conn = None
        if docked:
            conn = DockingConnection(name="测试星空", base_url=galaxy.url + "/k3cloud/", acct_id=TEST_GALAXY.acct_id,
                                     username=TEST_GALAXY.username, password_enc=encrypt(TEST_GALAXY.password),
                                     status_field=status_field)
            db.session.add(conn)
            db.session.flush()
        ent = make_enterprise(docking_id=conn.id if conn else None)
        bill = Bill(enterprise_id=ent.id, bill_no=bill_no, form_id=FORM, erp_id=erp_id, status="pending")
        db.session.add(bill)
        db.session.flush()
        for name in files:
            bills.add_file(bill, corpus(name), name, "scanner1")
        bill.status = status
        db.session.commit()
        return bill

    return make


def image_user(galaxy) -> int:
    """The Galaxy user id the docking connection logs in as (the image user holding the tasks)."""
    return galaxy.app.users[(TEST_GALAXY.acct_id, TEST_GALAXY.username)].user_id


def jobs_of(bill: Bill, kind: str | None = None) -> list[WritebackJob]:
    db.session.expire_all()
    stmt = select(WritebackJob).where(WritebackJob.bill_id == bill.id).order_by(WritebackJob.id)
    if kind:
        stmt = stmt.where(WritebackJob.kind == kind)
    return list(db.session.scalars(stmt))


def enqueue(bill: Bill) -> int:
    created = writeback.enqueue_bill(bill, "scanner1")
    db.session.commit()
    return created


def held(galaxy) -> list[str]:
    """md5 of every attachment the sandbox holds on FYBX0001 (duplicates kept)."""
    return sorted(a["md5"] for a in galaxy.attachments(FORM, inter_id=100001))


def expected(files=FILES) -> list[str]:
    return sorted(md5(corpus(f)) for f in files)


def uploads(galaxy) -> int:
    return sum(1 for c in galaxy.calls if c.get("service") == "attachmentupload" and c.get("authenticated"))


# --------------------------------------------------------------------------- the happy path


def test_a_completed_bills_images_land_in_galaxy_byte_exact(setup, galaxy):
    bill = setup()
    galaxy.app.add_task(FORM, "FYBX0001", image_user(galaxy))  # the bill waits at the node 影像审核
    assert enqueue(bill) == 4
    # No status field configured → no status job; the workflow task is approved after the attachments.
    assert [j.kind for j in jobs_of(bill)] == ["attachment"] * 3 + ["approve"]

    counts = writeback.run_due()

    assert counts == {"done": 4, "failed": 0, "waiting": 0, "skipped": 0, "taken": 0}
    assert held(galaxy) == expected()
    names = {a["file_name"] for a in galaxy.attachments(FORM, inter_id=100001)}
    assert names == set(FILES)
    assert all(a["bill_no"] == "FYBX0001" for a in galaxy.attachments(FORM, inter_id=100001))
    for job in jobs_of(bill):
        assert job.state == "done" and job.attempts == 1 and job.last_error is None
        assert bool(job.remote_file_id) == (job.kind == "attachment")
    assert galaxy.login_count == 1  # one client per connection per run
    assert not any(c.get("service") == "save" for c in galaxy.calls)
    events = list(db.session.scalars(select(BillEvent).where(BillEvent.bill_id == bill.id,
                                                             BillEvent.action == "writeback")))
    assert [e.detail["result"] for e in events] == ["queued", "done", "done", "done", "done"]
    services = [c["service"] for c in galaxy.calls if c.get("authenticated")]
    assert services.index("workflowaudit") > max(i for i, s in enumerate(services) if s == "attachmentupload")
    [task] = galaxy.app.tasks
    assert (task["FStatus"], task["FResultName"]) == ("1", "同意")
    assert task["FDisposition"].startswith("影像审核通过：3 个影像，") and task["FDisposition"].endswith("张发票")
    assert galaxy.get_bill(FORM, id=100001).status == "C"
    assert writeback.run_due() == {"done": 0, "failed": 0, "waiting": 0, "skipped": 0, "taken": 0}


def test_upload_names_carry_the_contents_extension():
    sha = "ab" * 32
    assert writeback.upload_name("发票.pdf", "application/pdf", sha) == "发票.pdf"
    assert writeback.upload_name("scan", "image/jpeg", sha) == "scan.jpg"
    assert writeback.upload_name("photo.JPEG", "image/jpeg", sha) == "photo.JPEG"
    assert writeback.upload_name("", "application/ofd", sha) == "abababababababab.ofd"
    assert writeback.upload_name("C:\\扫描\\a.png", "image/png", sha) == "a.png"


def test_status_field_is_saved_after_all_attachments(setup, galaxy):
    bill = setup(status_field=STATUS_FIELD)
    assert enqueue(bill) == 5

    counts = writeback.run_due()

    assert counts["done"] == 4 and counts["skipped"] == 1  # the approval: no workflow task in this ERP
    # An opt-in custom field gets the status code (a label would change with the UI's wording).
    assert galaxy.get_bill(FORM, id=100001).fields[STATUS_FIELD] == "completed"
    services = [c["service"] for c in galaxy.calls if c.get("authenticated")]
    assert services.index("save") > max(i for i, s in enumerate(services) if s == "attachmentupload")
    status = jobs_of(bill, "status")[0]
    assert status.state == "done" and status.payload["written"] == "completed"


def test_a_later_status_is_written_again(setup, galaxy):
    """Match mode: enqueued on submit, then again on match; the newer status reaches the ERP."""
    bill = setup(status_field=STATUS_FIELD, status="submitted")
    enqueue(bill)
    writeback.run_due()
    assert galaxy.get_bill(FORM, id=100001).fields[STATUS_FIELD] == "submitted"

    bill.status = "matched"
    # The status job is armed again and, the bill being finished now, the approval is queued;
    # no attachment is queued twice.
    assert enqueue(bill) == 2
    assert len(jobs_of(bill)) == 5
    assert writeback.run_due()["done"] == 1
    assert galaxy.get_bill(FORM, id=100001).fields[STATUS_FIELD] == "matched"
    assert held(galaxy) == expected()


def test_status_waits_while_an_attachment_fails(setup, galaxy):
    bill = setup(status_field=STATUS_FIELD)
    enqueue(bill)
    galaxy.inject_business_error("AttachmentUpLoad", message="附件服务器空间不足，请联系系统管理员")
    now = utcnow()

    counts = writeback.run_due(now=now)

    assert counts == {"done": 2, "failed": 1, "waiting": 2, "skipped": 0, "taken": 0}  # status and approval wait
    status = jobs_of(bill, "status")[0]
    assert status.state == "pending" and status.attempts == 0 and status.next_attempt_at > now
    assert not any(c.get("service") == "save" for c in galaxy.calls)

    counts = writeback.run_due(now=now + LATER)
    assert counts["done"] == 2  # the attachment, then the status job it woke up
    assert galaxy.get_bill(FORM, id=100001).fields[STATUS_FIELD] == "completed"


# --------------------------------------------------------------------------- remote failures


def test_session_lost_mid_run_logs_in_again_once(setup, galaxy, monkeypatch):
    bill = setup()
    enqueue(bill)
    original = GalaxyClient.attachment_download
    expired = []

    def download_then_lose_session(self, file_id):
        content = original(self, file_id)
        if not expired:
            expired.append(galaxy.expire_sessions())  # the ERP forgets us between two jobs
        return content

    monkeypatch.setattr(GalaxyClient, "attachment_download", download_then_lose_session)

    assert writeback.run_due()["done"] == 3

    assert expired == [1]
    assert galaxy.login_count == 2  # the first login, and exactly one more after MsgCode 1
    assert held(galaxy) == expected()


def test_business_error_keeps_the_erps_message_then_succeeds(setup, galaxy):
    bill = setup()
    enqueue(bill)
    message = "附件服务器空间不足，请联系系统管理员"
    galaxy.inject_business_error("AttachmentUpLoad", message=message)
    now = utcnow()

    counts = writeback.run_due(now=now)

    assert counts["done"] == 2 and counts["failed"] == 1
    failed = [j for j in jobs_of(bill) if j.state == "failed"]
    assert len(failed) == 1
    job = failed[0]
    assert job.last_error == message and job.attempts == 1
    assert now + timedelta(seconds=29) < job.next_attempt_at <= now + timedelta(seconds=34)
    assert writeback.run_due(now=now)["failed"] == 0  # not due before its backoff

    assert writeback.run_due(now=now + timedelta(minutes=1))["done"] == 1
    job = db.session.get(WritebackJob, job.id)
    assert job.state == "done" and job.attempts == 2 and job.last_error is None
    assert held(galaxy) == expected()


def test_galaxy_stopped_midway_then_back(setup, galaxy):
    bill = setup(status_field=STATUS_FIELD)
    enqueue(bill)
    assert writeback.run_due(limit=1)["done"] == 1
    galaxy.stop()
    now = utcnow()

    counts = writeback.run_due(now=now)

    assert counts["failed"] == 2 and counts["done"] == 0
    for job in jobs_of(bill, "attachment")[1:]:
        assert job.state == "failed" and job.attempts == 1
        assert "无法连接" in job.last_error
        assert job.next_attempt_at > now
    assert writeback.run_due(now=now) == {"done": 0, "failed": 0, "waiting": 0, "skipped": 0, "taken": 0}

    galaxy.start()
    counts = writeback.run_due(now=now + LATER)

    assert counts["done"] == 3 and counts["failed"] == 0
    assert all(j.state == "done" for j in jobs_of(bill))
    assert held(galaxy) == expected()  # every image exactly once
    assert galaxy.get_bill(FORM, id=100001).fields[STATUS_FIELD] == "completed"


def test_failed_verification_does_not_upload_again(setup, galaxy):
    """Upload succeeded but the check download failed: the retry verifies the FileId instead."""
    bill = setup(files=FILES[:1])
    enqueue(bill)
    galaxy.inject_fault(match="AttachmentDownLoad", status=503)
    now = utcnow()

    assert writeback.run_due(now=now)["failed"] == 1
    job = jobs_of(bill)[0]
    assert job.state == "failed" and job.remote_file_id and "503" in job.last_error
    assert uploads(galaxy) == 1

    assert writeback.run_due(now=now + LATER)["done"] == 1
    assert uploads(galaxy) == 1
    assert held(galaxy) == expected(FILES[:1])
    assert db.session.get(WritebackJob, job.id).remote_file_id == job.remote_file_id


def test_md5_mismatch_is_a_failure_that_keeps_the_file_id(setup, galaxy):
    bill = setup(files=FILES[:1])
    enqueue(bill)
    wrong = b"not the invoice"
    reply = {"Result": {"ResponseStatus": {"IsSuccess": True, "Errors": [], "MsgCode": 0}, "FileName": "x",
                        "FileSize": len(wrong), "FilePart": base64.b64encode(wrong).decode(), "IsLast": True}}
    galaxy.inject_fault(match="AttachmentDownLoad", status=200, body=json.dumps(reply),
                        content_type="application/json; charset=utf-8")
    now = utcnow()

    assert writeback.run_due(now=now)["failed"] == 1
    job = jobs_of(bill)[0]
    assert job.remote_file_id and "不一致" in job.last_error

    assert writeback.run_due(now=now + LATER)["done"] == 1  # the held file now checks out
    assert held(galaxy) == expected(FILES[:1])


def test_a_stored_file_id_is_trusted_only_when_its_md5_matches(setup, galaxy):
    """The retry finds a FileId from the try before; Galaxy holds other bytes under it: upload again."""
    bill = setup(files=FILES[:1])
    enqueue(bill)
    galaxy.inject_fault(match="AttachmentDownLoad", status=503)  # uploaded, but not verified
    now = utcnow()
    assert writeback.run_due(now=now)["failed"] == 1
    first = jobs_of(bill)[0].remote_file_id
    assert first and uploads(galaxy) == 1
    wrong = b"not the invoice"
    reply = {"Result": {"ResponseStatus": {"IsSuccess": True, "Errors": [], "MsgCode": 0}, "FileName": "x",
                        "FileSize": len(wrong), "FilePart": base64.b64encode(wrong).decode(), "IsLast": True}}
    galaxy.inject_fault(match="AttachmentDownLoad", status=200, body=json.dumps(reply),
                        content_type="application/json; charset=utf-8")

    assert writeback.run_due(now=now + LATER)["done"] == 1

    assert uploads(galaxy) == 2  # the held file did not check out, so the retry uploaded anew
    job = jobs_of(bill)[0]
    assert job.remote_file_id not in (None, first)
    assert {a["file_id"]: a["md5"] for a in galaxy.attachments(FORM)}[job.remote_file_id] == md5(corpus(FILES[0]))
    done = [e for e in db.session.scalars(select(BillEvent).where(BillEvent.bill_id == bill.id))
            if e.action == "writeback" and e.detail.get("result") == "done"]
    assert len(done) == 1 and "核对到上次" not in done[0].detail["message"]


def test_backoff_doubles_with_each_attempt_up_to_an_hour(setup, galaxy):
    bill = setup(files=FILES[:1])
    enqueue(bill)
    galaxy.inject_business_error("AttachmentUpLoad", count=3, message="附件服务器繁忙")
    now, delays = utcnow(), []
    for _ in range(3):
        assert writeback.run_due(now=now)["failed"] == 1
        job = jobs_of(bill)[0]
        delays.append((job.next_attempt_at - now).total_seconds())
        now = job.next_attempt_at
    for delay, base in zip(delays, (30, 60, 120), strict=True):
        assert base <= delay <= base * 1.1, delays  # 30 s × 2^(attempts−1), plus up to 10 % jitter
    assert writeback.run_due(now=now)["done"] == 1

    for attempts in range(1, 13):
        base = min(30 * 2 ** (attempts - 1), 3600)
        assert base <= writeback.backoff(attempts).total_seconds() <= base * 1.1, attempts


def test_exhausted_job_needs_a_person_and_stays_retryable(setup, galaxy, app):
    app.config["WRITEBACK_MAX_ATTEMPTS"] = 2
    bill = setup(status_field=STATUS_FIELD, files=FILES[:1])
    enqueue(bill)
    galaxy.inject_business_error("Save", count=2, message="单据正在被其他用户修改，业务操作冲突，请稍候再使用。")
    now = utcnow()

    writeback.run_due(now=now)
    writeback.run_due(now=now + LATER)
    job = jobs_of(bill, "status")[0]
    assert job.state == "failed" and job.attempts == 2 and writeback.needs_attention(job)
    assert writeback.run_due(now=now + 10 * LATER)["failed"] == 0  # no automatic try any more
    gave_up = db.session.scalars(select(BillEvent).where(BillEvent.bill_id == bill.id, BillEvent.action == "writeback"))
    assert any(e.detail.get("result") == "failed" for e in gave_up)

    writeback.retry_now(job, "root")
    db.session.commit()
    assert job.state == "pending" and job.attempts == 1
    assert writeback.run_due()["done"] == 1
    assert galaxy.get_bill(FORM, id=100001).fields[STATUS_FIELD] == "completed"
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "retry")).object_id == str(job.id)


# --------------------------------------------------------------------------- idempotency


def test_enqueue_twice_creates_no_duplicates(setup):
    bill = setup(status_field=STATUS_FIELD)
    assert enqueue(bill) == 5
    assert enqueue(bill) == 0
    assert len(jobs_of(bill)) == 5


def test_an_image_uploaded_in_round_one_is_not_uploaded_in_round_two(setup, galaxy):
    bill = setup(status_field=STATUS_FIELD)
    enqueue(bill)
    writeback.run_due()
    bills.return_bill(bill, "发票不清晰，请重扫", "reviewer")
    bills.add_file(bill, corpus(EXTRA_FILE), EXTRA_FILE, "scanner1")
    bill.status = "completed"
    db.session.commit()

    assert enqueue(bill) == 3  # the new image, round 2's approval and status
    round_two = [j for j in jobs_of(bill) if j.round == 2]
    assert sorted(j.kind for j in round_two) == ["approve", "attachment", "status"]
    assert writeback.run_due()["done"] == 2
    assert held(galaxy) == expected(FILES + [EXTRA_FILE])


def test_no_docking_or_no_erp_id_is_a_recorded_no_op(setup):
    undocked = setup(docked=False)
    assert enqueue(undocked) == 0
    no_id = setup(erp_id=None, bill_no="FYBX0002")
    assert enqueue(no_id) == 0
    for bill, why in ((undocked, "未配置对接业务系统"), (no_id, "ERP 内码")):
        assert jobs_of(bill) == []
        ev = db.session.scalar(select(BillEvent).where(BillEvent.bill_id == bill.id, BillEvent.action == "writeback"))
        assert ev.detail["result"] == "skipped" and why in ev.detail["message"]


def test_two_concurrent_claims_only_one_proceeds(setup, app):
    bill = setup(files=FILES[:1])
    enqueue(bill)
    job_id = jobs_of(bill)[0].id
    barrier = threading.Barrier(2)
    results = []

    def runner():
        with app.app_context():
            barrier.wait()
            results.append(writeback.claim(job_id))

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False, True]
    job = jobs_of(bill)[0]
    assert job.state == "running" and job.attempts == 1


def test_a_job_of_a_crashed_runner_becomes_due_again(setup, galaxy):
    bill = setup(files=FILES[:1])
    enqueue(bill)
    job_id = jobs_of(bill)[0].id
    assert writeback.claim(job_id)  # ...and the runner died here
    assert writeback.run_due()["done"] == 0  # a fresh lease is respected

    assert writeback.run_due(now=utcnow() + timedelta(minutes=11))["done"] == 1
    job = db.session.get(WritebackJob, job_id)
    assert job.state == "done" and job.attempts == 2
    assert held(galaxy) == expected(FILES[:1])


def test_a_removed_image_is_not_uploaded(setup, galaxy):
    bill = setup(files=FILES[:2])
    enqueue(bill)
    bill.status = "uploaded"
    image = bills.live_images(bill)[0]
    bills.remove_image(bill, image, "scanner1")
    db.session.commit()

    counts = writeback.run_due()
    assert counts["done"] == 1 and counts["skipped"] == 2  # the removed image; the approval of an "uploaded" bill
    assert held(galaxy) == expected(FILES[1:2])


# --------------------------------------------------------------------------- the ops page


@pytest.fixture
def page_setup(setup, make_enterprise, make_user, galaxy):
    bill = setup()
    enqueue(bill)
    galaxy.inject_business_error("AttachmentUpLoad", count=2, message="附件服务器空间不足，请联系系统管理员")
    assert writeback.run_due()["failed"] == 2
    other = setup(bill_no="OTHER0001")
    enqueue(other)
    ops_user = make_user("ops1", "ops", enterprises=[bill.enterprise])
    return bill, other, ops_user


def test_ops_page_lists_the_jobs_of_their_enterprises(browser, page_setup):
    bill, other, _ = page_setup
    browser.login("ops1")
    resp = browser.get("/writeback/")
    html = resp.data.decode()
    assert resp.status_code == 200
    assert 'href="/bills/FYBX0001"' in html and "上传附件" in html and FILES[0] in html
    assert "附件服务器空间不足" in html and "失败" in html and "立即重试" in html
    assert "OTHER0001" not in html

    fragment = browser.get("/writeback/?state=failed", htmx="writeback-list").data.decode()
    assert "<html" not in fragment and fragment.count('id="wbjob-') == 2
    assert "没有符合条件的回写任务" in browser.get("/writeback/?state=running", htmx="writeback-list").data.decode()

    other_job = jobs_of(other)[0]
    assert browser.post(f"/writeback/{other_job.id}/retry", htmx=True).status_code == 404


@pytest.mark.parametrize("role", ["viewer", "scanner"])
def test_only_ops_see_the_write_back_page(browser, page_setup, make_user, role):
    bill, _, _ = page_setup
    make_user(f"{role}1", role, enterprises=[bill.enterprise])
    browser.login(f"{role}1")
    assert browser.get("/writeback/").status_code == 403
    job = jobs_of(bill)[0]
    assert browser.post(f"/writeback/{job.id}/retry", htmx=True).status_code == 403


def test_retry_now_from_the_page_is_audited(browser, page_setup):
    bill, _, _ = page_setup
    browser.login("ops1")
    failed = [j for j in jobs_of(bill) if j.state == "failed"]
    assert len(failed) == 2
    resp = browser.post(f"/writeback/{failed[0].id}/retry", htmx=True)
    assert resp.status_code == 200
    assert f'id="wbjob-{failed[0].id}"' in resp.data.decode() and "待处理" in resp.data.decode()
    assert "toast" in resp.headers["HX-Trigger"]
    job = db.session.get(WritebackJob, failed[0].id)
    assert job.state == "pending" and job.next_attempt_at <= utcnow()
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "retry"))
    assert ev.actor == "ops1" and ev.object_type == "writeback" and ev.enterprise_id == bill.enterprise_id

    done = next(j for j in jobs_of(bill) if j.state == "done")
    assert browser.post(f"/writeback/{done.id}/retry", htmx=True).status_code == 409

    resp = browser.post("/writeback/retry-failed", htmx="writeback-list")
    assert resp.status_code == 200
    assert sorted(j.state for j in jobs_of(bill, "attachment")) == ["done", "pending", "pending"]
    assert len(list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "retry")))) == 2


# --------------------------------------------------------------------------- CLI


def test_cli_run_prints_counts(app, setup, galaxy):
    bill = setup()
    enqueue(bill)
    result = app.test_cli_runner().invoke(args=["writeback", "run"])
    assert result.exit_code == 0, result.output
    assert "完成 3" in result.output and "失败 0" in result.output
    assert all(j.state == "done" for j in jobs_of(bill))
    assert held(galaxy) == expected()


def test_logs_name_the_job_and_never_the_password(setup, galaxy, caplog):
    bill = setup(files=FILES[:1])
    enqueue(bill)
    galaxy.inject_business_error("AttachmentUpLoad", message="附件服务器空间不足，请联系系统管理员")
    with caplog.at_level("DEBUG"):
        writeback.run_due()
    job = jobs_of(bill)[0]
    assert f"job {job.id} bill FYBX0001" in caplog.text and "附件服务器空间不足" in caplog.text
    assert TEST_GALAXY.password not in caplog.text


def test_page_renders_for_a_global_ops_user(browser, page_setup, ops):
    browser.login("root")
    html = browser.get("/writeback/").data.decode()
    assert "FYBX0001" in html and "OTHER0001" in html
    assert "全部重试（2）" in html and "需人工处理" in html  # the filter option


def test_a_missing_file_fails_its_job_with_a_clear_message(setup, galaxy):
    bill = setup(files=FILES[:1])
    enqueue(bill)
    bills.storage().delete(jobs_of(bill)[0].sha256)
    assert writeback.run_due()["failed"] == 1
    assert "存储中缺失" in jobs_of(bill)[0].last_error
    assert held(galaxy) == []


def test_write_back_calls_only_allowed_erp_hosts(setup, galaxy, app):
    """ERP_ALLOWED_HOSTS holds for the background write-back too: the stored password goes nowhere else."""
    bill = setup()
    enqueue(bill)
    app.config["ERP_ALLOWED_HOSTS"] = "erp.example.com"
    counts = writeback.run_due()
    assert counts["failed"] == 3 and counts["done"] == 0
    assert all("不在允许的地址列表" in j.last_error for j in jobs_of(bill, "attachment"))
    assert galaxy.calls == []


# --------------------------------------------------------------------------- workflow approval


def test_an_approval_whose_answer_was_lost_is_not_sent_again(setup, galaxy, app):
    """The ERP approved, but the answer never came back: the next try re-reads the task and stops."""
    bill = setup(files=FILES[:1])
    galaxy.app.add_task(FORM, "FYBX0001", image_user(galaxy))
    enqueue(bill)
    app.config["OUTBOUND_READ_TIMEOUT"] = 0.3
    galaxy.inject_fault(match="WorkflowAudit", delay=1.0)  # answered (and carried out) after we gave up
    now = utcnow()
    counts = writeback.run_due(now=now)
    assert counts["done"] == 1 and counts["failed"] == 1
    approve = jobs_of(bill, "approve")[0]
    assert approve.state == "failed" and approve.payload["sent"] is True
    assert galaxy.app.wait_idle(5)
    assert galaxy.app.tasks[0]["FStatus"] == "1"  # the ERP did approve it

    assert writeback.run_due(now=now + LATER)["done"] == 1
    assert jobs_of(bill, "approve")[0].state == "done"
    assert [c["service"] for c in galaxy.calls].count("workflowaudit") == 1  # never sent twice


def test_a_refused_approval_keeps_the_erps_message_and_is_tried_again(setup, galaxy):
    bill = setup(files=FILES[:1])
    galaxy.app.add_task(FORM, "FYBX0001", image_user(galaxy), base_post=31)
    enqueue(bill)
    galaxy.inject_business_error("WorkflowAudit", message="流程实例已挂起，不能审批")
    now = utcnow()
    writeback.run_due(now=now)
    approve = jobs_of(bill, "approve")[0]
    assert approve.state == "failed" and approve.last_error == "流程实例已挂起，不能审批"
    assert galaxy.app.tasks[0]["FStatus"] == "0"
    assert writeback.run_due(now=now + LATER)["done"] == 1  # the task is still there: approve it now
    assert galaxy.app.tasks[0]["FStatus"] == "1" and galaxy.get_bill(FORM, id=100001).status == "C"


def test_a_task_processed_in_the_erp_meanwhile_is_left_alone(setup, galaxy):
    bill = setup(files=FILES[:1])
    enqueue(bill)  # no pending task: someone approved it in the ERP already
    assert writeback.run_due()["skipped"] == 1
    approve = jobs_of(bill, "approve")[0]
    assert approve.state == "done" and "没有该单据的待审批任务" in approve.payload["note"]
    assert "workflowaudit" not in [c["service"] for c in galaxy.calls]


def test_returning_a_pulled_bill_rejects_its_task_when_the_enterprise_says_so(setup, galaxy):
    bill = setup(files=FILES[:1], status="submitted")
    galaxy.app.add_task(FORM, "FYBX0001", image_user(galaxy))
    bill.origin = "pull"
    db.session.commit()
    bills.return_bill(bill, "第 1 张发票模糊", "reviewer")  # the option is off: nothing goes to the ERP
    db.session.commit()
    assert jobs_of(bill, "reject") == []

    bill.status = "submitted"
    bill.enterprise.reject_on_return = True
    db.session.commit()
    bills.return_bill(bill, "第 2 张发票缺失", "reviewer")
    db.session.commit()
    assert [j.payload["reason"] for j in jobs_of(bill, "reject")] == ["第 2 张发票缺失"]
    assert writeback.run_due()["done"] == 1
    [task] = galaxy.app.tasks
    assert (task["FStatus"], task["FResultName"], task["FDisposition"]) == ("1", "驳回", "影像退回重扫：第 2 张发票缺失")
    assert galaxy.get_bill(FORM, id=100001).status == "D"
