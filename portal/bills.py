"""Bills and their images: the domain rules shared by the ERP API, the scan desk and the push.

Every function here works inside the caller's transaction and commits only
where it says so; a refused file raises :class:`UserError` before anything is
written to the database, so nothing is ever half-stored.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError

from . import audit, ocr_state
from .errors import UserError
from .extensions import db
from .files import filework
from .files.storage import Storage, StorageError, TooLarge, open_storage
from .invoice_fields import invoice_key, invoice_row, parse_day, parse_money
from .labels import MONEY_FIELDS
from .models import Bill, BillEvent, Blob, Enterprise, ExpectedInvoice, Image, Invoice, ScanPoint, WritebackJob
from .recognition import Invoice as Reading


# Statuses in which the scan desk may still add, remove and reorder images.
EDITABLE = {"pending", "uploaded", "returned", "match_failed"}
MEDIA_LABEL = "JPEG、PNG、TIFF、PDF、OFD、XML"



# --------------------------------------------------------------------------- storage

def storage() -> Storage:
    """The deployment's file store (one instance per app): ``STORAGE_URL`` (S3) or ``STORAGE_DIR``."""
    ext = current_app.extensions
    if "portal_storage" not in ext:
        ext["portal_storage"] = open_storage(current_app.config)
    return ext["portal_storage"]


# --------------------------------------------------------------------------- history

def event(bill: Bill, action: str, actor: str, *, to: str | None = None, detail: dict | None = None) -> BillEvent:
    """Record a step of the bill's history; ``to`` also moves its status."""
    ev = BillEvent(bill_id=bill.id, actor=actor, action=action, from_status=bill.status,
                   to_status=to or bill.status, round=bill.round, detail=detail)
    if to:
        bill.status = to
    db.session.add(ev)
    return ev


# --------------------------------------------------------------------------- free text and bill numbers

BILL_NO_MAX = 64
# ERP bill numbers are letters, digits, '-', '_' and '.': anything else ('/', '\\', '..', spaces,
# control or bidi characters) makes a bill that no URL of ours can reach again.
_BILL_NO = re.compile(r"[\w.-]+")
BILL_NO_RULE = ("单据编号（bill_no）只能由字母、数字、短横线“-”、下划线“_”和点“.”组成，"
                f"不能含“..”、斜杠、空格或控制字符，最多 {BILL_NO_MAX} 个字符")

# Length limits of the free-text fields of a bill, as the columns hold them.
TEXT_LIMITS = {"form_id": 64, "erp_id": 64, "submitter": 100, "org": 200, "scan_point": 32}
RETURN_REASON_MAX = 500


def check_bill_no(value: Any) -> str:
    """``value`` if it is a usable bill number; UserError 422 naming the rule otherwise."""
    text = "" if value is None else str(value)
    if not text.strip():
        raise UserError("bill_no 不能为空")
    if (text != text.strip() or len(text) > BILL_NO_MAX or not _BILL_NO.fullmatch(text)
            or ".." in text or text == "."):
        raise UserError(BILL_NO_RULE)
    return text


def limited_text(value: Any, field: str, limit: int) -> str | None:
    """``value`` as stripped text (None when empty); UserError 422 naming ``field`` when over ``limit``.

    Cutting would store something the sender never wrote, and storing it whole
    would let one request fill the database and every page that shows it.
    """
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > limit:
        raise UserError(f"{field} 不能超过 {limit} 个字符（收到 {len(text)} 个）")
    return text or None


# Control (NUL, ESC, CR/LF …), format (bidi overrides such as U+202E, zero-width), surrogate,
# private-use, unassigned and line/paragraph separator characters: invisible or misleading in
# a file name, and unsafe in a header.
_UNSAFE_NAME_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
FILENAME_MAX = 255


def clean_filename(name: str | None) -> str:
    """The last path part of ``name`` without control, bidi or other invisible characters, trimmed.

    Empty when nothing printable is left; callers then name the file themselves.
    """
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in base if unicodedata.category(ch) not in _UNSAFE_NAME_CATEGORIES).strip()
    if text.strip(".") == "":
        return ""  # "." and ".." name no file
    return text[:FILENAME_MAX]


