"""``make test``: the whole suite on SQLite and, at the same time, again on PostgreSQL.

Two pytest processes side by side (the box's cores are used by both; each test owns its files, its
Redis database number and, on PostgreSQL, the run's database, so the passes never meet):

* the SQLite pass: every test, the real-browser ones in ``tests/e2e`` included, its output live here;
* the PostgreSQL pass: the same tests but ``tests/e2e`` (they drive pages, not queries) with every
  test's ``app`` on a database of the run on ``PORTAL_TEST_DATABASE_URL`` (default the local server);
  its output goes to ``test-artifacts/pytest-postgresql.log`` and its summary is printed at the end.

When that server does not answer, the PostgreSQL pass is skipped with a loud banner (and the exit status
says so: 3) rather than silently. Any other pass failing, or collecting no tests (pytest's 5), fails the run.
Extra arguments go to both pytest processes, e.g. ``scripts/test_passes.py -x -k push``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_LOG = ROOT / "test-artifacts" / "pytest-postgresql.log"
NOT_RUN = 3


def pg_reachable(url: str) -> str | None:
    """None when ``url``'s server answers, else why not."""
    try:
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(url)
        psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, password=u.password,
                        dbname=u.database, connect_timeout=3).close()
        return None
    except Exception as exc:  # any failure: say it
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("\n" + "!" * width, file=sys.stderr)
    for line in lines:
        print(f"! {line}", file=sys.stderr)
    print("!" * width + "\n", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", "-q", *argv]
    url = os.environ.get("PORTAL_TEST_DATABASE_URL") or DEFAULT_PG
    sqlite_env = {k: v for k, v in os.environ.items() if k != "PORTAL_TEST_DATABASE_URL"}
    reason = pg_reachable(url)
    pg = None
    started = time.monotonic()
    timings: dict[str, float] = {}
    if reason is None:
        PG_LOG.parent.mkdir(exist_ok=True)
        log = PG_LOG.open("wb")
        # -p no:cacheprovider: the two passes must not write .pytest_cache at the same time.
        pg = subprocess.Popen([*pytest, "-p", "no:cacheprovider", "--ignore=tests/e2e"], cwd=ROOT,
                              env={**os.environ, "PORTAL_TEST_DATABASE_URL": url}, stdout=log, stderr=subprocess.STDOUT)

        def wait_pg() -> None:
            pg.wait()
            timings["PostgreSQL"] = time.monotonic() - started

        waiter = threading.Thread(target=wait_pg)
        waiter.start()
    else:
        banner([f"PostgreSQL at {url} is not reachable ({reason}):",
                "the PostgreSQL pass does NOT run, only the SQLite one.",
                "Start the server or point PORTAL_TEST_DATABASE_URL at one."])
    sqlite_rc = subprocess.call(pytest, cwd=ROOT, env=sqlite_env)
    timings["SQLite"] = time.monotonic() - started
    if pg is None:
        banner(["The PostgreSQL pass did NOT run (see above): the suite ran on SQLite only."])
        return sqlite_rc or NOT_RUN
    if pg.poll() is None:
        print(f"\nSQLite pass done; waiting for the PostgreSQL pass ({PG_LOG.relative_to(ROOT)}) …", flush=True)
    waiter.join()
    log.close()
    text = PG_LOG.read_text(errors="replace")
    summary = text.rfind("= short test summary info =")
    tail = text[summary:] if summary >= 0 else text[-3000:]
    if not pg.returncode and text.strip():
        tail = text.strip().splitlines()[-1]
    print(f"\n--- PostgreSQL pass ({url}; full output in {PG_LOG.relative_to(ROOT)}):")
    print(tail.rstrip())
    print("make test: " + ", ".join(f"{name} pass {seconds / 60:.1f} min" for name, seconds in timings.items())
          + f" (side by side, {time.monotonic() - started:.0f} s in all)")
    for name, rc in (("SQLite", sqlite_rc), ("PostgreSQL", pg.returncode)):
        if rc:
            print(f"make test: the {name} pass failed (pytest exit {rc}"
                  + ("; no tests ran" if rc == 5 else "") + ")", file=sys.stderr)
    return sqlite_rc or pg.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
