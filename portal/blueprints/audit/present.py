"""How the audit page reads out an event in Chinese: actions, objects, actors, field names and values.

The log stores stable English keys (what code and tests match on); this module is the one place
that turns them into what an operator reads.  Names (enterprises, users, bills, …) are looked up
for a whole page at once: one query per kind, never one per row.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import select

from ...extensions import db
from ...labels import AUDIT_FIELDS, BILL_STATUSES, IMAGE_MODES, ROLES, WRITEBACK_KINDS, WRITEBACK_STATES, invoice_type_label
from ...models import AuditEvent, Bill, DockingConnection, Enterprise, Invoice, ScanPoint, User, WritebackJob
from ..bills.service import BEIJING

ACTIONS = {
    "create": "新增", "update": "修改", "delete": "删除", "test": "测试", "login": "登录",
    "reset_password": "重置密码", "change_password": "修改密码", "push": "推送", "upload": "上传",
    "submit": "提交", "return": "退回", "confirm": "人工确认", "correct": "修正", "retry": "重试",
    "reopen": "重新打开", "withdraw": "撤回", "erp_open": "从 ERP 调阅",
}

OBJECT_TYPES = {
    "enterprise": "企业授权", "docking": "对接业务系统", "scan_point": "扫描点", "user": "用户", "bill": "单据",
    "invoice": "发票", "writeback": "回写任务", "expected_invoice": "收票推送发票",
}

# System actors (no person behind them) and the prefixes of callers named by their client_id.
SYSTEM_ACTORS = {
    "writeback": "回写任务", "demo": "演示数据", "demo_scanner": "演示数据（扫描岗）", "erp-pull": "星空拉取",
    "cli": "命令行", "system": "系统", "ocr": "OCR 识别任务",
}
ACTOR_PREFIXES = {"push:": "收票助手推送", "api:": "ERP 接口"}

# Galaxy form ids we know by name; others are shown as they are.
# Galaxy form ids (reference A.7) by the names people know them by.
FORM_NAMES = {"ER_ExpReimbursement": "费用报销单", "ER_ExpenseRequest": "费用申请单",
              "ER_ExpReimbursement_Travel": "差旅费报销单", "ER_ExpenseRequest_Travel": "出差申请单",
              "IV_ReceivedInvoice": "收票单", "AP_PAYBILL": "付款单"}

EMPTY = "空"


def action_label(action: str) -> str:
    """The action in Chinese (an unknown key as it is)."""
    return ACTIONS.get(action, action)


def actor_label(actor: str) -> str:
    """A person's user name as it is; system actors and API callers in Chinese."""
    if actor in SYSTEM_ACTORS:
        return SYSTEM_ACTORS[actor]
    for prefix, label in ACTOR_PREFIXES.items():
        if actor.startswith(prefix):
            return f"{label}（{actor[len(prefix):]}）"
    return actor


