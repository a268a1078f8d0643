"""Plumbing shared by the sandbox emulators: JSON replies, control endpoints, fault injection.

Every emulator is a plain Werkzeug WSGI app (no Flask, so it never mixes its app context
with the portal's inside one test process). Paths under ``/_sandbox/`` are the test-control
API; everything else is the emulated protocol. Faults (delays, HTTP errors, garbage bodies)
can be injected in front of protocol requests to exercise timeouts and error mapping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from werkzeug.exceptions import BadRequest, HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

CONTROL_PREFIX = "/_sandbox/"

ControlHandler = Callable[[Request], Any]


def json_response(body: Any, status: int = 200, **kwargs: Any) -> Response:
    """A JSON response in UTF-8 with Chinese left readable (as the real servers do)."""
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json; charset=utf-8",
        **kwargs,
    )


def request_json(request: Request, *, default: Any = None) -> Any:
    """Parse the request body as JSON (ignoring Content-Type); empty body → ``default``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return default
    return json.loads(raw.decode("utf-8-sig"))


@dataclass
class Fault:
    """One injected fault, consumed by the next ``count`` protocol requests it matches.

    ``match`` is a case-insensitive substring of the path (None = any path). ``delay``
    seconds are slept first; then, if ``status`` is set, that status and ``body`` (with any
    extra ``headers``, e.g. a ``Location`` for a redirect) are answered instead of the real
    protocol reply.
    """

    match: str | None = None
    count: int = 1
    delay: float = 0.0
    status: int | None = None
    body: str = "<html><body><h1>Server Error</h1></body></html>"
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] | None = None


class SandboxApp:
    """Base WSGI app: subclasses implement ``handle`` (protocol) and ``reset_state``."""

    name = "sandbox"

    def __init__(self, seed: Callable[[Any], None] | None = None) -> None:
        self.lock = threading.RLock()
        # Wakes requests sleeping in an injected delay (reset) and waiters for idleness.
        self._changed = threading.Condition(self.lock)
        self._generation = 0  # bumped by every reset: a delayed request of an older one is void
        self._in_flight = 0  # protocol requests being answered right now
        self.seed = seed
        self._faults: list[Fault] = []
        self.calls: list[dict] = []
        self._control: dict[str, tuple[tuple[str, ...], ControlHandler]] = {}
        self.register_control("reset", ("POST",), lambda req: self.reset() or {"ok": True})
        self.register_control("faults", ("POST", "DELETE"), self._control_faults)
        self.register_control("calls", ("GET", "DELETE"), self._control_calls)
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Empty every table of the emulated system (subclasses)."""

    def reset(self) -> None:
        """Forget everything, then apply the seed this app was built with."""
        with self.lock:
            self._generation += 1
            self._changed.notify_all()
            self._faults.clear()
            self.calls.clear()
            self.reset_state()
            if self.seed is not None:
                self.seed(self)

    def inject_fault(
        self,
        *,
        match: str | None = None,
        count: int = 1,
        delay: float = 0.0,
        status: int | None = None,
        body: str | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Queue a fault for the next ``count`` matching protocol requests (see :class:`Fault`)."""
        fault = Fault(match=match, count=count, delay=delay, status=status, headers=headers)
        if body is not None:
            fault.body = body
        if content_type is not None:
            fault.content_type = content_type
        with self.lock:
            self._faults.append(fault)
        return fault

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.match is None or fault.match.lower() in path.lower():
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no protocol request is being answered; False if one still runs after ``timeout``.

        A request sleeping in an injected delay is woken by :meth:`reset` and answers at once, so
        ``reset()`` then ``wait_idle()`` leaves no request of one test touching the next one's state.
        """
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout)

    def _sleep(self, delay: float) -> bool:
        """Sleep ``delay`` seconds as an injected fault; False when a reset cut the sleep short."""
        with self._changed:
            generation = self._generation
            return not self._changed.wait_for(lambda: self._generation != generation, delay)

    def record_call(self, **entry: Any) -> None:
        """Append to the call log tests read through ``calls`` or ``GET /_sandbox/calls``."""
        with self.lock:
            self.calls.append(entry)

    # -- control API ---------------------------------------------------------------------

    def register_control(self, name: str, methods: tuple[str, ...], handler: ControlHandler) -> None:
        """Expose ``handler`` at ``/_sandbox/<name>``; it returns a JSON-able value or a Response."""
        self._control[name] = (methods, handler)

    def _control_faults(self, request: Request) -> Any:
        if request.method == "DELETE":
            with self.lock:
                self._faults.clear()
            return {"ok": True}
        body = request_json(request, default={}) or {}
        fault = self.inject_fault(
            match=body.get("match"),
            count=int(body.get("count", 1)),
            delay=float(body.get("delay", 0.0)),
            status=body.get("status"),
            body=body.get("body"),
            content_type=body.get("content_type"),
            headers=body.get("headers"),
        )
        return {"ok": True, "fault": asdict(fault)}

    def _control_calls(self, request: Request) -> Any:
        with self.lock:
            if request.method == "DELETE":
                self.calls.clear()
                return {"ok": True}
            return list(self.calls)

    def _dispatch_control(self, request: Request) -> Response:
        name = request.path[len(CONTROL_PREFIX):].strip("/")
        if name not in self._control:
            raise NotFound()
        methods, handler = self._control[name]
        if request.method not in methods:
            raise MethodNotAllowed(valid_methods=list(methods))
        try:
            result = handler(request)
        except (ValueError, KeyError, TypeError) as exc:
            return json_response({"ok": False, "error": f"{type(exc).__name__}: {exc}"}, status=400)
        return result if isinstance(result, Response) else json_response(result)

    # -- WSGI ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one protocol request (subclasses)."""
        raise NotFound()

    def _protocol(self, request: Request) -> Response:
        with self._changed:
            self._in_flight += 1
        try:
            fault = self._take_fault(request.path)
            if fault is not None and fault.delay and not self._sleep(fault.delay):
                # The emulator was reset while this request slept (its test is over): answer
                # without touching the state the next test set up.
                return Response("sandbox reset during an injected delay", status=503, content_type="text/plain")
            if fault is not None and fault.status is not None:
                return Response(fault.body, status=fault.status, content_type=fault.content_type,
                                headers=fault.headers)
            return self.handle(request)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        try:
            if request.path.startswith(CONTROL_PREFIX):
                response = self._dispatch_control(request)
            else:
                response = self._protocol(request)
        except HTTPException as exc:
            response = exc.get_response(environ)
        except json.JSONDecodeError:
            response = BadRequest("request body is not JSON").get_response(environ)
        return response(environ, start_response)
