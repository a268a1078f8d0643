"""Bearer tokens of the ERP API: issued for an enterprise's client credentials, checked per request."""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import wraps

from flask import current_app, g, request
from sqlalchemy import select

from ... import links
from ...crypto import decrypt
from ...errors import UserError
from ...extensions import db
from ...models import Enterprise

# Compared against when the client_id is unknown, so that a wrong id and a wrong
# secret take the same time and an attacker cannot enumerate client ids.
_DUMMY_SECRET = "x" * 32


class ApiError(UserError):
    """A refused API request: a :class:`UserError` with the machine ``code`` the API documents."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message, status)
        self.code = code
        self.headers = headers or {}


@dataclass
class Issued:
    access_token: str
    expires_in: int
    client_id: str


def issue_token(client_id: str, client_secret: str) -> Issued:
    """A token for the enterprise whose credentials these are; ApiError ``invalid_client`` otherwise."""
    ent = None
    if client_id:
        ent = db.session.scalar(select(Enterprise).where(Enterprise.client_id == client_id))
    stored = decrypt(ent.client_secret_enc) if ent is not None else _DUMMY_SECRET
    # Constant-time comparison of the secrets, even when the client is unknown.
    good = hmac.compare_digest(stored.encode(), (client_secret or "").encode())
    if ent is None or not good or not client_secret:
        current_app.logger.warning("API token refused for client_id %r", client_id[:64] if client_id else "")
        raise ApiError(401, "invalid_client", "client_id 或 client_secret 不正确")
    link = links.api_token(ent)
    return Issued(link.token, int(current_app.config["API_TOKEN_TTL"]), ent.client_id)


def _invalid_token(message: str) -> ApiError:
    # RFC 6750: tell the client how to authenticate and why the token was refused.
    return ApiError(401, "invalid_token", message, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def authenticate() -> Enterprise:
    """The enterprise of the request's bearer token; raises ApiError ``invalid_token`` otherwise.

    A token stops working when it expires, when its enterprise is deleted and
    when the enterprise's client secret is rotated (its fingerprint no longer fits).
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _invalid_token("缺少访问令牌，请在 Authorization 头中提供 Bearer 令牌")
    payload = links.load("api", token)
    if payload is None:
        raise _invalid_token("访问令牌无效或已过期，请重新获取")
    ent = db.session.get(Enterprise, payload.get("e"))
    if ent is None or not hmac.compare_digest(str(payload.get("f", "")), links.secret_fingerprint(ent)):
        raise _invalid_token("访问令牌已失效（企业授权已变更），请重新获取")
    return ent


def token_required(view):
    """Run ``view`` only for a valid bearer token; ``g.api_enterprise`` and ``g.api_actor`` are set."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        ent = authenticate()
        g.api_enterprise = ent
        g.api_actor = f"api:{ent.client_id}"
        return view(*args, **kwargs)

    return wrapped