# --------------------------------------------------------------------------- opening bills

@dataclass
class Opened:
    bill: Bill
    created: bool


def open_bill(ent: Enterprise, data: dict, actor: str) -> Opened:
    """Open an image task for ``data['bill_no']``; the same number again returns the existing bill."""
    bill_no = check_bill_no(data.get("bill_no"))
    text = {f: limited_text(data.get(f), f, limit) for f, limit in TEXT_LIMITS.items()}
    existing = db.session.scalar(select(Bill).where(Bill.enterprise_id == ent.id, Bill.bill_no == bill_no))
    if existing is not None:
        return Opened(existing, False)
    point = None
    if text["scan_point"]:
        point = db.session.scalar(select(ScanPoint).where(ScanPoint.enterprise_id == ent.id,
                                                          ScanPoint.code == text["scan_point"]))
        if point is None:
            raise UserError(f"扫描点 {text['scan_point']} 不存在")
    expected = data.get("expected_invoices") or []
    if not isinstance(expected, list):
        raise UserError("expected_invoices 应为数组")
    bill = Bill(
        enterprise_id=ent.id,
        bill_no=bill_no,
        form_id=text["form_id"] or "ER_ExpReimbursement",
        erp_id=text["erp_id"],
        submitter=text["submitter"],
        org=text["org"],
        amount=parse_money(data.get("amount"), "amount"),
        scan_point_id=point.id if point else None,
        status="pending",
    )
    rows = [expected_from_push(ent.id, item, i, origin="erp", bill_no=bill_no) for i, item in enumerate(expected)]
    try:
        with db.session.begin_nested():
            db.session.add(bill)
            db.session.flush()
    except IntegrityError:
        # Another request opened the same bill at the same moment: answer with that one.
        existing = db.session.scalar(select(Bill).where(Bill.enterprise_id == ent.id, Bill.bill_no == bill_no))
        return Opened(existing, False)
    seen: set[str] = set()
    for row in rows:
        row.dedup_key = f"b:{bill.id}:{row.invoice_key or row.serial_no or row.id}"
        if row.dedup_key in seen:
            continue  # the same invoice listed twice is expected once (else a unique-key 500)
        seen.add(row.dedup_key)
        db.session.add(row)
    event(bill, "open", actor, detail={"expected": len(rows)})
    audit.record("create", "bill", bill.id, enterprise_id=ent.id, summary=f"ERP 开启影像任务 {bill_no}", actor=actor)
    return Opened(bill, True)


def expected_from_push(enterprise_id: int, item: Any, index: int, *, origin: str, bill_no: str | None = None) -> ExpectedInvoice:
    """Validate one invoice in the push protocol's field names into an ExpectedInvoice row.

    The rules live in :func:`portal.invoice_fields.invoice_row` (also the push receiver's fast path),
    so the ERP's expected invoices and the pushed ones are validated alike.
    """
    return ExpectedInvoice(**invoice_row(enterprise_id, item, index, origin=origin, bill_no=bill_no))


# --------------------------------------------------------------------------- images

def require_editable(bill: Bill) -> None:
    """Raise UserError 409 unless the scan desk may still change the bill's images."""
    if bill.status == "deleted":
        raise UserError("单据已被 ERP 删除，不能再修改影像", 409)
    if bill.status == "withdrawn":
        raise UserError("单据已在星空中撤回，不能修改影像；星空重新提交后会自动重新打开", 409)
    if bill.status not in EDITABLE:
        raise UserError(f"单据当前状态为“{bill.status_label}”，不能修改影像；如需重扫请先退回", 409)


def _touch_after_edit(bill: Bill, actor: str, what: str) -> None:
    if bill.status == "pending":
        event(bill, "upload", actor, to="uploaded")
    elif bill.status == "match_failed":
        event(bill, "rescan", actor, to="uploaded", detail={"why": what})


@dataclass
class Added:
    image: Image
    created: bool


