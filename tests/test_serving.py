"""Serving: gunicorn behind `flask serve`, and static files cached only under their content version."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from portal import serving

from .conftest import DATA_KEY

ROOT = Path(__file__).resolve().parent.parent


def static_links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_static_urls_carry_the_content_version_and_only_that_is_cached_long(app, browser):
    links = static_links(browser.get("/login").data.decode())
    assert links and all(re.search(r"\?v=[0-9a-f]{12}$", link) for link in links)
    css = next(link for link in links if "app.css" in link)
    assert css.endswith("?v=" + serving.static_version(app, "app.css"))

    resp = browser.get(css)
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == f"public, max-age={serving.STATIC_MAX_AGE}, immutable"
    for stale in ("/static/app.css", "/static/app.css?v=000000000000"):
        resp = browser.get(stale)
        assert resp.status_code == 200 and "immutable" not in resp.headers.get("Cache-Control", ""), stale


def test_a_changed_static_file_gets_a_new_url(app, tmp_path):
    app.static_folder = str(tmp_path)
    (tmp_path / "x.css").write_text("a{}")
    before = serving.static_version(app, "x.css")
    (tmp_path / "x.css").write_text("b{}")
    os.utime(tmp_path / "x.css", ns=(1, 10**18))
    assert serving.static_version(app, "x.css") != before
    assert serving.static_version(app, "../conftest.py") is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_gunicorn_workers(tmp_path, schema_template):
    shutil.copy(schema_template, tmp_path / "portal.sqlite3")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE=str(tmp_path / "instance"), PORTAL_DATA_KEY=DATA_KEY, PORTAL_SECRET_KEY="serve",
               PORTAL_SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal", "serve", "--bind",
                                   f"127.0.0.1:{port}", "--workers", "2", "--threads", "2"],
                                  env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/login", timeout=(1, 5))
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert resp.status_code == 200 and "登录" in resp.text
        css = next(link for link in static_links(resp.text) if "app.css" in link)
        resp = requests.get(f"http://127.0.0.1:{port}{css}", timeout=(1, 5))
        assert "immutable" in resp.headers["Cache-Control"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    text = log.read_text()
    assert "2 个进程 × 2 个线程" in text and text.count("Booting worker") == 2, text
