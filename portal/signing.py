"""Signatures and payload encryption shared with Kingdee's invoice cloud (发票云).

The invoice cloud and the receipt assistant (收票助手) sign requests over
``client_id + client_secret + timestamp`` and may encrypt bodies with the
enterprise's 16-character ``encrypt_key``. Both directions use the helpers here:
the integration module when we call the cloud, the push endpoint when the
assistant calls us, and the sandbox emulator that plays the cloud in tests.

Pure functions, no Flask import, so they are cheap to call in the push hot path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "ENC_TYPES",
    "aes_ecb_decrypt",
    "aes_ecb_encrypt",
    "sign",
    "verify_sign",
]

#: encType values the vendor documents: 0 md5, 1 sha256, 2 hmac-sha256.
ENC_TYPES = (0, 1, 2)

_AES_BLOCK_BYTES = 16


def _normalise_enc_type(enc_type: int | str | None) -> int:
    """Accept encType as int or numeric string (it arrives as either in JSON and query strings)."""
    if enc_type is None or enc_type == "":
        return 0
    try:
        value = int(enc_type)
    except (TypeError, ValueError):
        raise ValueError(f"不支持的签名方式 encType={enc_type!r}") from None
    if value not in ENC_TYPES:
        raise ValueError(f"不支持的签名方式 encType={enc_type!r}")
    return value


def sign(client_id: str, client_secret: str, timestamp: int | str, enc_type: int | str = 0) -> str:
    """Return the lowercase hex signature of ``client_id + client_secret + str(timestamp)``.

    ``enc_type`` 0 = MD5, 1 = SHA-256, 2 = HMAC-SHA256 keyed with ``client_secret``.
    Raises ``ValueError`` for any other ``enc_type``.
    """
    kind = _normalise_enc_type(enc_type)
    message = f"{client_id}{client_secret}{timestamp}".encode("utf-8")
    if kind == 0:
        # MD5 is the vendor's protocol, not our choice; it is a keyed digest here, not password storage.
        return hashlib.md5(message, usedforsecurity=False).hexdigest()
    if kind == 1:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(client_secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_sign(
    client_id: str,
    client_secret: str,
    timestamp: int | str,
    given_sign: str | None,
    enc_type: int | str = 0,
) -> bool:
    """Return True when ``given_sign`` matches, compared in constant time.

    Hex case is ignored because some vendor samples (C#) emit uppercase digests.
    An unknown ``enc_type`` or a missing/non-string signature is simply a mismatch.
    """
    if not isinstance(given_sign, str) or not given_sign:
        return False
    try:
        expected = sign(client_id, client_secret, timestamp, enc_type)
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given_sign.strip().lower().encode("utf-8"))


def _aes_key(key16: str) -> bytes:
    if not isinstance(key16, str):
        raise ValueError("加密密钥必须是 16 个字符的字符串")
    key = key16.encode("utf-8")
    if len(key) != _AES_BLOCK_BYTES:
        raise ValueError(f"加密密钥长度必须为 16 字节，当前为 {len(key)} 字节")
    return key


def _ecb_cipher(key16: str) -> Cipher:
    # ECB leaks equal plaintext blocks and we would never pick it ourselves; the vendor
    # protocol (发票云 standard edition, encrypt_key) mandates AES-128-ECB + PKCS#7, so we
    # must speak it to interoperate.
    return Cipher(algorithms.AES(_aes_key(key16)), modes.ECB())  # noqa: S305 - vendor protocol


def aes_ecb_encrypt(plain: bytes, key16: str) -> str:
    """Encrypt ``plain`` with AES-128-ECB/PKCS#7 under the 16-char key; return base64 text."""
    if isinstance(plain, str):
        plain = plain.encode("utf-8")
    padder = padding.PKCS7(_AES_BLOCK_BYTES * 8).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = _ecb_cipher(key16).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def aes_ecb_decrypt(b64: str | bytes, key16: str) -> bytes:
    """Decrypt base64 AES-128-ECB/PKCS#7 text produced with the 16-char key.

    Raises ``ValueError`` with a Chinese message on a bad key length, invalid base64,
    a ciphertext that is not whole blocks, or bad padding (usually: the wrong key).
    """
    cipher = _ecb_cipher(key16)  # validate the key first: the clearest error wins
    if isinstance(b64, str):
        b64 = b64.strip().encode("ascii", errors="replace")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("密文不是有效的 base64 文本") from None
    if not raw or len(raw) % _AES_BLOCK_BYTES:
        raise ValueError("密文长度不是 16 字节的整数倍，无法解密")
    decryptor = cipher.decryptor()
    padded = decryptor.update(raw) + decryptor.finalize()
    unpadder = padding.PKCS7(_AES_BLOCK_BYTES * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ValueError("解密失败：填充无效，加密密钥可能不正确") from None