@dataclass
class Prepared:
    """A file that passed every check and was recognised, ready to attach."""

    data: bytes
    filename: str
    sha256: str
    media_type: str
    pages: int
    readings: list[Reading]


def prepare_file(data: bytes, filename: str, *, tenant: int | None = None) -> Prepared:
    """Check size, type (by content) and readability, and recognise the invoices.

    Sniffing, page counting and recognition run in a budgeted child process
    (:mod:`portal.files.filework`) on behalf of ``tenant`` (the enterprise id), so a hostile
    file costs its uploader a refusal, not the other tenants their uploads.
    Refusals raise UserError (too large 413, unsupported 415, damaged, unsafe or over
    budget 422, no worker free 503) before anything reaches the file store or the database.
    """
    cfg = current_app.config
    if len(data) > cfg["MAX_FILE_BYTES"]:
        raise UserError(f"文件 {filename} 过大（上限 {cfg['MAX_FILE_BYTES'] // (1024 * 1024)} MB）", 413)
    if not data:
        raise UserError(f"文件 {filename} 是空文件", 422)
    try:
        found = filework.inspect(data, config=cfg, tenant=tenant)
    except filework.Refused as exc:
        raise UserError(f"{filename}：{exc.message}", exc.status) from None
    if found.media_type is None:
        raise UserError(f"不支持的文件类型：{filename}（仅支持 {MEDIA_LABEL}，按文件内容判断）", 415)
    return Prepared(data, filename, hashlib.sha256(data).hexdigest(), found.media_type, found.pages, found.readings)


def add_file(bill: Bill, data: bytes, filename: str, actor: str, *, origin: str = "upload", check_status: bool = True) -> Added:
    """Check, store once, attach to ``bill`` and recognise; see :func:`prepare_file` and :func:`attach`."""
    if check_status:
        require_editable(bill)
    return attach(bill, prepare_file(data, filename, tenant=bill.enterprise_id), actor, origin=origin,
                  check_status=False)


def attach(bill: Bill, file: Prepared, actor: str, *, origin: str = "upload", check_status: bool = True) -> Added:
    """Store a prepared file once (by sha256) and attach it to ``bill`` with its invoices.

    The same file twice on one bill is attached once (``created`` False); a
    file removed earlier comes back in place.
    """
    if check_status:
        require_editable(bill)
    sha = file.sha256
    image = db.session.scalar(select(Image).where(Image.bill_id == bill.id, Image.sha256 == sha))
    if image is not None and not image.removed:
        return Added(image, False)
    try:
        storage().put(file.data)
    except TooLarge:
        raise UserError(f"文件 {file.filename} 过大", 413) from None
    except StorageError as exc:  # the object store refused, is unreachable, or stored something else
        raise UserError(f"文件 {file.filename} 未能保存：{exc}", 503) from None
    # Reserved before anything else is written: the bill's row lock is then the first lock this
    # request takes, so uploads to one bill queue here and never hold a blob row another waits on.
    position = _reserve_positions(bill, 1)[0]
    if db.session.get(Blob, sha) is None:
        try:
            with db.session.begin_nested():
                db.session.add(Blob(sha256=sha, size=len(file.data), media_type=file.media_type, pages=file.pages))
        except IntegrityError:
            pass  # stored by a concurrent upload of the same content
    rescan = "added_after_return" if (bill.status == "returned" or bill.round > 1) else "normal"
    if image is not None:  # re-adding a removed file
        image.removed = False
        image.rescan_state = rescan
        image.position = position
    else:
        image = Image(bill_id=bill.id, sha256=sha, filename=clean_filename(file.filename), uploaded_by=actor, origin=origin,
                      position=position, round_added=bill.round, rescan_state=rescan)
        try:
            with db.session.begin_nested():
                db.session.add(image)
        except IntegrityError:
            image = db.session.scalar(select(Image).where(Image.bill_id == bill.id, Image.sha256 == sha))
            return Added(image, False)
    db.session.flush()
    keys = _store_readings(bill, image, file.readings)
    ocr_state.mark(image, file.media_type, file.pages, file.readings)
    refresh_duplicates(bill.enterprise_id, keys)
    _touch_after_edit(bill, actor, "add")
    event(bill, "add_image", actor, detail={"image_id": image.id, "filename": image.filename, "invoices": len(file.readings)})
    return Added(image, True)


