"""Bills come in from the ERP's workflow: the image user's pending tasks become image tasks.

The customer's approval workflow has a node "影像审核" held by one Galaxy user, the image user; each
docking connection logs in as that user. One pull per connection reads the user's pending tasks from
``WF_AssignmentBill_ProcManage`` (paged ExecuteBillQuery), reads each bill's header from its form, and
opens the image task exactly as ``POST /api/v1/bills`` does (``bills.open_bill``: once per enterprise
and bill number, ``erp_id`` = FID). Pulling again changes nothing. A pulled bill whose task is gone
before we finished it (withdrawn, ended or rejected in the ERP) becomes ``withdrawn`` with its images
kept; when the task comes back, the bill reopens.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import select

from . import audit, bills
from .crypto import decrypt
from .errors import UserError
from .extensions import db
from .integration.errors import IntegrationError
from .integration.galaxy import GalaxyClient
from .integration.http import allowed_hosts_from_config, timeout_from_config
from .models import Bill, DockingConnection, Enterprise, Image, utcnow

log = logging.getLogger("portal.erp")

TASK_FORM = "WF_AssignmentBill_ProcManage"
PENDING = "FStatus='0' AND FActivityStatus='0' AND FInstStatus='2'"
TASK_KEYS = ["FBILLNUMBER", "FObjectTypeId", "FBasePost"]
HEADER_KEYS = ["FID", "FBillNo", "FDocumentStatus", "FProposerID.FName", "FOrgID.FNumber", "FOrgID.FName"]
# Statuses of a bill we have not finished: its task disappearing means the ERP took it back.
UNFINISHED = ("pending", "uploaded", "submitted", "recognised", "matched", "match_failed", "returned")
ACTOR = "erp-pull"
NUMBERS_PER_QUERY = 200  # bill numbers per header query (keeps FilterString short)


@dataclass
class PullResult:
    """What one pass over one connection did."""

    tasks: int = 0
    opened: int = 0
    withdrawn: int = 0
    reopened: int = 0
    errors: list[str] = field(default_factory=list)


def quote(value: str) -> str:
    """A FilterString literal: single quotes doubled, as SQL wants."""
    return "'" + str(value).replace("'", "''") + "'"


def pending_task_filter(user_id: int, form_ids: list[str], bill_no: str | None = None) -> str:
    """The FilterString of the image user's pending tasks (of one bill when ``bill_no`` is given)."""
    text = f"FReceiverId={int(user_id)} AND {PENDING} AND FObjectTypeId IN ({','.join(quote(f) for f in form_ids)})"
    if bill_no is not None:
        text += f" AND FBILLNUMBER={quote(bill_no)}"
    return text


def _read_erp(client: GalaxyClient, conn: DockingConnection) -> tuple[list[dict], list[str]]:
    """The pending tasks with their bill headers, and per-task problems (logs in first)."""
    client.login()
    forms = conn.form_id_list or ["ER_ExpReimbursement"]
    tasks = client.query_all(TASK_FORM, TASK_KEYS, pending_task_filter(client.user_id, forms), order="FBILLNUMBER")
    by_form: dict[str, dict[str, int]] = {}
    for number, form_id, post in tasks:
        if number:
            by_form.setdefault(str(form_id), {})[str(number)] = int(post or 0)
    keys = HEADER_KEYS + [conn.amount_field or "FExpenseAmount"]
    found, problems = [], []
    for form_id, posts in by_form.items():
        numbers = sorted(posts)
        headers: dict[str, list[Any]] = {}
        for start in range(0, len(numbers), NUMBERS_PER_QUERY):
            chunk = numbers[start:start + NUMBERS_PER_QUERY]
            for row in client.query_all(form_id, keys, f"FBillNo IN ({','.join(quote(n) for n in chunk)})"):
                headers[str(row[1])] = row
        for number in numbers:
            row = headers.get(number)
            if row is None:
                problems.append(f"{form_id} {number}：星空中找不到单据表头")
                continue
            fid, bill_no, status, proposer, org_number, org_name, amount = row
            found.append({"form_id": form_id, "bill_no": bill_no, "erp_id": fid, "erp_status": status,
                          "submitter": proposer, "org_number": org_number, "org": org_name, "amount": amount,
                          "post": posts[number]})
    return found, problems


def _route(ents: list[Enterprise], org_number: Any) -> Enterprise | None:
    """The enterprise a bill belongs to: the one listing its org, else the one listing none."""
    org = str(org_number or "").strip()
    for ent in ents:
        if org and org in ent.erp_org_list:
            return ent
    rest = [e for e in ents if not e.erp_org_list]
    return min(rest, key=lambda e: e.id) if rest else None


def _reopen(bill: Bill) -> None:
    has_images = db.session.scalar(select(Image.id).where(Image.bill_id == bill.id, Image.removed.is_(False)).limit(1))
    bills.event(bill, "reopen", ACTOR, to="uploaded" if has_images else "pending",
                detail={"message": "星空中的影像审核任务重新出现，单据已重新打开"})
    audit.record("reopen", "bill", bill.id, enterprise_id=bill.enterprise_id,
                 summary=f"星空任务重新出现，重新打开单据 {bill.bill_no}", actor=ACTOR)


