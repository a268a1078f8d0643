"""Taxpayer identification numbers: the unified social credit code (GB 32100-2015)."""
from __future__ import annotations

import re

# The code's alphabet: digits and upper-case letters without I, O, Z, S, V.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_LEGACY = re.compile(r"^[0-9A-Z]{15}$|^[0-9A-Z]{20}$")


def uscc_check_char(first17: str) -> str:
    """The check character for the first 17 characters of a unified social credit code."""
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS))
    return ALPHABET[(31 - total % 31) % 31]


def normalise(value: str) -> str:
    """Upper-case and strip spaces, as users paste tax numbers in many shapes."""
    return re.sub(r"\s+", "", value or "").upper()


def validate(value: str) -> str | None:
    """Return a Chinese error message, or None when ``value`` is an acceptable tax number.

    18 characters must be a unified social credit code with a correct check
    character; 15- and 20-character legacy tax registration numbers are accepted
    by shape (they carry no public check rule).
    """
    v = normalise(value)
    if len(v) == 18:
        bad = [c for c in v if c not in ALPHABET]
        if bad:
            return f"税号含有统一社会信用代码不允许的字符：{''.join(sorted(set(bad)))}"
        if uscc_check_char(v[:17]) != v[17]:
            return "税号校验位不正确，请核对统一社会信用代码"
        return None
    if _LEGACY.match(v):
        return None
    return "税号应为 18 位统一社会信用代码（或 15 位、20 位旧税号）"
