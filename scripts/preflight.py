"""Before the test suite runs: is everything it needs on this machine? One line per missing piece, exit 1.

Checked up front so a run never stops half-way: the real-browser tests need Debian's Chromium and CJK
fonts, the PostgreSQL tests a server (``PORTAL_TEST_PG_ADMIN``, default the local one), the RQ job tests a
Redis server (``PORTAL_TEST_REDIS_URL``, default the local one).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

PG_ADMIN = os.environ.get("PORTAL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def missing() -> list[str]:
    """What the suite needs and this machine lacks, each with how to get it."""
    out = []
    if not os.access("/usr/bin/chromium", os.X_OK):
        out.append("Chromium missing (/usr/bin/chromium): run `make browser` as root, "
                   "or `sudo apt-get install chromium fonts-noto-cjk`")
    fc_list = shutil.which("fc-list")
    fonts = subprocess.run([fc_list], capture_output=True, text=True).stdout if fc_list else ""
    if "Noto Sans CJK" not in fonts:
        out.append("CJK fonts missing (Noto Sans CJK): `sudo apt-get install fonts-noto-cjk`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        out.append("playwright missing from the virtualenv: `make install`")
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        out.append("boto3 or moto[server] missing from the virtualenv (object-storage tests): `make install`")
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except ImportError:
        out.append("psycopg missing from the virtualenv: `make install`")
    except Exception as exc:  # any connection failure: say where and how to start it
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        out.append(f"PostgreSQL not reachable at {PG_ADMIN} ({reason}): start it "
                   "(`pg_ctlcluster $(ls /etc/postgresql) main start`) or set PORTAL_TEST_PG_ADMIN")
    try:
        import redis
        import rq  # noqa: F401

        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except ImportError:
        out.append("rq or redis missing from the virtualenv (job-worker tests): `make install`")
    except Exception as exc:
        out.append(f"Redis not reachable at {REDIS} ({exc}): `sudo apt-get install redis-server` and "
                   "`redis-server --daemonize yes`, or set PORTAL_TEST_REDIS_URL")
    return out


def main() -> int:
    problems = missing()
    for line in problems:
        print(f"make test: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
