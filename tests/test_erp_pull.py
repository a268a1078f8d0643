"""`flask erp pull`: bills waiting at the image user's workflow node come in by themselves (sandbox over HTTP)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal import bills, erp_pull
from portal.crypto import encrypt
from portal.errors import UserError
from portal.extensions import db
from portal.models import AuditEvent, Bill, BillEvent, DockingConnection
from portal.sandbox.seed import TEST_GALAXY

from .conftest import corpus

FORM = TEST_GALAXY.form_id
TRAVEL = "ER_ExpReimbursement_Travel"


@pytest.fixture
def erp(app, galaxy, make_enterprise):
    """A connection to the Galaxy sandbox as the image user, one enterprise on it, and helpers."""
    conn = DockingConnection(name="测试星空", base_url=galaxy.base_url, acct_id=TEST_GALAXY.acct_id,
                             username=TEST_GALAXY.username, password_enc=encrypt(TEST_GALAXY.password))
    db.session.add(conn)
    db.session.flush()
    ent = make_enterprise("甲公司", docking_id=conn.id)
    me = galaxy.app.users[(TEST_GALAXY.acct_id, TEST_GALAXY.username)].user_id

    class Erp:
        connection, enterprise, user_id = conn, ent, me

        @staticmethod
        def bill(number, fid, *, form=FORM, org="100", task_for=me, post=0, **fields):
            galaxy.add_bill(form, fid, number, "B", **{"FProposerID.FName": "张三", "FOrgID.FNumber": org,
                                                       "FOrgID.FName": f"组织{org}", "FExpenseAmount": 1280.5, **fields})
            if task_for is not None:
                galaxy.app.add_task(form, number, task_for, base_post=post)

        @staticmethod
        def pull():
            result = erp_pull.pull_connection(db.session.get(DockingConnection, conn.id))
            db.session.expire_all()
            return result

    return Erp


def _bills() -> dict[str, Bill]:
    return {b.bill_no: b for b in db.session.scalars(select(Bill))}


def test_pending_tasks_of_the_image_user_become_bills_and_only_they(erp, galaxy):
    erp.bill("FYBX0101", 200101, post=31)
    erp.bill("FYBX0102", 200102, task_for=erp.user_id + 99)  # somebody else's task
    erp.bill("FYBX0103", 200103, task_for=None)  # no task at all
    erp.bill("CLBX0104", 200104, form=TRAVEL)  # a form this connection does not handle
    erp.bill("FYBX0105", 200105, task_for=None)
    galaxy.app.add_task(FORM, "FYBX0105", erp.user_id)
    galaxy.app.tasks[-1]["FStatus"] = "1"  # already processed
    result = erp.pull()
    assert (result.tasks, result.opened, result.errors) == (1, 1, [])
    bill = _bills()["FYBX0101"]
    assert set(_bills()) == {"FYBX0101"}
    assert (bill.erp_id, bill.form_id, bill.submitter, bill.org, str(bill.amount), bill.origin, bill.task_post_id) == (
        "200101", FORM, "张三", "组织100", "1280.50", "pull", 31)
    assert bill.status == "pending"
    conn = db.session.get(DockingConnection, erp.connection.id)
    assert (conn.pull_tasks, conn.pull_opened, conn.pull_error) == (1, 1, None) and conn.pulled_at is not None


def test_more_forms_and_a_custom_amount_field(erp, galaxy):
    conn = db.session.get(DockingConnection, erp.connection.id)
    conn.form_ids, conn.amount_field = f"{FORM},{TRAVEL}", "FReqAmount"
    db.session.commit()
    erp.bill("CLBX0201", 200201, form=TRAVEL, FReqAmount=99.5)
    erp.pull()
    bill = _bills()["CLBX0201"]
    assert bill.form_id == TRAVEL and str(bill.amount) == "99.50"


def test_pulling_again_changes_nothing(erp):
    erp.bill("FYBX0301", 200301)
    erp.pull()
    counts = (db.session.scalar(select(func.count(Bill.id))), db.session.scalar(select(func.count(BillEvent.id))),
              db.session.scalar(select(func.count(AuditEvent.id))))
    result = erp.pull()
    assert result.opened == 0 and result.tasks == 1
    assert counts == (db.session.scalar(select(func.count(Bill.id))), db.session.scalar(select(func.count(BillEvent.id))),
                      db.session.scalar(select(func.count(AuditEvent.id))))


def test_a_withdrawn_task_withdraws_the_bill_and_its_return_reopens_it(erp, galaxy):
    erp.bill("FYBX0401", 200401)
    erp.pull()
    bill = _bills()["FYBX0401"]
    image = bills.add_file(bill, corpus("vat_e_ordinary_zhejiang_83089647_original_invoice.xml"), "a.xml", "s1").image
    db.session.commit()
    galaxy.app.withdraw_task(FORM, "FYBX0401")
    assert erp.pull().withdrawn == 1
    bill = _bills()["FYBX0401"]
    assert bill.status == "withdrawn" and bill.status_label == "已撤回"
    assert [i.id for i in bills.live_images(bill)] == [image.id]  # images kept
    with pytest.raises(UserError, match="撤回"):
        bills.add_file(bill, corpus("vat_e_special_guizhou_00008006.pdf"), "b.pdf", "s1")
    assert erp.pull().withdrawn == 0  # withdrawn once, not again
    galaxy.app.add_task(FORM, "FYBX0401", erp.user_id)  # submitted again in the ERP
    assert erp.pull().reopened == 1
    assert _bills()["FYBX0401"].status == "uploaded"


def test_finished_and_api_bills_are_not_withdrawn(erp, galaxy):
    erp.bill("FYBX0501", 200501)
    erp.pull()
    done = _bills()["FYBX0501"]
    done.status = "completed"
    bills.open_bill(erp.enterprise, {"bill_no": "API-1", "erp_id": "1"}, "erp")
    db.session.commit()
    galaxy.app.withdraw_task(FORM, "FYBX0501")
    assert erp.pull().withdrawn == 0
    assert {b: x.status for b, x in _bills().items()} == {"FYBX0501": "completed", "API-1": "pending"}


def test_bills_of_a_shared_connection_go_to_the_enterprise_listing_their_org(erp, make_enterprise):
    other = make_enterprise("乙公司", docking_id=erp.connection.id, erp_orgs="200, 300")
    erp.bill("FYBX0601", 200601, org="100")
    erp.bill("FYBX0602", 200602, org="300")
    erp.pull()
    owners = {b.bill_no: b.enterprise_id for b in _bills().values()}
    assert owners == {"FYBX0601": erp.enterprise.id, "FYBX0602": other.id}


def test_an_unreachable_erp_is_reported_on_the_connection(erp, galaxy):
    erp.bill("FYBX0701", 200701)
    galaxy.stop()
    result = erp.pull()
    conn = db.session.get(DockingConnection, erp.connection.id)
    assert result.errors and conn.pull_error and conn.pulled_at is not None and not _bills()


def test_cli_pull_prints_what_it_did(erp, app):
    erp.bill("FYBX0801", 200801)
    db.session.commit()
    out = app.test_cli_runner().invoke(args=["erp", "pull"])
    assert out.exit_code == 0 and "待办 1，新开单据 1" in out.output


def test_cli_pull_loops_with_the_common_loop_option(erp, app, monkeypatch):
    erp.bill("FYBX0802", 200802)
    db.session.commit()
    real_pull_all, rounds = erp_pull.pull_all, []

    def pull_all_then_stop():
        rounds.append(1)
        if len(rounds) > 2:
            raise KeyboardInterrupt
        return real_pull_all()

    monkeypatch.setattr(erp_pull, "pull_all", pull_all_then_stop)
    out = app.test_cli_runner().invoke(args=["erp", "pull", "--loop", "0.01"])
    assert out.exit_code == 0, out.output
    assert "待办 1，新开单据 1" in out.output and "待办 1，新开单据 0" in out.output  # two real rounds
    assert out.output.rstrip().endswith("已停止") and len(rounds) == 3


def test_pull_honours_the_erp_allow_list(erp, app, galaxy):
    erp.bill("FYBX0901", 200901)
    app.config["ERP_ALLOWED_HOSTS"] = "erp.example.com"
    result = erp.pull()
    assert result.errors and not _bills() and galaxy.login_count == 0
