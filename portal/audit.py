"""The audit log: every configuration change and test, with secrets masked."""
from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from .extensions import db
from .labels import SECRET_STATES
from .models import AuditEvent

# Any key naming one of these is replaced by a mask before it is stored.
SECRET_WORDS = ("secret", "password", "encrypt_key", "token", "key_enc", "_enc")


def masked(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Copy of ``values`` with secret fields replaced by ``"••••"`` (changed) markers."""
    if values is None:
        return None
    out: dict[str, Any] = {}
    for k, v in values.items():
        if any(w in k.lower() for w in SECRET_WORDS):
            out[k] = SECRET_STATES.get(v, "••••") if isinstance(v, (bool, str, type(None))) else "••••"
        elif isinstance(v, dict):
            out[k] = masked(v)
        else:
            out[k] = v if isinstance(v, (str, int, float, bool, type(None), list)) else str(v)
    return out


def record(
    action: str,
    object_type: str,
    object_id: Any = None,
    *,
    enterprise_id: int | None = None,
    summary: str = "",
    before: dict | None = None,
    after: dict | None = None,
    actor: str | None = None,
) -> AuditEvent:
    """Add an audit event to the session (committed with the change it describes)."""
    user_id = None
    if actor is None:
        if has_request_context() and current_user and current_user.is_authenticated:
            actor, user_id = current_user.username, current_user.id
        else:
            actor = "system"
    ev = AuditEvent(
        actor=actor,
        actor_user_id=user_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        enterprise_id=enterprise_id,
        summary=summary[:300],
        before=masked(before),
        after=masked(after),
        ip=request.remote_addr if has_request_context() else None,
    )
    db.session.add(ev)
    return ev
