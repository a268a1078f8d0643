"""Logging: one line per event on stderr, with the request id on lines logged while serving a request.

``create_app`` calls :func:`configure`; the level comes from ``LOG_LEVEL``.  Every request gets an id
(the caller's ``X-Request-ID`` when it is a short token, else a new one), sent back in the response so an
operator can find the lines of one request.
"""
from __future__ import annotations

import logging
import re
import secrets
import sys
import time

from flask import Flask, g, has_request_context, request

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

log = logging.getLogger("portal.web")


class _RequestIdFilter(logging.Filter):
    """Adds ``record.request_id``: the current request's id, or ``-`` outside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class _Handler(logging.StreamHandler):
    """The portal's stderr handler; a class of its own so it is added once per process.

    It writes to whatever ``sys.stderr`` is at the time of the event (servers and test runners
    replace it), not to the stream that was current when the first app was made.
    """

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns one; the property decides
        pass


def configure(app: Flask) -> None:
    """Send ``portal.*`` log lines to stderr at ``LOG_LEVEL`` and number the requests."""
    logger = logging.getLogger("portal")
    logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    if not any(isinstance(h, _Handler) for h in logger.handlers):
        handler = _Handler()
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(_RequestIdFilter())
        logger.addHandler(handler)

    @app.before_request
    def _number_request():
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(6)
        g.request_started = time.perf_counter()

    @app.after_request
    def _log_request(resp):
        resp.headers.setdefault("X-Request-ID", g.get("request_id", ""))
        if "request_started" in g:
            ms = (time.perf_counter() - g.request_started) * 1000
            level = logging.WARNING if resp.status_code >= 500 else logging.INFO
            log.log(level, "%s %s %s %.0fms", request.method, request.path, resp.status_code, ms)
        return resp
