"""One job model, two executors: the in-process runner and RQ workers on the real local Redis.

The Redis tests take a database number of their own (a lock key claims it), empty it before and
after, and drive workers against the Galaxy sandbox, which counts every upload and approval.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.job import Job

from portal.extensions import db
from portal.jobs import redis_queue, runner
from portal.models import WritebackJob, utcnow

from .conftest import DATA_KEY
from .test_writeback import FILES, FORM, enqueue, expected, held, image_user, jobs_of, setup, uploads  # noqa: F401

REDIS = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
LOCK = "portal-test-lock"
ROOT = Path(__file__).resolve().parent.parent


def approvals(galaxy) -> int:
    return sum(1 for c in galaxy.calls if c.get("service") == "workflowaudit" and c.get("authenticated"))


@pytest.fixture
def redis_url():
    """A Redis database of this test's own (claimed with a lock key), emptied before and after."""
    for number in range(15, 0, -1):
        client = Redis.from_url(f"{REDIS}/{number}")
        try:
            claimed = client.set(LOCK, str(os.getpid()), nx=True, ex=600)
        except RedisConnectionError:
            pytest.fail(f"Redis 不可用（{REDIS}）：这些测试需要本机 Redis，见 scripts/preflight.py")
        if claimed:
            break
        client.close()
    else:
        pytest.fail("no free Redis database number for the test")
    client.flushdb()
    client.set(LOCK, "held", ex=600)
    try:
        yield f"{REDIS}/{number}"
    finally:
        client.flushdb()  # the lock goes with it
        client.close()


@pytest.fixture
def on_redis(app, redis_url):
    """The app with REDIS_URL set; the signal handlers an in-process worker installs are put back."""
    app.config["REDIS_URL"] = redis_url
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield redis_url
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def work(app, redis_url: str) -> None:
    """Run an RQ worker of the portal in this thread until its queues are empty."""
    conn = Redis.from_url(redis_url)
    try:
        worker = redis_queue.PortalWorker(redis_queue.queues(conn), connection=conn, app=app)
        worker.work(burst=True)
    finally:
        conn.close()
    db.session.expire_all()


def a_bill_waiting_in_galaxy(setup, galaxy, files=FILES):
    bill = setup(files=files)
    galaxy.app.add_task(FORM, "FYBX0001", image_user(galaxy))
    enqueue(bill)
    return bill


# --------------------------------------------------------------------------- the in-process runner


@pytest.mark.parametrize("command", [["jobs", "run"], ["writeback", "run"]])
def test_without_redis_the_runner_writes_back_in_process(app, setup, galaxy, command):
    bill = a_bill_waiting_in_galaxy(setup, galaxy)
    result = app.test_cli_runner().invoke(args=command)
    assert result.exit_code == 0, result.output
    assert "回写：完成 4" in result.output
    assert held(galaxy) == expected() and approvals(galaxy) == 1
    assert {j.state for j in jobs_of(bill)} == {"done"}


# --------------------------------------------------------------------------- RQ workers


def test_with_redis_the_pass_only_queues_and_a_worker_writes_back(app, setup, galaxy, on_redis):
    bill = a_bill_waiting_in_galaxy(setup, galaxy)
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "已排队到 Redis" in result.output and "回写 4" in result.output
    # Nothing ran in this process: the rows wait, Galaxy saw nothing.
    assert uploads(galaxy) == 0 and {j.state for j in jobs_of(bill)} == {"pending"}
    conn = Redis.from_url(on_redis)
    assert conn.llen("rq:queue:erp") == 5  # 4 write-back jobs and the connection's ERP pull
    # RQ never cuts a sync run that its budget allows, nor a write-back within its lease.
    assert Job.fetch("portal-fetch-downloads", connection=conn).timeout == 300 + 120 + 60
    assert Job.fetch(f"portal-writeback-{jobs_of(bill)[0].id}", connection=conn).timeout == 600
    # A second pass queues nothing that is already waiting.
    assert redis_queue.dispatch()["writeback"] == 0 and conn.llen("rq:queue:erp") == 5

    work(app, on_redis)

    assert held(galaxy) == expected() and approvals(galaxy) == 1
    jobs = jobs_of(bill)
    assert [(j.state, j.attempts) for j in jobs] == [("done", 1)] * 4
    # Done rows are not due: the next pass queues no write-back.
    assert redis_queue.dispatch()["writeback"] == 0
    conn.close()


