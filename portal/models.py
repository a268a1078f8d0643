"""SQLAlchemy models of the whole product (DESIGN §3)."""
from __future__ import annotations

import datetime as dt
from datetime import datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .labels import BILL_STATUSES, IMAGE_MODES, ROLES, VERIFICATION_STATUSES


def utcnow() -> datetime:
    """Timezone-aware now in UTC (stored naive-UTC by SQLite, aware by PostgreSQL)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


Money = Numeric(16, 2)


# The stable keys stored in the database; their Chinese labels are in portal.labels.
class Role(StrEnum):
    """A user's role (``users.role``)."""

    OPS = "ops"
    SCANNER = "scanner"
    VIEWER = "viewer"


class BillStatus(StrEnum):
    """Where a bill stands (``bills.status``, ``bill_events.from_status/to_status``)."""

    PENDING = "pending"
    UPLOADED = "uploaded"
    SUBMITTED = "submitted"
    RECOGNISED = "recognised"
    MATCHED = "matched"
    MATCH_FAILED = "match_failed"
    COMPLETED = "completed"
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"
    DELETED = "deleted"


class JobKind(StrEnum):
    """What a write-back job does (``writeback_jobs.kind``)."""

    ATTACHMENT = "attachment"
    APPROVE = "approve"
    REJECT = "reject"
    STATUS = "status"


user_enterprises = Table(
    "user_enterprises",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("enterprise_id", ForeignKey("enterprises.id", ondelete="CASCADE"), primary_key=True),
)

user_scan_points = Table(
    "user_scan_points",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("scan_point_id", ForeignKey("scan_points.id", ondelete="CASCADE"), primary_key=True),
)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped on password reset / disable so existing sessions die (see get_id).
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    enterprises: Mapped[list[Enterprise]] = relationship(secondary=user_enterprises, lazy="selectin")
    scan_points: Mapped[list[ScanPoint]] = relationship(secondary=user_scan_points, lazy="selectin")

    @property
    def is_active(self) -> bool:  # flask-login
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def is_global(self) -> bool:
        """A deployment-wide ops account: no enterprise binding, sees everything."""
        return self.role == "ops" and not self.enterprises

    @property
    def role_label(self) -> str:
        return ROLES.get(self.role, self.role)


