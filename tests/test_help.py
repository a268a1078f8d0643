"""The operations manual (/help/) against the real pages of the demo.

* every page a logged-in role can open has a 帮助 link to a section that exists in the manual;
* every page the manual names (【页面：…】) opens for its role, and every button or label it quotes
  (「…」) is on that page, so renaming a button in a template fails here until the manual follows;
* every screenshot the manual shows exists, is small, and every one the script takes is shown;
* the Markdown is rendered without raw HTML, behind the login, under the site's CSP.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from html.parser import HTMLParser

import pytest
from flask_migrate import upgrade
from sqlalchemy import select

from portal import create_app, demo, links
from portal.blueprints.help import manual, sections
from portal.extensions import db
from portal.models import Bill, DockingConnection, Image, ScanPoint, User
from portal.sandbox.galaxy import GalaxySandbox
from portal.sandbox.invoice_cloud import CloudSandbox
from portal.sandbox.seed import SEEDS

from .conftest import DATA_KEY, REPO, Browser, without_portal_environment

ROLES = ("ops", "scanner", "viewer")
IMG_DIR = manual.MANUAL_DIR / "img"
# Screenshots stay small: the manual is read on phones at the scan desk too.
MAX_IMAGE_BYTES = 200 * 1024
MAX_CHAPTER_IMAGE_BYTES = 600 * 1024


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo (sandbox ERP and invoice cloud, seeded enterprises, users, bills) in a fresh instance."""
    tmp = tmp_path_factory.mktemp("help")
    galaxy = GalaxySandbox(seed=SEEDS["demo"][0]).start()
    cloud = CloudSandbox(seed=SEEDS["demo"][1]).start()
    with pytest.MonkeyPatch.context() as mp:
        without_portal_environment(mp)
        mp.setenv("PORTAL_INSTANCE", str(tmp / "instance"))
        app = create_app({"SECRET_KEY": "help-test", "DATA_KEY": DATA_KEY, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'portal.sqlite3'}",
                          "STORAGE_DIR": str(tmp / "storage"), "INVOICE_CLOUD_URL": cloud.url})
        with app.app_context():
            upgrade()
            demo.seed(app, galaxy.url, cloud.url)
            passwords = demo._demo_passwords(app)
            yield app, passwords
            db.session.remove()
            db.engine.dispose()
    cloud.stop()
    galaxy.stop()


def logged_in(site, role: str) -> Browser:
    app, passwords = site
    browser = Browser(app)
    resp = browser.login(f"demo_{role}", passwords[f"demo_{role}"])
    assert resp.status_code in (302, 303), resp.status_code
    return browser


# --------------------------------------------------------------------------- what a page shows

class _Texts(HTMLParser):
    """Text nodes and the attributes people read (placeholders, titles, labels for screen readers)."""

    ATTRS = ("placeholder", "title", "aria-label", "alt", "value")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in self.ATTRS and value:
                self.texts.append(value)

    def handle_data(self, data):
        self.texts.append(data)


def page_texts(html: str) -> set[str]:
    parser = _Texts()
    parser.feed(html)
    return {" ".join(t.split()) for t in parser.texts if t.strip()}


def shows(texts: set[str], label: str) -> bool:
    """The label is a whole text on the page, or leads one as "label：…" / "label（…）"."""
    return any(t == label or (t.startswith(label) and t[len(label)] in "：:（(") for t in texts)


# --------------------------------------------------------------------------- demo values for URLs

def _url_values(app) -> dict:
    def one(stmt):
        return db.session.scalar(stmt)

    bill = one(select(Bill).where(Bill.bill_no == "FYBX0001"))
    sync_bill = one(select(Bill).where(Bill.bill_no == "FYBX0006"))
    return {
        "bill_no": bill.bill_no,
        "enterprise_id": bill.enterprise_id,
        "conn_id": one(select(DockingConnection.id)),
        "point_id": one(select(ScanPoint.id).order_by(ScanPoint.id)),
        "user_id": one(select(User.id).where(User.username == "demo_scanner")),
        "image_id": one(select(Image.id).where(Image.bill_id == bill.id)),
        "n": 1,
        "slug": "scanner",
        "name": "scanner-desk.png",
        "view_token": links.view_link(bill.id).token,
        "upload_token": links.upload_link(sync_bill.id).token,
    }


