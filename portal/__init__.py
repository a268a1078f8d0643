"""发票影像系统 — the portal application."""
from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config, logs
from .extensions import csrf, db, htmx, login_manager, migrate


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: config, extensions, blueprints, CLI."""
    app = Flask(__name__, instance_path=config.instance_path(), instance_relative_config=True)
    config.load(app, test_config)
    hops = int(app.config["PROXY_FIX_HOPS"])
    if hops > 0:
        # Only as many X-Forwarded-* entries as there are configured proxies count; anything a
        # client wrote further left is ignored, so it cannot pick its own address or host.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)

    logs.configure(app)
    db.init_app(app)
    with app.app_context():
        config.ensure_data_key(app, db.engine)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录。"
    login_manager.login_message_category = "warning"

    from . import serving
    from .web import errors, hooks

    errors.register(app)
    hooks.register(app)
    serving.register(app)

    from .blueprints import register_blueprints
    from .jobs import ocr_dispatch  # noqa: F401  (its commit hooks queue OCR of uploads on Redis)

    register_blueprints(app)

    from . import cli

    cli.register(app)
    app.json.ensure_ascii = False
    return app


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL mode and enforced foreign keys for every SQLite connection."""
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()
