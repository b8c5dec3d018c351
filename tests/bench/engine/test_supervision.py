"""Station supervision trips, each provoked by a scenario fault on the in-process simulator.

Every test measures the reaction in bench time from the simulator's ground truth (the fault's
time and the instruments' output transitions) and asserts it; docs/safety.md quotes these.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.engine.conftest import PROCEDURES, scenario_file

SUPERVISED = PROCEDURES / "supervised_discharge.yaml"
INTERVAL_S = 1.0
CHARGE_S = 180.0


def _fault_time(record) -> float:
    return float(record.sim_truth.faults_applied[0]["t_s"])


def _all_off_after(record, t_s: float) -> float:
    """Bench time at which both outputs were off, at or after ``t_s``."""
    on = {"supply": False, "load": False}
    for change in record.sim_truth.output_transitions:
        on[change["instrument"]] = change["on"]
        if change["t_s"] >= t_s - 1e-9 and not any(on.values()):
            return float(change["t_s"])
    raise AssertionError(f"outputs never all off after {t_s}: {record.sim_truth.output_transitions}")


def test_healthy_run_passes_supervision_without_warnings(run_procedure):
    record = run_procedure(SUPERVISED)
    assert record.verdict == "pass", (record.abort_reason, record.failed_checks)
    assert not [e for e in record.events if e.kind in ("warning", "trip", "pause")]


def test_shunt_gain_error_aborts_naming_both_currents(run_procedure, tmp_path: Path):
    fault_at = CHARGE_S + 60.0
    scenario = scenario_file(tmp_path, "healthy", "faults:\n"
                             f"  - {{at_s: {fault_at}, kind: shunt_gain_error, instrument: load, "
                             "gain: 1.05}\n")
    record = run_procedure(SUPERVISED, scenario=scenario)
    assert record.verdict == "aborted"
    reason = record.abort_reason or ""
    assert "current_disagree" in reason and "current =" in reason and "bms_current =" in reason
    # 5 % of 40 A = 2 A apart, beyond max(0.5 A, 2 %): warned at once, tripped after the 10 s hold
    warning = next(e for e in record.events
                   if e.kind == "warning" and e.data.get("limit") == "current_disagree")
    assert 1.5 < abs(float(warning.data["value"])) < 2.5
    trip = next(e for e in record.events if e.kind == "trip")
    reaction = trip.t_s - _fault_time(record)
    assert 10.0 <= reaction <= 10.0 + 3 * INTERVAL_S
    assert _all_off_after(record, trip.t_s) - trip.t_s < INTERVAL_S
    assert record.sim_truth.outputs_off_at_end


def test_sense_lead_off_aborts_on_pack_voltage_disagreement(run_procedure, tmp_path: Path):
    fault_at = CHARGE_S + 30.0
    scenario = scenario_file(tmp_path, "healthy", "faults:\n"
                             f"  - {{at_s: {fault_at}, kind: sense_lead_off, instrument: load}}\n")
    record = run_procedure(SUPERVISED, scenario=scenario)
    assert record.verdict == "aborted"
    reason = record.abort_reason or ""
    assert "pack_v_disagree" in reason or "cell_sum_disagree" in reason, reason
    assert "pack_v =" in reason
    trip = next(e for e in record.events if e.kind == "trip")
    assert 10.0 <= trip.t_s - _fault_time(record) <= 10.0 + 3 * INTERVAL_S


def test_contactor_open_stops_in_the_same_control_interval(run_procedure, tmp_path: Path):
    fault_at = CHARGE_S + 45.5
    scenario = scenario_file(tmp_path, "healthy", "faults:\n"
                             f"  - {{at_s: {fault_at}, kind: contactor_open, duration_s: 600}}\n")
    record = run_procedure(SUPERVISED, scenario=scenario)
    assert record.verdict == "aborted"
    assert "contactor_open" in (record.abort_reason or "")
    fault_t = _fault_time(record)
    off_t = _all_off_after(record, fault_t)
    # the first sample after the contactor opened saw it and turned the outputs off
    assert off_t - fault_t <= INTERVAL_S + 1e-6, (fault_t, off_t)


@pytest.mark.parametrize("kind", ["can_silence", "bus_off"])
def test_silent_bms_pauses_with_outputs_off_and_resumes(run_procedure, tmp_path: Path, kind: str):
    fault_at = CHARGE_S + 60.0
    scenario = scenario_file(tmp_path, "healthy", "faults:\n"
                             f"  - {{at_s: {fault_at}, kind: {kind}, duration_s: 30}}\n")
    record = run_procedure(SUPERVISED, scenario=scenario)
    pause = next(e for e in record.events if e.kind == "pause")
    assert "can_supervision" in pause.message and "outputs off" in pause.message
    fault_t = _fault_time(record)
    off_t = _all_off_after(record, fault_t)
    # bus-off is reported by the adapter at once; silence after the 5 s staleness limit
    limit = 0.0 if kind == "bus_off" else 5.0
    assert limit <= off_t - fault_t <= limit + 2 * INTERVAL_S, (fault_t, off_t)
    resume = next(e for e in record.events if e.kind == "resume")
    assert resume.t_s >= fault_t + 30.0  # frames came back after the fault's 30 s
    # the discharge went on after the pause (the paused time is simply not discharged)
    assert any(c["instrument"] == "load" and c["on"] and c["t_s"] > off_t
               for c in record.sim_truth.output_transitions)
    assert record.verdict != "aborted", record.abort_reason


def test_bms_silent_for_too_long_aborts(run_procedure, tmp_path: Path):
    station = tmp_path / "station.yaml"
    text = (Path(__file__).resolve().parents[3] / "bench" / "stations" / "sim.yaml").read_text()
    station.write_text(text + "supervision: {can_abort_after_s: 20}\n", encoding="utf-8")
    scenario = scenario_file(tmp_path, "healthy", "faults:\n"
                             f"  - {{at_s: {CHARGE_S + 60}, kind: can_silence, duration_s: 300}}\n")
    from bench.run import RunRequest, execute_run

    record = execute_run(RunRequest(procedure=SUPERVISED, station=str(station), scenario=scenario,
                                    out_dir=tmp_path / "run2", yes=True, watchdog=False,
                                    db=f"sqlite:///{tmp_path / 'b.db'}"), console=None)
    assert record.verdict == "aborted"
    assert "can_supervision" in (record.abort_reason or "") or "still paused" in (record.abort_reason or "")
    abort = next(e for e in record.events if e.kind == "abort")
    assert 20.0 <= abort.t_s - _fault_time(record) - 5.0 <= 20.0 + 3 * INTERVAL_S