def _get_urls(app) -> list[tuple[str, str]]:
    """``(endpoint, url)`` for every GET route, its path parameters filled from the demo."""
    values = _url_values(app)
    out = []
    with app.test_request_context():
        from flask import url_for

        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint == "static":
                continue
            args = {}
            for arg in rule.arguments:
                if arg == "token":
                    args[arg] = values["upload_token" if ".upload" in rule.endpoint else "view_token"]
                else:
                    assert arg in values, f"{rule.endpoint}: no demo value for <{arg}>; add one to _url_values"
                    args[arg] = values[arg]
            out.append((rule.endpoint, url_for(rule.endpoint, **args)))
    return out


HELP_LINK = re.compile(r'<a class="help-link" href="([^"]+)">帮助</a>')


def test_every_page_links_to_its_manual_section(site):
    app, _ = site
    urls = _get_urls(app)
    chapters: dict[str, str] = {}
    seen_pages = set()
    problems = []
    for role in ROLES:
        browser = logged_in(site, role)
        for endpoint, url in urls:
            resp = browser.get(url)
            if resp.mimetype != "text/html" or b'class="topbar"' not in resp.data:
                continue  # files, JSON, redirects
            html = resp.get_data(as_text=True)
            link = HELP_LINK.search(html)
            if link is None:
                problems.append(f"{role} {url} ({endpoint}, {resp.status_code}): no 帮助 link in the header")
                continue
            seen_pages.add(endpoint)
            path, _, anchor = link.group(1).partition("#")
            if resp.status_code != 200 and sections.target(endpoint, role) is None:
                # An error page of a file or script (a missing thumbnail, a forbidden download): the
                # manual's first page is the right help there.
                assert path == "/help/", (endpoint, link.group(1))
                continue
            if sections.target(endpoint, role) is None or not anchor:
                problems.append(f"{role} {url} ({endpoint}): 帮助 goes to {link.group(1)}; map the endpoint in help/sections.py")
                continue
            if path not in chapters:
                page = browser.get(path)
                assert page.status_code == 200, path
                chapters[path] = page.get_data(as_text=True)
            if f'id="{anchor}"' not in chapters[path]:
                problems.append(f"{role} {url} ({endpoint}): 帮助 goes to {link.group(1)}, which has no such section")
    assert not problems, "\n".join(problems)
    # The walk really reached the pages of every area (a broken login would skip them all).
    assert {"scan.queue", "bills.show", "bills.index", "users.index", "public.view", "help.chapter"} <= seen_pages
    stale = set(sections.SECTIONS) - set(app.view_functions)
    assert not stale, f"help/sections.py maps endpoints that no longer exist: {sorted(stale)}"


def test_documented_pages_and_labels_exist(site):
    problems = []
    pages: dict[tuple[str, str], set[str]] = {}
    checked = 0
    for chapter in manual.CHAPTERS:
        refs, orphans = manual.page_refs(chapter)
        problems += [f"{chapter.filename}:{n}: 「{label}」 comes before any 【页面：…】 marker" for n, label in orphans]
        for ref in refs:
            key = (ref.role, ref.path)
            if key not in pages:
                resp = logged_in(site, ref.role).get(ref.path)
                if resp.status_code != 200:
                    problems.append(f"{chapter.filename}:{ref.line}: page {ref.path} as {ref.role} answered {resp.status_code}")
                    pages[key] = set()
                    continue
                pages[key] = page_texts(resp.get_data(as_text=True))
            for label in ref.labels:
                checked += 1
                if not shows(pages[key], label):
                    problems.append(f"{chapter.filename}:{ref.line}+: 「{label}」 is not on {ref.path} (as {ref.role})")
    assert not problems, "\n".join(problems)
    assert checked > 100  # the markers are really there


def test_a_renamed_button_is_caught(site):
    """The check reads the real page: the same page with its submit button renamed misses 「提交」."""
    html = logged_in(site, "scanner").get("/bills/FYBX0003").get_data(as_text=True)
    assert shows(page_texts(html), "提交")
    renamed = re.sub(r'(<button class="btn btn-primary" type="submit">)提交(</button>)', r"\1送审\2", html)
    assert renamed != html
    assert not shows(page_texts(renamed), "提交")


