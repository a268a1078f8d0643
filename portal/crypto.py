"""Encryption at rest for stored secrets, and the masks shown in their place."""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

MASK = "••••"


def _fernet() -> Fernet:
    return Fernet(current_app.config["DATA_KEY"].encode())


def encrypt(plain: str) -> bytes:
    """Encrypt a secret with the deployment's data key (authenticated, random IV)."""
    return _fernet().encrypt(plain.encode("utf-8"))


def decrypt(token: bytes | None) -> str:
    """Decrypt a stored secret; raises RuntimeError when the data key does not fit."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token).decode("utf-8")
    except InvalidToken as exc:  # the data key was lost or replaced
        raise RuntimeError("stored secret cannot be decrypted with this data key") from exc


def mask(token: bytes | None) -> str:
    """The masked form of a stored secret, e.g. ``••••3f9a``.

    The last four characters help tell secrets apart; they are shown only for
    secrets of 20 characters or more, where they give little away (a 16-character
    encrypt_key is shown as the bare mask).
    """
    plain = decrypt(token)
    if not plain:
        return ""
    return MASK + (plain[-4:] if len(plain) >= 20 else "")


def is_masked(value: str | None) -> bool:
    """True when a form value is blank or the mask we rendered (keep the stored secret)."""
    return not value or value.startswith(MASK)
