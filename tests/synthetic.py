"""A synthetic but physically plausible run folder, for tests (reports, store, UI) and benchmarks.

The profile is a capacity-check cycle of an 8S LFP pack computed in closed form (no simulator):
rest, CC-CV charge to full, rest, CC discharge, rest, recharge. Cell voltages come from the
recommended LFP OCV table (battery.md §1.4) plus an I·R term; one cell sits slightly higher in
SOC so divergence opens up near the top of charge, as battery.md §1.6 describes.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import can
import numpy as np

from bench.record import (
    N_CELLS,
    SAMPLE_COLUMNS,
    AsReceived,
    CheckRecord,
    EventRecord,
    FileRecord,
    InstrumentIdentity,
    PackIdentity,
    ProcedureIdentity,
    RunRecord,
    StationIdentity,
    StepRecord,
)
from reports.rundir import RECORD_FILE, SAMPLES_FILE, sha256_file

OCV_TABLE = Path(__file__).resolve().parent.parent / "bench" / "sim" / "data" / "lfp_ocv_recommended.csv"
CAPACITY_AH = 200.0  # battery.md §0: 200 Ah nameplate
CELL_RESISTANCE_OHM = 0.4e-3  # battery.md §1.5: ≤ 0.2 mΩ AC cell + busbar/connection share
SOC_START_PCT = 40.0
SOC_EMPTY_PCT = 3.0

#: (step id, kind, share of the run's duration)
_PLAN: tuple[tuple[str, str, float], ...] = (
    ("rest_initial", "rest", 0.04),
    ("charge_full", "charge", 0.30),
    ("rest_full", "rest", 0.06),
    ("discharge_capacity", "discharge", 0.34),
    ("rest_empty", "rest", 0.06),
    ("recharge", "charge", 0.20),
)


@dataclass(frozen=True)
class _Phase:
    step_id: str
    kind: str
    start: int
    end: int  # exclusive sample index


def _ocv_curve() -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(OCV_TABLE, delimiter=",", comments="#", skiprows=2, usecols=(0, 1))
    return data[:, 0], data[:, 1]


def _phases(n: int) -> list[_Phase]:
    phases, start = [], 0
    for index, (step_id, kind, share) in enumerate(_PLAN):
        end = n if index == len(_PLAN) - 1 else start + max(1, round(share * n))
        phases.append(_Phase(step_id, kind, start, end))
        start = end
    return phases


def _current_profile(phases: list[_Phase], soc_start: float) -> np.ndarray:
    """Bench current per 1 s sample: CC-CV charges (exponential taper), CC discharge."""
    n = phases[-1].end
    current = np.zeros(n)
    soc = soc_start
    for phase in phases:
        length = phase.end - phase.start
        if phase.kind == "rest" or length == 0:
            continue
        target = 100.0 if phase.kind == "charge" else SOC_EMPTY_PCT
        charge_ah = (target - soc) / 100.0 * CAPACITY_AH
        if phase.kind == "charge":
            # 80 % of the step at constant current, then a taper (CV) carrying 8 % of the charge
            cc_len = int(0.8 * length)
            cv_len = length - cc_len
            taper = np.exp(-np.linspace(0.0, 4.0, cv_len))
            i_cc = 0.92 * charge_ah * 3600.0 / cc_len
            i_cv0 = 0.08 * charge_ah * 3600.0 / taper.sum()
            current[phase.start : phase.start + cc_len] = i_cc
            current[phase.start + cc_len : phase.end] = i_cv0 * taper
        else:
            current[phase.start : phase.end] = charge_ah * 3600.0 / length
        soc = target
    return current


def synthesize_samples(hours: float, seed: int = 7) -> tuple[dict[str, np.ndarray], list[str], list[_Phase]]:
    """Sample columns (1 s period) of a ``hours``-long cycle, step ids per row, and the phases."""
    n = max(600, int(hours * 3600))
    rng = np.random.default_rng(seed)
    phases = _phases(n)
    current = _current_profile(phases, SOC_START_PCT)
    t = np.arange(n, dtype=float)
    ah = np.cumsum(current) / 3600.0
    soc_pack = np.clip(SOC_START_PCT + 100.0 * ah / CAPACITY_AH, 0.0, 100.0)
    soc_grid, ocv_grid = _ocv_curve()
    # Cell 5 carries +1.2 % SOC (self-discharge mismatch); the others scatter ±0.2 %.
    offsets = rng.normal(0.0, 0.2, N_CELLS)
    offsets[4] = 1.2
    resistance = CELL_RESISTANCE_OHM * rng.normal(1.0, 0.03, N_CELLS)
    cells = np.empty((N_CELLS, n))
    for cell in range(N_CELLS):
        soc_cell = np.clip(soc_pack + offsets[cell], 0.0, 100.0)
        cells[cell] = np.interp(soc_cell, soc_grid, ocv_grid) + current * resistance[cell]
    cells += rng.normal(0.0, 0.0005, cells.shape)
    pack_v = cells.sum(axis=0) + current * 0.6e-3  # cable drop between instrument and pack
    heat = np.convolve(np.abs(current) / 100.0, np.ones(1800) / 1800.0)[:n]
    temp_max = 24.0 + 4.0 * heat + rng.normal(0.0, 0.05, n)
    # BMS SOC: coulomb counter with a 0.8 A offset (drifts), reset to 100 % at the end of the charge
    bms_soc = SOC_START_PCT + 100.0 * np.cumsum(current + 0.8) / 3600.0 / CAPACITY_AH
    full_at = phases[1].end
    bms_soc[full_at:] += 100.0 - bms_soc[full_at - 1]
    bms_soc = np.clip(np.round(bms_soc, 1), 0.0, 100.0)
    step_ids: list[str] = []
    step_ah = np.empty(n)
    for phase in phases:
        step_ids.extend([phase.step_id] * (phase.end - phase.start))
        step_ah[phase.start : phase.end] = np.cumsum(current[phase.start : phase.end]) / 3600.0
    columns = {
        "t_s": t,
        "pack_v": pack_v,
        "pack_i": current,
        **{f"cell{c + 1}_v": cells[c] for c in range(N_CELLS)},
        "temp_max_c": temp_max,
        "temp_min_c": temp_max - 1.5 - 0.5 * heat,
        "bms_pack_v": cells.sum(axis=0) + rng.normal(0.0, 0.01, n),
        "bms_i": current + 0.8,
        "bms_soc_pct": bms_soc,
        "ref_soc_pct": soc_pack,
        "ah": ah,
        "wh": np.cumsum(current * pack_v) / 3600.0,
        "step_ah": step_ah,
        "divergence_v": cells.max(axis=0) - cells.min(axis=0),
        "supply_on": (current > 0).astype(float),
        "load_on": (current < 0).astype(float),
    }
    return columns, step_ids, phases


def write_samples_csv(path: Path, columns: dict[str, np.ndarray], step_ids: list[str]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(SAMPLE_COLUMNS)
        numeric = [np.round(columns[name], 5).tolist() for name in SAMPLE_COLUMNS if name != "step"]
        step_index = SAMPLE_COLUMNS.index("step")
        for i, step in enumerate(step_ids):
            row = [values[i] for values in numeric]
            row.insert(step_index, step)
            writer.writerow(row)


def _write_can_capture(path: Path, columns: dict[str, np.ndarray], started: datetime) -> None:
    """A short BLF capture of the BMS's 0x355 SOC/SOH frames (battery.md §6.1), one per minute."""
    with can.BLFWriter(str(path)) as writer:
        for i in range(0, len(columns["t_s"]), 60):
            soc = int(columns["bms_soc_pct"][i])
            frame = can.Message(
                timestamp=started.timestamp() + columns["t_s"][i],
                arbitration_id=0x355,
                is_extended_id=False,
                data=[soc & 0xFF, soc >> 8, 97, 0],
            )
            writer.on_message_received(frame)