def _shot_names() -> list[str]:
    spec = importlib.util.spec_from_file_location("manual_shots", REPO / "scripts" / "manual_shots.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)  # importing starts nothing: main() does
    finally:
        del sys.modules[spec.name]
    return [shot.name for shot in module.SHOTS]


def test_screenshots_exist_are_small_and_are_all_shown():
    shown = {}
    for chapter in manual.CHAPTERS:
        names = manual.image_refs(chapter)
        total = 0
        for name in names:
            path = IMG_DIR / name
            assert manual.IMAGE_NAME.fullmatch(name), f"{chapter.filename}: image name {name!r}"
            assert path.is_file(), f"{chapter.filename} shows img/{name}, which does not exist (run `make manual`)"
            size = path.stat().st_size
            assert size <= MAX_IMAGE_BYTES, f"img/{name} is {size} bytes"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            total += size
            shown[name] = chapter.filename
        assert total <= MAX_CHAPTER_IMAGE_BYTES, f"{chapter.filename}: {total} bytes of images"
    shots = _shot_names()
    assert len(shots) == len(set(shots))
    assert not set(shots) - set(shown), f"screenshots no chapter shows: {sorted(set(shots) - set(shown))}"
    assert not set(shown) - set(shots), f"images the script does not take: {sorted(set(shown) - set(shots))}"
    on_disk = {p.name for p in IMG_DIR.glob("*")}
    assert not on_disk - set(shots), f"stale files in docs/manual/img: {sorted(on_disk - set(shots))}"


def test_the_manual_is_served_with_its_sections_and_images(site):
    browser = logged_in(site, "viewer")
    index = browser.get("/help/")
    assert index.status_code == 200
    html = index.get_data(as_text=True)
    for chapter in manual.CHAPTERS[1:]:
        assert f'href="/help/{chapter.slug}"' in html
    page = browser.get("/help/scanner")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="desk"' in text and 'href="#desk"' in text
    assert 'src="/help/img/scanner-desk.png"' in text
    # A link to another chapter points at that chapter's page, not at the Markdown file.
    assert 'href="/help/viewer#' in browser.get("/help/").get_data(as_text=True) or 'href="/help/viewer"' in html
    image = browser.get("/help/img/scanner-desk.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert browser.get("/help/img/..%2Fops.md").status_code == 404
    assert browser.get("/help/img/missing.png").status_code == 404
    assert browser.get("/help/nonexistent").status_code == 404


def test_the_manual_needs_a_login(site):
    app, _ = site
    anon = Browser(app)
    for url in ("/help/", "/help/ops", "/help/img/scanner-desk.png"):
        resp = anon.get(url)
        assert resp.status_code in (302, 303) and "/login" in resp.headers["Location"], url


def test_raw_html_in_the_markdown_is_never_passed_through(tmp_path, monkeypatch, site):
    (tmp_path / "ops.md").write_text(
        "# 标题 {#top}\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "[点我](javascript:alert(1)) ![图](img/x.png)\n\n## 小节 <b>粗</b> {#part}\n", encoding="utf-8")
    monkeypatch.setattr(manual, "MANUAL_DIR", tmp_path)
    browser = logged_in(site, "ops")
    resp = browser.get("/help/ops")
    html = resp.get_data(as_text=True)
    article = html[html.index('<article class="card manual">'):]
    assert "<script>alert" not in article and "&lt;script&gt;" in article
    assert "<img src=x" not in article and "onerror=alert" not in article.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    assert 'href="javascript:' not in article
    assert '<h2 id="part">' in article and "&lt;b&gt;" in article
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"].split("script-src", 1)[1].split(";", 1)[0]


def test_page_markers_are_read_in_order():
    chapter = manual.Chapter("x", "x", "x.md", "scanner")
    refs, orphans = manual.page_refs(chapter, "「早」\n【页面：/a/】「甲」【页面：/b/｜运维】「乙」\n```\n「代码」\n```\n「丙」")
    assert orphans == [(1, "早")]
    assert [(r.path, r.role, r.labels) for r in refs] == [("/a/", "scanner", ["甲"]), ("/b/", "ops", ["乙", "丙"])]
    with pytest.raises(ValueError):
        manual.page_refs(chapter, "【页面：/a/｜老板】")


def test_every_chapter_file_is_in_the_manual():
    files = {p.name for p in manual.MANUAL_DIR.glob("*.md")}
    assert files == {c.filename for c in manual.CHAPTERS}
    assert not (REPO / "docs" / "erp-setup.md").exists(), "the ERP guide has one source: docs/manual/erp-setup.md"
    for chapter in manual.CHAPTERS:
        assert manual.anchors(chapter)[0][1] == "top", chapter.filename

