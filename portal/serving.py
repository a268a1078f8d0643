"""Serving: ``flask --app portal serve`` (gunicorn from the ``[scale]`` extra) and cache headers on static files.

Static URLs carry a content version (``/static/app.css?v=<hash>``), added by one ``url_defaults`` hook,
so every template keeps writing ``url_for('static', filename=…)``. A request naming the current version
may be cached for a year (``immutable``): a changed file gets a new URL. Anything else (no version, an old
one) keeps Flask's revalidating default, so a browser never holds an old file under the new name.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache

import click
from flask import Flask, current_app, request

from . import create_app
from .extensions import db

__all__ = ["STATIC_MAX_AGE", "register", "serve_command", "static_version"]

STATIC_MAX_AGE = 365 * 24 * 3600


@lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:12]


def static_version(app: Flask, filename: str) -> str | None:
    """A short content hash of static file ``filename`` (None when there is no such file)."""
    folder = app.static_folder or ""
    path = os.path.realpath(os.path.join(folder, filename))
    if not path.startswith(os.path.realpath(folder) + os.sep) or not os.path.isfile(path):
        return None
    st = os.stat(path)
    return _digest(path, st.st_mtime_ns, st.st_size)


def register(app: Flask) -> None:
    """Version the static URLs of ``app`` and cache the versioned ones for a year."""

    @app.url_defaults
    def _static_version(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            version = static_version(current_app, values["filename"])
            if version:
                values["v"] = version

    @app.after_request
    def _static_cache(resp):
        if request.endpoint == "static" and resp.status_code == 200 and request.view_args:
            version = request.args.get("v")
            if version and version == static_version(current_app, request.view_args.get("filename", "")):
                resp.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE}, immutable"
        return resp


def _default_workers() -> int:
    # Each worker also starts FILE_WORKERS child processes for uploads: one per core, at least 2, at most 4.
    return max(2, min(os.cpu_count() or 1, 4))


@click.command("serve")
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="监听地址（host:port）")
@click.option("--workers", type=int, default=None, help="gunicorn 工作进程数（默认：CPU 核数，2–4）")
@click.option("--threads", type=int, default=4, show_default=True, help="每个工作进程的线程数")
@click.option("--timeout", type=int, default=120, show_default=True, help="一个请求最长的秒数（大文件上传）")
def serve_command(bind: str, workers: int | None, threads: int, timeout: int) -> None:
    """Serve the portal with gunicorn (``pip install '.[scale]'``); each worker builds its own app."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        raise click.ClickException("未安装 gunicorn：请执行 pip install '.[scale]'") from None
    options = {
        "bind": bind, "workers": workers or _default_workers(), "threads": threads, "worker_class": "gthread",
        "timeout": timeout, "graceful_timeout": 30, "keepalive": 5,
        # X-Forwarded-* are trusted only through PROXY_FIX_HOPS (one rule), never by gunicorn on its own.
        "forwarded_allow_ips": "",
    }

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app()

    db.engine.dispose()  # no connection of this process may be shared by the forked workers
    click.echo(f"发票影像系统：gunicorn 监听 http://{bind}（{options['workers']} 个进程 × {threads} 个线程）")
    Server().run()
