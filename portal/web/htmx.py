"""One place for htmx: fragment or full page, and the ``HX-Trigger`` events (toasts included).

A *fragment* goes only to a targeted htmx request made by a page's script; boosted
navigations and history restores get the full page, like a browser without htmx. An htmx
*action* (a script's POST, say) is answered with a small fragment and events instead of a
redirect. ``Vary: HX-Request`` keeps caches from mixing the two answers.
"""
from __future__ import annotations

import json

from flask import make_response, render_template, request


def from_htmx() -> bool:
    """True for any request htmx made, boosted navigations included."""
    return bool(request.htmx)


def is_htmx() -> bool:
    """True for a request htmx made from a page's script (not a boosted navigation, not a history restore)."""
    h = request.htmx
    return bool(h) and not h.boosted and not h.history_restore_request


def target() -> str:
    """The id of the element an htmx request swaps into ("" for anything else)."""
    return (request.htmx.target or "") if is_htmx() else ""


def wants_fragment() -> bool:
    """True for targeted htmx requests; boosted and history-restore ones get the full page."""
    return bool(target())


def render(page: str, fragment: str | None = None, /, *, status: int = 200, headers: dict | None = None, **ctx):
    """Render ``fragment`` for a targeted htmx request, else the full ``page``.

    Both templates get the same context; ``Vary: HX-Request`` keeps caches honest.
    """
    template = fragment if (fragment and wants_fragment()) else page
    resp = make_response(render_template(template, **ctx), status)
    resp.headers["Vary"] = "HX-Request"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def trigger(events: dict) -> dict:
    """The ``HX-Trigger`` header firing ``events`` (name → detail) on the page."""
    # Header values must be Latin-1: JSON's \u escapes carry the Chinese text.
    return {"HX-Trigger": json.dumps(events)}


def toast_event(message: str, level: str = "success") -> dict:
    """The ``toast`` event (for :func:`trigger`) that shows ``message`` on the page."""
    return {"toast": {"message": message, "level": level}}


def toast(message: str, level: str = "success") -> dict:
    """An ``HX-Trigger`` header that shows a toast on the page."""
    return trigger(toast_event(message, level))
