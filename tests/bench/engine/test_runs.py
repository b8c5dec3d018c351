"""The engine end to end on the in-process simulator (real SCPI over TCP, real CAN frames)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from bench.config import SIM_STATION
from bench.engine.events import EventBus, ProgressEvent
from bench.record import RunRecord
from bench.run import RunRequest, execute_run
from tests.bench.engine.conftest import PROCEDURES, scenario_file

SHORT = PROCEDURES / "short_cycle.yaml"


def _samples(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "samples.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_short_cycle_passes_and_leaves_a_complete_record(run_procedure, tmp_path):
    record = run_procedure(SHORT)
    assert record.verdict == "pass", record.failed_checks
    run_dir = tmp_path / "run"
    # one sample per control interval, integrated Ah consistent with the commanded current
    rows = _samples(run_dir)
    assert record.sample_count == len(rows)
    assert abs(len(rows) - 35 * 60) <= 3
    discharge = next(s for s in record.steps if s.id == "discharge")
    assert abs(discharge.ah_discharged - 10.0) < 0.05  # 40 A x 15 min
    assert discharge.end_reason == "time"
    # Ah in the record equals the integral of the logged current (trapezoid at 1 s)
    ah = 0.0
    for a, b in zip(rows, rows[1:], strict=False):
        ah += 0.5 * (float(a["pack_i"]) + float(b["pack_i"])) * (float(b["t_s"]) - float(a["t_s"])) / 3600
    assert abs(ah - (record.ah_charged - record.ah_discharged)) < 0.02
    saved = json.loads((run_dir / "record.json").read_text())
    assert saved["verdict"] == "pass" and saved["sim_truth"]["outputs_off_at_end"] is True
    assert {f["name"] for f in saved["files"]} >= {"samples.csv", "can.blf"}
    assert record.pack.serial == "VS02P-25-004711"  # read from the BMS over UDS
    assert {i.role for i in record.instruments} == {"supply", "load", "adapter"}


def test_a_listener_gets_every_sample_and_a_status_line_one_per_period(tmp_path):
    """The engine builds a sample event only when someone takes it (EventBus.wants_sample); a
    subscriber of every sample still gets each one, a status line one per its period."""
    events = EventBus()
    samples: list[ProgressEvent] = []
    status: list[float] = []
    events.subscribe(lambda ev: samples.append(ev) if ev.kind == "sample" else None)
    events.subscribe(lambda ev: status.append(ev.t_s) if ev.kind == "sample" else None, sample_every_s=600.0)
    record = execute_run(RunRequest(procedure=SHORT, out_dir=tmp_path / "run", yes=True, watchdog=False,
                                    db=f"sqlite:///{tmp_path / 'bench.db'}", events=events), console=None)
    assert record.verdict == "pass"
    assert len(samples) == record.sample_count == len(_samples(tmp_path / "run"))
    assert [ev.t_s for ev in samples] == sorted(ev.t_s for ev in samples)
    assert set(samples[0].data) >= {"pack_v", "current", "cells", "ah", "step_time"}
    assert len(samples[0].data["cells"]) == 8
    times = [ev.t_s for ev in samples]
    expected: list[float] = []
    for t in times:
        if not expected or t >= expected[-1] + 600.0:
            expected.append(t)
    assert status == expected and len(status) >= 3


def _trip_and_output_off_times(record):
    trip = next(e for e in record.events if e.kind in ("trip", "abort"))
    transitions = record.sim_truth.output_transitions
    off = [t for t in transitions if not t["on"]]
    return trip.t_s, off


def test_cell_over_voltage_aborts_with_outputs_off_in_the_same_interval(run_procedure, tmp_path):
    scenario = scenario_file(tmp_path, "healthy", "faults:\n  - {at_s: 300, kind: cell_over_voltage, cell: 3}\n")
    record = run_procedure(SHORT, scenario=scenario)
    assert record.verdict == "aborted"
    assert "cell_ov" in (record.abort_reason or "")
    trip_t, off = _trip_and_output_off_times(record)
    supply_off = [t for t in off if t["instrument"] == "supply"]
    # outputs commanded off after the sample that saw the breach, before time moved on
    assert supply_off and abs(supply_off[-1]["t_s"] - trip_t) < 1e-6
    assert record.sim_truth.outputs_off_at_end
    assert json.loads((tmp_path / "run" / "record.json").read_text())["verdict"] == "aborted"


def test_over_temperature_aborts_with_outputs_off(run_procedure, tmp_path):
    scenario = scenario_file(tmp_path, "healthy",
                             "faults:\n  - {at_s: 1500, kind: over_temperature, cell: 5, delta_c: 40}\n")
    record = run_procedure(SHORT, scenario=scenario)
    assert record.verdict == "aborted" and "over_temp" in (record.abort_reason or "")
    trip_t, off = _trip_and_output_off_times(record)
    load_off = [t for t in off if t["instrument"] == "load"]
    assert load_off and abs(load_off[-1]["t_s"] - trip_t) < 1e-6
    assert record.sim_truth.outputs_off_at_end


def test_lost_supply_connection_pauses_the_discharge_with_the_load_off(run_procedure, tmp_path):
    # the supply's link drops for 30 s in the middle of the discharge (tests/bench/engine/
    # test_links.py covers the charge, the window and the abort)
    scenario = scenario_file(tmp_path, "healthy",
                             "faults:\n  - {at_s: 1500, kind: instrument_disconnect, instrument: supply,"
                             " duration_s: 30}\n")
    record = run_procedure(SHORT, scenario=scenario)
    assert record.verdict != "aborted", record.abort_reason
    pause = next(e for e in record.events if e.kind == "pause")
    assert "instrument_lost: supply" in pause.message
    load = [t for t in record.sim_truth.output_transitions if t["instrument"] == "load"]
    off = next(t for t in load if not t["on"] and t["t_s"] >= 1500)
    assert off["t_s"] - 1500 <= 1.0 + 1e-6  # in the interval that saw the drop
    assert any(t["on"] and t["t_s"] >= 1530 for t in load)  # the discharge went on after it
    assert record.sim_truth.outputs_off_at_end
    # every sample was kept, the ones without a supply reading too
    assert len(_samples(tmp_path / "run")) == record.sample_count >= 35 * 60


def test_failing_check_gives_fail_with_the_check_message(run_procedure):
    record = run_procedure(SHORT, params={"discharge_current_a": "30A"})
    assert record.verdict == "fail"
    (failed,) = record.failed_checks
    assert failed.id == "discharged_ah" and "out of limits" in failed.message
    assert abs(float(failed.value) - 7.5) < 0.1  # 30 A x 15 min


def test_load_that_ignores_its_setpoint_aborts_the_run(run_procedure, tmp_path):
    # the load stops taking commands during the rest: at the discharge it never switches on
    scenario = scenario_file(tmp_path, "healthy",
                             "faults:\n  - {at_s: 1000, kind: setpoint_ignored, instrument: load}\n")
    record = run_procedure(SHORT, scenario=scenario)
    assert record.verdict == "aborted"
    reason = record.abort_reason or ""
    assert reason.startswith("setpoint:") and "load commanded 40.00 A" in reason
    trip = next(e for e in record.events if e.kind == "trip")
    discharge = next(s for s in record.steps if s.id == "discharge")
    assert 15.0 <= trip.t_s - discharge.start_s <= 17.0  # held for setpoint_hold_s, acted on in that sample
    assert record.sim_truth.outputs_off_at_end


def _run_killed_then_resumed(run_procedure, tmp_path: Path) -> Path:
    """A run the scenario kills mid-discharge (SIGKILL, no finally), then resumed in this process."""
    import signal
    import subprocess
    import sys

    from bench.run import resume_run

    scenario = scenario_file(tmp_path, "healthy", "faults:\n  - {at_s: 1500, kind: controller_death}\n")
    run_dir = tmp_path / "run"
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(SHORT), "--yes", "--out", str(run_dir),
                           "--db", db, "--scenario", scenario, "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    record = resume_run(run_dir, yes=True, db=db, console=None)
    assert record.verdict == "pass"
    return run_dir


@pytest.mark.parametrize("kind", ["pass", "fail", "abort", "resume"])
def test_every_file_of_every_run_matches_its_recorded_digest(run_procedure, tmp_path, kind):
    """Issue 15 point 5: record.files was hashed while the BLF writer was still open."""
    from bench.engine.datalog import sha256_file
    from reports.rundir import load_run

    run_dir = tmp_path / "run"
    if kind == "pass":
        assert run_procedure(SHORT).verdict == "pass"
    elif kind == "fail":
        assert run_procedure(SHORT, params={"discharge_current_a": "30A"}).verdict == "fail"
    elif kind == "abort":
        scenario = scenario_file(tmp_path, "healthy", "faults:\n  - {at_s: 300, kind: cell_over_voltage, cell: 3}\n")
        assert run_procedure(SHORT, scenario=scenario).verdict == "aborted"
    else:
        run_dir = _run_killed_then_resumed(run_procedure, tmp_path)
    saved = json.loads((run_dir / "record.json").read_text())
    listed = {f["name"]: f for f in saved["files"]}
    expected = {"samples.csv", "can.blf", "run.json"} | ({"can.resume-1.blf"} if kind == "resume" else set())
    assert set(listed) >= expected
    for name, entry in listed.items():
        path = run_dir / name
        assert (sha256_file(path), path.stat().st_size) == (entry["sha256"], entry["bytes"]), name
    # every file on disk but the record, the checkpoint and the rendered reports is listed
    on_disk = {p.name for p in run_dir.iterdir() if p.is_file()}
    assert on_disk - set(listed) <= {"record.json", "checkpoint.json", "sim_state.pkl", "report.html"}
    # the report a user opens says "yes" for every file, never the red "NO"
    assert all(f.matches_record is not False for f in load_run(run_dir).files)
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "NO: record has" not in html and "can.blf" in html


RUNTIME_CHARGE = """\
procedure: a charge current known only at run time
version: 1.0.0
steps:
  - id: pick
    set: {wanted: "{current}"}
  - id: charge
    charge: {mode: cc_cv, current: wanted, voltage: 28.4V}
    until:
      - {when: "step_time >= 120s", reason: done}
