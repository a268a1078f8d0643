"""What an operator relies on: the health endpoint, log lines, the data-key guard, production defaults."""
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from flask_migrate import upgrade

from portal import create_app
from portal.config import MissingDataKey
from portal.extensions import db
from portal.crypto import encrypt
from portal.models import Enterprise, WritebackJob, utcnow

from .conftest import REPO, tax_no


def test_healthz_reports_database_storage_and_backlog(app, browser, make_enterprise):
    ent = make_enterprise()
    from portal import bills

    bill = bills.open_bill(ent, {"bill_no": "H-1"}, "test").bill
    old = utcnow() - timedelta(minutes=30)
    db.session.add_all([
        WritebackJob(bill_id=bill.id, enterprise_id=ent.id, kind="attachment", sha256="a" * 64, next_attempt_at=old),
        WritebackJob(bill_id=bill.id, enterprise_id=ent.id, kind="status", next_attempt_at=utcnow() + timedelta(hours=1)),
        WritebackJob(bill_id=bill.id, enterprise_id=ent.id, kind="attachment", sha256="b" * 64, state="failed",
                     attempts=app.config["WRITEBACK_MAX_ATTEMPTS"], next_attempt_at=old),
    ])
    db.session.commit()
    resp = browser.get("/healthz")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["status"] == body["database"] == body["storage"] == "ok"
    jobs = body["jobs"]
    assert jobs["writeback_due"] == 1 and jobs["writeback_gave_up"] == 1
    assert 29 * 60 <= jobs["oldest_due_seconds"] <= 31 * 60


def test_healthz_is_503_when_storage_cannot_be_written(app, browser, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store should be")
    app.config["STORAGE_DIR"] = str(blocked / "storage")
    resp = browser.get("/healthz")
    assert resp.status_code == 503
    assert resp.get_json()["storage"] == "error" and resp.get_json()["database"] == "ok"


def test_web_lines_carry_the_request_id(app, browser, capfd):
    resp = browser.get("/login", headers={"X-Request-ID": "probe-42"})
    assert resp.headers["X-Request-ID"] == "probe-42"
    err = capfd.readouterr().err
    assert "INFO portal.web [probe-42] GET /login 200" in err
    # A header that is not a short token is replaced, never echoed into logs.
    resp = browser.get("/login", headers={"X-Request-ID": "<script>" * 20})
    assert len(resp.headers["X-Request-ID"]) == 12 and "<" not in resp.headers["X-Request-ID"]


def test_job_runner_logs_each_pass(tmp_path):
    """`flask jobs run` outside the demo: its log lines reach stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env["PORTAL_INSTANCE"] = str(tmp_path / "instance")
    flask = [sys.executable, "-m", "flask", "--app", "portal"]
    subprocess.run([*flask, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run([*flask, "jobs", "run"], env=env, cwd=tmp_path, check=True, capture_output=True, text=True)
    assert "INFO portal.jobs [-] pass:" in out.stderr, out.stderr


def _app_on(inst, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE", str(inst))
    return create_app({"TESTING": True, "SECRET_KEY": "x", "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"})


def test_missing_data_key_with_stored_secrets_stops_start_up(tmp_path, monkeypatch):
    inst = tmp_path / "deploy"
    app = _app_on(inst, monkeypatch)
    with app.app_context():
        upgrade()
        db.session.add(Enterprise(tax_no=tax_no(1), name="甲", client_id="c1", client_secret_enc=encrypt("s" * 20),
                                  encrypt_key_enc=encrypt("k" * 16)))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    key = (inst / "data.key").read_text()
    (inst / "data.key").unlink()
    with pytest.raises(MissingDataKey, match="data.key"):
        _app_on(inst, monkeypatch)
    assert not (inst / "data.key").exists()  # no new key that would orphan the stored secrets
    (inst / "data.key").write_text(key)
    assert _app_on(inst, monkeypatch).config["DATA_KEY"] == key.strip()


def test_a_new_deployment_gets_a_data_key(tmp_path, monkeypatch):
    inst = tmp_path / "fresh"
    app = _app_on(inst, monkeypatch)
    assert (inst / "data.key").read_text().strip() == app.config["DATA_KEY"]


def test_invoice_cloud_defaults_to_production(tmp_path, monkeypatch):
    app = _app_on(tmp_path / "i", monkeypatch)
    assert app.config["INVOICE_CLOUD_URL"] == "https://api.piaozone.com"


def test_nothing_reads_outside_the_repository():
    """A fresh clone is the whole product: no code or make target reaches for a sibling folder."""
    hits = subprocess.run(["git", "grep", "-nE", r"\.\./shared|parent / .shared.|CORPUS_DIR", "--",
                           "*.py", "Makefile", ".ci", ":!tests/test_operations.py"],
                          cwd=REPO, capture_output=True, text=True).stdout
    assert hits == "", hits
    from portal.demo import DEMO_BILLS, SYNC_FILE, corpus_dir

    assert corpus_dir() == REPO / "tests" / "corpus"
    for name in [SYNC_FILE, *(f for *_, files in DEMO_BILLS for f in files)]:
        assert (corpus_dir() / name).is_file(), name


def test_a_304_for_a_static_file_leaves_no_open_file(app):
    """Browsers revalidate the favicon on every page: the 304 must not leave the file open."""
    import gc
    import warnings

    client = app.test_client()
    first = client.get("/static/favicon.svg")
    etag = first.headers["ETag"]
    first.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = client.get("/static/favicon.svg", headers={"If-None-Match": etag})
        assert again.status_code == 304
        del again
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
