"""OCR time per page on the corpus's paper invoices (target ≤ 5 s a page on a 2-core box).

    .venv/bin/python bench/bench_ocr.py [--runs 3]

Runs the OCR reader (after one warm-up read that loads the models) on each photo or scan of the corpus and
prints the median time per image and what it read.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from portal.recognition import ocr  # noqa: E402

FILES = ["vat_special_paper_sample_87654321.jpg", "vat_special_paper_photo_sichuan_00472703.jpg",
         "vat_ordinary_paper_photo_shenzhen.jpg", "vat_e_special_guizhou_00008006_render.jpg"]
TARGET_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not ocr.available():
        print("OCR engine not installed: pip install '.[ocr]'")
        return 1
    images = {name: Image.open(ROOT / "tests" / "corpus" / name) for name in FILES}
    ocr.read_image(next(iter(images.values())), page=0)  # warm-up: models load once per process
    worst = 0.0
    for name, image in images.items():
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            found = ocr.read_image(image, page=0)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        worst = max(worst, median)
        inv = found[0] if found else None
        print(f"{name:50s} {median:6.2f} s  {image.size[0]}×{image.size[1]}  "
              f"number={inv and inv.number} date={inv and inv.date} total={inv and inv.total}")
    print(f"slowest median {worst:.2f} s per page; target ≤ {TARGET_S:.0f} s: {'met' if worst <= TARGET_S else 'MISSED'}")
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