def test_a_failure_under_rq_shows_on_the_jobs_page(app, setup, galaxy, on_redis, make_user, browser):
    bill = setup(files=FILES[:1])
    enqueue(bill)
    galaxy.inject_business_error("AttachmentUpLoad", count=1, message="附件服务器空间不足，请联系系统管理员")
    redis_queue.dispatch()
    work(app, on_redis)

    [attachment, approve] = jobs_of(bill)
    assert (attachment.state, attachment.attempts) == ("failed", 1)
    assert "附件服务器空间不足" in attachment.last_error
    make_user("ops1", "ops", enterprises=[bill.enterprise])
    browser.login("ops1")
    html = browser.get(f"/writeback/?q={bill.bill_no}", htmx="writeback-list").data.decode()
    row = html[html.index(f'id="wbjob-{attachment.id}"'):]
    row = row[:row.index("</tr>")]
    assert "附件服务器空间不足" in row and "失败" in row and "1 / 12" in row


def test_a_worker_killed_mid_job_loses_nothing_and_repeats_nothing(app, setup, galaxy, on_redis, tmp_path):
    bill = a_bill_waiting_in_galaxy(setup, galaxy, files=FILES[:1])
    [attachment, approve] = jobs_of(bill)
    # The worker uploads, commits the FileId, then hangs checking the file: there it is killed.
    stall = galaxy.app.inject_fault(match="AttachmentDownLoad", count=1, delay=60)
    app.config["WRITEBACK_LEASE"] = 0.5  # the lease the killed worker held runs out quickly
    redis_queue.dispatch()
    db.session.commit()

    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE=str(tmp_path / "instance"), PORTAL_DATA_KEY=DATA_KEY, PORTAL_SECRET_KEY="worker",
               PORTAL_SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
               PORTAL_STORAGE_DIR=app.config["STORAGE_DIR"], PORTAL_REDIS_URL=on_redis,
               PORTAL_WRITEBACK_LEASE="0.5", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                                     env.get("PYTHONPATH")])))
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal", "worker", "--burst"], env=env,
                                  cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and worker.poll() is None:
            db.session.expire_all()
            # Killed only once its check of the file hangs in Galaxy: killed earlier, under load, the
            # stall would still be waiting for the second worker's check instead.
            if db.session.get(WritebackJob, attachment.id).remote_file_id and stall.count <= 0:
                break
            time.sleep(0.05)
        assert worker.poll() is None, log.read_text()
    finally:
        worker.kill()
        worker.wait()
    assert uploads(galaxy) == 1 and approvals(galaxy) == 0
    job = db.session.get(WritebackJob, attachment.id)
    assert job.state == "running" and job.remote_file_id  # the DB says where it stands

    # A second worker finishes it once the lease ran out: the pass queues the job again.
    for _ in range(3):
        deadline = time.monotonic() + 5
        while not redis_queue.dispatch()["writeback"] and time.monotonic() < deadline:
            time.sleep(0.05)
        work(app, on_redis)
        if {j.state for j in jobs_of(bill)} == {"done"}:
            break
    assert [j.state for j in jobs_of(bill)] == ["done", "done"]
    assert uploads(galaxy) == 1 and approvals(galaxy) == 1  # no second upload, no second approval
    assert held(galaxy) == expected(FILES[:1])
    assert db.session.get(WritebackJob, attachment.id).attempts == 2


# --------------------------------------------------------------------------- the worker command


def test_the_worker_needs_redis_and_known_queues(app, redis_url):
    cli = app.test_cli_runner()
    result = cli.invoke(args=["worker", "--burst"])
    assert result.exit_code != 0 and "未配置 PORTAL_REDIS_URL" in result.output
    app.config["REDIS_URL"] = redis_url
    result = cli.invoke(args=["worker", "--burst", "--queues", "erp,mail"])
    assert result.exit_code != 0 and "未知的队列：mail" in result.output


def test_storage_cleaning_is_queued_on_the_first_pass_only(app, on_redis):
    first = runner.one_pass()
    assert first.executor == "rq" and first.enqueued["clean_storage"] == 1
    assert runner.one_pass().enqueued["clean_storage"] == 0


def test_an_approval_waiting_for_attachments_is_due_as_soon_as_they_are_done(app, setup, galaxy):
    """RQ may run a bill's approval before its attachment; the attachment's end wakes it, no 30 s wait."""
    from portal import writeback

    bill = a_bill_waiting_in_galaxy(setup, galaxy, files=FILES[:1])
    attachment, approve = jobs_of(bill)
    assert writeback.run_job(approve.id) == "waiting"
    assert approve.id not in writeback.due_ids(utcnow(), 10)
    assert writeback.run_job(attachment.id) == "done"
    assert writeback.due_ids(utcnow(), 10) == [approve.id]
    assert writeback.run_job(approve.id) == "done" and approvals(galaxy) == 1