def _reserve_positions(bill: Bill, n: int) -> list[int]:
    """``n`` image positions no other image of ``bill`` has or will get.

    One atomic UPDATE … RETURNING of the bill's counter: it holds the bill's row lock
    (PostgreSQL) or the write lock (SQLite) until the transaction ends, so two uploads
    never read the same maximum. Positions of a rolled-back upload are simply skipped.
    """
    last = db.session.execute(
        update(Bill).where(Bill.id == bill.id).values(last_position=Bill.last_position + n)
        .returning(Bill.last_position), execution_options={"synchronize_session": False}).scalar_one()
    return list(range(last - n + 1, last + 1))


def _store_readings(bill: Bill, image: Image, readings: Iterable[Reading]) -> set[str]:
    keys = set()
    for r in readings:
        key = invoice_key(r.code, r.number)
        inv = Invoice(enterprise_id=bill.enterprise_id, bill_id=bill.id, image_id=image.id, page=r.page, type=r.type,
                      code=r.code, number=r.number, date=r.date, amount=r.amount, tax=r.tax, total=r.total,
                      check_code=r.check_code, seller_name=r.seller_name, seller_tax_no=r.seller_tax_no,
                      buyer_name=r.buyer_name, buyer_tax_no=r.buyer_tax_no, source=r.source, invoice_key=key,
                      raw=r.raw or None, needs_confirm=r.source == "ocr")
        db.session.add(inv)
        if key:
            keys.add(key)
    db.session.flush()
    return keys


def remove_image(bill: Bill, image: Image, actor: str) -> None:
    """Take an image off the bill; the file and the row stay for the audit trail."""
    require_editable(bill)
    if image.bill_id != bill.id or image.removed:
        raise UserError("影像不存在", 404)
    keys = {i.invoice_key for i in image.invoices if i.invoice_key}
    db.session.execute(Invoice.__table__.delete().where(Invoice.image_id == image.id))
    image.removed = True
    if bill.status == "returned" or bill.round > 1:
        image.rescan_state = "removed_after_return"
    db.session.flush()
    db.session.expire(image, ["invoices"])
    refresh_duplicates(bill.enterprise_id, keys)
    _touch_after_edit(bill, actor, "remove")
    event(bill, "remove_image", actor, detail={"image_id": image.id, "filename": image.filename})


def reorder(bill: Bill, image_ids: list[int], actor: str) -> None:
    """Set the images' order to ``image_ids`` (ids not on the bill are ignored)."""
    require_editable(bill)
    live = live_images(bill)
    # The live images trade their own positions, so none takes one a removed image or a
    # concurrent upload holds; duplicates left from before the counter get fresh ones.
    slots = sorted(i.position for i in live)
    if len(set(slots)) < len(slots):
        slots = _reserve_positions(bill, len(slots))
    images = {i.id: i for i in live}
    ordered = [images.pop(iid) for iid in image_ids if iid in images]
    ordered += sorted(images.values(), key=lambda i: (i.position, i.id))
    for img, pos in zip(ordered, slots):
        img.position = pos
    event(bill, "reorder", actor, detail={"order": image_ids})


def live_images(bill: Bill) -> list[Image]:
    """The bill's images in order, without removed ones."""
    return list(db.session.scalars(select(Image).where(Image.bill_id == bill.id, Image.removed.is_(False))
                                   .order_by(Image.position, Image.id)))


def all_images(bill: Bill) -> list[Image]:
    """Every image the bill ever had (removed ones last), for the history view."""
    return list(db.session.scalars(select(Image).where(Image.bill_id == bill.id).order_by(Image.removed, Image.position, Image.id)))


