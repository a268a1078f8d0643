"""Recognition speed over the invoice corpus.

    .venv/bin/python bench/bench_recognition.py [--runs 5] [--corpus DIR] [--pool]

Runs `recognise` on every corpus file N times (after one warm-up pass that is not
counted), prints the median time per file and per file type, and checks the design
targets: an e-invoice file (PDF/OFD/XML) ≤ 50 ms median, a photo or scan ≤ 150 ms median.
With ``--pool`` each file goes the way an upload does: sniffed, page-counted and
recognised in a budgeted worker process (portal.files.filework), the hop included.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portal.recognition import recognise  # noqa: E402

TARGET_MS = {"e-invoice": 50.0, "image": 150.0}
KIND_GROUP = {"xml": "e-invoice", "ofd": "e-invoice", "pdf": "e-invoice", "image": "image"}


def default_corpus() -> Path:
    """The sample invoices kept in the repository."""
    return Path(__file__).resolve().parents[1] / "tests" / "corpus"


def sniff(data: bytes) -> tuple[str, str] | None:
    """(media type, kind) from magic bytes, as the upload layer would; None for other files."""
    if data.startswith(b"%PDF"):
        return "application/pdf", "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "application/ofd", "ofd"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "image"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "image"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff", "image"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "application/xml", "xml"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=default_corpus())
    parser.add_argument("--pool", action="store_true", help="through the worker pool, as uploads are")
    args = parser.parse_args()
    read = recognise
    if args.pool:
        from portal import config
        from portal.files import filework

        def read(data: bytes, media_type: str):
            return filework.inspect(data, config=config.DEFAULTS).readings

    files = []
    for path in sorted(args.corpus.iterdir()):
        data = path.read_bytes() if path.is_file() else b""
        sniffed = sniff(data)
        if sniffed:
            files.append((path.name, data, *sniffed))
    if not files:
        print(f"no corpus files in {args.corpus}")
        return 1

    per_file: dict[str, float] = {}
    per_kind: dict[str, list[float]] = {}
    print(f"{'file':58} {'kind':6} {'median ms':>9}  found")
    for name, data, media_type, kind in files:
        found = read(data, media_type)  # warm-up: imports, PDFium and codec set-up
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            read(data, media_type)
            times.append((time.perf_counter() - started) * 1000)
        median = statistics.median(times)
        per_file[name] = median
        per_kind.setdefault(kind, []).append(median)
        label = ", ".join(f"{inv.source}:{inv.number}" for inv in found) or "-"
        print(f"{name:58} {kind:6} {median:9.1f}  {label}")

    print()
    print(f"{'type':10} {'files':>5} {'median ms':>9} {'max ms':>8}")
    for kind, values in sorted(per_kind.items()):
        print(f"{kind:10} {len(values):5d} {statistics.median(values):9.1f} {max(values):8.1f}")

    print()
    ok = True
    for group, target in TARGET_MS.items():
        values = [v for kind, vs in per_kind.items() if KIND_GROUP[kind] == group for v in vs]
        if not values:
            continue
        median = statistics.median(values)
        met = median <= target
        ok &= met
        verdict = "meets" if met else "MISSES"
        print(f"{group:10} median {median:6.1f} ms (max {max(values):6.1f}) — {verdict} target ≤ {target:.0f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
