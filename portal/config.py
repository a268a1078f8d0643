"""Configuration: defaults in code, then ``instance/config.py``, then ``PORTAL_*`` variables.

The first start of a deployment generates its ``SECRET_KEY`` and the data
encryption key into the instance folder (mode 0600).  Both must be backed up:
without the data key the stored client secrets and ERP passwords are lost.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

DEFAULTS = {
    "SQLALCHEMY_DATABASE_URI": None,  # filled with instance/portal.sqlite3
    "SQLALCHEMY_ENGINE_OPTIONS": {},
    "STORAGE_DIR": None,  # filled with instance/storage
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
    "MAX_FILE_BYTES": 30 * 1024 * 1024,
    "MAX_PAGES": 200,
    # One limits set for every reader and renderer of an uploaded file (portal/limits.py).
    "MAX_PIXEL_BYTES": 160 * 1024 * 1024,  # decoded bytes of one image frame (mode and bit depth)
    "MAX_XML_BYTES": 5 * 1024 * 1024,
    "MAX_ZIP_MEMBERS": 2000,
    "MAX_ZIP_MEMBER_BYTES": 20 * 1024 * 1024,
    "MAX_ZIP_TOTAL_BYTES": 100 * 1024 * 1024,
    "MAX_DRAW_OPS": 400_000,  # objects, glyphs and path points drawn on one OFD page
    # Budget of one recognition or render, done in a child process (portal/filework.py).
    "FILE_WORK_SECONDS": 5.0,  # per step: opening the file, then each page
    "FILE_WORK_TOTAL_SECONDS": 60.0,  # the whole file
    "FILE_WORK_MEMORY": 256 * 1024 * 1024,  # bytes above the child's own baseline
    "FILE_WORKERS": 2,  # child processes: the cap on concurrent heavy work
    "FILE_WORKERS_PER_TENANT": 1,  # of them, how many one enterprise may hold at once
    "FILE_WORK_QUEUE_SECONDS": 10.0,  # longest wait for a free worker before "busy"
    "INVOICE_CLOUD_URL": "http://127.0.0.1:8702",
    "OUTBOUND_CONNECT_TIMEOUT": 3.05,
    "OUTBOUND_READ_TIMEOUT": 15.0,
    "FETCH_ALLOWED_HOSTS": "",  # comma-separated; empty = any host
    "FETCH_MAX_BYTES": 30 * 1024 * 1024,
    "PUBLIC_BASE_URL": "",  # e.g. https://images.example.com; empty = from the request
    "API_TOKEN_TTL": 7200,
    "VIEW_LINK_TTL": 7 * 24 * 3600,
    "LOGIN_THROTTLE_LIMIT": 5,
    "LOGIN_THROTTLE_WINDOW": 15 * 60,
    "PUSH_MAX_SKEW": 600,
    "PUSH_MAX_BYTES": 10 * 1024 * 1024,
    "RECOGNITION_OCR": False,
    # The invoices list gives up an exact count that takes longer than this (SQLite only).
    "INVOICES_COUNT_BUDGET_MS": 8,
    "WRITEBACK_MAX_ATTEMPTS": 12,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,
}

# Values of these keys given as environment variables are parsed as JSON
# (numbers, booleans, objects); everything else stays a string.
_PREFIX = "PORTAL_"


def instance_path() -> str:
    """Return the instance folder: ``$PORTAL_INSTANCE`` or ``./instance``."""
    return os.path.abspath(os.environ.get("PORTAL_INSTANCE") or os.path.join(os.getcwd(), "instance"))


def _read_or_create(path: Path, make) -> str:
    """Read a key file, creating it with mode 0600 on first use."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def load(app, test_config: dict | None) -> None:
    """Fill ``app.config`` in the documented order and make sure the keys exist."""
    inst = Path(app.instance_path)
    inst.mkdir(parents=True, exist_ok=True)
    os.chmod(inst, 0o700)
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    for name, raw in os.environ.items():
        if name.startswith(_PREFIX) and name != "PORTAL_INSTANCE":
            key = name[len(_PREFIX):]
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
            if isinstance(value, (int, float, bool, dict, list)) and not isinstance(DEFAULTS.get(key), str):
                app.config[key] = value
            else:
                app.config[key] = raw
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _read_or_create(inst / "secret_key", lambda: secrets.token_hex(32))
    if not app.config.get("DATA_KEY"):
        app.config["DATA_KEY"] = _read_or_create(inst / "data.key", lambda: Fernet.generate_key().decode())
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + str(inst / "portal.sqlite3")
    if not app.config["STORAGE_DIR"]:
        app.config["STORAGE_DIR"] = str(inst / "storage")
