"""Enterprise authorizations: create, update, delete, credential check."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from ... import audit, links
from ...crypto import decrypt, encrypt, is_masked  # noqa: F401 (decrypt used by routes)
from ...extensions import db
from ...integration.errors import IntegrationError, RemoteRefused
from ...integration.invoice_cloud import InvoiceCloudClient
from ...models import Enterprise

PUSH_PATH = "/api/v1/push/invoices"


def snapshot(ent: Enterprise) -> dict:
    """The enterprise's fields for the audit log (secrets become masks there)."""
    return {
        "tax_no": ent.tax_no,
        "name": ent.name,
        "client_id": ent.client_id,
        "client_secret": bool(ent.client_secret_enc),
        "encrypt_key": bool(ent.encrypt_key_enc),
        "image_mode": ent.image_mode,
        "docking_id": ent.docking_id,
        "encrypted_push_only": ent.encrypted_push_only,
        "erp_orgs": ent.erp_orgs,
        "reject_on_return": ent.reject_on_return,
        "confirm_needs_second": ent.confirm_needs_second,
        "verify_invoices": ent.verify_invoices,
    }


def check_credentials(client_id: str, client_secret: str) -> str | None:
    """Ask the invoice cloud for a token; return its refusal text (or why it failed), None if fine."""
    client = InvoiceCloudClient(
        current_app.config["INVOICE_CLOUD_URL"],
        timeout=(current_app.config["OUTBOUND_CONNECT_TIMEOUT"], current_app.config["OUTBOUND_READ_TIMEOUT"]),
    )
    try:
        client.fetch_token(client_id, client_secret)
    except RemoteRefused as exc:
        return f"发票云拒绝了该授权：{exc.message}"
    except IntegrationError as exc:
        return f"无法连接发票云，未保存：{exc.message}"
    return None


def duplicate_error(tax_no: str, client_id: str, exclude_id: int | None = None) -> dict[str, str]:
    """Field errors for a tax number or client_id already used by another authorization."""
    errors = {}
    q = select(Enterprise.id).where(Enterprise.tax_no == tax_no)
    if exclude_id:
        q = q.where(Enterprise.id != exclude_id)
    if db.session.scalar(q):
        errors["tax_no"] = "该税号已有企业授权"
    q = select(Enterprise.id).where(Enterprise.client_id == client_id)
    if exclude_id:
        q = q.where(Enterprise.id != exclude_id)
    if db.session.scalar(q):
        errors["client_id"] = "该 client_id 已被其他企业授权使用"
    return errors


def create(form, user) -> Enterprise:
    """Store a new authorization (the caller has validated it) and bind it to a bound creator."""
    ent = Enterprise(
        tax_no=form.tax_no.data,
        name=form.name.data,
        client_id=form.client_id.data,
        client_secret_enc=encrypt(form.client_secret.data),
        encrypt_key_enc=encrypt(form.encrypt_key.data),
        image_mode=form.image_mode.data or "basic",
        docking_id=form.docking_id.data or None,
        encrypted_push_only=True,
        confirm_needs_second=True,
        verify_invoices=bool(form.verify_invoices.data),
    )
    db.session.add(ent)
    db.session.flush()
    if not user.is_global:
        # A bound ops user must see what it creates.
        user.enterprises.append(ent)
    audit.record("create", "enterprise", ent.id, enterprise_id=ent.id,
                 summary=f"新增企业授权 {ent.name}（{ent.tax_no}）", after=snapshot(ent))
    db.session.commit()
    return ent


def secrets_from_form(form, ent: Enterprise) -> tuple[str, str]:
    """The effective client_secret and encrypt_key: the form's, or the stored ones when masked."""
    secret = decrypt(ent.client_secret_enc) if is_masked(form.client_secret.data) else form.client_secret.data
    key = decrypt(ent.encrypt_key_enc) if is_masked(form.encrypt_key.data) else form.encrypt_key.data
    return secret, key


def update(ent: Enterprise, form) -> None:
    """Apply a validated edit form to ``ent`` and audit the change."""
    before = snapshot(ent)
    secret, key = secrets_from_form(form, ent)
    secret_changed = not is_masked(form.client_secret.data)
    key_changed = not is_masked(form.encrypt_key.data)
    ent.tax_no = form.tax_no.data
    ent.name = form.name.data
    ent.client_id = form.client_id.data
    if secret_changed:
        ent.client_secret_enc = encrypt(secret)
    if key_changed:
        ent.encrypt_key_enc = encrypt(key)
    ent.image_mode = form.image_mode.data
    ent.docking_id = form.docking_id.data or None
    ent.encrypted_push_only = bool(form.encrypted_push_only.data)
    ent.erp_orgs = form.erp_orgs.data or ""
    ent.reject_on_return = bool(form.reject_on_return.data)
    ent.confirm_needs_second = bool(form.confirm_needs_second.data)
    ent.verify_invoices = bool(form.verify_invoices.data)
    after = snapshot(ent)
    # Secrets are recorded only as "changed", never by value.
    after["client_secret"] = "changed" if secret_changed else "kept"
    after["encrypt_key"] = "changed" if key_changed else "kept"
    audit.record("update", "enterprise", ent.id, enterprise_id=ent.id,
                 summary=f"修改企业授权 {ent.name}（{ent.tax_no}）", before=before, after=after)
    db.session.commit()


def delete(ent: Enterprise) -> None:
    """Delete an authorization with everything it owns, auditing what it was."""
    audit.record("delete", "enterprise", ent.id, enterprise_id=ent.id,
                 summary=f"删除企业授权 {ent.name}（{ent.tax_no}）", before=snapshot(ent))
    db.session.delete(ent)
    db.session.commit()


def push_url() -> str | None:
    """The absolute address the receipt assistant pushes invoices to (hand-over block).

    None when neither ``PUBLIC_BASE_URL`` nor a trusted request host gives one.
    """
    return links.absolute_url(PUSH_PATH)


def deployment_info() -> dict:
    """What the enterprise pages tell ops about this deployment's outside addresses."""
    return {
        "invoice_cloud_url": current_app.config.get("INVOICE_CLOUD_URL") or "",
        "public_base_url": (current_app.config.get("PUBLIC_BASE_URL") or "").strip(),
        "push_url": push_url(),
    }
