"""Run a sandbox WSGI app as a real HTTP server on loopback, in a background thread.

Tests need to stop a server mid-way (to see how the client copes with an ERP that went
away) and start it again on the same port (so configuration stored in the database stays
valid). Werkzeug's threaded server does the serving; this wrapper adds clean stop/restart
and closes kept-alive connections on stop, which the plain server would leave answering.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["SandboxServer"]


class _TrackingHandler(WSGIRequestHandler):
    """Request handler that registers its connection so stop() can cut it."""

    server: BaseWSGIServer

    def setup(self) -> None:
        super().setup()
        registry = getattr(self.server, "sandbox_registry", None)
        if registry is not None:
            registry.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the client (or stop()) already closed the connection; nothing left to flush
        finally:
            registry = getattr(self.server, "sandbox_registry", None)
            if registry is not None:
                registry.discard(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not getattr(self.server, "sandbox_quiet", False):
            super().log_request(code, size)


class _ConnectionRegistry:
    """Open client connections of one server run, with the handler threads serving them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[socket.socket, threading.Thread] = {}

    def add(self, conn: socket.socket) -> None:
        with self._lock:
            self._items[conn] = threading.current_thread()

    def discard(self, conn: socket.socket) -> None:
        with self._lock:
            self._items.pop(conn, None)

    def cut_all(self, join_timeout: float) -> None:
        """Shut every connection down and give the handler threads a moment to exit."""
        with self._lock:
            items = list(self._items.items())
        for conn, _thread in items:
            try:
                # shutdown (not close): the handler thread owns the socket and closes it
                # itself once its read returns EOF, so nothing is closed twice.
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _conn, thread in items:
            if thread is not threading.current_thread():
                thread.join(join_timeout)


class SandboxServer:
    """A WSGI app served on ``host:port`` in a daemon thread.

    ``port=0`` picks a free port on the first start; later starts reuse it, so
    ``stop()`` then ``start()`` brings the server back at the same ``url``.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "sandbox",
        quiet: bool = True,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.quiet = quiet
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._registry: _ConnectionRegistry | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """``http://host:port`` without a trailing slash; known once started."""
        if not self.port:
            raise RuntimeError(f"{self.name} has not been started yet, so it has no port")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._server is not None

    def start(self) -> SandboxServer:
        """Bind and serve in the background; a no-op when already running. Returns self."""
        with self._lock:
            if self._server is not None:
                return self
            # HTTPServer sets SO_REUSEADDR, so rebinding the port right after stop() works.
            server = make_server(self.host, self.port, self.app, threaded=True, request_handler=_TrackingHandler)
            registry = _ConnectionRegistry()
            server.sandbox_registry = registry  # type: ignore[attr-defined]
            server.sandbox_quiet = self.quiet  # type: ignore[attr-defined]
            self.port = server.server_port
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{self.name}-{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread, self._registry = server, thread, registry
            return self

    def stop(self, join_timeout: float = 2.0) -> None:
        """Stop accepting, close the listening socket and cut open connections.

        After this returns, a client gets "connection refused" until start() is called.
        """
        with self._lock:
            server, thread, registry = self._server, self._thread, self._registry
            self._server = self._thread = self._registry = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(join_timeout)
        if registry is not None:
            registry.cut_all(join_timeout)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SandboxServer {self.name} {self.host}:{self.port} {state}>"
