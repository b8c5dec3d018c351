"""Calibration accuracy sweep: random packs and BMS states through the whole SOC calibration.

Run: ``python benchmarks/sweep_calibration.py [--count 50] [--jobs 2] [--seed 2026] [--json out.json]
[--population depot|balanced]``.

Each scenario (written as a scenario YAML file to a temporary folder, so it goes through the same
loader and validation as any user scenario) draws, for the ``depot`` population (the packs a repair
depot receives; the default):

* cell capacities around a mean uniform in 170-205 Ah with σ 1 % per cell (battery.md §1.8 / §8);
* the cells' state: half the packs top-aligned with up to 3 Ah of extra charge per cell, half with
  each cell at the pack SOC ± up to 1 % of its own capacity; pack SOC 1-60 %;
* one pack in eight over-discharged: one to three cells pushed below 2.5 V at rest (the pack SOC
  at 0.3-1 %, the chosen cells 0.1-1 % of their capacity below empty);
* ambient 10-35 °C;
* the BMS's SOC estimate off the true SOC by up to ±80 points (clamped to 0-100), a stale learned
  capacity (150-215 Ah), a current-sense offset up to ±0.1 A and a gain error up to ±1 %;
* a random seed.

The ``balanced`` population is the earlier sweep (top-balanced packs at 25 °C, SOC 5-95 %).

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


def depot_scenario(index: int, rng: random.Random) -> dict[str, Any]:
    """One pack as a repair depot receives it (the schema of ``bench.sim.scenario.Scenario``)."""
    mean = rng.uniform(*CAPACITY_RANGE_AH)
    capacities = [round(rng.gauss(mean, 0.01 * mean), 2) for _ in range(CELLS)]
    cells: dict[str, Any] = {"capacity_ah": capacities}
    over_discharged = rng.random() < 1.0 / 8.0
    if over_discharged:
        pack_soc = rng.uniform(0.3, 1.0)
        chosen = rng.sample(range(CELLS), rng.randint(1, 3))
        cells.update(soc_pct=round(pack_soc, 3), alignment="soc", spread_sd_pct=0.0, imbalance_ah=[
            round(-(pack_soc + rng.uniform(0.1, 1.0)) / 100.0 * capacities[i], 3) if i in chosen else 0.0
            for i in range(CELLS)])
        kind = f"over-discharged, cells {sorted(i + 1 for i in chosen)} below 2.5 V"
    elif rng.random() < 0.5:
        pack_soc = rng.uniform(1.0, 60.0)
        cells.update(soc_pct=round(pack_soc, 2), alignment="top",
                     imbalance_ah=[round(rng.uniform(0.0, 3.0), 3) for _ in range(CELLS)])
        kind = "top-aligned + up to 3 Ah per cell"
    else:
        pack_soc = rng.uniform(1.0, 60.0)
        spread = rng.uniform(0.2, 1.0)
        cells["soc_pct"] = [round(min(100.0, max(0.0, pack_soc + rng.uniform(-spread, spread))), 3)
                            for _ in range(CELLS)]
        kind = f"per-cell SOC ±{spread:.2f} %"
    estimate = _soc_estimate(rng, pack_soc)
    return {
        "name": f"depot_{index:02d}",
        "description": f"repair-depot sweep pack: {kind} (benchmarks/sweep_calibration.py)",
        "seed": rng.randrange(1, 1_000_000),
        "ambient_c": round(rng.uniform(10.0, 35.0), 1),
        "cells": cells,
        "bms": _stale_bms(rng, estimate, (150.0, 215.0), f"VS02P-26-{index:06d}"),
    }


def random_scenario(index: int, rng: random.Random) -> dict[str, Any]:
    """One top-balanced scenario document (the earlier, ``balanced`` population)."""
    mean = rng.uniform(*CAPACITY_RANGE_AH)
    capacities = [round(rng.gauss(mean, CELL_CAPACITY_SD_AH), 2) for _ in range(CELLS)]
    true_soc = rng.uniform(5.0, 95.0)
    estimate = _soc_estimate(rng, true_soc)
    return {
        "name": f"sweep_{index:02d}",
        "description": "random calibration sweep scenario (benchmarks/sweep_calibration.py)",
        "seed": rng.randrange(1, 1_000_000),
        "cells": {"capacity_ah": capacities, "soc_pct": round(true_soc, 2)},
        "bms": _stale_bms(rng, estimate, (150.0, 210.0), f"VS02P-SWEEP-{index:04d}"),
    }


def _soc_estimate(rng: random.Random, true_soc: float) -> float:
    """The BMS's SOC estimate: off the true SOC by up to ±80 points, clamped to 0-100 %."""
    return min(100.0, max(0.0, true_soc + rng.uniform(-SOC_ERROR_MAX_PCT, SOC_ERROR_MAX_PCT)))


