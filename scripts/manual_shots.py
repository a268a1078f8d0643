"""``make manual``: the operations manual's screenshots, taken from the demo so they never go stale.

Starts the sandbox ERP and invoice cloud, a portal in a throwaway instance seeded with the demo data
(``portal.demo.seed``), logs in as each role with Debian's Chromium through Playwright and saves
each page of :data:`SHOTS` as an optimised PNG in ``docs/manual/img/``.  ``tests/test_help.py``
checks that the manual shows every one of them and nothing else.

    python scripts/manual_shots.py [--out DIR] [--only NAME ...]

Importing this module starts nothing.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "manual" / "img"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1366, "height": 768}


@dataclass(frozen=True)
class Shot:
    name: str  # file in docs/manual/img
    role: str  # demo user demo_<role>
    path: str  # page of the demo
    focus: str | None = None  # scroll this element to the top first (CSS selector)


SHOTS = (
    Shot("password.png", "viewer", "/users/me/password"),
    Shot("ops-enterprises.png", "ops", "/enterprises/"),
    Shot("ops-enterprise-show.png", "ops", "/enterprises/1"),
    Shot("ops-docking.png", "ops", "/docking/"),
    Shot("ops-scan-points.png", "ops", "/scan-points/"),
    Shot("ops-users.png", "ops", "/users/"),
    Shot("ops-writeback.png", "ops", "/writeback/"),
    Shot("scanner-desk.png", "scanner", "/scan/"),
    Shot("scanner-bill.png", "scanner", "/bills/FYBX0003"),
    Shot("scanner-invoice.png", "scanner", "/bills/FYBX0003", focus=".bill-body"),
    Shot("scanner-match-failed.png", "ops", "/bills/FYBX0004", focus="#bill-head"),
    Shot("viewer-bills.png", "viewer", "/bills/"),
    Shot("viewer-bill.png", "viewer", "/bills/FYBX0001", focus=".bill-body"),
)


def optimise(png: bytes) -> bytes:
    """A 256-colour palette PNG: screenshots of flat UI lose nothing visible and shrink several times."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        out = io.BytesIO()
        small.save(out, "PNG", optimize=True)
    return out.getvalue()


def _start_demo(instance: Path):
    """Sandboxes, a seeded portal and a server on a free loopback port; returns (base_url, passwords, stop)."""
    os.environ["PORTAL_INSTANCE"] = str(instance)
    from flask_migrate import upgrade
    from werkzeug.serving import make_server

    from portal import create_app, demo
    from portal.sandbox.galaxy import GalaxySandbox
    from portal.sandbox.invoice_cloud import CloudSandbox
    from portal.sandbox.seed import SEEDS

    galaxy = GalaxySandbox(seed=SEEDS["demo"][0], quiet=True).start()
    cloud = CloudSandbox(seed=SEEDS["demo"][1], quiet=True).start()
    # The emulator keeps files in memory: the sync-mode bill's pushed invoice file, as `make demo` serves it.
    cloud.add_file(demo.SYNC_FILE, (demo.corpus_dir() / demo.SYNC_FILE).read_bytes(), "application/pdf")
    os.environ["PORTAL_INVOICE_CLOUD_URL"] = cloud.url
    app = create_app()
    app.config["INVOICE_CLOUD_URL"] = cloud.url
    # As in `make demo`: the cloud sandbox serves the sync-mode bill's pushed file from loopback.
    app.config["FETCH_ALLOWED_HOSTS"] = urlsplit(cloud.url).netloc
    # The address a deployment sets: the pictures show a configured system, not a loopback port.
    app.config["PUBLIC_BASE_URL"] = "https://images.example.com"
    for name in ("werkzeug", "portal", "portal.web"):  # the request log would drown the summary
        logging.getLogger(name).setLevel(logging.WARNING)
    with app.app_context():
        upgrade()
        demo.seed(app, galaxy.url, cloud.url)
        passwords = demo._demo_passwords(app)
        from portal.jobs.runner import one_pass

        one_pass()  # the write-back of the completed demo bill, so its page shows finished tasks
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="manual-shots")
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        cloud.stop()
        galaxy.stop()

    return f"http://127.0.0.1:{server.server_port}", passwords, stop


def take(shots, out: Path) -> list[tuple[str, int]]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    done = []
    with tempfile.TemporaryDirectory(prefix="manual-shots-") as tmp:
        base, passwords, stop = _start_demo(Path(tmp) / "instance")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    for role in dict.fromkeys(s.role for s in shots):
                        context = browser.new_context(locale="zh-CN", viewport=VIEWPORT, device_scale_factor=1)
                        page = context.new_page()
                        page.goto(base + "/login")
                        page.fill("#username", f"demo_{role}")
                        page.fill("#password", passwords[f"demo_{role}"])
                        page.click("button[type=submit]")
                        page.wait_for_url(lambda url: "/login" not in url)
                        for shot in (s for s in shots if s.role == role):
                            page.goto(base + shot.path)
                            page.wait_for_load_state("networkidle")
                            if shot.focus:
                                page.locator(shot.focus).first.evaluate("el => el.scrollIntoView({block: 'start'})")
                            else:
                                page.evaluate("window.scrollTo(0, 0)")  # a focused field may have scrolled the page
                            page.wait_for_timeout(300)  # images and the viewer settle
                            data = optimise(page.screenshot(full_page=False))
                            (out / shot.name).write_bytes(data)
                            done.append((shot.name, len(data)))
                        context.close()
                finally:
                    browser.close()
        finally:
            stop()
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="操作手册截图")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*", help="file names of SHOTS to take (default: all)")
    args = parser.parse_args(argv)
    shots = [s for s in SHOTS if not args.only or s.name in args.only]
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: run `make browser` first", file=sys.stderr)
        return 1
    sys.path.insert(0, str(REPO))
    total = 0
    for name, size in take(shots, args.out):
        total += size
        print(f"  {name:<28} {size // 1024:>4} KB")
    print(f"{len(shots)} screenshots, {total // 1024} KB, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
