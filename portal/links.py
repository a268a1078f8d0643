"""Signed, time-limited links: bill view links (影像调阅), submitter upload links, API tokens."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .crypto import decrypt
from .models import Enterprise


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    # A salt per purpose: a view link can never be replayed as an upload link or a token.
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"portal.{purpose}")


@dataclass
class Link:
    token: str
    expires_at: int  # Unix seconds


def make(purpose: str, payload: dict, ttl: int) -> Link:
    """Sign ``payload`` for ``purpose``; it is valid for ``ttl`` seconds."""
    now = int(time.time())
    token = _serializer(purpose).dumps({**payload, "exp": now + ttl})
    return Link(token, now + ttl)


def load(purpose: str, token: str) -> dict | None:
    """The payload of a valid, unexpired token of ``purpose``; None when altered or expired."""
    try:
        data = _serializer(purpose).loads(token)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict) or int(data.get("exp", 0)) < time.time():
        return None
    return data


def view_link(bill_id: int, ttl: int | None = None) -> Link:
    """A read-only view link for a bill (no login needed)."""
    return make("view", {"b": bill_id}, ttl or current_app.config["VIEW_LINK_TTL"])


def upload_link(bill_id: int, ttl: int | None = None) -> Link:
    """A link through which the submitter may add files to a sync-mode bill."""
    return make("upload", {"b": bill_id}, ttl or current_app.config["VIEW_LINK_TTL"])


def secret_fingerprint(ent: Enterprise) -> str:
    """A short hash of the client secret: rotating the secret invalidates issued API tokens."""
    return hashlib.sha256(b"api-token:" + decrypt(ent.client_secret_enc).encode()).hexdigest()[:16]


def api_token(ent: Enterprise) -> Link:
    """A bearer token for the ERP API, scoped to one enterprise."""
    return make("api", {"e": ent.id, "f": secret_fingerprint(ent)}, current_app.config["API_TOKEN_TTL"])
