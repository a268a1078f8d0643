"""Housekeeping: part files of killed uploads and blobs without a row (never anything in use), dead login rows."""
from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import bills, demo, housekeeping, jobs
from portal.extensions import db
from portal.models import Blob, LoginFailure, User, WebSession, utcnow

from .conftest import Browser, corpus

PDF = "vat_e_special_guizhou_00008006.pdf"


def _age(path: str, seconds: float = 7200) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def _blob_path(sha: str) -> str:
    return os.path.join(bills.storage().root, sha[:2], sha[2:4], sha)


def _killed_upload_leftovers(store) -> tuple[str, str]:
    """A part file and a stored blob whose row never committed, both two hours old."""
    part = os.path.join(store.root, "tmp", "put-killed.part")
    with open(part, "wb") as fh:
        fh.write(b"half an upload")
    orphan = store.put(b"stored, then the process was killed").sha256
    _age(part)
    _age(_blob_path(orphan))
    return part, orphan


def test_clean_removes_old_leftovers_and_keeps_everything_in_use(app, make_enterprise):
    store = bills.storage()
    part, orphan = _killed_upload_leftovers(store)
    store.put_derived(orphan, "thumb-320.jpg", b"jpeg")
    running = os.path.join(store.root, "tmp", "put-running.part")  # an upload in progress
    with open(running, "wb") as fh:
        fh.write(b"streaming")
    fresh = store.put(b"stored a moment ago, its row about to commit").sha256
    bill = bills.open_bill(make_enterprise(), {"bill_no": "BX-1"}, "erp").bill
    used = bills.add_file(bill, corpus(PDF), PDF, "erp").image.sha256
    db.session.commit()
    _age(_blob_path(used))  # old, but a row refers to it

    done = housekeeping.clean_storage()
    assert (done.temp_files, done.orphan_blobs) == (1, 1)
    assert not os.path.exists(part) and os.path.exists(running)
    assert not store.exists(orphan) and store.get_derived(orphan, "thumb-320.jpg") is None
    assert store.exists(fresh) and store.exists(used)
    assert db.session.get(Blob, used) is not None


def test_the_age_threshold_is_configurable(app):
    store = bills.storage()
    part, orphan = _killed_upload_leftovers(store)
    app.config["STORAGE_CLEAN_AGE"] = 3 * 3600
    assert housekeeping.clean_storage() == housekeeping.Cleaned(0, 0)
    assert os.path.exists(part) and store.exists(orphan)
    assert housekeeping.clean_storage(older_than=60) == housekeeping.Cleaned(1, 1)


def _clean_in_another_process(app) -> housekeeping.Cleaned:
    """The cleaner as a runner would run it: its own session, seeing only committed rows."""
    out = []

    def run():
        with app.app_context():
            out.append(housekeeping.clean_storage())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0]


def test_an_orphan_uploaded_again_is_kept_for_its_new_row(app, make_enterprise):
    store = bills.storage()
    sha = store.put(corpus(PDF)).sha256  # an earlier upload was killed before its row committed
    _age(_blob_path(sha))
    bill = bills.open_bill(make_enterprise(), {"bill_no": "BX-1"}, "erp").bill
    db.session.commit()
    bills.add_file(bill, corpus(PDF), PDF, "erp")  # the same file again; its row is not committed yet
    assert _clean_in_another_process(app).orphan_blobs == 0
    db.session.commit()
    assert store.exists(sha) and db.session.scalar(select(Blob).where(Blob.sha256 == sha)) is not None


def test_cli_storage_clean(app):
    store = bills.storage()
    part, orphan = _killed_upload_leftovers(store)
    result = app.test_cli_runner().invoke(args=["storage", "clean"])
    assert result.exit_code == 0, result.output
    assert "已清理 1 个中断上传的临时文件、1 个无记录引用的文件" in result.output
    assert not os.path.exists(part) and not store.exists(orphan)


def test_clean_if_due_runs_at_start_up_then_every_period(app):
    app.config["STORAGE_CLEAN_EVERY"] = 600
    store = bills.storage()
    _killed_upload_leftovers(store)
    assert housekeeping.clean_if_due(now=1000.0) == housekeeping.Cleaned(1, 1)
    _killed_upload_leftovers(store)
    assert housekeeping.clean_if_due(now=1599.0) is None  # not due yet
    assert os.path.exists(os.path.join(store.root, "tmp", "put-killed.part"))
    assert housekeeping.clean_if_due(now=1600.0) == housekeeping.Cleaned(1, 1)


