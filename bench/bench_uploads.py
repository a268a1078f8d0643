"""Concurrent uploads over real HTTP: nothing lost, nothing stored twice.

    .venv/bin/python bench/bench_uploads.py [--clients 50] [--bills 5]

Serves the portal on a loopback port (werkzeug, threaded) from a temporary
instance with SQLite, opens ``--bills`` bills through the ERP API, then lets
``--clients`` threads upload corpus files at the same moment — every file to
every bill, several times over, in shuffled order. Afterwards it checks that
each bill holds each distinct file exactly once, the store holds each content
exactly once, no temporary file is left behind and every request got a 2xx.
Prints requests/s and the latency percentiles. DESIGN §9: 50 concurrent
uploads, nothing lost or stored twice. Exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FILES = ["vat_e_special_guizhou_00008006.pdf", "shudian_vat_special_24112000000048542163.ofd",
         "vat_e_ordinary_tianjin_33207675.png", "vat_e_ordinary_zhejiang_83089647_original_invoice.xml",
         "vat_e_special_guizhou_00008006_render.jpg"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--bills", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="times each client repeats its uploads")
    args = parser.parse_args()

    import logging

    import requests
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    os.environ["PORTAL_INSTANCE"] = str(tmp / "instance")
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from portal import create_app
    from portal.crypto import encrypt
    from portal.demo import corpus_dir
    from portal.extensions import db
    from portal.models import Blob, Enterprise, Image

    corpus = corpus_dir()
    contents = {name: (corpus / name).read_bytes() for name in FILES}
    app = create_app({"LOG_LEVEL": "WARNING"})
    with app.app_context():
        upgrade()
        db.session.add(Enterprise(tax_no="914403001922038216", name="并发上传基准", client_id="bench01",
                                  client_secret_enc=encrypt("bench-secret-0123456789"), encrypt_key_enc=encrypt("0123456789abcdef")))
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1"
    token = requests.post(base + "/token", json={"client_id": "bench01", "client_secret": "bench-secret-0123456789"},
                          timeout=10).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    bill_nos = [f"BENCH-{i:03d}" for i in range(args.bills)]
    for no in bill_nos:
        requests.post(base + "/bills", json={"bill_no": no}, headers=auth, timeout=10).raise_for_status()

    work = [(no, name) for no in bill_nos for name in FILES] * args.rounds
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(args.clients)

    def client(seed: int) -> None:
        mine = work[:]
        random.Random(seed).shuffle(mine)
        mine = mine[: max(1, len(work) * 2 // args.clients)]
        with requests.Session() as session:
            start_line.wait()
            for no, name in mine:
                t0 = time.perf_counter()
                resp = session.post(f"{base}/bills/{no}/images", headers=auth, timeout=60,
                                    files={"file": (name, contents[name])})
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if resp.status_code not in (200, 201):
                        failures.append(f"{no}/{name}: {resp.status_code} {resp.text[:200]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    server.shutdown()
    server.server_close()

    ok = not failures
    with app.app_context():
        per_bill = db.session.execute(select(Image.bill_id, func.count()).group_by(Image.bill_id)).all()
        blobs = db.session.scalar(select(func.count()).select_from(Blob))
        db.engine.dispose()
    uploaded_pairs = {(no, name) for no, name in work}
    root = tmp / "instance" / "storage"
    stored = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    blob_files = [p for p in stored if len(p.name) == 64 and p.parts[0] != "derived"]
    temp_left = [p for p in stored if p.parts[0] == "tmp"]
    print(f"{len(latencies)} uploads by {args.clients} concurrent clients in {elapsed:.1f} s "
          f"({len(latencies) / elapsed:.1f} req/s)")
    qs = statistics.quantiles(latencies, n=100)
    print(f"latency p50 {qs[49] * 1000:.0f} ms, p95 {qs[94] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    expected_per_bill = {len({n for b, n in uploaded_pairs if b == no}) for no in bill_nos}
    print(f"images per bill: {sorted(c for _, c in per_bill)} (expected {sorted(expected_per_bill)} each)")
    print(f"blob rows {blobs}, blob files {len(blob_files)}, distinct contents {len(FILES)}, temp files left {len(temp_left)}")
    if failures:
        print("failed requests:", *failures[:10], sep="\n  ")
    if any(c != len(FILES) for _, c in per_bill) or len(per_bill) != args.bills:
        ok = False
        print("FAIL: a bill lost a file or holds one twice")
    if blobs != len(FILES) or len(blob_files) != len(FILES) or temp_left:
        ok = False
        print("FAIL: the store lost a file, holds one twice or kept temporary files")
    print("nothing lost, nothing stored twice" if ok else "CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
