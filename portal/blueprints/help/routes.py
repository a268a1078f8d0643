"""The manual's pages: ``/help/`` (the index), ``/help/<chapter>`` and its images under ``/help/img/``."""
from __future__ import annotations

from flask import Blueprint, abort, render_template, request, send_from_directory, url_for
from flask_login import current_user, login_required
from markupsafe import Markup

from . import manual, sections

bp = Blueprint("help", __name__)


def chapter_url(slug: str, anchor: str = "") -> str:
    url = url_for("help.chapter", slug=slug) if slug else url_for("help.index")
    return url + (f"#{anchor}" if anchor else "")


def _image_url(name: str) -> str:
    return url_for("help.image", name=name)


def _page(chapter: manual.Chapter):
    if not (manual.MANUAL_DIR / chapter.filename).is_file():
        abort(404)
    body = Markup(manual.render(chapter, _image_url, chapter_url))  # raw HTML in the source is escaped
    return render_template("help/chapter.html", chapter=chapter, body=body, chapters=manual.CHAPTERS,
                           toc=[a for a in manual.anchors(chapter) if a[0] == 2], chapter_url=chapter_url)


@bp.get("/")
@login_required
def index():
    """The manual's first page: what the system does, the roles, and the chapters."""
    return _page(manual.BY_SLUG[""])


@bp.get("/<slug>")
@login_required
def chapter(slug: str):
    found = manual.BY_SLUG.get(slug)
    if found is None or not slug:
        abort(404)
    return _page(found)


@bp.get("/img/<name>")
@login_required
def image(name: str):
    """A screenshot of the manual (``docs/manual/img``); only plain PNG names."""
    if not manual.IMAGE_NAME.fullmatch(name):
        abort(404)
    return send_from_directory(manual.MANUAL_DIR / "img", name, mimetype="image/png", max_age=3600)


@bp.app_context_processor
def _help_link():
    def help_url() -> str:
        """The header's 帮助 link: the section about this page, else the manual's first page."""
        role = current_user.role if current_user.is_authenticated else None
        found = sections.target(request.endpoint, role)
        return chapter_url(*found) if found else chapter_url("")

    return {"help_url": help_url}
