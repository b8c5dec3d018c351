"""Time the HTML report of a 24-hour run sampled at 1 s (goal: < 10 s, HTML < 5 MB).

Run: python benchmarks/bench_report.py [--hours 24] [--pdf]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reports.html import write_report
from tests.synthetic import make_run_folder

GOAL_S = 10.0
GOAL_BYTES = 5_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--pdf", action="store_true", help="also time the PDF (needs Chromium)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_dir = make_run_folder(Path(tmp), hours=args.hours)
        print(f"synthetic run: {args.hours:g} h, {time.perf_counter() - started:.1f} s to generate, "
              f"samples.csv {(run_dir / 'samples.csv').stat().st_size / 1e6:.1f} MB")
        started = time.perf_counter()
        html = write_report(run_dir)
        elapsed = time.perf_counter() - started
        size = html.stat().st_size
        print(f"report.html: {elapsed:.2f} s, {size / 1e6:.2f} MB "
              f"(goal < {GOAL_S:g} s, < {GOAL_BYTES / 1e6:g} MB)")
        if args.pdf:
            from reports.pdf import html_to_pdf

            started = time.perf_counter()
            pdf = html_to_pdf(html, run_dir / "report.pdf")
            print(f"report.pdf: {time.perf_counter() - started:.2f} s, {pdf.stat().st_size / 1e6:.2f} MB")
    return 0 if elapsed < GOAL_S and size < GOAL_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
