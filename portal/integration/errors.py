"""The exception family of every outbound call (see :mod:`portal.integration`)."""

from __future__ import annotations

from typing import Any


class IntegrationError(Exception):
    """A call to an outside system failed.

    ``message`` is what to show the user: the remote's own words when it gave any,
    otherwise a Chinese description. ``code`` is the remote's code (Galaxy MsgCode or
    LoginResultType, invoice-cloud errcode) when there is one. ``unreachable`` is True
    when no answer came back at all (connection refused, DNS failure, timeout).

    The base class itself is raised for problems found before anything was sent
    (a malformed address, a download refused by our own policy).
    """

    def __init__(self, message: str, *, code: Any = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.unreachable = unreachable

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"unreachable={self.unreachable!r})"
        )


class RemoteRefused(IntegrationError):
    """The remote answered and said no: wrong password, bad signature, business rule.

    Retrying will not help; the user must change something. ``errors`` holds Galaxy's
    ``Errors`` list (``FieldName``/``Message``/``DIndex``) when the refusal came from one.
    """

    def __init__(self, message: str, *, code: Any = None, errors: list[dict] | None = None) -> None:
        super().__init__(message, code=code, unreachable=False)
        self.errors = list(errors or [])


class RemoteUnavailable(IntegrationError):
    """The remote could not be reached or gave no usable answer.

    Connection errors and timeouts (``unreachable`` True), HTTP 5xx and replies that are
    not the JSON we expect (``unreachable`` False). Usually worth trying again later.
    """

    def __init__(self, message: str, *, code: Any = None, unreachable: bool = True) -> None:
        super().__init__(message, code=code, unreachable=unreachable)


class PolicyRefused(IntegrationError):
    """A download (or address) refused by our own policy before anything was sent to that address."""
