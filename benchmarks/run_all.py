"""Run every benchmark, one after the other, and print a summary.

Run: ``python benchmarks/run_all.py [--quick] [--skip NAME ...] [--log-dir DIR]``.

Each benchmark runs as its own process (so one's memory or threads cannot skew the next) with
its output saved to ``--log-dir`` (default: a temporary folder, printed at the end). ``--quick``
shortens the long ones (fleet 100 vehicles, sweep 4 scenarios, one calibration scenario) for a
smoke run; the figures in docs/benchmarks.md come from the full run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] | None = None  # None: same as args


BENCHMARKS = [
    Benchmark("drivers", "bench_drivers.py", ("2.0",), ("0.5",)),
    Benchmark("can_decode", "bench_can_decode.py"),
    Benchmark("can_lockstep", "bench_can_lockstep.py", ("--cycles", "2000"), ("--cycles", "300")),
    Benchmark("pack_speed", "pack_speed.py"),
    Benchmark("reference_method", "reference_method_error.py", ("200",), ("10",)),
    Benchmark("report", "bench_report.py"),
    Benchmark("fleet", "bench_fleet.py", (), ("--vehicles", "100", "--days", "120")),
    Benchmark("calibration", "bench_calibration.py", (), ("--scenario", "healthy")),
    Benchmark("sweep", "sweep_calibration.py", ("--count", "20", "--jobs", "2"),
              ("--count", "4", "--jobs", "2")),
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{date.today().isoformat()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"load average at start {load:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", action="append", default=[], choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--only", action="append", default=[], choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--log-dir", type=Path, default=None)
    options = parser.parse_args()
    log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="bench-all-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(machine(), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    summary: list[tuple[str, int, float, str]] = []
    for bench in BENCHMARKS:
        if bench.name in options.skip or (options.only and bench.name not in options.only):
            continue
        args = bench.quick_args if options.quick and bench.quick_args is not None else bench.args
        log = log_dir / f"{bench.name}.txt"
        print(f"\n### {bench.name}: python benchmarks/{bench.script} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        with log.open("w", encoding="utf-8") as sink:
            process = subprocess.Popen([sys.executable, str(HERE / bench.script), *args], cwd=ROOT, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert process.stdout is not None
            last = ""
            for line in process.stdout:
                sys.stdout.write(line)
                sink.write(line)
                if line.strip():
                    last = line.strip()
            status = process.wait()
        summary.append((bench.name, status, time.perf_counter() - started, last))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    print(f"\n{'benchmark':<14}{'status':>8}{'seconds':>9}  last line")
    for name, status, seconds, last in summary:
        print(f"{name:<14}{'ok' if status == 0 else f'exit {status}':>8}{seconds:>9.1f}  {last[:90]}")
    print(f"logs: {log_dir}")
    return 0 if all(status == 0 for _, status, _, _ in summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
