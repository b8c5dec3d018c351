"""Calibration accuracy sweep: random packs and BMS states through the whole SOC calibration.

Run: ``python benchmarks/sweep_calibration.py [--count 20] [--jobs 2] [--seed 2025] [--json out.json]``.

Each scenario (written as a scenario YAML file to a temporary folder, so it goes through the same
loader and validation as any user scenario) draws:

* pack capacity: cell capacities around a mean uniform in 170-205 Ah (σ 1 Ah per cell,
  battery.md §1.8 / §8 spread), true SOC 5-95 %;
* the BMS's SOC estimate off the true SOC by up to ±80 points (clamped to 0-100), a stale learned
  capacity (150-210 Ah), a current-sense offset up to ±0.1 A and a gain error up to ±1 %;
* a random seed.

Every scenario runs ``procedures/soc_calibration.yaml`` through ``bench.run.execute_run``
(``--jobs`` worker processes). Reported per run: verdict, BMS learned capacity vs the simulator's
TRUE capacity (``record.sim_truth.capacity_ah``) and vs the bench reference capacity, and the
distribution of the errors. Acceptance: the learned capacity within ±3 % of true on EVERY run
(calibration procedure: ±3 %). Exit status 0 only then.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROCEDURE = ROOT / "procedures" / "soc_calibration.yaml"
TOLERANCE_PCT = 3.0  # calibration procedure: ±3 %
CELLS = 8
CAPACITY_RANGE_AH = (170.0, 205.0)
CELL_CAPACITY_SD_AH = 1.0  # battery.md §1.8 / §8: new-cell capacity σ 1.0 Ah
SOC_ERROR_MAX_PCT = 80.0
CURRENT_OFFSET_MAX_A = 0.1
GAIN_ERROR_MAX = 0.01


def random_scenario(index: int, rng: random.Random) -> dict[str, Any]:
    """One scenario document (the schema of ``bench.sim.scenario.Scenario``)."""
    mean = rng.uniform(*CAPACITY_RANGE_AH)
    capacities = [round(rng.gauss(mean, CELL_CAPACITY_SD_AH), 2) for _ in range(CELLS)]
    true_soc = rng.uniform(5.0, 95.0)
    estimate = min(100.0, max(0.0, true_soc + rng.uniform(-SOC_ERROR_MAX_PCT, SOC_ERROR_MAX_PCT)))
    return {
        "name": f"sweep_{index:02d}",
        "description": "random calibration sweep scenario (benchmarks/sweep_calibration.py)",
        "seed": rng.randrange(1, 1_000_000),
        "cells": {"capacity_ah": capacities, "soc_pct": round(true_soc, 2)},
        "bms": {
            "soc_estimate_pct": round(estimate, 2),
            "learned_capacity_ah": round(rng.uniform(150.0, 210.0), 1),
            "current_offset_a": round(rng.uniform(-CURRENT_OFFSET_MAX_A, CURRENT_OFFSET_MAX_A), 4),
            "current_gain_error": round(rng.uniform(-GAIN_ERROR_MAX, GAIN_ERROR_MAX), 5),
            "serial": f"VS02P-SWEEP-{index:04d}",
        },
    }


def run_one(scenario_path: str, folder: str) -> dict[str, Any]:
    """Worker: one whole calibration; returns the figures (picklable)."""
    from bench.run import RunRequest, execute_run

    started = time.perf_counter()
    record = execute_run(RunRequest(procedure=PROCEDURE, scenario=scenario_path, yes=True,
                                    out_dir=Path(folder) / "run", db=f"sqlite:///{Path(folder) / 'runs.db'}",
                                    watchdog=False), None)
    wall = time.perf_counter() - started
    true_ah = record.sim_truth.capacity_ah if record.sim_truth is not None else None
    learned = record.bms_learned_capacity_ah
    reference = record.reference_capacity_ah
    return {
        "scenario": Path(scenario_path).stem,
        "verdict": record.verdict,
        "abort_reason": record.abort_reason,
        "failed_checks": [f"{c.id}: {c.message}" for c in record.failed_checks],
        "wall_s": wall,
        "bench_h": record.bench_hours,
        "true_ah": true_ah,
        "learned_ah": learned,
        "reference_ah": reference,
        "learned_vs_true_pct": _pct(learned, true_ah),
        "learned_vs_reference_pct": _pct(learned, reference),
        "reference_vs_true_pct": _pct(reference, true_ah),
    }


def _pct(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return 100.0 * (value - reference) / reference


def histogram(values: list[float], edges: list[float]) -> list[tuple[str, int]]:
    rows = []
    for low, high in zip(edges, edges[1:], strict=False):
        rows.append((f"[{low:+.1f}, {high:+.1f})", sum(1 for v in values if low <= v < high)))
    rows.append(("outside", sum(1 for v in values if not edges[0] <= v < edges[-1])))
    return rows


def distribution(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no values"
    return (f"{name}: min {min(values):+.2f} %, median {statistics.median(values):+.2f} %, "
            f"max {max(values):+.2f} %, mean |err| {statistics.fmean(abs(v) for v in values):.2f} %")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    parser.add_argument("--keep", type=Path, default=None, help="keep scenarios and run folders here")
    options = parser.parse_args()
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        base = options.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        jobs = []
        for index in range(options.count):
            document = random_scenario(index, rng)
            path = base / f"{document['name']}.yaml"
            path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
            jobs.append((str(path), str(base / document["name"])))
        started = time.perf_counter()
        results: list[dict[str, Any]] = []
        with ProcessPoolExecutor(max_workers=options.jobs) as pool:
            futures = [pool.submit(run_one, *job) for job in jobs]
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                print(f"{result['scenario']}: {result['verdict']:<7} learned {result['learned_ah'] or 0:7.2f} Ah "
                      f"true {result['true_ah'] or 0:7.2f} Ah ({_fmt(result['learned_vs_true_pct'])}), "
                      f"ref {result['reference_ah'] or 0:7.2f} Ah ({_fmt(result['learned_vs_reference_pct'])}) "
                      f"{result['wall_s']:.0f} s", flush=True)
        elapsed = time.perf_counter() - started
    results.sort(key=lambda r: r["scenario"])
    vs_true = [r["learned_vs_true_pct"] for r in results if r["learned_vs_true_pct"] is not None]
    vs_ref = [r["learned_vs_reference_pct"] for r in results if r["learned_vs_reference_pct"] is not None]
    ref_true = [r["reference_vs_true_pct"] for r in results if r["reference_vs_true_pct"] is not None]
    print(f"\n{len(results)} calibrations in {elapsed:.0f} s wall ({options.jobs} processes)")
    print(distribution("learned vs TRUE capacity", vs_true))
    print(distribution("learned vs bench reference", vs_ref))
    print(distribution("bench reference vs TRUE", ref_true))
    print("histogram of learned vs true (%):")
    for label, count in histogram(vs_true, [-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]):
        print(f"  {label:<16} {count:>3} {'#' * count}")
    verdicts = {v: sum(1 for r in results if r["verdict"] == v) for v in ("pass", "fail", "aborted")}
    print(f"verdicts: {verdicts}")
    outside = [r for r in results if r["learned_vs_true_pct"] is None
               or abs(r["learned_vs_true_pct"]) > TOLERANCE_PCT]
    for r in results:
        if r["verdict"] != "pass" or r in outside:
            print(f"  {r['scenario']}: {r['verdict']} {r['abort_reason'] or ''} {r['failed_checks']}")
    if options.json is not None:
        options.json.write_text(json.dumps({"seed": options.seed, "elapsed_s": elapsed, "runs": results},
                                           indent=2), encoding="utf-8")
    ok = not outside and len(results) == options.count
    print(f"learned capacity within ±{TOLERANCE_PCT:g} % of true on every run: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f} %"


if __name__ == "__main__":
    raise SystemExit(main())
