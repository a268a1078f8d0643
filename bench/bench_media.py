"""Benchmark thumbnails and page renders, and the memory of a 50-page PDF batch.

Usage::

    .venv/bin/python bench/bench_media.py            # timings + peak RSS

Prints, per media type of the sample corpus, the median time of a 320 px thumbnail, of a
1600 px page render (what OCR and downloads read) and of the viewer's preview (``render_preview``:
a PDF page with small text is rendered larger, so that it is legible at 100 %); then, in a fresh child process (so earlier work does not
inflate the figure), the peak RSS while rendering every page of a 50-page PDF built on
the fly from a corpus page.  Target: under 250 MB.
"""

from __future__ import annotations

import io
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from portal.files import media  # noqa: E402

CORPUS = ROOT / "tests" / "corpus"
BATCH_SOURCE = "shudian_vat_special_sichuan_23512000000005197325.pdf"
BATCH_PAGES = 50
RSS_TARGET_MB = 250


def _timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def bench_timings() -> None:
    """Median thumbnail / page-render milliseconds per media type of the corpus."""
    thumbs: dict[str, list[float]] = defaultdict(list)
    pages: dict[str, list[float]] = defaultdict(list)
    previews: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for path in sorted(CORPUS.iterdir()):
        if not path.is_file():
            continue
        data = path.read_bytes()
        kind = media.sniff_file(data)
        if kind is None:
            continue
        counts[kind] += 1
        media.thumbnail(data, kind)  # warm-up: fonts, decoders, lazy imports
        thumbs[kind] += _timed(lambda: media.thumbnail(data, kind), 5)
        pages[kind] += _timed(lambda: media.render_page(data, kind, 0, max_side=1600), 3)
        previews[kind] += _timed(lambda: media.render_preview(data, kind, 0, max_side=1600), 3)
    print(f"{'type':18} {'files':>5} {'thumb 320 ms':>13} {'page 1600 ms':>13} {'preview ms':>11} {'slowest':>8}")
    for kind in sorted(counts):
        print(f"{kind:18} {counts[kind]:5d} {statistics.median(thumbs[kind]):13.1f} "
              f"{statistics.median(pages[kind]):13.1f} {statistics.median(previews[kind]):11.1f} "
              f"{max(previews[kind]):8.1f}")


def build_batch_pdf(pages: int = BATCH_PAGES) -> bytes:
    """A PDF made of one corpus page imported ``pages`` times."""
    import pypdfium2 as pdfium

    with media.PDFIUM_LOCK:
        src = pdfium.PdfDocument((CORPUS / BATCH_SOURCE).read_bytes())
        dst = pdfium.PdfDocument.new()
        try:
            for _ in range(pages):
                dst.import_pages(src, [0])
            out = io.BytesIO()
            dst.save(out)
        finally:
            dst.close()
            src.close()
    return out.getvalue()


def _rss_mb() -> float:
    """Peak resident set size of this process in MB.

    VmHWM belongs to this process image; ``ru_maxrss`` is not used because Linux
    carries it over from the parent across fork+exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_child() -> None:
    """Run in a fresh process: render every page of the batch, report peak RSS."""
    baseline = _rss_mb()
    data = build_batch_pdf()
    count = media.page_count(data, media.PDF)
    start = time.perf_counter()
    total = 0
    media.thumbnail(data, media.PDF)
    for page in range(count):
        total += len(media.render_page(data, media.PDF, page, max_side=2000))
    elapsed = time.perf_counter() - start
    print(f"{count} {len(data)} {total} {elapsed:.3f} {baseline:.1f} {_rss_mb():.1f}")


def bench_rss() -> None:
    """Peak RSS of a fresh process rendering a 50-page PDF at 2000 px, page by page."""
    proc = subprocess.run([sys.executable, __file__, "--rss-child"], capture_output=True, text=True, check=True)
    count, size, total, elapsed, baseline, peak = proc.stdout.split()
    print(
        f"\n50-page PDF batch ({int(size) / 1e6:.1f} MB, {count} pages at 2000 px, "
        f"{int(total) / 1e6:.1f} MB of JPEG in {float(elapsed):.2f} s, "
        f"{float(elapsed) / int(count) * 1000:.0f} ms/page)"
    )
    verdict = "OK" if float(peak) < RSS_TARGET_MB else "OVER TARGET"
    print(f"peak RSS {float(peak):.1f} MB (after imports {float(baseline):.1f} MB); target < {RSS_TARGET_MB} MB: {verdict}")


if __name__ == "__main__":
    if "--rss-child" in sys.argv:
        rss_child()
    else:
        bench_timings()
        bench_rss()
