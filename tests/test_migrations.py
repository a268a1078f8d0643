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
