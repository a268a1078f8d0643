"""Push ingest throughput: signed, AES-encrypted pushes of 100 invoices each.

    .venv/bin/python bench/bench_push.py [--pushes 300] [--batch 100] [--database-url URL]

Builds a temporary instance (``PORTAL_INSTANCE`` in a temp dir, SQLite unless
``--database-url`` names e.g. a PostgreSQL database), one enterprise, and sends N
pushes through the Flask test client (the whole request: JSON parse, sign check,
decrypt, validate, one bulk ``INSERT … ON CONFLICT DO NOTHING``, audit, commit), then
N more through the service function :func:`portal.push.receive` alone. The bodies are
built before the clock starts. Then it repeats the first pushes to time the all-duplicates
path. Prints invoices/s for each; DESIGN §9 target: ≥ 10,000 invoices/s. Exit status 1
when the HTTP figure misses it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 10_000
SECRET = "bench-secret-0123456789"
KEY = "0123456789abcdef"


def invoices(start: int, count: int) -> list[dict]:
    """``count`` distinct invoices (half legacy, half 数电) naming a handful of bills."""
    out = []
    for n in range(start, start + count):
        if n % 2:
            inv = {"invoiceCode": "012001800311", "invoiceNo": f"{n % 100_000_000:08d}", "invoiceType": "10"}
        else:
            inv = {"invoiceNo": f"2411200000{n:010d}", "invoiceType": "31"}
        inv.update({
            "serialNo": f"BENCH{n:010d}", "invoiceDate": "20240528", "amount": "4197.17", "taxAmount": "251.83",
            "totalAmount": "4449.00", "checkCode": "76939056883466677916", "salerName": "北京某某科技有限公司",
            "salerTaxNo": "91110108MA01234567", "buyerName": "基准测试企业", "buyerTaxNo": "91440300MA00000011",
            "downloadUrl": f"https://files.example.com/inv/{n}.pdf", "billNo": f"FYBX{n // 500:06d}",
        })
        out.append(inv)
    return out


# One millisecond apart, counting back from the start: every push has a timestamp of its own.
_STAMPS = itertools.count(int(time.time() * 1000), -1)


def envelope(ent, items: list[dict]) -> dict:
    """A signed push; each gets its own timestamp, as a sender must (a timestamp and sign carry one body)."""
    from portal import signing

    ts = next(_STAMPS)
    return {"taxNo": ent.tax_no, "client_id": ent.client_id, "timestamp": ts,
            "sign": signing.sign(ent.client_id, SECRET, ts, 0), "encType": 0, "encrypt": True,
            "data": signing.aes_ecb_encrypt(json.dumps(items, ensure_ascii=False).encode(), KEY)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-push-")
    os.environ["PORTAL_INSTANCE"] = tmp
    from cryptography.fernet import Fernet
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from portal import create_app, push
    from portal.crypto import encrypt
    from portal.extensions import db
    from portal.models import AuditEvent, Enterprise, ExpectedInvoice

    config = {"SECRET_KEY": "bench", "DATA_KEY": Fernet.generate_key().decode(), "STORAGE_DIR": str(Path(tmp) / "storage")}
    if args.database_url:
        config["SQLALCHEMY_DATABASE_URI"] = args.database_url
    app = create_app(config)
    client = app.test_client()
    with app.app_context():
        upgrade()
        ent = Enterprise(tax_no="91440300MA5BENCH01", name="基准测试企业", client_id="bench-client",
                         client_secret_enc=encrypt(SECRET), encrypt_key_enc=encrypt(KEY), image_mode="sync")
        db.session.add(ent)
        db.session.commit()
        n, size = args.pushes, args.batch
        http_bodies = [json.dumps(envelope(ent, invoices(i * size, size))).encode() for i in range(n)]
        service_bodies = [envelope(ent, invoices((n + i) * size, size)) for i in range(n)]
        db_name = db.engine.dialect.name

    # Warm-up (imports, statement cache, first connection) with invoices that are not counted.
    with app.app_context():
        warm = json.dumps(envelope(ent, invoices(10 ** 9, size))).encode()
    assert client.post("/api/v1/push/invoices", data=warm, content_type="application/json").status_code == 200

    results = {}
    started = time.perf_counter()
    for body in http_bodies:
        resp = client.post("/api/v1/push/invoices", data=body, content_type="application/json")
        assert resp.status_code == 200 and resp.get_json()["accepted"] == size, resp.get_json()
    results["HTTP (test client)"] = time.perf_counter() - started

    with app.app_context():
        started = time.perf_counter()
        for body in service_bodies:
            got = push.receive(body)
            db.session.commit()
            assert got.accepted == size
        results["service function"] = time.perf_counter() - started

    started = time.perf_counter()
    for body in http_bodies:
        resp = client.post("/api/v1/push/invoices", data=body, content_type="application/json")
        assert resp.get_json()["duplicates"] == size
    results["HTTP, all duplicates"] = time.perf_counter() - started

    with app.app_context():
        rows = db.session.scalar(select(func.count()).select_from(ExpectedInvoice))
        audits = db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "push"))
    assert rows == (2 * n + 1) * size, rows
    assert audits == 3 * n + 1, audits

    print(f"push ingest on {db_name}: {n} pushes × {size} encrypted invoices per path, {rows} rows stored")
    for label, seconds in results.items():
        rate = n * size / seconds
        print(f"  {label:22} {rate:>10,.0f} invoices/s   {seconds / n * 1000:6.2f} ms per push")
    http_rate = n * size / results["HTTP (test client)"]
    with app.app_context():
        db.engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    ok = http_rate >= TARGET
    print(f"target ≥ {TARGET:,} invoices/s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
