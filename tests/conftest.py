"""Fixtures over the app factory: a migrated database per test, a logged-in browser, factories."""
from __future__ import annotations

import contextvars
import os
import re
import shutil
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from portal import create_app
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import Enterprise, ScanPoint, User
from portal.taxno import uscc_check_char

pytest_plugins = ["tests.sandbox_plugin", "tests.s3_plugin"]

REPO = Path(__file__).resolve().parents[1]
# Public sample invoices kept in the repository (MANIFEST.md lists each file and its expected values).
CORPUS = REPO / "tests" / "corpus"


def corpus(name: str) -> bytes:
    """A file of the invoice corpus; a missing file fails the test rather than skipping it."""
    path = CORPUS / name
    if not path.exists():
        pytest.fail(f"corpus file {path} not found: the corpus lives in tests/corpus")
    return path.read_bytes()

PASSWORD = "correct-horse-1"
DATA_KEY = Fernet.generate_key().decode()
#: A PostgreSQL server (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test): every test's `app` then runs
#: on a database of this run there, migrated once and emptied after each test (`make test` runs both passes).
TEST_DATABASE_URL = os.environ.get("PORTAL_TEST_DATABASE_URL", "")


def tax_no(n: int) -> str:
    """A valid unified social credit code, different for each ``n``."""
    body = f"91440300MA{n:07d}"
    return body + uscc_check_char(body)


#: The run's PostgreSQL database once `suite_database` made it (PORTAL_TEST_DATABASE_URL); None on SQLite.
_suite_db: dict[str, str] = {}


def _config(tmp: Path, **extra) -> dict:
    cfg = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "DATA_KEY": DATA_KEY,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'portal.sqlite3'}",
        "STORAGE_DIR": str(tmp / "storage"),
        "LOGIN_THROTTLE_LIMIT": 5,
        # Cheap scrypt parameters keep the suite fast; production uses werkzeug's defaults.
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        # Uploads of QR-less photos would wait for the OCR job (识别中); the tests of background OCR turn it on.
        "OCR_BACKGROUND": False,
    }
    if _suite_db:
        # Every app of a test, the `app` fixture's and any a test builds itself, shares the run's database.
        # A query that never ends fails its test instead of hanging the run (time_limit's progress
        # handler is SQLite's; PostgreSQL has none).
        cfg.update(SQLALCHEMY_DATABASE_URI=_suite_db["url"],
                   SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"options": "-c statement_timeout=30000"}})
    cfg.update(extra)
    return cfg


def without_portal_environment(mp: pytest.MonkeyPatch) -> None:
    """Remove every ``PORTAL_*`` variable: a developer's shell must not reconfigure the tests."""
    for name in list(os.environ):
        if name.startswith("PORTAL_"):
            mp.delenv(name)


@pytest.fixture(autouse=True)
def _no_portal_environment(monkeypatch):
    """Each test starts without ``PORTAL_*`` variables (``PORTAL_SQLALCHEMY_DATABASE_URI`` would win
    over the test's own database, ``PORTAL_INSTANCE`` would point into a real deployment)."""
    without_portal_environment(monkeypatch)


def migrated_template(tmp: Path) -> Path:
    """Migrate a fresh SQLite file in ``tmp`` with Flask-Migrate; its instance folder stays in ``tmp``."""
    from flask_migrate import upgrade

    # Session fixtures run before the autouse one above, so this clears the environment itself;
    # without PORTAL_INSTANCE, create_app would make ./instance in the working directory.
    with pytest.MonkeyPatch.context() as mp:
        without_portal_environment(mp)
        mp.setenv("PORTAL_INSTANCE", str(tmp / "instance"))
        app = create_app(_config(tmp, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp / 'portal.sqlite3'}",
                                 SQLALCHEMY_ENGINE_OPTIONS={}))
        with app.app_context():
            upgrade()
            db.engine.dispose()
    return tmp / "portal.sqlite3"


@pytest.fixture(scope="session")
def schema_template(tmp_path_factory) -> Path:
    """A database file migrated once with Flask-Migrate; each test gets a copy."""
    return migrated_template(tmp_path_factory.mktemp("schema"))


@pytest.fixture(scope="session")
def suite_database(tmp_path_factory):
    """With PORTAL_TEST_DATABASE_URL: a PostgreSQL database of this run, migrated once; else None."""
    if not TEST_DATABASE_URL:
        yield None
        return
    import secrets

    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    name = "portal_suite_" + secrets.token_hex(4)
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + name
    tmp = tmp_path_factory.mktemp("pg")
    with pytest.MonkeyPatch.context() as mp:
        without_portal_environment(mp)
        mp.setenv("PORTAL_INSTANCE", str(tmp / "instance"))
        migrate_app = create_app(_config(tmp, SQLALCHEMY_DATABASE_URI=url))
        with migrate_app.app_context():
            upgrade()
            db.engine.dispose()
    _suite_db["url"] = url
    yield url
    _suite_db.clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_tables() -> None:
    """Leave the shared PostgreSQL database empty for the next test (the schema stays), ids from 1 again.

    DELETE, children first, and a reset of every sequence, in one round trip: a test leaves a few rows,
    and TRUNCATE of all tables (new files for each table and index) cost ~0.5 s per test under load
    where this costs a few milliseconds.
    """
    statements = [f'DELETE FROM "{t.name}"' for t in reversed(db.metadata.sorted_tables)]
    statements.append("SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE c.relkind = 'S' AND n.nspname = current_schema()")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("; ".join(statements))


