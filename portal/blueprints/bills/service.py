"""What the bill pages need on top of :mod:`portal.bills`: lookups, permissions, labels, history.

The domain rules (what may be added, removed, submitted, returned) live in
``portal.bills``; this module only decides who sees which bill, who may press
which button, and how the bill's data reads on a page.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from flask import url_for
from flask_login import current_user
from sqlalchemy import func, select

from ... import bills, matching, ocr_state
from ...extensions import db
from ...labels import BILL_EVENTS, FETCH_STATES, INVOICE_FIELDS, MATCH_ITEMS, MATCH_RESULTS
from ...labels import OCR_FILL_STATES as _OCR_FILL_STATES
from ...labels import OCR_STATES as _OCR_STATES
from ...models import Bill, BillEvent, Image, Invoice
from ...web.access import scope

# Re-exported for the templates (macros see globals only).
EDITABLE = bills.EDITABLE

# The scan desk works on bills still waiting for (re)scanning.
QUEUE_STATUSES = ("pending", "uploaded", "returned", "match_failed")

STATUS_BADGES = {
    "pending": "",
    "uploaded": "badge-info",
    "submitted": "badge-info",
    "recognised": "badge-info",
    "matched": "badge-ok",
    "match_failed": "badge-err",
    "completed": "badge-ok",
    "returned": "badge-warn",
    "deleted": "",
}

# Times are stored in UTC; the people reading them work on Beijing time (no daylight saving).
BEIJING = timedelta(hours=8)

# The badge of each compared invoice's status on the match panel (labels: portal.labels.MATCH_ITEMS).
MATCH_ITEM_BADGES = {
    "matched": "badge-ok",
    "missing_image": "badge-err",
    "amount_mismatch": "badge-err",
    "unexpected_image": "badge-warn",
    "duplicate": "badge-err",
    "duplicate_in_bill": "badge-err",
    "verify_failed": "badge-err",
}
MATCH_ITEM_STATUSES = {key: (MATCH_ITEMS[key], badge) for key, badge in MATCH_ITEM_BADGES.items()}


# --------------------------------------------------------------------------- lookups and permissions

def find_bills(bill_no: str, enterprise_id: int | None = None, *, ignore_case: bool = False) -> list[Bill]:
    """Bills numbered ``bill_no`` in the current user's enterprises (numbers are unique per enterprise).

    With ``ignore_case`` an exact match still wins; only when there is none do letters match in
    either case (a scanner types ``bx-001`` for ``BX-001``; a barcode gun may send either).
    """
    stmt = scope(select(Bill).where(Bill.bill_no == bill_no), Bill.enterprise_id)
    if enterprise_id is not None:
        stmt = stmt.where(Bill.enterprise_id == enterprise_id)
    found = list(db.session.scalars(stmt.order_by(Bill.enterprise_id)))
    if found or not ignore_case:
        return found
    stmt = scope(select(Bill).where(func.lower(Bill.bill_no) == bill_no.lower()), Bill.enterprise_id)
    if enterprise_id is not None:
        stmt = stmt.where(Bill.enterprise_id == enterprise_id)
    return list(db.session.scalars(stmt.order_by(Bill.enterprise_id, Bill.id)))


def sees_many_enterprises() -> bool:
    """True when the user's bill numbers may clash, so links must name the enterprise."""
    return current_user.is_global or len(current_user.enterprises) > 1


def bill_url(endpoint: str, bill: Bill, **kw: Any) -> str:
    """URL of a bill route; ``e=<enterprise>`` is added only for users who see several enterprises."""
    if current_user.is_authenticated and sees_many_enterprises():
        kw.setdefault("e", bill.enterprise_id)
    return url_for(endpoint, bill_no=bill.bill_no, **kw)


def owns(bill: Bill) -> bool:
    """Whether the current scanner/ops user works on this bill's scan desk.

    Ops work on every bill they can see; a scanner on bills of their scan points
    and on bills the ERP opened without a scan point (nobody else claims those).
    """
    if not current_user.is_authenticated:
        return False
    if current_user.role == "ops":
        return True
    if current_user.role != "scanner":
        return False
    return bill.scan_point_id is None or bill.scan_point_id in {p.id for p in current_user.scan_points}


def may_edit_images(bill: Bill) -> bool:
    """Upload, remove, reorder and correct are offered: the desk owns the bill and it is editable."""
    return owns(bill) and bill.status in bills.EDITABLE


def actor() -> str:
    """The name recorded in the bill's history for the current user."""
    return current_user.username


# --------------------------------------------------------------------------- asset URLs

