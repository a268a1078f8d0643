"""Memory of an RQ worker (``flask worker``) through a batch of 50 pushed invoice files (50 pages).

    .venv/bin/python bench/bench_worker_rss.py [--files 50] [--redis redis://127.0.0.1:6379]

A temporary instance (SQLite) with a sync-mode enterprise and one bill whose push names ``--files``
single-page files (corpus PDFs, each made distinct by a trailing comment), served by a loopback file
server. The pass is dispatched onto Redis (a database number of its own, claimed like the tests do),
then ``flask --app portal worker --burst --queues cloud`` downloads, stores and recognises every file
(recognition runs in the FILE_WORKERS child processes). The bench samples every 50 ms the RSS of the
worker process and of its whole process tree. DESIGN target: worker ≤ 250 MB. Exit status 1 when
missed or when a file was not attached.
"""
from __future__ import annotations

import argparse
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_hostile import _memory, _tree  # noqa: E402

TARGET_MB = 250
LOCK = "portal-test-lock"  # the same claim as tests/test_jobs.py: never two users of one Redis database
PDFS = ["vat_e_special_guizhou_00008006.pdf", "shudian_vat_special_sichuan_23512000000005197325.pdf",
        "shudian_vat_ordinary_sichuan_1455.45.pdf", "shudian_air_itinerary_sample.pdf"]


def file_server(files: list[bytes]) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            n = int(self.path.rsplit("/", 1)[-1].split(".")[0])
            body = files[n]
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def claim_redis(base: str):
    from redis import Redis

    for number in range(15, 0, -1):
        client = Redis.from_url(f"{base}/{number}")
        if client.set(LOCK, str(os.getpid()), nx=True, ex=3600):
            client.flushdb()
            client.set(LOCK, "held", ex=3600)
            return client, f"{base}/{number}"
        client.close()
    raise SystemExit("no free Redis database number")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--redis", default=os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    args = parser.parse_args()

    from cryptography.fernet import Fernet

    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-rss-"))
    files = [(ROOT / "tests" / "corpus" / PDFS[n % len(PDFS)]).read_bytes() + f"\n%bench {n}\n".encode()
             for n in range(args.files)]
    server = file_server(files)
    host = f"127.0.0.1:{server.server_address[1]}"
    client, redis_url = claim_redis(args.redis)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({"PORTAL_INSTANCE": str(tmp / "instance"), "PORTAL_SECRET_KEY": "bench",
                "PORTAL_DATA_KEY": Fernet.generate_key().decode(),
                "PORTAL_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'portal.sqlite3'}",
                "PORTAL_STORAGE_DIR": str(tmp / "storage"), "PORTAL_REDIS_URL": redis_url,
                "PORTAL_FETCH_ALLOWED_HOSTS": host, "PORTAL_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    os.environ.update(env)
    try:
        from flask_migrate import upgrade
        from sqlalchemy import func, select

        from portal import bills, create_app
        from portal.crypto import encrypt
        from portal.extensions import db
        from portal.jobs import redis_queue
        from portal.models import Enterprise, ExpectedInvoice

        app = create_app()
        with app.app_context():
            upgrade()
            ent = Enterprise(tax_no="91440300MA5BENCH01", name="基准测试企业", client_id="bench-client",
                             client_secret_enc=encrypt("bench-secret-0123456789"),
                             encrypt_key_enc=encrypt("0123456789abcdef"), image_mode="sync")
            db.session.add(ent)
            db.session.commit()
            bills.open_bill(ent, {"bill_no": "RSS-0001"}, "bench")
            for n in range(args.files):
                item = {"serialNo": f"RSS{n:06d}", "invoiceNo": f"2411200000{n:010d}", "invoiceType": "31",
                        "invoiceDate": "20240528", "totalAmount": "100.00",
                        "downloadUrl": f"http://{host}/f/{n}.pdf", "billNo": "RSS-0001"}
                db.session.add(bills.expected_from_push(ent.id, item, n, origin="push", bill_no="RSS-0001"))
            db.session.commit()
            queued = redis_queue.dispatch()
            db.engine.dispose()
        assert queued["fetch_downloads"] == 1, queued

        started = time.perf_counter()
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal", "worker", "--burst",
                                   "--queues", "cloud"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=(tmp / "worker.log").open("wb"))
        peak = {"rss": 0, "tree": 0}
        while worker.poll() is None:
            rss, _ = _memory(worker.pid)
            peak["rss"] = max(peak["rss"], rss)
            peak["tree"] = max(peak["tree"], sum(_memory(p)[0] for p in _tree(worker.pid)))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        if worker.returncode:
            raise SystemExit(f"worker exited {worker.returncode}: {(tmp / 'worker.log').read_text()[-2000:]}")
        with app.app_context():
            attached = db.session.scalar(select(func.count()).where(ExpectedInvoice.fetched_image_id.is_not(None)))
            errors = db.session.scalars(select(ExpectedInvoice.fetch_error).where(
                ExpectedInvoice.fetch_error.is_not(None)).limit(3)).all()
            db.engine.dispose()
    finally:
        server.shutdown()
        client.flushdb()
        client.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    mb = 1024 * 1024
    print(f"RQ worker through a batch of {args.files} pushed single-page files: {attached} attached in "
          f"{seconds:.1f} s (worker start included); load average {os.getloadavg()[0]:.2f}")
    print(f"  peak RSS: worker process {peak['rss'] / mb:.0f} MB; worker and its file-work children "
          f"{peak['tree'] / mb:.0f} MB (RSS summed, shared pages counted in each)")
    ok = peak["rss"] <= TARGET_MB * mb and attached == args.files
    if errors:
        print("  first errors: " + "; ".join(errors))
    print(f"target: worker ≤ {TARGET_MB} MB and every file attached: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
