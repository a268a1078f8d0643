"""`make demo`'s seed: the whole demo from the repository alone, and every later run adds only what is missing."""
from __future__ import annotations

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from portal import create_app, demo
from portal.extensions import db
from portal.models import Bill, Enterprise, Image, Invoice, User
from portal.sandbox.galaxy import GalaxySandbox
from portal.sandbox.invoice_cloud import CloudSandbox
from portal.sandbox.seed import SEEDS

from .conftest import DATA_KEY


@pytest.fixture(scope="module")
def sandboxes():
    galaxy = GalaxySandbox(seed=SEEDS["demo"][0]).start()
    cloud = CloudSandbox(seed=SEEDS["demo"][1]).start()
    yield galaxy, cloud
    cloud.stop()
    galaxy.stop()


@pytest.fixture
def demo_app(tmp_path, monkeypatch, sandboxes):
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"SECRET_KEY": "x", "DATA_KEY": DATA_KEY, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
                      "INVOICE_CLOUD_URL": sandboxes[1].url})
    with app.app_context():
        upgrade()
        yield app
        db.session.remove()
        db.engine.dispose()


def _seed(app, sandboxes):
    galaxy, cloud = sandboxes
    demo.seed(app, galaxy.url, cloud.url)
    db.session.expire_all()


def _census() -> dict:
    """What the demo holds, by bill: status and the sorted file names."""
    out = {}
    for bill in db.session.scalars(select(Bill).order_by(Bill.bill_no)):
        names = sorted(i.filename for i in db.session.scalars(select(Image).where(Image.bill_id == bill.id)))
        out[bill.bill_no] = (bill.status, names)
    return out


def test_first_run_shows_bills_with_recognised_images(demo_app, sandboxes):
    _seed(demo_app, sandboxes)
    census = _census()
    assert set(census) == {b[0] for b in demo.DEMO_BILLS}
    for bill_no, _mode, *_rest, files in demo.DEMO_BILLS:
        assert census[bill_no][1] == sorted(files), bill_no
    assert census["FYBX0001"][0] == "completed" and census["FYBX0002"][0] == "returned"
    numbers = set(db.session.scalars(select(Invoice.number)))
    assert {"00008006", "83089647", "33207675", "24112000000048542163"} <= numbers
    # The photo of FYBX0001's invoice on FYBX0003 is a duplicate reimbursement.
    dup = db.session.scalar(select(Invoice).join(Image).join(Bill).where(Bill.bill_no == "FYBX0003"))
    assert dup.number == "00008006" and dup.duplicate


def test_a_second_run_changes_nothing(demo_app, sandboxes):
    _seed(demo_app, sandboxes)
    before = (_census(), db.session.scalar(select(func.count(Invoice.id))), db.session.scalar(select(func.count(User.id))),
              db.session.scalar(select(func.count(Enterprise.id))))
    _seed(demo_app, sandboxes)
    after = (_census(), db.session.scalar(select(func.count(Invoice.id))), db.session.scalar(select(func.count(User.id))),
             db.session.scalar(select(func.count(Enterprise.id))))
    assert after == before


def test_a_later_run_adds_what_the_seed_lacks(demo_app, sandboxes):
    _seed(demo_app, sandboxes)
    full = _census()
    # An older instance: one bill missing altogether, another without its files, one user gone.
    gone = db.session.scalar(select(Bill).where(Bill.bill_no == "FYBX0003"))
    db.session.delete(gone)
    bare = db.session.scalar(select(Bill).where(Bill.bill_no == "FYBX0004"))
    for image in db.session.scalars(select(Image).where(Image.bill_id == bare.id)):
        db.session.delete(image)
    bare.status = "pending"
    db.session.delete(db.session.scalar(select(User).where(User.username == "demo_viewer")))
    db.session.commit()
    _seed(demo_app, sandboxes)
    assert _census() == full
    assert db.session.scalar(select(User).where(User.username == "demo_viewer")) is not None


def test_printed_logins_always_work(demo_app, sandboxes):
    _seed(demo_app, sandboxes)
    logins = demo._logins_file(demo_app)
    logins.unlink()  # lost: the next run makes new passwords and the users take them
    _seed(demo_app, sandboxes)
    passwords = demo._demo_passwords(demo_app)
    for name, password in passwords.items():
        user = db.session.scalar(select(User).where(User.username == name))
        assert check_password_hash(user.password_hash, password), name


def test_the_demo_erp_hands_over_its_waiting_bills(demo_app, sandboxes):
    from portal import erp_pull

    _seed(demo_app, sandboxes)
    erp_pull.pull_all()
    db.session.expire_all()
    pulled = {b.bill_no: (b.enterprise.image_mode, b.origin, b.submitter)
              for b in db.session.scalars(select(Bill).where(Bill.origin == "pull"))}
    assert pulled == {"FYBX0007": ("basic", "pull", "周九"), "FYBX0008": ("match", "pull", "吴十")}


def test_the_demo_verifies_one_enterprises_invoices(demo_app, sandboxes):
    """发票查验 is on for the basic-mode enterprise: the job shows 查验通过 and one 查验不符."""
    from portal import verification
    from portal.models import InvoiceVerification

    _seed(demo_app, sandboxes)
    on = {e.image_mode for e in db.session.scalars(select(Enterprise).where(Enterprise.verify_invoices.is_(True)))}
    assert on == {demo.DEMO_VERIFY_MODE}
    verification.verify_due()
    results = {r.invoice_key: (r.status, r.code) for r in db.session.scalars(select(InvoiceVerification))}
    assert results == {"052002100113:00008006": ("verified", "0000"), "012001800311:33207675": ("verified", "0000"),
                       "033002000211:83089647": ("failed", "0006")}
