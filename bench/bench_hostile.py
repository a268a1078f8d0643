"""Hostile files in flight: another tenant's upload latency and the memory of the process tree.

    .venv/bin/python bench/bench_hostile.py [--seconds 30] [--bombs 6]

Serves the portal on a loopback port (werkzeug, threaded) from a temporary instance
with SQLite and the default budgets, with two enterprises. The hostile tenant sends,
all at once: an 84 KB 50-page PDF built to be slow, a heavy OFD (uploaded, then its page
requested several times through the signed view link) and ``--bombs`` 381 KB 16-bit
RGBA PNGs of 49 Mpx. Meanwhile the other tenant uploads a 1-page e-invoice PDF every
0.5 s and the bench samples the RSS of the server process and of its whole process tree
(the file workers included; PSS too, which counts pages shared with the fork server once).

Prints the figures and the target (DESIGN §9): another tenant's upload answers in
≤ 2 s and the process stays under 500 MB. Exit status 1 when the target is missed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NORMAL = "vat_e_special_guizhou_00008006.pdf"
TARGET_LATENCY_S = 2.0
TARGET_RSS_MB = 500


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if line.split()[-1] == "kB"}
        return values.get("Rss", 0), values.get("Pss", 0)
    except (FileNotFoundError, ProcessLookupError, ValueError, PermissionError):
        return 0, 0


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the other tenant keeps uploading")
    parser.add_argument("--bombs", type=int, default=6, help="16-bit RGBA PNGs sent in parallel")
    parser.add_argument("--renders", type=int, default=3, help="requests for the heavy OFD's page")
    args = parser.parse_args()

    import logging

    import requests
    from werkzeug.serving import make_server

    from tests.hostile_files import heavy_ofd, png, slow_pdf

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("portal").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    os.environ["PORTAL_INSTANCE"] = str(tmp / "instance")
    from flask_migrate import upgrade

    from portal import create_app
    from portal.crypto import encrypt
    from portal.demo import corpus_dir
    from portal.extensions import db
    from portal.models import Enterprise

    print("building the hostile set ...", flush=True)
    hostile_pdf = slow_pdf(pages=50, ops=20000)
    hostile_ofd = heavy_ofd(objects=1000, points=300)
    bomb = png(7000, 7000, 16, 6)
    bombs = [bomb + b"\0" * i for i in range(args.bombs)]  # distinct contents, one build (readers ignore the tail)
    normal = (corpus_dir() / NORMAL).read_bytes()
    print(f"slow PDF {len(hostile_pdf) // 1024} KB (50 pages), heavy OFD {len(hostile_ofd) // 1024} KB, "
          f"{len(bombs)} x {len(bombs[0]) // 1024} KB 16-bit RGBA PNG of 49 Mpx")

    app = create_app({"LOG_LEVEL": "WARNING"})
    tenants = {"hostile": ("914403001922038216", "bench-h"), "normal": ("91440300MA5G1234X0", "bench-n")}
    with app.app_context():
        upgrade()
        for name, (tax_no, client_id) in tenants.items():
            db.session.add(Enterprise(tax_no=tax_no, name=f"{name} 租户", client_id=client_id,
                                      client_secret_enc=encrypt("bench-secret-0123456789"),
                                      encrypt_key_enc=encrypt("0123456789abcdef")))
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1"

    def auth(client_id: str) -> dict:
        token = requests.post(base + "/token", json={"client_id": client_id, "client_secret": "bench-secret-0123456789"},
                              timeout=10).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}

    h_auth, n_auth = auth("bench-h"), auth("bench-n")
    for headers, no in ((h_auth, "EVIL-1"), (n_auth, "GOOD-1")):
        requests.post(base + "/bills", json={"bill_no": no}, headers=headers, timeout=10).raise_for_status()

    # Warm the file workers the way a running server has them: one normal upload first.
    warm = requests.post(f"{base}/bills/GOOD-1/images", headers=n_auth, files={"file": ("warm.pdf", normal)}, timeout=60)
    warm.raise_for_status()

    peak = {"rss": 0, "tree_rss": 0, "tree_pss": 0}
    sampling = threading.Event()

    def sample() -> None:
        me = os.getpid()
        while not sampling.is_set():
            rss, _ = _memory(me)
            tree = [_memory(p) for p in _tree(me)]
            peak["rss"] = max(peak["rss"], rss)
            peak["tree_rss"] = max(peak["tree_rss"], sum(r for r, _ in tree))
            peak["tree_pss"] = max(peak["tree_pss"], sum(p for _, p in tree))
            time.sleep(0.05)

    outcomes: list[str] = []
    lock = threading.Lock()

    def hostile_upload(name: str, data: bytes) -> None:
        t0 = time.perf_counter()
        resp = requests.post(f"{base}/bills/EVIL-1/images", headers=h_auth, files={"file": (name, data)}, timeout=300)
        text = resp.json().get("message", "") if resp.status_code >= 400 else "accepted"
        with lock:
            outcomes.append(f"{name}: {resp.status_code} in {time.perf_counter() - t0:.1f} s — {text}")
        if name == "heavy.ofd" and resp.status_code == 201:
            image_id = resp.json()["images"][0]["id"]
            link = requests.get(f"{base}/bills/EVIL-1/view-link", headers=h_auth, timeout=10).json()["url"]
            link = link.replace("http://localhost", f"http://127.0.0.1:{server.server_port}")

            def render(i: int) -> None:
                t1 = time.perf_counter()
                page = requests.get(f"{link}/images/{image_id}/pages/1", timeout=300)
                with lock:
                    outcomes.append(f"heavy.ofd page render #{i + 1}: {page.status_code} in "
                                    f"{time.perf_counter() - t1:.1f} s — {page.text[:60] if page.status_code >= 400 else 'rendered'}")

            renders = [threading.Thread(target=render, args=(i,)) for i in range(args.renders)]
            for t in renders:
                t.start()
            for t in renders:
                t.join()

    latencies: list[float] = []
    failures: list[str] = []

    def other_tenant(until: float) -> None:
        i = 0
        with requests.Session() as session:
            while time.monotonic() < until:
                i += 1
                # Each upload a new bill-image pair: the same content again would be answered from the bill at once.
                no = f"GOOD-{i + 1}"
                session.post(base + "/bills", json={"bill_no": no}, headers=n_auth, timeout=10).raise_for_status()
                t0 = time.perf_counter()
                resp = session.post(f"{base}/bills/{no}/images", headers=n_auth, timeout=60,
                                    files={"file": (NORMAL, normal)})
                latencies.append(time.perf_counter() - t0)
                if resp.status_code != 201:
                    failures.append(f"{resp.status_code} {resp.text[:120]}")
                time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    files = [("slow.pdf", hostile_pdf), ("heavy.ofd", hostile_ofd)] + [(f"bomb-{i}.png", b) for i, b in enumerate(bombs)]
    attackers = [threading.Thread(target=hostile_upload, args=f) for f in files]
    t0 = time.monotonic()
    for t in attackers:
        t.start()
    time.sleep(0.2)  # the hostile set is in flight
    victim = threading.Thread(target=other_tenant, args=(t0 + args.seconds,))
    victim.start()
    victim.join()
    for t in attackers:
        t.join()
    sampling.set()
    sampler.join()
    server.shutdown()
    server.server_close()

    mb = 1024 * 1024
    print("hostile tenant:")
    for line in sorted(outcomes):
        print("  " + line)
    qs = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    print(f"other tenant: {len(latencies)} uploads of a 1-page PDF, median {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {qs[18] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms, failed {len(failures)}")
    print(f"peak RSS: server process {peak['rss'] / mb:.0f} MB; process tree {peak['tree_rss'] / mb:.0f} MB RSS, "
          f"{peak['tree_pss'] / mb:.0f} MB PSS (workers share the fork server's pages)")
    ok_latency = not failures and max(latencies) <= TARGET_LATENCY_S
    ok_memory = peak["rss"] < TARGET_RSS_MB * mb and peak["tree_pss"] < TARGET_RSS_MB * mb
    print(f"target: other tenant ≤ {TARGET_LATENCY_S:g} s — {'met' if ok_latency else 'MISSED'}; "
          f"process (and tree PSS) < {TARGET_RSS_MB} MB — {'met' if ok_memory else 'MISSED'}")
    if failures:
        print("failed uploads:", *failures[:5], sep="\n  ")
    return 0 if ok_latency and ok_memory else 1


if __name__ == "__main__":
    sys.exit(main())