def bill_invoices(bill: Bill) -> list[Invoice]:
    """Invoices recognised on the bill's live images, in image order."""
    return list(db.session.scalars(
        select(Invoice).join(Image, Invoice.image_id == Image.id)
        .where(Invoice.bill_id == bill.id, Image.removed.is_(False))
        .order_by(Image.position, Image.id, Invoice.id)))


# --------------------------------------------------------------------------- corrections

CORRECTABLE = ("type", "code", "number", "date", "amount", "tax", "total", "check_code",
               "seller_name", "seller_tax_no", "buyer_name", "buyer_tax_no")


# Text fields of an invoice with their column lengths: a longer value is refused, never cut.
TEXT_FIELD_LIMITS = {"type": ("发票类型", 8), "code": ("发票代码", 20), "number": ("发票号码", 32),
                     "check_code": ("校验码", 32), "seller_name": ("销方名称", 200), "seller_tax_no": ("销方税号", 20),
                     "buyer_name": ("购方名称", 200), "buyer_tax_no": ("购方税号", 20)}
NUMBER_RULE = "发票号码应为 8 位或 20 位数字"
CODE_RULE = "发票代码应为 10 位或 12 位数字"


def _parse_invoice_values(values: dict[str, Any]) -> dict[str, Any]:
    """The :data:`CORRECTABLE` fields present in ``values``, parsed: money, dates, stripped text (empty → None).

    Raises UserError naming the first field that does not parse.
    """
    parsed: dict[str, Any] = {}
    for f in CORRECTABLE:
        if f not in values:
            continue
        v = values[f]
        if f in MONEY_FIELDS:
            v = parse_money(v, MONEY_FIELDS[f])
        elif f == "date":
            v = parse_day(v, "开票日期")
        else:
            v = limited_text(v, *TEXT_FIELD_LIMITS[f])
        parsed[f] = v
    return parsed


def check_sum(amount: Decimal | None, tax: Decimal | None, total: Decimal | None) -> None:
    """UserError 422 when all three are given and 金额 + 税额 ≠ 价税合计 (a typo in one of them)."""
    if amount is None or tax is None or total is None:
        return
    if amount + tax != total:
        raise UserError(f"金额（不含税）{amount:.2f} + 税额 {tax:.2f} = {amount + tax:.2f}，"
                        f"与价税合计 {total:.2f} 不一致，请核对")


def correct_invoice(inv: Invoice, values: dict[str, Any], actor: str) -> None:
    """Apply a scanner's correction; the source becomes ``manual`` and the change is audited."""
    bill = db.session.get(Bill, inv.bill_id)
    require_editable(bill)
    before = {f: _plain(getattr(inv, f)) for f in CORRECTABLE}
    old_key = inv.invoice_key
    for f, v in _parse_invoice_values(values).items():
        setattr(inv, f, v)
    # Looser than a typed-in invoice: recognition may have stored other lengths, and a
    # correction of another field must not be refused for them.
    if inv.number and (not inv.number.isdigit() or len(inv.number) > 20):
        raise UserError(NUMBER_RULE)
    if inv.code and (not inv.code.isdigit() or len(inv.code) > 12):
        raise UserError(CODE_RULE)
    after = {f: _plain(getattr(inv, f)) for f in CORRECTABLE}
    if after == before:
        return
    # Only a change of the money is checked: recognition may have stored sums that do not add up,
    # and correcting another field must not be refused for them.
    if any(before[f] != after[f] for f in MONEY_FIELDS):
        check_sum(inv.amount, inv.tax, inv.total)
    inv.source = "manual"
    inv.needs_confirm = False  # corrected by a person: nothing left to confirm
    inv.invoice_key = invoice_key(inv.code, inv.number)
    db.session.flush()
    refresh_duplicates(inv.enterprise_id, {k for k in (old_key, inv.invoice_key) if k})
    changed = {k: v for k, v in after.items() if before[k] != v}
    event(bill, "correct", actor, detail={"invoice_id": inv.id, "changed": changed})
    audit.record("correct", "invoice", inv.id, enterprise_id=inv.enterprise_id,
                 summary=f"人工修正单据 {bill.bill_no} 的发票识别结果",
                 before={k: before[k] for k in changed}, after=changed, actor=actor)