def _withdraw(bill: Bill) -> None:
    bills.event(bill, "withdraw", ACTOR, to="withdrawn",
                detail={"message": "星空中的影像审核任务已不在（撤回、终止或驳回），影像保留"})
    audit.record("withdraw", "bill", bill.id, enterprise_id=bill.enterprise_id,
                 summary=f"星空任务已不在，单据 {bill.bill_no} 标记为已撤回", actor=ACTOR)


def _apply(conn: DockingConnection, ents: list[Enterprise], found: list[dict], result: PullResult) -> None:
    """Open, reopen and withdraw bills to mirror the task list. Commits."""
    seen: set[tuple[int, str]] = set()
    # Every pass sees every waiting task: the bills already open are read in a few queries, not one each.
    known: dict[tuple[int, str], Bill] = {}
    numbers = sorted({str(item["bill_no"]) for item in found})
    for start in range(0, len(numbers), 500):
        for bill in db.session.scalars(select(Bill).where(Bill.enterprise_id.in_([e.id for e in ents]),
                                                          Bill.bill_no.in_(numbers[start:start + 500]))):
            known[(bill.enterprise_id, bill.bill_no)] = bill
    for item in found:
        ent = _route(ents, item["org_number"])
        if ent is None:
            result.errors.append(f"{item['bill_no']}：组织 {item['org_number']} 不属于任何使用该连接的企业")
            continue
        bill = known.get((ent.id, str(item["bill_no"])))
        if bill is None:
            data = {"bill_no": item["bill_no"], "erp_id": item["erp_id"], "form_id": item["form_id"],
                    "submitter": item["submitter"], "org": item["org"], "amount": item["amount"]}
            try:
                with db.session.begin_nested():
                    opened = bills.open_bill(ent, data, actor=ACTOR)
            except UserError as exc:
                result.errors.append(f"{item['bill_no']}：{exc.message}")
                continue
            bill = opened.bill
            result.opened += opened.created
        seen.add((ent.id, bill.bill_no))
        bill.origin, bill.task_post_id = "pull", item["post"] or None
        if bill.status == "withdrawn":
            _reopen(bill)
            result.reopened += 1
    forms = conn.form_id_list or ["ER_ExpReimbursement"]
    stale = db.session.scalars(select(Bill).where(
        Bill.enterprise_id.in_([e.id for e in ents]), Bill.origin == "pull", Bill.status.in_(UNFINISHED),
        Bill.form_id.in_(forms)))
    for bill in stale:
        if (bill.enterprise_id, bill.bill_no) not in seen:
            _withdraw(bill)
            result.withdrawn += 1
    db.session.commit()


def pull_connection(conn: DockingConnection) -> PullResult:
    """One pass over one docking connection; the outcome is kept on the connection. Commits."""
    result = PullResult()
    ents = list(db.session.scalars(select(Enterprise).where(Enterprise.docking_id == conn.id).order_by(Enterprise.id)))
    if not ents:
        return result
    conn_id = conn.id
    try:
        password = decrypt(conn.password_enc)
    except RuntimeError:
        result.errors.append("无法解密对接业务系统的密码（数据密钥已更换），请重新填写密码")
        password = None
    found: list[dict] = []
    if password is not None:
        db.session.commit()  # no transaction stays open while we wait for the ERP
        try:
            with GalaxyClient(conn.base_url, conn.acct_id, conn.username, password,
                              timeout=timeout_from_config(current_app.config),
                              allowed_hosts=allowed_hosts_from_config(current_app.config, "ERP_ALLOWED_HOSTS"),
                              max_reply=current_app.config["ERP_MAX_REPLY_BYTES"]) as client:
                found, problems = _read_erp(client, conn)
            result.errors += problems
        except IntegrationError as exc:
            result.errors.append(exc.message)
            found = None
    conn = db.session.get(DockingConnection, conn_id)
    if found is not None and password is not None:
        result.tasks = len(found)
        _apply(conn, ents, found, result)
    conn = db.session.get(DockingConnection, conn_id)
    conn.pulled_at = utcnow()
    if found is not None and password is not None:
        conn.pull_tasks, conn.pull_opened = result.tasks, result.opened
    conn.pull_error = "；".join(result.errors)[:500] or None
    db.session.commit()
    log.info("erp pull %s: %d tasks, %d opened, %d withdrawn, %d reopened%s", conn.name, result.tasks, result.opened,
             result.withdrawn, result.reopened, f"; errors: {conn.pull_error}" if conn.pull_error else "")
    return result


def pull_all() -> dict[int, PullResult]:
    """One pass over every docking connection that an enterprise uses."""
    ids = db.session.scalars(select(DockingConnection.id).where(
        DockingConnection.id.in_(select(Enterprise.docking_id)))).all()
    return {conn_id: pull_connection(db.session.get(DockingConnection, conn_id)) for conn_id in ids}
