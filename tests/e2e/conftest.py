"""Real-browser fixtures: the portal served over loopback HTTP, driven by headless Chromium.

* ``live_app`` (function): the app on a fresh copy of the migrated database, talking to the
  invoice-cloud sandbox (reset to its seed), served by werkzeug in a daemon thread.
  ``live_app.url``, ``live_app.app``, ``live_app.call(fn, *args)`` (runs ``fn`` in an app
  context and cleans the session up), ``live_app.make_user(...)``, ``live_app.scalar(stmt)``.
* ``chromium`` (session): Debian's ``/usr/bin/chromium`` launched through Playwright. A
  missing binary FAILS the e2e tests (run ``make test``, it installs the browser).
* ``page`` (function): a fresh browser context (zh-CN, 1280×900); a failed test leaves
  ``test-artifacts/<test name>.png``, and only a failed one: the folder's screenshots of an
  earlier run are removed when the run starts; anything the Content-Security-Policy blocks fails the test.
* ``login(page, live_app, username, password=PASSWORD)``: log in through the real form;
  ``artifact_path(name)``: where a screenshot goes (``test-artifacts/<name>.png``).

Example::

    def test_something(live_app, page):
        live_app.make_user("root", "ops")
        login(page, live_app, "root")
        page.goto(live_app.url + "/enterprises/")
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from portal import create_app
from portal.extensions import db
from tests.conftest import PASSWORD, REPO, _config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = REPO / "test-artifacts"
# Playwright's default is 30 s; a page of this app that takes more than a few seconds is broken.
TIMEOUT_MS = 5_000

__all__ = ["ARTIFACTS", "PASSWORD", "LiveApp", "artifact_path", "login"]


@dataclass
class LiveApp:
    """A running portal: its base ``url``, the Flask ``app`` and helpers to touch its database."""

    url: str
    app: Any
    server: BaseWSGIServer
    thread: threading.Thread
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` inside an app context and return its result.

        The session is removed afterwards, so return plain values (ids, strings), not ORM
        objects that would be detached.
        """
        with self.app.app_context():
            try:
                return fn(*args, **kwargs)
            finally:
                db.session.remove()

    def scalar(self, stmt) -> Any:
        """``db.session.scalar(stmt)`` in an app context, e.g. a count of rows."""
        return self.call(lambda: db.session.scalar(stmt))

    def make_user(self, username: str, role: str, enterprises=(), scan_points=(), password: str = PASSWORD) -> int:
        """Create a user (the shared test password by default); return its id.

        ``enterprises`` / ``scan_points`` are ids (or objects with an ``id``); none on an
        ``ops`` user makes a deployment-wide account.
        """
        from portal.blueprints.users.service import hash_password
        from portal.models import Enterprise, ScanPoint, User

        def make() -> int:
            user = User(username=username, role=role, password_hash=hash_password(password))
            user.enterprises = [db.session.get(Enterprise, getattr(e, "id", e)) for e in enterprises]
            user.scan_points = [db.session.get(ScanPoint, getattr(p, "id", p)) for p in scan_points]
            db.session.add(user)
            db.session.commit()
            return user.id

        return self.call(make)

    def stop(self) -> None:
        """Stop serving, close the listening socket and the database connections."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        with self.app.app_context():
            db.engine.dispose()


@pytest.fixture
def live_app(tmp_path, monkeypatch, schema_template, cloud) -> Iterator[LiveApp]:
    """The portal on a fresh migrated SQLite copy, served on a free loopback port."""
    monkeypatch.setenv("PORTAL_INSTANCE", str(tmp_path / "instance"))
    shutil.copy(schema_template, tmp_path / "portal.sqlite3")
    # Quiet request lines: the live server answers the browser from a thread pytest does not capture.
    app = create_app(_config(tmp_path, INVOICE_CLOUD_URL=cloud.url, LOG_LEVEL="WARNING"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-portal", daemon=True)
    thread.start()
    live = LiveApp(url=f"http://127.0.0.1:{server.server_port}", app=app, server=server, thread=thread)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright's sync API (never a downloaded browser)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: the real-browser tests need Debian's chromium and "
                    "fonts-noto-cjk. Run `make test` (its `browser` target installs them).", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so ``page`` knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def clear_screenshots() -> None:
    """Remove the screenshots of an earlier run (other files in test-artifacts/ stay)."""
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()


@pytest.fixture(scope="session", autouse=True)
def _fresh_artifacts() -> None:
    """Every screenshot in test-artifacts/ is a failure of this run."""
    clear_screenshots()


def screenshot_if_failed(node: Any, pg: Any) -> Path | None:
    """Save ``test-artifacts/<test name>.png`` when the test's call phase failed; None otherwise."""
    rep = getattr(node, "rep_call", None)
    if rep is None or not rep.failed:
        return None
    path = artifact_path(node.name)
    try:
        pg.screenshot(path=str(path), full_page=True)
    except Exception as exc:  # the page may be gone; the test's own failure matters more
        print(f"screenshot failed: {exc}")
        return None
    return path


def artifact_path(name: str) -> Path:
    """``test-artifacts/<name>.png`` with a file-system-safe name; the folder is created."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / (re.sub(r"[^\w.-]+", "_", name).strip("_") + ".png")


@pytest.fixture
def page(chromium, request) -> Iterator[Any]:
    """A fresh zh-CN browser page; a screenshot is saved when the test fails."""
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    # Chromium logs what the Content-Security-Policy blocked: on our pages that is a bug.
    blocked: list[str] = []
    pg.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        yield pg
        assert not blocked, f"the CSP blocked something on the page: {blocked}"
    finally:
        screenshot_if_failed(request.node, pg)
        context.close()


def login(page, live_app: LiveApp, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form and wait until the portal has left the login page."""
    page.goto(live_app.url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    if "/login" in page.url:
        alert = page.locator(".alert, .error").all_inner_texts()
        raise AssertionError(f"login as {username!r} failed: {alert}")
