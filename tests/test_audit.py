"""The audit page reads in Chinese: actions, objects by name, enterprises by name, system actors,
field names and values (states, roles, modes, form ids, booleans, empty values)."""
from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import event

from portal import audit, bills
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import AuditEvent, DockingConnection, WritebackJob


def _cells(html: str) -> list[list[str]]:
    """The table's rows as lists of cell texts (tags removed, whitespace squeezed)."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [[" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]


@pytest.fixture
def logged(browser, ops, make_enterprise, make_user):
    """Events of every kind the issue names, newest last; root (deployment-wide ops) logged in."""
    ent = make_enterprise("甲公司")
    alice = make_user("alice", "scanner", [ent])
    bill = bills.open_bill(ent, {"bill_no": "BX-0001"}, "erp-pull").bill
    conn = DockingConnection(name="总部星空", base_url="http://127.0.0.1:9/k3cloud/", acct_id="x", username="u",
                             password_enc=encrypt("pw-123456789"), enterprise_id=ent.id)
    db.session.add(conn)
    db.session.flush()
    job = WritebackJob(bill_id=bill.id, enterprise_id=ent.id, kind="attachment")
    db.session.add(job)
    db.session.flush()
    audit.record("update", "user", alice.id, summary="修改用户 alice",
                 before={"role": "viewer", "active": False, "enterprises": [ent.tax_no]},
                 after={"role": "scanner", "active": True, "enterprises": [ent.tax_no]}, actor="cli")
    audit.record("retry", "writeback", job.id, enterprise_id=ent.id, summary="立即重试",
                 before={"state": "failed", "attempts": 5, "next_attempt_at": datetime(2026, 3, 1, 2, 0).isoformat()},
                 after={"state": "pending", "attempts": 4}, actor="writeback")
    audit.record("update", "enterprise", ent.id, enterprise_id=ent.id, summary="修改企业授权",
                 before={"image_mode": "basic", "docking_id": None, "client_secret": True},
                 after={"image_mode": "match", "docking_id": conn.id, "client_secret": "changed"}, actor="demo")
    audit.record("create", "docking", conn.id, enterprise_id=ent.id, summary="新增对接业务系统",
                 after={"form_ids": "ER_ExpReimbursement", "enterprise_id": ent.id, "status_field": ""}, actor="erp-pull")
    audit.record("confirm", "bill", bill.id, enterprise_id=ent.id, summary="人工确认", after={"status": "matched"},
                 actor="alice")
    db.session.add(AuditEvent(actor="system", action="delete", object_type="enterprise", object_id="999",
                              enterprise_id=999, summary="删除企业授权"))
    db.session.commit()
    browser.login("root")
    return browser


def test_the_log_speaks_chinese(logged):
    html = logged.get("/audit/").get_data(as_text=True)
    rows = {r[5]: r for r in _cells(html)}  # keyed by the summary column
    user, retry, ent, dock, confirm, gone = (rows[k] for k in (
        "修改用户 alice", "立即重试", "修改企业授权", "新增对接业务系统", "人工确认", "删除企业授权"))
    # Actors: people by name, system actors in Chinese.
    assert [r[1] for r in (user, retry, ent, dock, confirm, gone)] == [
        "命令行", "回写任务", "演示数据", "星空拉取", "alice", "系统"]
    # Actions and objects in Chinese, by name rather than "user 1".
    assert user[2:4] == ["修改", "用户 alice"] and confirm[2:4] == ["人工确认", "单据 BX-0001"]
    assert retry[2:4] == ["重试", f"回写任务 #{retry[3].split('#')[1].split('（')[0]}（上传附件）"]
    assert dock[3] == "对接业务系统 总部星空"
    # Enterprises by name; one deleted since is said to be so.
    assert ent[4] == "甲公司" and gone[4] == "已删除的企业（#999）" and gone[3] == "企业授权 #999（已删除）"
    # Field names and values.
    assert user[6] == "角色 查看 启用 否 所属企业 甲公司" and user[7] == "角色 扫描岗 启用 是 所属企业 甲公司"
    assert retry[6] == "状态 失败 已尝试次数 5 下次尝试时间 2026-03-01 10:00:00"
    assert retry[7] == "状态 待处理 已尝试次数 4"
    assert ent[6] == "影像模式 基础模式 对接业务系统 空 client_secret 已设置"
    assert ent[7] == "影像模式 影像匹配 对接业务系统 总部星空 client_secret 已修改"
    assert dock[7] == "单据类型 费用报销单 所属企业 甲公司 状态字段 空"
    assert confirm[7] == "状态 匹配成功"
    for raw in ("ER_ExpReimbursement", "null", '"pending"', "attempts", "writeback</td>", "user 1", "bill 1"):
        assert raw not in html


def test_names_are_loaded_once_per_page_not_per_row(logged):
    def statements() -> int:
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert logged.get("/audit/").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    few = statements()
    for n in range(10):
        audit.record("update", "user", 1, summary=f"第 {n} 次", after={"enterprise_id": 999, "role": "ops"}, actor="cli")
    db.session.commit()
    assert statements() == few