@pytest.fixture
def app(tmp_path, monkeypatch, schema_template, cloud_sandbox, suite_database):
    """The application on a fresh migrated database (a SQLite file, or the run's PostgreSQL one), talking to
    the invoice-cloud sandbox."""
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    if not suite_database:
        shutil.copy(schema_template, tmp_path / "portal.sqlite3")
    app = create_app(_config(tmp_path, INVOICE_CLOUD_URL=cloud_sandbox.url))
    with app.app_context():
        yield app
        db.session.remove()
        _dispose_other_engines(app)
        if suite_database:
            _empty_tables()
        db.engine.dispose()


def _dispose_other_engines(app) -> None:
    """Close the pooled connections of every other app a test built (``create_app`` inside the test).

    Left to the garbage collector they are closed at some later test (a ResourceWarning, an error
    there) and, on the run's PostgreSQL database, stay open beside the next tests.
    """
    for other, engines in list(db._app_engines.items()):
        if other is not app:
            for engine in engines.values():
                engine.dispose()


def isolated(fn, *args, **kw):
    """Run a request like a real server does: in its own app context, own ``g``, own DB session.

    The test's session commits first (so the request sees the test's data) and
    again after (so the test then reads what the request wrote).
    """
    db.session.commit()
    try:
        resp = contextvars.Context().run(fn, *args, **kw)
        # Read and close like a WSGI server does, so streamed files are never left open.
        resp.get_data()
        resp.close()
        return resp
    finally:
        db.session.commit()


class Browser:
    """A test client that logs in and sends the CSRF token like the real pages do."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.token = None

    def get(self, url, htmx=False, **kw):
        resp = isolated(self.client.get, url, headers=self._headers(htmx, kw.pop("headers", None)), **kw)
        self._remember_token(resp)
        return resp

    def post(self, url, data=None, htmx=False, csrf=True, **kw):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf())
        return isolated(self.client.post, url, data=data, headers=self._headers(htmx, kw.pop("headers", None)), **kw)

    def request(self, method, url, **kw):
        """Any other request (API tests: JSON bodies, bearer headers)."""
        return isolated(self.client.open, url, method=method, **kw)

    def csrf(self) -> str:
        if self.token is None:
            # Logged in, /login redirects to the role's home page, which carries the token too.
            self.get("/login", follow_redirects=True)
        return self.token

    def login(self, username, password=PASSWORD):
        resp = self.post("/login", {"username": username, "password": password})
        self.token = None
        return resp

    def _headers(self, htmx, extra):
        headers = dict(extra or {})
        if htmx:
            headers.update({"HX-Request": "true", "HX-Target": htmx if isinstance(htmx, str) else "target"})
        return headers

    def _remember_token(self, resp):
        m = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"|"X-CSRFToken": "([^"]+)"', resp.data or b"")
        if m:
            self.token = (m.group(1) or m.group(2)).decode()


@pytest.fixture
def browser(app):
    return Browser(app)


@pytest.fixture
def make_enterprise(app):
    """Create an enterprise authorization directly (the cloud check is tested elsewhere)."""
    counter = iter(range(1, 10_000))

    def make(name=None, *, client_id=None, secret="s3cret-value-1234567890", key="0123456789abcdef", mode="basic", **kw):
        n = next(counter)
        ent = Enterprise(tax_no=kw.pop("tax_no", tax_no(n)), name=name or f"测试企业{n}", client_id=client_id or f"client{n:04d}",
                         client_secret_enc=encrypt(secret), encrypt_key_enc=encrypt(key), image_mode=mode, **kw)
        db.session.add(ent)
        db.session.commit()
        return ent

    return make


@pytest.fixture
def make_user(app):
    """Create a user with the shared test password."""
    from portal.blueprints.users.service import hash_password

    def make(username, role, enterprises=(), scan_points=()):
        user = User(username=username, role=role, password_hash=hash_password(PASSWORD))
        user.enterprises = list(enterprises)
        user.scan_points = list(scan_points)
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def make_scan_point(app):
    def make(enterprise, code="SP01", name="一号扫描点"):
        point = ScanPoint(enterprise_id=enterprise.id, code=code, name=name)
        db.session.add(point)
        db.session.commit()
        return point

    return make


@pytest.fixture
def ops(make_user):
    """A deployment-wide ops user (no enterprise binding)."""
    return make_user("root", "ops")
