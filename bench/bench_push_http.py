"""Push ingest over real HTTP through gunicorn (``flask serve``): SQLite against PostgreSQL.

    .venv/bin/python bench/bench_push_http.py [--pushes 300] [--batch 100] [--workers 2] [--clients 4]
        [--pg-admin postgresql+psycopg://postgres@127.0.0.1:5432/test] [--only sqlite|postgresql]

For each database: a temporary instance (``PORTAL_INSTANCE`` in a temp dir; on PostgreSQL a database
of its own, dropped afterwards) migrated, one enterprise, then ``flask --app portal serve`` with
``--workers`` gunicorn processes on a free loopback port. ``--clients`` threads send the signed,
AES-encrypted pushes (bodies built before the clock starts) over keep-alive connections, then the
same pushes again (all duplicates). Prints invoices/s for each; exit status 1 when PostgreSQL misses
the target (DESIGN §9: ≥ 10,000 invoices/s with 2 workers). The client shares the machine's cores
with the server: the figure is what this box does end to end, not the server alone.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_push import KEY, SECRET, TARGET, envelope, invoices  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(url: str, env: dict, n: int, size: int) -> list[bytes]:
    """Migrate ``url``, add the enterprise, build the bodies (in this process, before any timing)."""
    from flask_migrate import upgrade

    from portal import create_app
    from portal.crypto import encrypt
    from portal.extensions import db
    from portal.models import Enterprise

    old = dict(os.environ)
    os.environ.update(env)
    try:
        app = create_app({"SECRET_KEY": env["PORTAL_SECRET_KEY"], "DATA_KEY": env["PORTAL_DATA_KEY"],
                          "SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            upgrade()
            ent = Enterprise(tax_no="91440300MA5BENCH01", name="基准测试企业", client_id="bench-client",
                             client_secret_enc=encrypt(SECRET), encrypt_key_enc=encrypt(KEY), image_mode="sync")
            db.session.add(ent)
            db.session.commit()
            bodies = [json.dumps(envelope(ent, invoices(i * size, size))).encode() for i in range(n + 1)]
            db.engine.dispose()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return bodies


def count_rows(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM expected_invoices")).scalar()
    engine.dispose()
    return n


def send_all(port: int, bodies: list[bytes], clients: int, expect: str | None) -> float:
    """Send every body once from ``clients`` threads; seconds from the first to the last answer."""
    chunks = [bodies[i::clients] for i in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def run(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        for body in mine:
            conn.request("POST", "/api/v1/push/invoices", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 200 or (expect and json.loads(answer)[expect] == 0):
                errors.append(f"{resp.status} {answer[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} pushes failed, first: {errors[0]}")
    return seconds


def serve(env: dict, port: int, workers: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "portal", "serve", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers)],
        env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"flask serve exited: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("flask serve did not answer /healthz within 60 s")


def run_one(label: str, url: str, args, tmp: Path) -> dict:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({"PORTAL_INSTANCE": str(tmp / "instance"), "PORTAL_SQLALCHEMY_DATABASE_URI": url,
                "PORTAL_SECRET_KEY": "bench", "PORTAL_DATA_KEY": Fernet.generate_key().decode(),
                "PORTAL_STORAGE_DIR": str(tmp / "storage"), "PORTAL_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT)})
    n, size = args.pushes, args.batch
    bodies = prepare(url, env, n, size)
    warm, bodies = bodies[-1], bodies[:-1]
    port = free_port()
    proc = serve(env, port, args.workers, tmp / f"serve-{label}.log")
    try:
        # Warm-up over a few connections, so each worker process has its imports, first connection and
        # statement cache before the clock starts (the same body: stored once, then duplicates).
        send_all(port, [warm] * 4 * args.workers, 2 * args.workers, None)
        new = send_all(port, bodies, args.clients, "accepted")
        dup = send_all(port, bodies, args.clients, "duplicates")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    rows = count_rows(url)
    assert rows == (n + 1) * size, rows
    return {"label": label, "new": n * size / new, "dup": n * size / dup, "new_ms": new / n * 1000, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pg-admin", default=os.environ.get("PORTAL_TEST_DATABASE_URL", PG_ADMIN))
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()

    from sqlalchemy import create_engine, text

    tmp = Path(tempfile.mkdtemp(prefix="bench-push-http-"))
    results = []
    try:
        if args.only != "postgresql":
            results.append(run_one("sqlite", f"sqlite:///{tmp / 'portal.sqlite3'}", args, tmp))
        if args.only != "sqlite":
            name = "bench_push_" + secrets.token_hex(4)
            admin = create_engine(args.pg_admin, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                results.append(run_one("postgresql", args.pg_admin.rsplit("/", 1)[0] + "/" + name, args, tmp))
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"push ingest over HTTP via gunicorn: {args.workers} workers × 4 threads, {args.clients} client "
          f"connections, {args.pushes} pushes × {args.batch} encrypted invoices; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    base = results[0]["new"]
    for r in results:
        print(f"  {r['label']:10} new {r['new']:>8,.0f} invoices/s ({r['new_ms']:5.1f} ms per push, "
              f"×{r['new'] / base:.2f})   all duplicates {r['dup']:>8,.0f} invoices/s")
    pg = [r for r in results if r["label"] == "postgresql"]
    if not pg:
        return 0
    ok = pg[0]["new"] >= TARGET
    print(f"target ≥ {TARGET:,} invoices/s on PostgreSQL with {args.workers} workers: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