class LoginFailure(db.Model):
    """Login attempts per key (``user:<name>`` or ``ip:<addr>``) inside a fixed window.

    Attempts are counted before the password is checked; a successful login takes its
    attempt back, so what remains are failures.
    """

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WebSession(db.Model):
    """A logged-in browser session; the signed cookie carries only its random id.

    Keeping it server-side lets logout end it for good (a copied cookie dies with it) and
    lets the idle and absolute lifetimes be enforced whatever the cookie says.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DockingConnection(db.Model):
    """A business system the results are written back to (Galaxy WebAPI)."""

    __tablename__ = "docking_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The enterprise it was created for (no FK: enterprises point at connections).
    enterprise_id: Mapped[int | None] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="galaxy")
    name: Mapped[str] = mapped_column(String(100))
    base_url: Mapped[str] = mapped_column(String(300))
    acct_id: Mapped[str] = mapped_column(String(64))
    acct_name: Mapped[str] = mapped_column(String(100), default="")
    username: Mapped[str] = mapped_column(String(100))
    password_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # Optional bill field that receives the image status on write-back.
    status_field: Mapped[str] = mapped_column(String(64), default="")
    # Bill forms whose workflow tasks the image user holds (comma-separated form ids).
    form_ids: Mapped[str] = mapped_column(String(300), default="ER_ExpReimbursement", server_default="ER_ExpReimbursement")
    amount_field: Mapped[str] = mapped_column(String(64), default="FExpenseAmount", server_default="FExpenseAmount")
    # The last `erp pull` over this connection: when, what it saw, what it opened, the ERP's last error.
    pulled_at: Mapped[datetime | None] = mapped_column(DateTime)
    pull_tasks: Mapped[int | None] = mapped_column(Integer)
    pull_opened: Mapped[int | None] = mapped_column(Integer)
    pull_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def form_id_list(self) -> list[str]:
        return [f.strip() for f in (self.form_ids or "").split(",") if f.strip()]


class Enterprise(db.Model):
    """An enterprise authorization (企业授权) with its invoice-cloud credentials."""

    __tablename__ = "enterprises"

    id: Mapped[int] = mapped_column(primary_key=True)
    tax_no: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    encrypt_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    image_mode: Mapped[str] = mapped_column(String(16), default="basic")
    # 只接受加密推送: a push's sign does not cover its data, so a plain push could be forged from
    # a captured sign; only the AES-encrypted data proves the sender knows the encrypt_key.
    encrypted_push_only: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Returning a pulled bill for rescan also rejects (驳回) its ERP workflow task, with the reason.
    reject_on_return: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # 人工确认需他人复核: separation of duties — a failed match is passed by hand only by an ops user
    # or a scanner who uploaded none of the bill's images.
    confirm_needs_second: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # 发票查验: recognised and pushed invoices are verified with the invoice cloud (portal/verification.py).
    verify_invoices: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Rows changed before this were all looked at for verification (portal.verification); None: read all.
    verify_scanned_at: Mapped[datetime | None] = mapped_column(DateTime)
    docking_id: Mapped[int | None] = mapped_column(ForeignKey("docking_connections.id", ondelete="SET NULL"), index=True)
    # ERP organisation numbers (组织编码, comma-separated) whose bills belong here when several
    # enterprises share one docking connection; empty = the bills no other enterprise lists.
    erp_orgs: Mapped[str] = mapped_column(String(300), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    docking: Mapped[DockingConnection | None] = relationship(foreign_keys=[docking_id])

    @property
    def erp_org_list(self) -> list[str]:
        return [o.strip() for o in (self.erp_orgs or "").split(",") if o.strip()]

    @property
    def image_mode_label(self) -> str:
        return IMAGE_MODES.get(self.image_mode, self.image_mode)


class ScanPoint(db.Model):
    """A scan point (影像扫描点): a scan desk of one enterprise."""

    __tablename__ = "scan_points"
    __table_args__ = (UniqueConstraint("enterprise_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    enterprise: Mapped[Enterprise] = relationship()


class AuditEvent(db.Model):
    """Who did what, when, to which object of which enterprise; secrets masked."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_enterprise_at", "enterprise_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    enterprise_id: Mapped[int | None] = mapped_column(Integer)  # kept after the enterprise is deleted
    summary: Mapped[str] = mapped_column(String(300), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64))


