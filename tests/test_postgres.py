"""The outgrown deployment: the same migrations and domain rules on a real PostgreSQL server.

The machine starts PostgreSQL on 127.0.0.1:5432 (trust auth) before every run;
each test run gets a database of its own and drops it afterwards.
"""
import os
import secrets
import shutil

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, func, select, text

from portal import bills, create_app
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import Enterprise, Invoice

from .conftest import CORPUS, DATA_KEY, tax_no

ADMIN_URL = os.environ.get("PORTAL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_url():
    name = "portal_test_" + secrets.token_hex(4)
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the service is part of this machine kind; say how to get it back
        pytest.fail(f"PostgreSQL at {ADMIN_URL} is not reachable ({exc}); start it with "
                    "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'")
    yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_app(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATA_KEY": DATA_KEY, "SQLALCHEMY_DATABASE_URI": pg_url,
                      "STORAGE_DIR": str(tmp_path / "storage")})
    with app.app_context():
        upgrade()
        yield app
        db.session.remove()
        # Leave an empty schema for the next test of the module.
        with db.engine.begin() as conn:
            names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        db.engine.dispose()
    shutil.rmtree(tmp_path / "storage", ignore_errors=True)


def test_migrations_match_the_models_on_postgresql(pg_app):
    with db.engine.connect() as conn:
        assert conn.dialect.name == "postgresql"
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == [], diff


def test_bills_images_and_duplicates_on_postgresql(pg_app):
    ent = Enterprise(tax_no=tax_no(501), name="PG 企业", client_id="pg01", client_secret_enc=encrypt("s" * 20),
                     encrypt_key_enc=encrypt("k" * 16))
    db.session.add(ent)
    db.session.commit()
    a = bills.open_bill(ent, {"bill_no": "PG-1", "amount": "100.50"}, "test").bill
    again = bills.open_bill(ent, {"bill_no": "PG-1"}, "test")
    assert again.bill.id == a.id and not again.created
    b = bills.open_bill(ent, {"bill_no": "PG-2"}, "test").bill
    pdf = (CORPUS / "vat_e_special_guizhou_00008006.pdf").read_bytes()
    photo = (CORPUS / "vat_e_special_guizhou_00008006_render.jpg").read_bytes()
    assert bills.add_file(a, pdf, "a.pdf", "test").created
    assert not bills.add_file(a, pdf, "a.pdf", "test").created
    bills.add_file(b, photo, "b.jpg", "test")
    db.session.commit()
    rows = db.session.scalars(select(Invoice).order_by(Invoice.id)).all()
    assert [r.invoice_key for r in rows] == ["052002100113:00008006"] * 2
    assert all(r.duplicate for r in rows)
    assert bills.duplicate_bills(ent.id, a.id, ["052002100113:00008006"]) == {"052002100113:00008006": ["PG-2"]}
    bills.delete_bill(b, "test")
    db.session.commit()
    assert not db.session.scalar(select(Invoice).where(Invoice.bill_id == a.id)).duplicate


def test_push_is_idempotent_on_postgresql(pg_app):
    from portal import push

    from .test_push import envelope, invoice

    ent = Enterprise(tax_no=tax_no(502), name="PG 推送", client_id="pgpush01", client_secret_enc=encrypt("s3cret-value-1234567890"),
                     encrypt_key_enc=encrypt("0123456789abcdef"))
    db.session.add(ent)
    db.session.commit()
    body = envelope(ent, [invoice(n) for n in range(1, 101)], encrypt=True)
    first = push.receive(body)
    db.session.commit()
    again = push.receive(body)
    db.session.commit()
    assert (first.accepted, first.duplicates) == (100, 0)
    assert (again.accepted, again.duplicates) == (0, 100)
    from portal.models import ExpectedInvoice

    assert db.session.scalar(select(func.count()).select_from(ExpectedInvoice)) == 100


def test_parallel_login_failures_are_counted_without_races_on_postgresql(pg_app):
    from portal.blueprints.users.service import hash_password
    from portal.models import User

    from .conftest import PASSWORD
    from .test_auth import parallel_logins

    pg_app.config.update(PASSWORD_HASH_METHOD="scrypt:1024:8:1", LOGIN_THROTTLE_IP_LIMIT=1000)
    db.session.add(User(username="root", role="ops", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    codes = parallel_logins(pg_app, "root")
    assert codes.count(401) == pg_app.config["LOGIN_THROTTLE_LIMIT"]
    assert codes.count(429) == len(codes) - pg_app.config["LOGIN_THROTTLE_LIMIT"]


def test_write_back_jobs_are_queued_once_and_counted_right_on_postgresql(pg_app):
    from portal import writeback
    from portal.models import BillEvent, DockingConnection

    conn = DockingConnection(name="PG 星空", base_url="https://erp.example.com/k3cloud/", acct_id="a1", username="u",
                             password_enc=encrypt("p"), status_field="F_STATUS")
    db.session.add(conn)
    db.session.flush()
    ent = Enterprise(tax_no=tax_no(504), name="PG 回写", client_id="pgwb01", client_secret_enc=encrypt("s" * 20),
                     encrypt_key_enc=encrypt("k" * 16), docking_id=conn.id)
    db.session.add(ent)
    db.session.commit()
    bill = bills.open_bill(ent, {"bill_no": "PG-WB", "erp_id": "100001"}, "test").bill
    bills.add_file(bill, (CORPUS / "vat_e_special_guizhou_00008006.pdf").read_bytes(), "a.pdf", "test")
    bill.status = "completed"
    db.session.commit()
    assert writeback.enqueue_bill(bill, "test") == 3  # one attachment, the approval, the status
    assert writeback.enqueue_bill(bill, "test") == 0
    db.session.commit()
    [queued] = db.session.scalars(select(BillEvent).where(BillEvent.bill_id == bill.id,
                                                          BillEvent.action == "writeback")).all()
    assert queued.detail["jobs"] == 3
