"""Abort reasons that name the cause: the BMS's alarms and active DTCs when its contactor opens,
and every limit that tripped in the sample, each provoked by a scenario fault on the simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bench.engine.conftest import PROCEDURES, scenario_file

LONG_CHARGE = PROCEDURES / "long_charge.yaml"  # the calibration's limits: cell_ov held 2 s
SHORT = PROCEDURES / "short_cycle.yaml"          # limits act on the first sample, no hold
SUPERVISED = PROCEDURES / "supervised_discharge.yaml"  # no limits: charge 3 min, discharge 6 min


@pytest.mark.parametrize(("procedure", "fault", "cause", "dtc"), [
    # a cell jumping to 3.80 V in the discharge (in a charge the bench already pauses at CCL 0)
    (SUPERVISED, "{at_s: 240, kind: cell_over_voltage, cell: 3, voltage_v: 3.80}", "cell 3 over-voltage 3.",
     "0x911001 cell_overvoltage"),
    (LONG_CHARGE, "{at_s: 300, kind: over_temperature, cell: 5, delta_c: 40}",
     "cell 5 charge over-temperature 6", "0x912001 charge_overtemperature"),
])
def test_contactor_open_names_the_bms_alarm_and_dtc(run_procedure, tmp_path: Path, procedure: Path, fault: str,
                                                     cause: str, dtc: str):
    record = run_procedure(procedure, scenario=scenario_file(tmp_path, "healthy", f"faults:\n  - {fault}\n"))
    assert record.verdict == "aborted"
    reason = record.abort_reason or ""
    # the cause first, then the consequence
    assert reason.startswith(f"contactor_open: {cause}"), reason
    assert dtc in reason and "the BMS opened its contactor" in reason
    assert reason.index(cause) < reason.index("the BMS opened its contactor")
    trip = next(e for e in record.events if e.kind == "trip")
    fault_t = float(record.sim_truth.faults_applied[0]["t_s"])
    assert cause in trip.data["cause"] and trip.t_s - fault_t <= 3.0
    assert record.sim_truth.outputs_off_at_end


def test_every_limit_tripping_in_one_sample_is_recorded(run_procedure, tmp_path: Path):
    scenario = scenario_file(tmp_path, "healthy", "faults:\n"
                             "  - {at_s: 300, kind: cell_over_voltage, cell: 3}\n"
                             "  - {at_s: 300, kind: over_temperature, cell: 5, delta_c: 40}\n")
    record = run_procedure(SHORT, scenario=scenario)
    assert record.verdict == "aborted"
    trips = [e for e in record.events if e.kind == "trip"]
    tripped = {e.data["limit"] for e in trips}
    assert {"cell_ov", "over_temp"} <= tripped, [e.message for e in trips]
    assert len({e.t_s for e in trips if e.data["limit"] in ("cell_ov", "over_temp")}) == 1  # one sample
    reason = record.abort_reason or ""
    assert "cell_ov:" in reason and "over_temp:" in reason
    assert record.sim_truth.outputs_off_at_end


def test_contactor_opening_while_paused_is_noted_with_its_cause(run_procedure, tmp_path: Path):
    # in a charge the bench pauses at the BMS's CCL 0 before the BMS opens: no trip for the
    # contactor then, but the note says why it opened; the procedure's cell_ov limit aborts
    scenario = scenario_file(tmp_path, "healthy", "faults:\n  - {at_s: 300, kind: cell_over_voltage, cell: 3}\n")
    record = run_procedure(LONG_CHARGE, scenario=scenario)
    assert record.verdict == "aborted" and (record.abort_reason or "").startswith("cell_ov:")
    note = next(e for e in record.events if "contactor open (outputs are off)" in e.message)
    assert re.search(r"cell 3 over-voltage 3\.(6[5-9]|[7-9]\d) V", note.message), note.message
    assert "0x911001 cell_overvoltage" in note.message
