"""The service procedures run end to end through bench.run.execute_run on the simulator.

Long: divergence_high (~11 bench hours of extended balancing) and deep_discharge (the ~10 h SOC
calibration) are the acceptance runs of the service branches.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.record import RunRecord
from bench.run import RunRequest, execute_run

REPO = Path(__file__).resolve().parents[2]
PROCEDURES = REPO / "procedures"


def _run(tmp_path: Path, procedure: str, scenario: str, params: dict[str, str] | None = None) -> RunRecord:
    request = RunRequest(procedure=PROCEDURES / procedure, scenario=scenario, params=params or {},
                         out_dir=tmp_path / "run", yes=True, watchdog=False,
                         db=f"sqlite:///{tmp_path / 'bench.db'}")
    return execute_run(request, console=None)


def _steps(record: RunRecord) -> list[str]:
    return [s.id for s in record.steps]


def _check(record: RunRecord, check_id: str) -> bool:
    return next(c.passed for c in record.checks if c.id == check_id)


def _stuck_balancer(tmp_path: Path) -> str:
    text = (REPO / "bench" / "sim" / "scenarios" / "divergence_moderate.yaml").read_text(encoding="utf-8")
    path = tmp_path / "moderate_stuck.yaml"
    path.write_text(text + "  balancing_stuck: true\n", encoding="utf-8")
    return str(path)


def test_pack_health_records_divergence_at_end_of_cv(tmp_path: Path) -> None:
    record = _run(tmp_path, "pack_health.yaml", "divergence_moderate")
    check = next(c for c in record.checks if c.id == "divergence_end_of_cv")
    assert record.verdict == "fail" and not check.passed and 0.05 <= (check.value or 0) < 0.10


def test_bms_reset_makes_a_stuck_balancer_engage(tmp_path: Path) -> None:
    record = _run(tmp_path, "bms_reset.yaml", _stuck_balancer(tmp_path))
    assert record.verdict == "pass" and _check(record, "balancing_engaged")
    assert "reset" in _steps(record) and "observe" in _steps(record)


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "branch", "check", "verdict"), [
    ("divergence_moderate", "balancing_engaged", "balancing_engaged", "pass"),
    ("divergence_high", "ext_balance", "divergence_after_extended_balancing", "pass"),
    ("degraded_cell", "replacement", "replacement_flag", "fail"),
])
def test_service_takes_the_prescribed_branch(tmp_path: Path, scenario: str, branch: str, check: str,
                                             verdict: str) -> None:
    record = _run(tmp_path, "service.yaml", scenario)
    steps = _steps(record)
    assert branch in steps, steps
    assert record.verdict == verdict, [c.message for c in record.failed_checks] or record.abort_reason
    assert _check(record, check) is (verdict == "pass")
    others = {"balancing_engaged", "ext_balance", "replacement", "cal_discharge", "bms_reset"} - {branch}
    assert not others & set(steps)


@pytest.mark.slow
def test_service_after_a_deep_discharge_runs_the_soc_calibration(tmp_path: Path) -> None:
    """The branch is the calibration; its verdict is the calibration's (learned capacity within ±3 %)."""
    record = _run(tmp_path, "service.yaml", "deep_discharge")
    steps = _steps(record)
    assert "cal_discharge" in steps and "cal_verify" in steps and "measure_full" not in steps
    assert _check(record, "learned_capacity") is True
    assert record.verdict == "pass", [c.message for c in record.failed_checks]
    truth = record.sim_truth
    assert truth is not None and record.bms_learned_capacity_ah is not None
    assert abs(record.bms_learned_capacity_ah - truth.capacity_ah) <= 0.03 * truth.capacity_ah