def make_run_folder(
    root: Path,
    *,
    run_id: str = "20250301-090000-VS02-000123",
    hours: float = 4.0,
    abort_at_s: float | None = None,
    simulated: bool = True,
    seed: int = 7,
) -> Path:
    """Write ``root/run_id`` with record.json, samples.csv, can.blf and events.jsonl; return it."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    columns, step_ids, phases = synthesize_samples(hours, seed)
    if abort_at_s is not None:
        keep = columns["t_s"] <= abort_at_s
        columns = {name: values[keep] for name, values in columns.items()}
        step_ids = step_ids[: int(keep.sum())]
    n = len(step_ids)
    started = datetime(2025, 3, 1, 9, 0, 0, tzinfo=UTC)
    write_samples_csv(run_dir / SAMPLES_FILE, columns, step_ids)
    _write_can_capture(run_dir / "can.blf", columns, started)
    steps = _step_records(columns, phases, started, n, aborted=abort_at_s is not None)
    events = [
        EventRecord(t_s=0.0, kind="info", message="run started; outputs off, pack identified over UDS"),
        EventRecord(t_s=float(phases[1].start + 5), kind="warning",
                    message="load: calibration overdue since 2025-01-31 (used with operator approval)"),
    ]
    record = RunRecord(
        run_id=run_id,
        procedure=ProcedureIdentity(name="vs02-capacity-calibration", version="1.2.0",
                                    sha256="3f5a" * 16, path="procedures/vs02_calibration.yaml"),
        station=StationIdentity(name="depot-bench-02", location="Lyon repair depot, bay 4",
                                simulated=simulated, scenario="nominal" if simulated else None),
        software_version="0.1.0",
        operator="a.martin",
        started_at=started,
        ended_at=started + timedelta(seconds=float(columns["t_s"][-1])),
        instruments=_instruments(),
        pack=PackIdentity(serial="VS02P-2403-00123", part_number="VS02-PRO-200", bms_serial="BMS-77A1-0042",
                          bms_sw_version="2.4.1", bms_hw_version="C",
                          as_received=AsReceived(soc_pct=41.0, soh_pct=96.0, cycle_count=312,
                                                 learned_capacity_ah=193.5, dtcs=["P0A7F-00"])),
        steps=steps,
        events=events,
        ah_charged=float(np.sum(np.clip(columns["pack_i"], 0, None)) / 3600.0),
        ah_discharged=float(-np.sum(np.clip(columns["pack_i"], None, 0)) / 3600.0),
        wh_charged=float(np.sum(np.clip(columns["pack_i"] * columns["pack_v"], 0, None)) / 3600.0),
        wh_discharged=float(-np.sum(np.clip(columns["pack_i"] * columns["pack_v"], None, 0)) / 3600.0),
        bench_hours=float(columns["t_s"][-1]) / 3600.0,
        sample_count=n,
    )
    if abort_at_s is None:
        record.checks = _checks(columns, phases)
        record.reference_capacity_ah = -float(columns["step_ah"][phases[3].end - 1])
        record.bms_learned_capacity_ah = 195.2
        record.verdict = "fail" if record.failed_checks else "pass"
    else:
        reason = f"safety trip at t={abort_at_s:.0f} s: cell5 voltage 3.71 V above limit 3.70 V"
        record.events.append(EventRecord(t_s=abort_at_s, kind="trip", message=reason))
        record.events.append(EventRecord(t_s=abort_at_s, kind="abort", message="outputs off; run aborted"))
        record.verdict = "aborted"
        record.abort_reason = reason
    (run_dir / "events.jsonl").write_text(
        "".join(json.dumps(e.model_dump(mode="json")) + "\n" for e in record.events)
    )
    record.files = [
        FileRecord(name=name, sha256=sha256_file(run_dir / name), bytes=(run_dir / name).stat().st_size)
        for name in (SAMPLES_FILE, "can.blf", "events.jsonl")
    ]
    (run_dir / RECORD_FILE).write_text(record.model_dump_json(indent=2))
    return run_dir


def _instruments() -> list[InstrumentIdentity]:
    return [
        InstrumentIdentity(name="supply", role="supply", family="ea-psi",
                           resource="TCPIP::10.0.0.21::5025::SOCKET",
                           make="EA Elektro-Automatik", model="PSI 10060-170", serial="2305170123",
                           firmware="KE 3.04", calibration_due=date(2025, 11, 30)),
        InstrumentIdentity(name="load", role="load", family="itech-it8900",
                           resource="TCPIP::10.0.0.22::30000::SOCKET",
                           make="ITECH", model="IT8912E", serial="800123011797210005",
                           firmware="1.31", calibration_due=date(2025, 1, 31), calibration_overdue=True),
        InstrumentIdentity(name="can", role="adapter", family="slcan", resource="/dev/ttyACM0",
                           make="CANable", model="2.0 Pro", serial="0042"),
    ]


def _step_records(columns: dict[str, np.ndarray], phases: list[_Phase], started: datetime, n: int,
                  *, aborted: bool) -> list[StepRecord]:
    steps = []
    for phase in phases:
        if phase.start >= n:
            break
        last = min(phase.end, n) - 1
        current = columns["pack_i"][phase.start : last + 1]
        power = current * columns["pack_v"][phase.start : last + 1]
        cut = aborted and last < phase.end - 1
        end_reason = {"rest": "time 100%", "charge": "current <= 10 A (CV taper)",
                      "discharge": "pack voltage <= 22.4 V"}[phase.kind]
        steps.append(StepRecord(
            id=phase.step_id, kind=phase.kind,
            start_s=float(columns["t_s"][phase.start]), end_s=float(columns["t_s"][last]),
            started_at=started + timedelta(seconds=float(columns["t_s"][phase.start])),
            ended_at=started + timedelta(seconds=float(columns["t_s"][last])),
            end_reason="aborted: safety trip" if cut else end_reason,
            ah=float(current.sum() / 3600.0), wh=float(power.sum() / 3600.0),
            ah_charged=float(np.clip(current, 0, None).sum() / 3600.0),
            ah_discharged=float(-np.clip(current, None, 0).sum() / 3600.0),
        ))
    return steps


def _limit_check(value: float, low: float | None = None, high: float | None = None,
                 **fields: object) -> CheckRecord:
    passed = (low is None or value >= low) and (high is None or value <= high)
    return CheckRecord(value=value, low=low, high=high, passed=passed, **fields)  # type: ignore[arg-type]


def _checks(columns: dict[str, np.ndarray], phases: list[_Phase]) -> list[CheckRecord]:
    end_of_charge = phases[1].end - 1
    end_of_discharge = float(phases[3].end - 1)
    reference_ah = -float(columns["step_ah"][phases[3].end - 1])
    soc_error = columns["bms_soc_pct"] - columns["ref_soc_pct"]
    worst = float(soc_error[np.argmax(np.abs(soc_error))])
    divergence = float(columns["divergence_v"][end_of_charge])
    return [
        _limit_check(round(reference_ah, 2), low=170.0, id="reference_capacity", step_id="discharge_capacity",
                     description="capacity from bench shunt", t_s=end_of_discharge, unit="Ah"),
        # battery.md §7 item 5: SOH > 85 % healthy
        _limit_check(round(100 * reference_ah / CAPACITY_AH, 1), low=85.0, id="soh_pct",
                     step_id="discharge_capacity", description="SOH = reference / nominal capacity",
                     t_s=end_of_discharge, unit="%"),
        # battery.md §4.5: ±3 % acceptance window
        _limit_check(round(worst, 2), low=-3.0, high=3.0, id="soc_error_max", step_id="recharge",
                     description="worst BMS SOC − reference SOC", t_s=float(columns["t_s"][-1]), unit="%",
                     message="BMS SOC drifts outside ±3 %: current offset calibration needed"
                     if abs(worst) > 3 else ""),
        # battery.md §8: divergence threshold 0.05 V at end of CV
        _limit_check(round(divergence, 4), high=0.05, id="divergence_end_of_charge", step_id="charge_full",
                     description="cell divergence at end of CV", t_s=float(end_of_charge), unit="V",
                     message=f"divergence {divergence:.3f} V > 0.05 V: balance" if divergence > 0.05 else ""),
        _limit_check(round(float(columns["temp_max_c"].max()), 1), high=45.0, id="temp_max",
                     step_id="discharge_capacity", description="max pack temperature",
                     t_s=float(np.argmax(columns["temp_max_c"])), unit="°C"),
        CheckRecord(id="dtcs_after", step_id="recharge", description="stored DTCs after the run",
                    t_s=float(columns["t_s"][-1]), value="none", passed=True),
    ]
