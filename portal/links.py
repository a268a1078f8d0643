"""Signed, time-limited links: bill view links (影像调阅), submitter upload links, API tokens."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from flask import current_app, has_request_context, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.sansio.utils import host_is_trusted

from .crypto import decrypt
from .models import Enterprise


# Without PUBLIC_BASE_URL or TRUSTED_HOSTS only these Host headers may shape an absolute URL:
# enough for the demo on one machine, and useless to anyone forging the header.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def public_base_url() -> str | None:
    """The origin (and path prefix) absolute URLs are built on, or None when none is trusted.

    ``PUBLIC_BASE_URL`` when set; else the request's own address, but only when its host is
    in ``TRUSTED_HOSTS`` (loopback when that is empty): an arbitrary ``Host:`` header must
    never end up in a link that is handed to someone else.
    """
    configured = (current_app.config.get("PUBLIC_BASE_URL") or "").strip()
    if configured:
        return configured.rstrip("/")
    if not has_request_context():
        return None
    trusted = current_app.config.get("TRUSTED_HOSTS") or LOOPBACK_HOSTS
    if not host_is_trusted(request.host, trusted):
        return None
    return request.url_root.rstrip("/")


def absolute_url(path: str) -> str | None:
    """``path`` (inside the application, e.g. ``/v/<token>``) on :func:`public_base_url`."""
    base = public_base_url()
    return None if base is None else base + path


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
