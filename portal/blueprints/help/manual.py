"""The operations manual (操作手册): Markdown chapters in ``docs/manual/``, rendered safely.

Sources are CommonMark plus tables, with raw HTML switched off (it is shown as text, never passed
through).  Three additions, each checked by the tests against the real pages:

* ``## 标题 {#anchor}``: a heading with a fixed anchor; page header 帮助 links point at these.
* ``【页面：/path/】`` (optionally ``【页面：/path/｜运维】``): the page the following text describes,
  opened as the chapter's role (or the named one) with the demo data.
* ``「按钮或标签」``: a button, link, heading or label that must appear on the last named page.

Images are ``![说明](img/name.png)``, files of ``docs/manual/img/`` served under ``/help/img/``.
No Flask imports here except in :func:`render`'s URL callbacks passed in by the caller.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from markdown_it import MarkdownIt
from markdown_it.token import Token

#: ``docs/manual``, reached through the ``portal/manual`` link so that the wheel carries it as package data.
MANUAL_DIR = Path(__file__).resolve().parents[2] / "manual"

ROLE_NAMES = {"运维": "ops", "扫描岗": "scanner", "查看": "viewer"}


@dataclass(frozen=True)
class Chapter:
    slug: str  # URL part under /help/; "" is the index page
    title: str
    filename: str
    role: str  # the role whose pages the chapter's markers are checked as


CHAPTERS = (
    Chapter("", "操作手册", "index.md", "viewer"),
    Chapter("ops", "运维", "ops.md", "ops"),
    Chapter("scanner", "扫描岗", "scanner.md", "scanner"),
    Chapter("viewer", "查看", "viewer.md", "viewer"),
    Chapter("erp-setup", "星空对接指南", "erp-setup.md", "ops"),
)
BY_SLUG = {c.slug: c for c in CHAPTERS}

HEADING_ID = re.compile(r"\s*\{#([a-z0-9][a-z0-9-]*)\}\s*$")
PAGE_MARK = re.compile(r"【页面：([^】｜\s]+)(?:｜([^】]+))?】")
LABEL_MARK = re.compile(r"「([^」\n]+)」")
IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.png")
IMAGE_REF = re.compile(r"!\[[^\]]*\]\((img/[^)\s]+)\)")


# --------------------------------------------------------------------------- markers (for the tests)

@dataclass
class PageRef:
    """One ``【页面：…】`` marker and the labels written after it (until the next page marker)."""

    path: str
    role: str
    line: int
    labels: list[str] = field(default_factory=list)


def source(chapter: Chapter) -> str:
    return (MANUAL_DIR / chapter.filename).read_text(encoding="utf-8")


def page_refs(chapter: Chapter, text: str | None = None) -> tuple[list[PageRef], list[tuple[int, str]]]:
    """The chapter's page markers with their labels, and labels written before any page marker."""
    refs: list[PageRef] = []
    orphans: list[tuple[int, str]] = []
    in_code = False
    for n, line in enumerate((source(chapter) if text is None else text).splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        # Walk the line in order: a page marker starts a new scope for the labels after it.
        pos = 0
        while True:
            page = PAGE_MARK.search(line, pos)
            label = LABEL_MARK.search(line, pos)
            if page is None and label is None:
                break
            if page is not None and (label is None or page.start() < label.start()):
                role = ROLE_NAMES.get((page.group(2) or "").strip(), chapter.role)
                if page.group(2) and page.group(2).strip() not in ROLE_NAMES:
                    raise ValueError(f"{chapter.filename}:{n}: unknown role {page.group(2)!r} in page marker")
                refs.append(PageRef(page.group(1), role, n))
                pos = page.end()
            else:
                if refs:
                    refs[-1].labels.append(label.group(1))
                else:
                    orphans.append((n, label.group(1)))
                pos = label.end()
    return refs, orphans


def image_refs(chapter: Chapter) -> list[str]:
    """File names (under ``img/``) of the images the chapter shows."""
    return [m.group(1).split("/", 1)[1] for m in IMAGE_REF.finditer(source(chapter))]


# --------------------------------------------------------------------------- rendering

def _heading_ids(state) -> None:
    """``{#anchor}`` at the end of a heading becomes its id (and leaves the visible text)."""
    tokens = state.tokens
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or i + 1 >= len(tokens):
            continue
        inline = tokens[i + 1]
        m = HEADING_ID.search(inline.content)
        if not m:
            continue
        tok.attrSet("id", m.group(1))
        inline.content = inline.content[: m.start()]
        if inline.children:
            last = inline.children[-1]
            if last.type == "text":
                last.content = HEADING_ID.sub("", last.content)


def _markers(text: str) -> str:
    """Page markers read as a small note with the address as code."""
    def page(m: re.Match) -> str:
        who = f"（{m.group(2).strip()}）" if m.group(2) else ""
        return f"【页面：`{m.group(1)}`{who}】"
    return PAGE_MARK.sub(page, text)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    md.core.ruler.push("heading_ids", _heading_ids)
    # Tables in the site's scroll box: a wide one scrolls inside it, never the page on a phone.
    md.add_render_rule("table_open", lambda *a: '<div class="table-scroll"><table class="table">\n')
    md.add_render_rule("table_close", lambda *a: "</table></div>\n")
    return md


def _rewrite_urls(tokens: list[Token], image_url: Callable[[str], str], chapter_url: Callable[[str, str], str]) -> None:
    """``img/x.png`` → the served image; ``other.md#anchor`` → that chapter's page."""
    by_file = {c.filename: c.slug for c in CHAPTERS}
    for tok in tokens:
        if tok.children:
            _rewrite_urls(tok.children, image_url, chapter_url)
        if tok.type == "image":
            src = str(tok.attrGet("src") or "")
            if src.startswith("img/"):
                tok.attrSet("src", image_url(src[4:]))
                tok.attrSet("loading", "lazy")
        elif tok.type == "link_open":
            href = str(tok.attrGet("href") or "")
            name, _, anchor = href.partition("#")
            if name in by_file:
                tok.attrSet("href", chapter_url(by_file[name], anchor))
            elif not name and anchor:
                tok.attrSet("href", "#" + anchor)


def render(chapter: Chapter, image_url: Callable[[str], str], chapter_url: Callable[[str, str], str]) -> str:
    """The chapter as HTML (raw HTML in the source is escaped, never passed through)."""
    md = _parser()
    env: dict = {}
    tokens = md.parse(_markers(source(chapter)), env)
    _rewrite_urls(tokens, image_url, chapter_url)
    return md.renderer.render(tokens, md.options, env)


def anchors(chapter: Chapter) -> list[tuple[int, str, str]]:
    """``(level, anchor, title)`` of the chapter's headings that carry an anchor, in order."""
    out = []
    for tok_i, tok in enumerate(tokens := _parser().parse(source(chapter))):
        if tok.type == "heading_open" and tok.attrGet("id"):
            out.append((int(tok.tag[1]), str(tok.attrGet("id")), tokens[tok_i + 1].content.strip()))
    return out
