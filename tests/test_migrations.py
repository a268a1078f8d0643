"""The schema lives in Flask-Migrate revisions: upgrade from empty works, models and migrations agree."""
import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from portal import create_app
from portal.config import DEFAULTS
from portal.extensions import db

from .conftest import migrated_template


def test_upgrade_from_empty_and_no_drift(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"})
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "enterprises", "docking_connections", "scan_points", "audit_events", "bills", "images",
                "invoices", "blobs", "expected_invoices", "writeback_jobs", "alembic_version"} <= tables
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
            diff = compare_metadata(ctx, db.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert conn.dialect.name == "sqlite"
        # The seller-name triggers (a batch migration that recreates invoices would drop them).
        triggers = set(db.session.scalars(db.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
        assert {"invoice_sellers_on_insert", "invoice_sellers_on_update"} <= triggers
        db.session.remove()
        with db.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def test_first_start_generates_keys_with_private_modes(tmp_path, monkeypatch):
    inst = tmp_path / "inst"
    monkeypatch.setenv("PORTAL_INSTANCE", str(inst))
    app = create_app()
    assert app.instance_path == str(inst)
    for name in ("secret_key", "data.key"):
        assert (inst / name).stat().st_mode & 0o777 == 0o600
    again = create_app()
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"] and again.config["DATA_KEY"] == app.config["DATA_KEY"]
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{inst / 'portal.sqlite3'}"


def test_environment_overrides_config(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "i"))
    monkeypatch.setenv("PORTAL_INVOICE_CLOUD_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("PORTAL_MAX_FILE_BYTES", "1024")
    app = create_app()
    assert app.config["INVOICE_CLOUD_URL"] == "http://127.0.0.1:1"
    assert app.config["MAX_FILE_BYTES"] == 1024


def test_bill_position_counter_starts_after_the_positions_already_used(tmp_path, monkeypatch):
    from sqlalchemy import text

    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.sqlite3'}"})
    now = "2026-01-01 00:00:00"
    with app.app_context():
        upgrade(revision="28ebbbb0fecf")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO enterprises (id, tax_no, name, client_id, client_secret_enc, encrypt_key_enc,"
                              " image_mode, created_at, updated_at) VALUES (1, 'T', 'E', 'c', x'00', x'00', 'basic', :t, :t)"),
                         {"t": now})
            for bill_id in (1, 2):
                conn.execute(text("INSERT INTO bills (id, enterprise_id, bill_no, form_id, status, round, created_at,"
                                  " updated_at) VALUES (:id, 1, :no, 'F', 'uploaded', 1, :t, :t)"),
                             {"id": bill_id, "no": f"B{bill_id}", "t": now})
            for sha in ("s1", "s2"):
                conn.execute(text("INSERT INTO blobs (sha256, size, media_type, pages, created_at)"
                                  " VALUES (:s, 1, 'x', 1, :t)"), {"s": sha, "t": now})
            for image_id, position in ((1, 3), (2, 7)):
                conn.execute(text("INSERT INTO images (id, bill_id, sha256, filename, position, uploaded_by, uploaded_at,"
                                  " removed, round_added, rescan_state, origin) VALUES (:id, 1, :s, '', :p, '', :t,"
                                  " 0, 1, 'normal', 'upload')"), {"id": image_id, "s": f"s{image_id}", "p": position, "t": now})
        upgrade()
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, last_position FROM bills ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, 7), (2, 0)]
        db.engine.dispose()


@pytest.fixture(scope="module")
def leaked_environment():
    """PORTAL_* variables set before any test fixture runs, as a developer's shell would leave them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PORTAL_MAX_FILE_BYTES", "1")
        mp.setenv("PORTAL_SQLALCHEMY_DATABASE_URI", "sqlite:////nonexistent/elsewhere.sqlite3")
        yield


def test_portal_variables_of_the_shell_do_not_reach_the_tests(leaked_environment, app):
    assert not [name for name in os.environ if name.startswith("PORTAL_") and name != "PORTAL_INSTANCE"]
    assert app.config["MAX_FILE_BYTES"] == DEFAULTS["MAX_FILE_BYTES"]
    assert "elsewhere" not in app.config["SQLALCHEMY_DATABASE_URI"]


def test_the_schema_template_keeps_its_instance_folder_out_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    template = migrated_template(tmp_path / "template")
    assert template.exists()
    assert not (tmp_path / "instance").exists()
    assert (tmp_path / "template" / "instance").is_dir()
