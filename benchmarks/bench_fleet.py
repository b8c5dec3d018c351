"""Fleet rules at scale: 1,000 vehicles x 1 year hourly (~8.8 M rows), time and peak memory.

Run: ``python benchmarks/bench_fleet.py [--vehicles 1000] [--days 365] [--format csv]``.
Generation and analysis each run in their own process so that each peak RSS is its own.
Issue 7 target: analysis < 60 s and < 4 GB on the 2-core machine; the analysis must flag exactly
the vehicles the generator marked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str], stdout: Path) -> tuple[float, float]:
    """Run ``python -m bench.fleet.cli ARGS`` (stdout to a file); return seconds and its peak RSS in MB."""
    start = time.perf_counter()
    with stdout.open("w") as sink:
        child = subprocess.Popen([sys.executable, "-m", "bench.fleet.cli", *args], stdout=sink)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"bench fleet {args[0]} exited with {child.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux: kB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--format", choices=["csv", "parquet", "jsonl"], default="csv")
    parser.add_argument("--seed", type=int, default=11)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as folder:
        data = Path(folder) / f"fleet.{options.format}"
        truth_file = Path(folder) / "truth.json"
        gen_s, gen_mb = run(["simulate", "--vehicles", str(options.vehicles), "--days", str(options.days),
                             "--out", str(data), "--seed", str(options.seed), "--truth", str(truth_file)],
                            Path(folder) / "simulate.out")
        truth = json.loads(truth_file.read_text())
        ana_s, ana_mb = run(["analyze", str(data), "--json"], Path(folder) / "report.json")
        report = json.loads((Path(folder) / "report.json").read_text())
        flagged: dict[str, list[str]] = {}
        for flag in report["flags"]:
            flagged.setdefault(flag["vehicle_id"], []).append(flag["rule"])
        exact = flagged == truth["flagged"]
        size_mb = data.stat().st_size / 1e6
        print(f"rows: {truth['meta']['rows']:,} ({options.vehicles} vehicles x {options.days} days, "
              f"{options.format}, {size_mb:.0f} MB)")
        print(f"simulate: {gen_s:.1f} s, peak RSS {gen_mb:.0f} MB")
        print(f"analyze:  {ana_s:.1f} s, peak RSS {ana_mb:.0f} MB")
        print(f"flagged vehicles: {len(flagged)} (truth {len(truth['flagged'])}), exact match: {exact}")
        ok = exact and ana_s < 60 and ana_mb < 4096
        print("PASS" if ok else "FAIL", "(target: analyze < 60 s, < 4096 MB, exact match)")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