def add_manual_invoice(image: Image, values: dict[str, Any], actor: str) -> Invoice:
    """Type in an invoice for ``image`` (e.g. an old paper invoice nothing was recognised on).

    The number is required (8 or 20 digits), the code optional (10 or 12 digits);
    money and dates parse as in :func:`correct_invoice`, and 金额 + 税额 must equal 价税合计
    when all three are given.  The invoice is stored with
    source ``manual``, checked for duplicates, and written to the history and the audit log.
    """
    bill = db.session.get(Bill, image.bill_id)
    require_editable(bill)
    if image.removed:
        raise UserError("影像不存在", 404)
    fields = _parse_invoice_values(values)
    number, code = fields.get("number"), fields.get("code")
    if not number:
        raise UserError("请填写发票号码")
    if not number.isdigit() or len(number) not in (8, 20):
        raise UserError(NUMBER_RULE)
    if code and (not code.isdigit() or len(code) not in (10, 12)):
        raise UserError(CODE_RULE)
    check_sum(fields.get("amount"), fields.get("tax"), fields.get("total"))
    inv = Invoice(enterprise_id=bill.enterprise_id, bill_id=bill.id, image_id=image.id, source="manual",
                  invoice_key=invoice_key(code, number), **fields)
    db.session.add(inv)
    db.session.flush()
    refresh_duplicates(bill.enterprise_id, {inv.invoice_key})
    entered = {k: _plain(v) for k, v in fields.items() if v not in (None, "")}
    event(bill, "add_invoice", actor, detail={"invoice_id": inv.id, "image_id": image.id, "number": number})
    audit.record("create", "invoice", inv.id, enterprise_id=bill.enterprise_id,
                 summary=f"手工录入单据 {bill.bill_no} 的发票 {number}", after=entered, actor=actor)
    return inv


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return f"{v:.2f}"
    if isinstance(v, date):
        return v.isoformat()
    return v


# --------------------------------------------------------------------------- duplicates

def refresh_duplicates(enterprise_id: int, keys: Iterable[str]) -> None:
    """Recompute the duplicate flag of every invoice with one of ``keys`` in the enterprise.

    An invoice is a duplicate while another live (not deleted) bill carries the
    same key; deleted bills keep their rows for the trail but never count.
    """
    keys = [k for k in set(keys) if k]
    if not keys:
        return
    live = and_(Invoice.bill_id == Bill.id, Bill.status != "deleted")
    counts = dict(db.session.execute(
        select(Invoice.invoice_key, func.count(func.distinct(Invoice.bill_id)))
        .join(Bill, live)
        .where(Invoice.enterprise_id == enterprise_id, Invoice.invoice_key.in_(keys))
        .group_by(Invoice.invoice_key)).all())
    dup_keys = [k for k in keys if counts.get(k, 0) > 1]
    single_keys = [k for k in keys if counts.get(k, 0) <= 1]
    if dup_keys:
        db.session.execute(update(Invoice).where(
            Invoice.enterprise_id == enterprise_id, Invoice.invoice_key.in_(dup_keys),
            Invoice.bill_id.in_(select(Bill.id).where(Bill.enterprise_id == enterprise_id, Bill.status != "deleted")))
            .values(duplicate=True), execution_options={"synchronize_session": False})
    if single_keys:
        db.session.execute(update(Invoice).where(Invoice.enterprise_id == enterprise_id, Invoice.invoice_key.in_(single_keys))
                           .values(duplicate=False), execution_options={"synchronize_session": False})
    # Invoices of deleted bills are never flagged.
    db.session.execute(update(Invoice).where(
        Invoice.enterprise_id == enterprise_id, Invoice.invoice_key.in_(keys),
        Invoice.bill_id.in_(select(Bill.id).where(Bill.enterprise_id == enterprise_id, Bill.status == "deleted")))
        .values(duplicate=False), execution_options={"synchronize_session": False})
    db.session.expire_all()