class Bill(db.Model):
    """An ERP bill's image task (单据)."""

    __tablename__ = "bills"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "bill_no"),
        Index("ix_bills_enterprise_status", "enterprise_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"))
    bill_no: Mapped[str] = mapped_column(String(64))
    form_id: Mapped[str] = mapped_column(String(64), default="ER_ExpReimbursement")
    erp_id: Mapped[str | None] = mapped_column(String(64))
    submitter: Mapped[str | None] = mapped_column(String(100))
    org: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    scan_point_id: Mapped[int | None] = mapped_column(ForeignKey("scan_points.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    return_reason: Mapped[str | None] = mapped_column(String(500))
    round: Mapped[int] = mapped_column(Integer, default=1)
    match_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # "api" when the ERP opened the task through /api/v1, "pull" when it came from the image
    # user's workflow to-do list; only pulled bills follow their workflow task (withdrawn / reopened).
    origin: Mapped[str] = mapped_column(String(8), default="api", server_default="api")
    # The workflow task's post (FBasePost), sent as PostId when the task is approved.
    task_post_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The highest image position handed out on this bill; raised in one UPDATE per upload, so
    # uploads racing to one bill queue on the row instead of reading the same maximum.
    last_position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    enterprise: Mapped[Enterprise] = relationship()
    scan_point: Mapped[ScanPoint | None] = relationship()

    @property
    def status_label(self) -> str:
        return BILL_STATUSES.get(self.status, self.status)


class BillEvent(db.Model):
    """One step in a bill's history (status changes, rounds, returns, confirmations)."""

    __tablename__ = "bill_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    round: Mapped[int] = mapped_column(Integer, default=1)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Blob(db.Model):
    """A stored file, once per content (sha256)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(64))
    pages: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Image(db.Model):
    """A file attached to a bill (影像)."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("bill_id", "sha256"), Index("ix_images_ocr_due", "ocr_state", "ocr_due_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    uploaded_by: Mapped[str] = mapped_column(String(100), default="")
    uploaded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    round_added: Mapped[int] = mapped_column(Integer, default=1)
    # normal | added_after_return | removed_after_return  (影像退扫状态)
    rescan_state: Mapped[str] = mapped_column(String(24), default="normal")
    origin: Mapped[str] = mapped_column(String(16), default="upload")  # upload | api | push | link
    # Background OCR (portal/ocr_jobs.py): None (not needed) | queued | running | done | failed | unavailable
    ocr_state: Mapped[str | None] = mapped_column(String(16))
    ocr_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ocr_error: Mapped[str | None] = mapped_column(Text)
    ocr_due_at: Mapped[datetime | None] = mapped_column(DateTime)
    ocr_lease_until: Mapped[datetime | None] = mapped_column(DateTime)  # a running job's claim ends here
    ocr_token: Mapped[str | None] = mapped_column(String(32))  # which claim may store the result
    ocr_finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    blob: Mapped[Blob] = relationship(lazy="joined")
    invoices: Mapped[list[Invoice]] = relationship(back_populates="image", lazy="selectin", order_by="Invoice.id")


class Invoice(db.Model):
    """An invoice recognised on an image (or entered by hand)."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_enterprise_key", "enterprise_id", "invoice_key"),
        Index("ix_invoices_enterprise_date", "enterprise_id", "date", "id"),
        Index("ix_invoices_enterprise_id", "enterprise_id", "id"),
        Index("ix_invoices_enterprise_total", "enterprise_id", "total"),
        Index("ix_invoices_enterprise_number", "enterprise_id", "number"),
        # Filters of the invoices list that would otherwise read every row of an enterprise.
        Index("ix_invoices_enterprise_type", "enterprise_id", "type", "id"),
        Index("ix_invoices_enterprise_seller_tax_no", "enterprise_id", "seller_tax_no", "id"),
        # One seller's invoices newest first (the list's seller search), per enterprise.
        Index("ix_invoices_enterprise_seller_name", "enterprise_id", "seller_name", "id"),
        # What changed since the last verification scan (portal.verification).
        Index("ix_invoices_enterprise_updated", "enterprise_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"))
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    page: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str | None] = mapped_column(String(8))
    code: Mapped[str | None] = mapped_column(String(20))
    number: Mapped[str | None] = mapped_column(String(32))
    date: Mapped[dt.date | None] = mapped_column(Date)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    tax: Mapped[Decimal | None] = mapped_column(Money)
    total: Mapped[Decimal | None] = mapped_column(Money)
    check_code: Mapped[str | None] = mapped_column(String(32))
    seller_name: Mapped[str | None] = mapped_column(String(200))
    seller_tax_no: Mapped[str | None] = mapped_column(String(20))
    buyer_name: Mapped[str | None] = mapped_column(String(200))
    buyer_tax_no: Mapped[str | None] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(16))
    # "code:number" for classic invoices, ":number" for 数电; NULL when unknown.
    invoice_key: Mapped[str | None] = mapped_column(String(64))
    # Denormalised: true while another live bill carries the same key.
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # 待确认: values read by OCR, until a scanner confirms (confirmed_by/at) or corrects them.
    needs_confirm: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    confirmed_by: Mapped[str | None] = mapped_column(String(100))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    image: Mapped[Image | None] = relationship(back_populates="invoices")
    bill: Mapped[Bill] = relationship()


class InvoiceSeller(db.Model):
    """The seller names on one enterprise's invoices, kept by database triggers on ``invoices``.

    The invoice list resolves a seller-name fragment here (a few thousand names per enterprise)
    instead of skipping through the seller-name index of every invoice (migration 9c2f4e7a1b36
    creates the triggers). A name stays after its last invoice is gone; it then matches no
    invoice, which the search treats like any other name.
    """

    __tablename__ = "invoice_sellers"

    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)


class ExpectedInvoice(db.Model):
    """An invoice a bill should carry: given by the ERP or pushed by the receipt assistant."""

    __tablename__ = "expected_invoices"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "dedup_key"),
        Index("ix_expected_invoices_enterprise_bill", "enterprise_id", "bill_no"),
        Index("ix_expected_invoices_enterprise_received", "enterprise_id", "received_at"),
        # Pushed files not yet downloaded (portal.sync): the download pass reads these, not every pushed row.
        Index("ix_expected_invoices_to_fetch", "enterprise_id", "id",
              sqlite_where=text("fetched_image_id IS NULL AND download_url IS NOT NULL"),
              postgresql_where=text("fetched_image_id IS NULL AND download_url IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(8))  # erp | push
    # "s:<serialNo>" or "k:<invoice key>" for pushes; "b:<bill id>:<key>" for the ERP's.
    dedup_key: Mapped[str] = mapped_column(String(120))
    bill_no: Mapped[str | None] = mapped_column(String(64))
    serial_no: Mapped[str | None] = mapped_column(String(64))
    type: Mapped[str | None] = mapped_column(String(8))
    code: Mapped[str | None] = mapped_column(String(20))
    number: Mapped[str | None] = mapped_column(String(32))
    date: Mapped[dt.date | None] = mapped_column(Date)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    tax: Mapped[Decimal | None] = mapped_column(Money)
    total: Mapped[Decimal | None] = mapped_column(Money)
    check_code: Mapped[str | None] = mapped_column(String(32))
    seller_name: Mapped[str | None] = mapped_column(String(200))
    seller_tax_no: Mapped[str | None] = mapped_column(String(20))
    buyer_name: Mapped[str | None] = mapped_column(String(200))
    buyer_tax_no: Mapped[str | None] = mapped_column(String(20))
    invoice_key: Mapped[str | None] = mapped_column(String(64))
    download_url: Mapped[str | None] = mapped_column(String(1000))
    # Set once a sync-mode download attached the file to the bill.
    fetched_image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    fetch_error: Mapped[str | None] = mapped_column(String(500))
    # Pushed in the invoice cloud's own record shape: its type code as sent, the cloud's verification
    # fields (verifyResult, isRepeat, invoiceStatus, cancelMark) and every other field we do not map.
    cloud_type: Mapped[str | None] = mapped_column(String(8))
    cloud: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Failed downloads back off: attempts so far and the earliest time of the next one;
    # at FETCH_MAX_ATTEMPTS the row is no longer fetched and keeps its last error.
    fetch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fetch_next_at: Mapped[datetime | None] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PushReceipt(db.Model):
    """A push accepted within the timestamp window, so its (client_id, timestamp, sign) cannot carry another body."""

    __tablename__ = "push_receipts"
    __table_args__ = (UniqueConstraint("client_id", "timestamp", "sign"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[str] = mapped_column(String(20))  # as signed: Unix s/ms or yyyyMMddHHmmssffff
    sign: Mapped[str] = mapped_column(String(128))
    body_sha256: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class WritebackJob(db.Model):
    """One write-back step to the ERP, kept until it succeeds (never lost, never done twice)."""

    __tablename__ = "writeback_jobs"
    __table_args__ = (
        UniqueConstraint("bill_id", "kind", "sha256", "round"),
        Index("ix_writeback_jobs_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="CASCADE"), index=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # attachment | status
    sha256: Mapped[str] = mapped_column(String(64), default="")  # the image for attachment jobs
    round: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | running | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    remote_file_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    bill: Mapped[Bill] = relationship()


#: Verification results that fail a match and that the invoice list's 查验不符 filter shows (查验不符, 已作废/红冲).
VERIFICATION_BLOCKING = ("failed", "void")


class InvoiceVerification(db.Model):
    """The invoice cloud's verification (查验) of one invoice key of one enterprise.

    Kept per key, not per invoice row: a re-upload or a push of the same invoice reuses a
    fresh result (``VERIFY_INTERVAL``). ``unverified`` rows wait for ``next_try_at``.
    """

    __tablename__ = "invoice_verifications"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "invoice_key"),
        Index("ix_invoice_verifications_due", "status", "next_try_at"),
        # An enterprise's keys by result: the invoice list's 只看查验不符 reads its failed ones.
        Index("ix_invoice_verifications_enterprise_status", "enterprise_id", "status", "invoice_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"))
    invoice_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="unverified")  # labels.VERIFICATION_STATUSES
    code: Mapped[str | None] = mapped_column(String(16))  # the cloud's errcode
    message: Mapped[str | None] = mapped_column(String(500))  # the cloud's description, or why no answer came
    checked_at: Mapped[datetime | None] = mapped_column(DateTime)  # last answer that settled the status
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime)
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the fields sent (no token)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def status_label(self) -> str:
        return VERIFICATION_STATUSES.get(self.status, self.status)