def test_the_job_runner_cleans_when_it_starts(app):
    store = bills.storage()
    part, orphan = _killed_upload_leftovers(store)
    stop = threading.Event()
    stop.set()  # no pass of the loop runs: only the start-up cleaning
    demo.job_loop(app, stop, every=0.01)
    assert not os.path.exists(part) and not store.exists(orphan)


def test_the_writeback_runner_cleans_when_it_starts(app, monkeypatch):
    from portal.jobs import runner

    store = bills.storage()
    part, orphan = _killed_upload_leftovers(store)

    def stop_after_first_pass(limit):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.writeback_jobs, "run_due", stop_after_first_pass)
    result = app.test_cli_runner().invoke(args=["jobs", "run", "--loop", "60"])
    assert "已停止" in result.output
    assert not os.path.exists(part) and not store.exists(orphan)


@pytest.mark.parametrize("spelling", ["--loop", "--every"])
def test_the_sync_runner_cleans_when_it_starts_looping(app, monkeypatch, spelling):
    from portal import sync

    store = bills.storage()
    part, orphan = _killed_upload_leftovers(store)

    def stop_in_first_pass(limit):
        raise KeyboardInterrupt

    monkeypatch.setattr(sync, "fetch_pending", stop_in_first_pass)
    result = app.test_cli_runner().invoke(args=["sync", "run", spelling, "60"])
    assert "已停止" in result.output
    assert not os.path.exists(part) and not store.exists(orphan)


def test_dead_sessions_and_passed_throttle_windows_are_deleted_live_ones_kept(app, make_user):
    make_user("alice", "viewer")
    make_user("bob", "viewer")
    make_user("carol", "viewer")
    users = {name: Browser(app) for name in ("alice", "bob", "carol")}
    for name, browser in users.items():
        assert browser.login(name).status_code == 302
    guesser = Browser(app)
    for name in ("no-such-user-1", "no-such-user-2"):
        guesser.login(name, "wrong")  # a throttle row per made-up name, and one for the address
    guesser.login("alice", "wrong")
    now = utcnow()
    idle = timedelta(seconds=app.config["SESSION_IDLE_LIFETIME"])
    absolute = timedelta(seconds=app.config["SESSION_ABSOLUTE_LIFETIME"])
    names = {u.id: u.username for u in db.session.scalars(select(User))}
    sessions = {names[s.user_id]: s for s in db.session.scalars(select(WebSession))}
    sessions["bob"].last_seen_at = now - idle - timedelta(seconds=1)  # idle too long
    sessions["carol"].created_at = now - absolute - timedelta(seconds=1)  # past the absolute lifetime
    window = timedelta(seconds=app.config["LOGIN_THROTTLE_WINDOW"])
    for row in db.session.scalars(select(LoginFailure).where(LoginFailure.key.like("user:no-such-user-%"))):
        row.window_start = now - window - timedelta(seconds=1)
    db.session.commit()

    assert housekeeping.clean_logins() == 4
    assert [names[s.user_id] for s in db.session.scalars(select(WebSession))] == ["alice"]
    keys = set(db.session.scalars(select(LoginFailure.key)))
    assert "user:alice" in keys and not any(k.startswith("user:no-such-user") for k in keys)
    assert users["alice"].get("/invoices/").status_code == 200  # the live session still works
    assert users["bob"].get("/invoices/").status_code == 302
    # The housekeeping job (RQ queue "housekeeping") and the runner's schedule clean them too.
    sessions = db.session.scalars(select(WebSession)).all()
    sessions[0].last_seen_at = now - idle - timedelta(seconds=1)
    db.session.commit()
    assert jobs.clean_storage() == (0, 0, 1)
    users["alice"].login("alice")
    db.session.scalars(select(WebSession)).one().created_at = now - absolute - timedelta(seconds=1)
    db.session.commit()
    assert housekeeping.clean_if_due(now=5000.0).logins == 1