@dataclass(frozen=True)
class AssetUrls:
    """Where a page finds an image's thumbnail, page renders and original.

    The bill pages use the logged-in routes, the public pages the token routes, so the
    same templates serve both.  An endpoint left ``None`` is not offered on that page.
    """

    thumb_endpoint: str
    page_endpoint: str | None = None
    original_endpoint: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def thumb(self, image: Image) -> str:
        return url_for(self.thumb_endpoint, image_id=image.id, **dict(self.params))

    def page(self, image: Image, n: int = 1) -> str | None:
        if self.page_endpoint is None:
            return None
        return url_for(self.page_endpoint, image_id=image.id, n=n, **dict(self.params))

    def page_base(self, image: Image) -> str | None:
        """The page URL without its number (viewer.js appends ``n``)."""
        url = self.page(image, 1)
        return url[:-1] if url else None

    def original(self, image: Image) -> str | None:
        if self.original_endpoint is None:
            return None
        return url_for(self.original_endpoint, image_id=image.id, **dict(self.params))


# --------------------------------------------------------------------------- page data

def duplicate_map(bill: Bill, invoices: Iterable[Invoice]) -> dict[str, list[str]]:
    """Other live bills' numbers for each duplicate-flagged invoice key (one query)."""
    keys = {inv.invoice_key for inv in invoices if inv.duplicate and inv.invoice_key}
    return bills.duplicate_bills(bill.enterprise_id, bill.id, keys)


def repeated_in_bill(invoices: Iterable[Invoice]) -> dict[str, list[str]]:
    """Invoice keys found on more than one of the given live invoices of one bill (单据内重复),
    each with the names of the images carrying it, in image order."""
    by_key: dict[str, list[Invoice]] = {}
    for inv in invoices:
        if inv.invoice_key:
            by_key.setdefault(inv.invoice_key, []).append(inv)
    # Image names are looked up only for the (rare) repeated keys.
    return {key: [(inv.image.filename if inv.image is not None else None) or f"影像 {inv.image_id}" for inv in same]
            for key, same in by_key.items() if len(same) > 1}


def duplicate_warnings(bill: Bill, invoices: Iterable[Invoice], others: dict[str, list[str]] | None = None) -> list[str]:
    """One Chinese sentence per duplicate on the bill: 重复报销 (another live bill carries the
    invoice) and 单据内重复 (the bill carries it twice), for the bill's head and its submit confirmation.

    ``others`` is :func:`duplicate_map` of the same invoices when the caller already has it.
    """
    invoices = list(invoices)
    if others is None:
        others = duplicate_map(bill, invoices)
    out, seen = [], set()
    for inv in invoices:
        if inv.invoice_key in others and inv.invoice_key not in seen:
            seen.add(inv.invoice_key)
            out.append(f"发票 {inv.number or '（无号码）'} 重复报销（另见单据 {'、'.join(others[inv.invoice_key])}）")
    for key, files in repeated_in_bill(invoices).items():
        number = next(inv.number for inv in invoices if inv.invoice_key == key)
        out.append(f"发票 {number or '（无号码）'} 在本单据中出现 {len(files)} 次（单据内重复：{'、'.join(files)}）")
    return out


def submit_confirmation(bill: Bill, warnings: list[str]) -> str:
    """The question asked before a submit; it names the bill's duplicates first, so none goes unseen."""
    question = f"提交后不能再修改影像，确定提交单据 {bill.bill_no} 吗？"
    if not warnings:
        return question
    return "注意：" + "；".join(warnings) + "。\n" + question


@dataclass
class HistoryRow:
    event: BillEvent
    label: str
    text: str


def history(bill: Bill) -> list[HistoryRow]:
    """The bill's events, newest first, each with a Chinese label and a one-line detail."""
    events = db.session.scalars(select(BillEvent).where(BillEvent.bill_id == bill.id)
                                .order_by(BillEvent.at.desc(), BillEvent.id.desc()))
    return [HistoryRow(ev, BILL_EVENTS.get(ev.action, ev.action), describe(ev)) for ev in events]


def removed_images(bill: Bill, rows: list[HistoryRow]) -> list[tuple[Image, int | None]]:
    """Images taken off the bill, each with the round in which it was removed."""
    removed_in: dict[int, int] = {}
    for row in reversed(rows):  # oldest first: a re-added and removed-again image keeps the last round
        ev = row.event
        if ev.action == "remove_image" and isinstance(ev.detail, dict) and "image_id" in ev.detail:
            removed_in[ev.detail["image_id"]] = ev.round
    return [(img, removed_in.get(img.id)) for img in bills.all_images(bill) if img.removed]