def form_names(value: str) -> str:
    """``ER_ExpReimbursement,XY`` → ``费用报销单、XY``."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return "、".join(FORM_NAMES.get(p, p) for p in parts) if parts else EMPTY


class Page:
    """The names one page of events refers to, loaded in one query per kind."""

    def __init__(self, events: Iterable[AuditEvent]):
        events = list(events)
        refs: dict[str, set[int]] = defaultdict(set)
        tax_nos: set[str] = set()
        for ev in events:
            if ev.enterprise_id:
                refs["enterprise"].add(ev.enterprise_id)
            if ev.object_id and ev.object_id.isdigit():
                refs[ev.object_type].add(int(ev.object_id))
            for values in (ev.before, ev.after):
                for key, value in (values or {}).items():
                    if key in ("enterprise_id", "docking_id") and isinstance(value, int):
                        refs["enterprise" if key == "enterprise_id" else "docking"].add(value)
                    elif key == "enterprises" and isinstance(value, list):
                        tax_nos.update(v for v in value if isinstance(v, str))
        self.enterprises = self._names(Enterprise, Enterprise.name, refs["enterprise"])
        self.by_tax_no = dict(db.session.execute(
            select(Enterprise.tax_no, Enterprise.name).where(Enterprise.tax_no.in_(tax_nos))).all()) if tax_nos else {}
        self.objects = {
            "enterprise": self.enterprises,
            "docking": self._names(DockingConnection, DockingConnection.name, refs["docking"]),
            "user": self._names(User, User.username, refs["user"]),
            "bill": self._names(Bill, Bill.bill_no, refs["bill"]),
            "scan_point": self._names(ScanPoint, ScanPoint.name, refs["scan_point"]),
            "invoice": self._names(Invoice, Invoice.number, refs["invoice"]),
            "writeback": self._names(WritebackJob, WritebackJob.kind, refs["writeback"]),
        }

    @staticmethod
    def _names(model, column, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        return {i: n for i, n in db.session.execute(select(model.id, column).where(model.id.in_(ids))).all()}

    def enterprise(self, ev: AuditEvent) -> str:
        """The event's enterprise by name (an enterprise deleted since is said to be so)."""
        if not ev.enterprise_id:
            return ""
        return self.enterprises.get(ev.enterprise_id) or f"已删除的企业（#{ev.enterprise_id}）"

    def object(self, ev: AuditEvent) -> str:
        """``单据 BX-0001``, ``用户 alice``, ``回写任务 #3（上传附件）``; a gone object by its number."""
        kind = OBJECT_TYPES.get(ev.object_type, ev.object_type)
        if not ev.object_id:
            return kind
        if not ev.object_id.isdigit():
            return f"{kind} {ev.object_id}"
        name = self.objects.get(ev.object_type, {}).get(int(ev.object_id))
        if ev.object_type == "writeback":
            return f"{kind} #{ev.object_id}" + (f"（{WRITEBACK_KINDS.get(name, name)}）" if name else "")
        if name is None:
            return f"{kind} #{ev.object_id}（已删除）" if ev.object_type in self.objects else f"{kind} #{ev.object_id}"
        return f"{kind} {name}" if name else f"{kind} #{ev.object_id}"

    def fields(self, values: dict[str, Any] | None) -> list[tuple[str, str]]:
        """``(label, value)`` pairs of a before/after record, in Chinese."""
        return [(AUDIT_FIELDS.get(k, k), self.value(k, v)) for k, v in (values or {}).items()]

    def value(self, key: str, value: Any) -> str:
        """One recorded value as an operator reads it."""
        if value is None or value == "" or value == []:
            return EMPTY
        if key == "ok" and isinstance(value, bool):
            return "成功" if value else "失败"
        if isinstance(value, bool):
            return "是" if value else "否"
        if key == "status" and value in BILL_STATUSES:
            return BILL_STATUSES[value]
        if key == "state" and value in WRITEBACK_STATES:
            return WRITEBACK_STATES[value]
        if key == "kind" and value in WRITEBACK_KINDS:
            return WRITEBACK_KINDS[value]
        if key == "role" and value in ROLES:
            return ROLES[value]
        if key == "image_mode" and value in IMAGE_MODES:
            return IMAGE_MODES[value]
        if key in ("form_ids", "form_id") and isinstance(value, str):
            return form_names(value)
        if key == "type" and isinstance(value, str):
            return invoice_type_label(value)
        if key == "enterprise_id" and isinstance(value, int):
            return self.enterprises.get(value) or f"已删除的企业（#{value}）"
        if key == "docking_id" and isinstance(value, int):
            return self.objects["docking"].get(value) or f"已删除的对接业务系统（#{value}）"
        if key == "enterprises" and isinstance(value, list):
            return "、".join(self.by_tax_no.get(v, v) if isinstance(v, str) else str(v) for v in value)
        if key.endswith("_at") and isinstance(value, str):
            try:
                return (datetime.fromisoformat(value) + BEIJING).strftime("%Y-%m-%d %H:%M:%S")
            except ValueError:
                return value
        if isinstance(value, list):
            return "、".join(self.value(key, v) for v in value)
        if isinstance(value, dict):
            return "；".join(f"{AUDIT_FIELDS.get(k, k)}：{self.value(k, v)}" for k, v in value.items())
        return str(value)