def _stale_bms(rng: random.Random, estimate: float, learned_range_ah: tuple[float, float],
               serial: str) -> dict[str, Any]:
    """A BMS with a stale learned capacity and a current-sense offset and gain error (the draws in
    the order the published sweeps made them, so their seeds give the same packs)."""
    return {
        "soc_estimate_pct": round(estimate, 2),
        "learned_capacity_ah": round(rng.uniform(*learned_range_ah), 1),
        "current_offset_a": round(rng.uniform(-CURRENT_OFFSET_MAX_A, CURRENT_OFFSET_MAX_A), 4),
        "current_gain_error": round(rng.uniform(-GAIN_ERROR_MAX, GAIN_ERROR_MAX), 5),
        "serial": serial,
    }


def run_one(scenario_path: str, folder: str) -> dict[str, Any]:
    """Worker: one whole calibration; returns the figures (picklable)."""
    from bench.run import RunRequest, execute_run

    started = time.perf_counter()
    record = execute_run(RunRequest(procedure=PROCEDURE, scenario=scenario_path, yes=True,
                                    out_dir=Path(folder) / "run", db=f"sqlite:///{Path(folder) / 'runs.db'}",
                                    watchdog=False), None)
    wall = time.perf_counter() - started
    truth = record.sim_truth
    true_ah = truth.capacity_ah if truth is not None else None
    learned = record.bms_learned_capacity_ah
    # the learning discharge completed when the run went on to the rest at empty
    discharged = any(s.id == "rest_empty" for s in record.steps)
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
        "completed_discharge": discharged,
        "protection_events": truth.protection_events if truth is not None else ["no ground truth"],
        "cell_v_max": truth.cell_v_max if truth is not None else None,
        "cell_v_min": truth.cell_v_min_after_recovery if truth is not None else None,
        "actions": [c.action for c in record.failed_checks if c.action],
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
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--population", choices=("depot", "balanced"), default="depot")
    parser.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    parser.add_argument("--keep", type=Path, default=None, help="keep scenarios and run folders here")
    options = parser.parse_args()
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        base = options.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        jobs = []
        kinds: dict[str, str] = {}
        for index in range(options.count):
            document = (depot_scenario if options.population == "depot" else random_scenario)(index, rng)
            path = base / f"{document['name']}.yaml"
            path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
            kinds[document["name"]] = document["description"].split(": ", 1)[-1].split(" (")[0]
            jobs.append((str(path), str(base / document["name"])))
        started = time.perf_counter()
        results: list[dict[str, Any]] = []
        with ProcessPoolExecutor(max_workers=options.jobs) as pool:
            futures = [pool.submit(run_one, *job) for job in jobs]
            for future in as_completed(futures):
                result = future.result()
                result["kind"] = kinds.get(result["scenario"], "")
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
    # the acceptance: learned capacity within ±3 % of TRUE on every run that completed the learning
    # discharge, and no protection event in ground truth on any run
    outside = [r for r in results if r["completed_discharge"] and (
        r["learned_vs_true_pct"] is None or abs(r["learned_vs_true_pct"]) > TOLERANCE_PCT)]
    protected = [r for r in results if r["protection_events"]]
    print(f"protection events (ground truth): {sum(len(r['protection_events']) for r in protected)}")
    highest = [r["cell_v_max"] for r in results if r["cell_v_max"] is not None]
    lowest = [r["cell_v_min"] for r in results if r["cell_v_min"] is not None]
    if highest and lowest:
        print(f"true cell voltage over all runs: max {max(highest):.3f} V, min after recovery {min(lowest):.3f} V")
    print("\n| scenario | pack | verdict | true Ah | learned Ah | vs true | reference Ah | vs ref | "
          "max cell V | why not pass |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        why = r["abort_reason"] or "; ".join(a.split(":")[0] for a in r["actions"]) or (
            "; ".join(c.split(":")[0] for c in r["failed_checks"]))
        print(f"| {r['scenario']} | {r.get('kind', '')} | {r['verdict']} | {r['true_ah'] or 0:.2f} | "
              f"{r['learned_ah'] or 0:.2f} | {_fmt(r['learned_vs_true_pct'])} | {r['reference_ah'] or 0:.2f} | "
              f"{_fmt(r['learned_vs_reference_pct'])} | {r['cell_v_max'] or 0:.3f} | "
              f"{why if r['verdict'] != 'pass' else ''} |")
    for r in results:
        if r in outside or r in protected:
            print(f"  {r['scenario']}: {r['verdict']} {r['abort_reason'] or ''} {r['protection_events']} "
                  f"{r['failed_checks']}")
    if options.json is not None:
        options.json.write_text(json.dumps({"seed": options.seed, "elapsed_s": elapsed, "runs": results},
                                           indent=2), encoding="utf-8")
    ok = not outside and not protected and len(results) == options.count
    print(f"learned capacity within ±{TOLERANCE_PCT:g} % of true on every run that completed the discharge, "
          f"no protection event: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f} %"


if __name__ == "__main__":
    raise SystemExit(main())
