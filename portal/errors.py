"""Every refusal a person reads is a :class:`UserError`: an HTTP status and a Chinese message.

Raised anywhere — a rule of the domain, a route, :func:`fail` — and shown by the one handler
set in :mod:`portal.web.errors` on every status (full page, htmx fragment plus toast, or
``{"error", "message"}`` under ``/api/``). This module imports nothing of the app, so every
layer may raise it.
"""
from __future__ import annotations


class UserError(Exception):
    """A refusal a person reads: the HTTP ``status`` and a Chinese ``message``.

    ``field`` names the form or API field at fault, ``details`` carries anything a JSON
    answer adds. Raised anywhere below the views; the handlers of portal.web.errors show the message on
    every status (full page, htmx fragment or JSON).
    """

    def __init__(self, message: str, status: int = 422, *, field: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.details = details


def fail(code: int, message: str):
    """Refuse the request with status ``code`` and a user-facing Chinese ``message``."""
    raise UserError(message, code)
