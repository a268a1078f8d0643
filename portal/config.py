"""Configuration: defaults in code, then ``instance/config.py``, then ``PORTAL_*`` variables.

The first start of a deployment generates its ``SECRET_KEY`` and the data
encryption key into the instance folder (mode 0600).  Both must be backed up:
without the data key the stored client secrets and ERP passwords are lost.
"""
from __future__ import annotations

import json
import os
import secrets
from decimal import Decimal
from pathlib import Path

from cryptography.fernet import Fernet

from .files.storage import parse_storage_url

DEFAULTS = {
    "SQLALCHEMY_DATABASE_URI": None,  # filled with instance/portal.sqlite3
    "SQLALCHEMY_ENGINE_OPTIONS": {},
    "STORAGE_DIR": None,  # filled with instance/storage
    # s3://bucket/prefix keeps the files in an S3-compatible store instead of STORAGE_DIR; credentials
    # come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...).
    "STORAGE_URL": "",
    "S3_ENDPOINT_URL": "",  # e.g. http://minio:9000 for MinIO; empty = AWS S3
    "S3_REGION": "",  # empty = AWS_DEFAULT_REGION / AWS_REGION
    "S3_ADDRESSING_STYLE": "",  # path | virtual | auto; empty = path with an endpoint URL, auto without
    "S3_CONNECT_TIMEOUT": 3.05,
    "S3_READ_TIMEOUT": 30.0,
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
    "MAX_FILE_BYTES": 30 * 1024 * 1024,
    "MAX_PAGES": 200,
    # One limits set for every reader and renderer of an uploaded file (portal/files/limits.py).
    "MAX_PIXEL_BYTES": 160 * 1024 * 1024,  # decoded bytes of one image frame (mode and bit depth)
    "MAX_XML_BYTES": 5 * 1024 * 1024,
    "MAX_ZIP_MEMBERS": 2000,
    "MAX_ZIP_MEMBER_BYTES": 20 * 1024 * 1024,
    "MAX_ZIP_TOTAL_BYTES": 100 * 1024 * 1024,
    "MAX_DRAW_OPS": 400_000,  # objects, glyphs and path points drawn on one OFD page
    # Budget of one recognition or render, done in a child process (portal/files/filework.py).
    "FILE_WORK_SECONDS": 5.0,  # per step: opening the file, then each page
    "FILE_WORK_TOTAL_SECONDS": 60.0,  # the whole file
    "FILE_WORK_MEMORY": 256 * 1024 * 1024,  # bytes above the child's own baseline
    "FILE_WORKERS": 2,  # child processes: the cap on concurrent heavy work
    "FILE_WORKERS_PER_TENANT": 1,  # of them, how many one enterprise may hold at once
    "FILE_WORK_QUEUE_SECONDS": 10.0,  # longest wait for a free worker before "busy"
    # The vendor's production invoice cloud; only the demo and the tests point at the sandbox.
    "INVOICE_CLOUD_URL": "https://api.piaozone.com",
    "LOG_LEVEL": "INFO",
    "OUTBOUND_CONNECT_TIMEOUT": 3.05,
    "OUTBOUND_READ_TIMEOUT": 15.0,
    # Comma-separated host, host:port or *.suffix; empty = any public host. Loopback, private,
    # link-local and mapped addresses are refused unless their host is listed here.
    "FETCH_ALLOWED_HOSTS": "",
    "ERP_ALLOWED_HOSTS": "",  # Galaxy hosts the portal may call: comma-separated host, host:port, *.suffix; empty = any
    "ERP_MAX_REPLY_BYTES": 32 * 1024 * 1024,  # largest Galaxy reply read, as received and once unzipped
    "FETCH_MAX_BYTES": 30 * 1024 * 1024,
    "FETCH_DEADLINE": 120.0,  # seconds for one whole download: connect, headers and body
    "FETCH_RUN_BUDGET": 300.0,  # seconds after which one sync run starts no further download
    # A failed download waits FETCH_RETRY_BASE seconds, doubling up to FETCH_RETRY_MAX, and
    # is given up after FETCH_MAX_ATTEMPTS tries (the last error stays on the invoice).
    "FETCH_MAX_ATTEMPTS": 8,
    "FETCH_RETRY_BASE": 60,
    "FETCH_RETRY_MAX": 3600,
    # 发票查验 (enterprises with verify_invoices on): one invoice key is not verified again within
    # VERIFY_INTERVAL seconds; a call that got no answer is retried after VERIFY_RETRY_BASE seconds,
    # doubling up to VERIFY_RETRY_MAX, at most VERIFY_MAX_ATTEMPTS times; one job run starts no
    # further call after VERIFY_RUN_BUDGET seconds; one call gets VERIFY_DEADLINE seconds in all.
    "VERIFY_INTERVAL": 30 * 24 * 3600,
    "VERIFY_MAX_ATTEMPTS": 6,
    "VERIFY_RETRY_BASE": 300,
    "VERIFY_RETRY_MAX": 6 * 3600,
    "VERIFY_RUN_BUDGET": 120.0,
    "VERIFY_DEADLINE": 30.0,
    "PUBLIC_BASE_URL": "",  # e.g. https://images.example.com; empty = from the request
    "API_TOKEN_TTL": 7200,
    "VIEW_LINK_TTL": 7 * 24 * 3600,
    "LOGIN_THROTTLE_LIMIT": 5,  # attempts per account and window
    "LOGIN_THROTTLE_IP_LIMIT": 50,  # failed attempts per client address and window (office NAT: looser)
    "LOGIN_THROTTLE_WINDOW": 15 * 60,
    # Reverse proxies in front of the portal whose X-Forwarded-* headers are trusted; 0 = none.
    "PROXY_FIX_HOPS": 0,
    "PUSH_MAX_SKEW": 600,
    "PUSH_MAX_BYTES": 10 * 1024 * 1024,
    # OCR never runs in the upload request: an image or scanned PDF without a complete invoice is 识别中
    # until job recognise_image has run OCR on it (and a photo whose QR lacks names or total is filled by it).
    "OCR_BACKGROUND": True,
    # onnxruntime intra-op threads of the OCR engine in its file-work child (0: one per core).
    "OCR_THREADS": 1,
    "OCR_LEASE": 300,  # seconds a claimed OCR job belongs to its worker; a killed worker's job is due after this
    "OCR_MAX_ATTEMPTS": 3,
    "OCR_RETRY_BASE": 30,  # a failed OCR waits this long, doubling per attempt
    "OCR_PAGE_SECONDS": 60.0,  # file-work budget of one page under OCR (the engine loads on first use)
    "OCR_TOTAL_SECONDS": 300.0,
    # OCR runs in its own file-work children: this many per job process, each with this address-space
    # budget above its baseline (the engine maps ~1.4 GB; FILE_WORK_MEMORY would starve it).
    "OCR_WORKERS": 1,
    "OCR_WORK_MEMORY": 3 * 1024 * 1024 * 1024,
    "OCR_QUEUE_SECONDS": 120.0,  # longest wait of a job for a free file-work child
    "OCR_PASS_SECONDS": 60.0,  # the in-process runner starts no further OCR in one pass after this
    # The invoices list gives up an exact count that takes longer than this (SQLite and PostgreSQL).
    "INVOICES_COUNT_BUDGET_MS": 8,
    "WRITEBACK_MAX_ATTEMPTS": 12,
    # Seconds a claimed write-back job belongs to its runner; a runner killed mid-job frees it after this.
    "WRITEBACK_LEASE": 600,
    # redis://host:6379/0 → periodic jobs go to RQ queues run by `flask worker`; empty = in-process runner.
    "REDIS_URL": "",
    # Storage cleaning: part files and blobs without a row untouched this long (seconds) are
    # removed, by `flask storage clean` and by the job runners every STORAGE_CLEAN_EVERY seconds.
    # 影像匹配: the bill's amount may differ from its invoices' total by this much (yuan, e.g. "0.05")
    # before the match reports amount_mismatch for the bill; 0 = they must be equal.
    "MATCH_AMOUNT_TOLERANCE": "0.00",
    "STORAGE_CLEAN_AGE": 3600,
    "STORAGE_CLEAN_EVERY": 3600,
    # Login sessions end after this long without a request, and this long after login at most.
    "SESSION_IDLE_LIFETIME": 8 * 3600,
    "SESSION_ABSOLUTE_LIFETIME": 7 * 24 * 3600,
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


class MissingDataKey(RuntimeError):
    """Encrypted secrets are stored but the key that decrypts them is gone."""


def _encrypted_secrets_stored(engine) -> bool:
    """True when the database already holds secrets encrypted with some data key."""
    from sqlalchemy import inspect, text

    tables = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        for table in ("enterprises", "docking_connections"):
            if table in tables and conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first():
                return True
    return False


def ensure_data_key(app, engine) -> None:
    """Create ``instance/data.key`` on the first start; refuse to start when it is missing later.

    A new key cannot decrypt the secrets stored with the old one, so generating one silently would
    lose every client secret and ERP password: the operator must restore the backup instead.
    """
    if app.config.get("DATA_KEY"):
        return
    path = Path(app.instance_path) / "data.key"
    if _encrypted_secrets_stored(engine):
        raise MissingDataKey(
            f"找不到数据密钥 {path}，但数据库中已有加密保存的企业密钥或星空密码。"
            "请从备份恢复该文件（或用 PORTAL_DATA_KEY 提供原密钥）后再启动；不会自动生成新密钥，以免已存的密钥无法解密。")
    app.config["DATA_KEY"] = _read_or_create(path, lambda: Fernet.generate_key().decode())


def match_amount_tolerance(value) -> Decimal:
    """``MATCH_AMOUNT_TOLERANCE`` as a non-negative amount in yuan; ValueError (in Chinese) otherwise."""
    try:
        tolerance = Decimal(str(value if value not in (None, "") else "0").strip())
    except ArithmeticError:
        tolerance = None
    if tolerance is None or not tolerance.is_finite() or tolerance < 0:
        raise ValueError(f"MATCH_AMOUNT_TOLERANCE 应为不小于 0 的金额（元），例如 0.05；当前为：{value!r}")
    return tolerance


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
    if not app.config.get("DATA_KEY") and (inst / "data.key").exists():
        app.config["DATA_KEY"] = (inst / "data.key").read_text().strip()
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + str(inst / "portal.sqlite3")
    if not app.config["STORAGE_DIR"]:
        app.config["STORAGE_DIR"] = str(inst / "storage")
    if app.config["STORAGE_URL"]:
        parse_storage_url(app.config["STORAGE_URL"])  # a mistyped URL stops the start, not the first upload
    match_amount_tolerance(app.config["MATCH_AMOUNT_TOLERANCE"])  # likewise a mistyped tolerance
    # The signed cookie itself expires with the absolute lifetime (Flask's default is 31 days).
    app.config["PERMANENT_SESSION_LIFETIME"] = int(app.config["SESSION_ABSOLUTE_LIFETIME"])
