"""Which manual section each page is about: the one mapping behind the header's 帮助 link.

Keys are endpoints; a value is ``(chapter slug, anchor)``, or a dict by role when the same page
is a different job for different people (the bill page is work for the desk, reading for viewers).
``tests/test_help.py`` opens every page as every role and checks the link and its anchor.
"""
from __future__ import annotations

Target = tuple[str, str]

SECTIONS: dict[str, Target | dict[str, Target]] = {
    # 运维
    "enterprises.index": ("ops", "enterprises"),
    "enterprises.new": ("ops", "enterprise-new"),
    "enterprises.edit": ("ops", "enterprise-edit"),
    "enterprises.show": ("ops", "push-handover"),
    "docking.index": ("ops", "docking"),
    "docking.new": ("ops", "docking"),
    "docking.edit": ("ops", "docking"),
    "scan_points.index": ("ops", "scan-points"),
    "scan_points.edit": ("ops", "scan-points"),
    "scan_points.confirm_delete": ("ops", "scan-point-delete"),
    "users.index": ("ops", "users"),
    "users.edit": ("ops", "user-edit"),
    "writeback.index": ("ops", "writeback"),
    "audit.index": ("ops", "audit"),
    "erp.open_bill": ("erp-setup", "buttons"),
    # 扫描岗
    "scan.queue": ("scanner", "desk"),
    "scan.open_bill": ("scanner", "desk"),
    "bills.show": {"scanner": ("scanner", "bill-page"), "ops": ("scanner", "bill-page"),
                   "viewer": ("viewer", "bill-page")},
    # 查看
    "bills.index": ("viewer", "bills"),
    "invoices.index": ("viewer", "invoices"),
    "public.view": ("viewer", "view-links"),
    "public.upload_page": ("viewer", "upload-links"),
    # Everyone
    "users.own_password": ("", "password"),
    "auth.index": ("", "roles"),
    "help.index": ("", "top"),
    "help.chapter": ("", "top"),
}


def target(endpoint: str | None, role: str | None) -> Target | None:
    """The section for ``endpoint`` as seen by ``role``; None when the page has none."""
    value = SECTIONS.get(endpoint or "")
    if isinstance(value, dict):
        return value.get(role or "")
    return value