"""


def _derated_station(tmp_path: Path, **supply: object) -> Path:
    data = yaml.safe_load(SIM_STATION.read_text(encoding="utf-8"))
    data["supply"]["ranges"] = {"voltage_max_v": 31.5, "current_max_a": 40.0, "power_max_w": 3300.0}
    data["supply"].update(supply)
    data["simulator"]["supply_family"] = data["supply"]["family"]
    path = tmp_path / "derated.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _charge_run(tmp_path: Path, station: Path, current: str) -> RunRecord:
    tmp_path.mkdir(parents=True, exist_ok=True)
    procedure = tmp_path / "charge.yaml"
    procedure.write_text(RUNTIME_CHARGE.replace("{current}", current), encoding="utf-8")
    request = RunRequest(procedure=procedure, station=str(station), out_dir=tmp_path / "run", yes=True,
                         watchdog=False, db=f"sqlite:///{tmp_path / 'bench.db'}")
    return execute_run(request, console=None)


def test_a_runtime_charge_current_beyond_the_derated_supply_is_refused_before_the_output_goes_on(tmp_path):
    """Validation cannot see a current computed at run time; the charge control starts from a
    soft start (25 A) and ramps: the ramp's top (60 A) must be refused before the supply is on
    (before the fix the first 25 A passed and the ramp went on to 60 A)."""
    record = _charge_run(tmp_path, _derated_station(tmp_path), "60A")
    assert record.verdict == "aborted"
    assert "outside the station's supply range 0..40 A" in (record.abort_reason or "")
    assert record.sim_truth is not None
    assert not [t for t in record.sim_truth.output_transitions if t["instrument"] == "supply" and t["on"]]
    # inside the range the same procedure charges, ramping up to its request
    ok = _charge_run(tmp_path / "ok", _derated_station(tmp_path), "38A")
    assert ok.verdict == "pass", ok.abort_reason
