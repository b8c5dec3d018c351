"""Issue acceptance: the SOC calibration end to end on the simulated bench (the long tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.engine.conftest import REPO

CALIBRATION = REPO / "procedures" / "soc_calibration.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["healthy", "deep_discharge"])
def test_calibration_passes_and_learns_the_true_capacity(run_procedure, scenario):
    record = run_procedure(CALIBRATION, scenario=scenario)
    assert record.verdict == "pass", [c.message for c in record.failed_checks] or record.abort_reason
    truth = record.sim_truth
    assert truth is not None and truth.outputs_off_at_end
    # the verdict means something: the BMS now knows the pack's TRUE capacity within ±3 %
    learned = record.bms_learned_capacity_ah
    assert learned is not None and abs(learned - truth.capacity_ah) <= 0.03 * truth.capacity_ah
    # and the bench's own reference capacity is well inside the window it judges: its cells depart
    # from the bench's OCV table (knee shape, offsets), which costs the method up to ~±1.7 %
    # (docs/simulator.md "OCV departures": healthy −1.3 %, deep_discharge −0.9 %)
    assert abs(record.reference_capacity_ah - truth.capacity_ah) <= 0.02 * truth.capacity_ah
    tracking = [c for c in record.checks if c.id.startswith("soc_tracking@")]
    assert len(tracking) >= 10 and all(c.passed for c in tracking)  # every 10 % of the recharge
    if scenario == "deep_discharge":
        before = record.pack.as_received
        assert before.learned_capacity_ah is not None
        assert abs(before.learned_capacity_ah - truth.capacity_ah) > 0.05 * truth.capacity_ah


@pytest.mark.slow
def test_bms_that_cannot_learn_fails_with_a_clear_check_line(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(CALIBRATION), "--scenario", "bms_cannot_learn",
         "--yes", "--json", "--out", str(tmp_path / "run"), "--db", f"sqlite:///{tmp_path / 'b.db'}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["verdict"] == "fail"
    assert any(m.startswith("learned_capacity:") and "limit ±3 %" in m for m in summary["failed_checks"])
    assert "Traceback" not in proc.stderr


def test_malformed_procedure_touches_no_instrument(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("procedure: x\nversion: 1\nsteps:\n  - id: c\n    charge: {mode: cc, current: 40A,"
                   " voltage: 40V}\n    until: [{when: \"step_time > 1h\"}]\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(bad), "--yes"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{bad}:5:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # no run folder: nothing was connected, nothing switched on