def duplicate_bills(enterprise_id: int, bill_id: int, keys: Iterable[str]) -> dict[str, list[str]]:
    """For each key, the numbers of the *other* live bills carrying it (one query)."""
    keys = [k for k in set(keys) if k]
    out: dict[str, list[str]] = {}
    if not keys:
        return out
    rows = db.session.execute(
        select(Invoice.invoice_key, Bill.bill_no).join(Bill, Invoice.bill_id == Bill.id)
        .where(Invoice.enterprise_id == enterprise_id, Invoice.invoice_key.in_(keys),
               Invoice.bill_id != bill_id, Bill.status != "deleted")
        .distinct().order_by(Bill.bill_no))
    for key, bill_no in rows:
        out.setdefault(key, []).append(bill_no)
    return out


# --------------------------------------------------------------------------- status changes

def delete_bill(bill: Bill, actor: str) -> None:
    """The ERP deleted the bill: mark it, keep its images, release its invoices from duplicate checks."""
    if bill.status == "deleted":
        return
    event(bill, "delete", actor, to="deleted")
    keys = set(db.session.scalars(select(Invoice.invoice_key).where(Invoice.bill_id == bill.id, Invoice.invoice_key.is_not(None))))
    db.session.flush()
    refresh_duplicates(bill.enterprise_id, keys)
    audit.record("delete", "bill", bill.id, enterprise_id=bill.enterprise_id, summary=f"单据 {bill.bill_no} 被删除", actor=actor)


def return_bill(bill: Bill, reason: str, actor: str) -> None:
    """Return a bill for rescan (影像退回) with a reason; a new round starts."""
    reason = (reason or "").strip()
    if not reason:
        raise UserError("请填写退回原因")
    if len(reason) > RETURN_REASON_MAX:
        raise UserError(f"退回原因不能超过 {RETURN_REASON_MAX} 个字符（收到 {len(reason)} 个）")
    if bill.status in ("deleted", "pending", "withdrawn"):
        raise UserError(f"单据当前状态为“{bill.status_label}”，不能退回", 409)
    if bill.status == "returned":
        raise UserError("单据已经退回，等待重扫", 409)
    bill.return_reason = reason
    bill.round += 1
    event(bill, "return", actor, to="returned", detail={"reason": reason})
    ent = bill.enterprise or db.session.get(Enterprise, bill.enterprise_id)
    if ent.reject_on_return and bill.origin == "pull" and ent.docking_id:
        # The ERP task goes back as well (驳回, the reason as the opinion); the job runner sends it.
        db.session.add(WritebackJob(bill_id=bill.id, enterprise_id=bill.enterprise_id, kind="reject", sha256="",
                                    round=bill.round, payload={"reason": reason}))
        event(bill, "writeback", actor, detail={"result": "queued", "jobs": 1,
                                                "message": "已排队：在星空驳回该单据的影像审核任务"})
    audit.record("return", "bill", bill.id, enterprise_id=bill.enterprise_id,
                 summary=f"退回单据 {bill.bill_no} 重扫：{reason[:100]}", actor=actor)


def check_ocr_done(bill: Bill) -> None:
    """UserError 409 while an image is 识别中 (background OCR) or an OCR'd invoice is still 待确认, naming them."""
    images = live_images(bill)
    # A fill-only job (names and total of a QR-complete photo) does not hold the bill up.
    busy = [img.filename or f"影像 {img.id}" for img in images
            if img.ocr_state in ocr_state.PENDING and not ocr_state.fill_only(img)]
    if busy:
        raise UserError(f"影像正在识别中，请等待识别完成后再提交：{'、'.join(busy)}", 409)
    unconfirmed = [(inv, img) for img in images for inv in img.invoices if inv.needs_confirm]
    if unconfirmed:
        names = "、".join(f"发票 {inv.number or '（无号码）'}（{img.filename or '影像 %d' % img.id}）"
                         for inv, img in unconfirmed)
        raise UserError(f"以下发票由 OCR 识别，尚未确认：{names}。请核对后点击“确认”或修改识别结果再提交", 409)