def describe(ev: BillEvent) -> str:
    """A short Chinese sentence for an event's detail."""
    d = ev.detail if isinstance(ev.detail, dict) else {}
    if d.get("message"):  # write-back steps say it themselves
        return str(d["message"])
    if ev.action == "match":
        return "；".join(str(r) for r in d.get("reasons") or []) or MATCH_RESULTS.get(d.get("result"), "")
    if ev.action in ("recognise", "complete", "submit", "upload"):
        return ""
    if ev.action == "open":
        return f"预期发票 {d['expected']} 张" if d.get("expected") else ""
    if ev.action == "add_image":
        return f"{d.get('filename') or '（无文件名）'}，识别到 {d.get('invoices', 0)} 张发票"
    if ev.action == "remove_image":
        return d.get("filename") or ""
    if ev.action == "reorder":
        return ""
    if ev.action == "ocr":
        return (f"{d.get('filename') or '（无文件名）'}，识别到 {d.get('invoices', 0)} 张发票"
                + (f"，{d['to_confirm']} 张待确认" if d.get("to_confirm") else ""))
    if ev.action in ("add_invoice", "confirm_invoice"):
        return f"发票号码 {d['number']}" if d.get("number") else ""
    if ev.action == "correct":
        changed = d.get("changed") or {}
        parts = [f"{INVOICE_FIELDS.get(k, k)} → {v if v not in (None, '') else '（空）'}" for k, v in changed.items()]
        return "；".join(parts)
    if ev.action in ("return", "confirm"):
        return f"原因：{d['reason']}" if d.get("reason") else ""
    if ev.action == "rescan":
        return {"add": "退回后添加影像", "remove": "退回后删除影像"}.get(d.get("why"), "")
    return "；".join(f"{k}：{_plain(v)}" for k, v in d.items())


def _plain(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "、".join(_plain(x) for x in v)
    if isinstance(v, dict):
        return "，".join(f"{k} {_plain(x)}" for k, x in v.items())
    return "" if v is None else str(v)


# The parts of a match item's expected/found invoice worth showing, in reading order.
MATCH_FIELDS = (("number", "号码"), ("code", "代码"), ("date", "日期"), ("amount", "金额"), ("tax", "税额"),
                ("total", "价税合计"), ("filename", "文件"))


def match_value(v: Any) -> str:
    """An expected/found value of a match item, readable whatever its shape."""
    if v is None or v == "":
        return "—"
    if isinstance(v, dict):
        known = [f"{label} {v[key]}" for key, label in MATCH_FIELDS if v.get(key) not in (None, "")]
        return " · ".join(known) if known else _plain(v)
    return _plain(v)



def pushed_invoices(bill) -> list:
    """The invoices the receipt assistant pushed for this bill, with the cloud's own verdicts if it sent them."""
    return [row for row in matching.expected_invoices(bill) if row.origin == "push"]


@dataclass(frozen=True)
class FetchState:
    """A pushed file's download for a sync-mode bill: the badge and, after a failure, why and when next."""

    state: str  # a key of labels.FETCH_STATES
    error: str | None = None
    next_at: datetime | None = None

    @property
    def label(self) -> str:
        return FETCH_STATES[self.state]

    @property
    def badge(self) -> str:
        return {"fetched": "badge-ok", "retrying": "badge-warn", "failed": "badge-err"}.get(self.state, "badge-info")


def fetch_state(row) -> FetchState:
    """Where the download of pushed invoice ``row``'s file stands (portal.sync keeps the columns)."""
    if row.fetched_image_id is not None:
        return FetchState("fetched")
    if not row.download_url:
        return FetchState("no_url")
    if row.fetch_error:
        if row.fetch_next_at is not None:
            return FetchState("retrying", row.fetch_error, row.fetch_next_at)
        return FetchState("failed", row.fetch_error)
    return FetchState("waiting")


CLOUD_FLAGS = {"isRepeat": "重复", "cancelMark": "作废", "invoiceStatus": "发票状态"}


def cloud_summary(cloud: dict | None) -> list[str]:
    """The cloud's verification fields as short Chinese phrases (查验、重复、作废、状态), as it sent them."""
    if not cloud:
        return []
    out = []
    for item in cloud.get("verifyResult") or []:
        if isinstance(item, dict) and (item.get("msg") or item.get("name")):
            out.append(f"查验：{item.get('msg') or item.get('name')}")
    if "isRepeat" in cloud:
        out.append("发票云判定重复" if cloud["isRepeat"] in (True, "true", "1", 1) else "发票云判定未重复")
    if "cancelMark" in cloud:
        out.append("已作废" if str(cloud["cancelMark"]).upper() == "Y" else "未作废")
    if cloud.get("invoiceStatus") not in (None, ""):
        out.append(f"发票状态 {cloud['invoiceStatus']}")
    return out


def human_size(n: int | None) -> str:
    """A byte count for people."""
    if n is None:
        return "—"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} B"


def beijing_time(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored (naive UTC) time as Beijing time."""
    if at is None:
        return "—"
    return (at + BEIJING).strftime(fmt)


# Background OCR of an image (portal/ocr_jobs.py): the card's badge per state.
OCR_STATES = _OCR_STATES
OCR_FILL_STATES = _OCR_FILL_STATES
OCR_PENDING = ocr_state.PENDING
ocr_fill_only = ocr_state.fill_only
