"""Step failure policies (on_fail, retry) end to end on the in-process simulator, and the validation
that refuses policies that would loop for ever."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import InputErrors
from bench.procedure.loader import ValidationReport, check_procedure
from tests.bench.engine.conftest import PROCEDURES


def test_failed_gate_with_on_fail_abort_never_reaches_the_charge(run_procedure, tmp_path):
    record = run_procedure(PROCEDURES / "gate.yaml", params={"pack_v_low": "28V"})
    assert record.verdict == "fail"
    assert [s.id for s in record.steps] == ["settle", "gate"]
    failed = record.failed_checks
    assert [c.id for c in failed] == ["pack_voltage_in_range"]
    assert failed[0].action is not None and failed[0].action.startswith("inspect the pack: ")
    # the supply never came on: no output transition at all in the simulator's ground truth
    assert record.sim_truth is not None and record.sim_truth.output_transitions == []
    assert any("on_fail abort" in e.message for e in record.events)
    # the report tells the operator what to do, above the fold
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    header = html[:html.index('<section id="uut">')]
    assert "What to do:" in header and "pack_voltage_in_range: inspect the pack: " in header


def test_passing_gate_goes_on(run_procedure):
    record = run_procedure(PROCEDURES / "gate.yaml")
    assert record.verdict == "pass"
    assert [s.id for s in record.steps] == ["settle", "gate", "charge"]


def _retry_procedure(tmp_path: Path, retries: int) -> Path:
    text = (PROCEDURES / "retry.yaml").read_text(encoding="utf-8").replace("RETRIES", str(retries))
    path = tmp_path / "retry.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_retry_runs_the_group_again_and_only_the_last_attempt_counts(run_procedure, tmp_path):
    record = run_procedure(_retry_procedure(tmp_path, 3))
    assert record.verdict == "pass", record.failed_checks
    gates = [c for c in record.checks if c.id == "steady"]
    assert [c.passed for c in gates] == [False, True]
    assert [c.retried for c in gates] == [True, False]
    assert [s.id for s in record.steps].count("settle") == 2
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert html.count(">RETRIED</td>") == 1
    junit = (tmp_path / "run" / "junit.xml")
    if junit.exists():
        assert 'skipped="1"' in junit.read_text(encoding="utf-8")


def test_retry_exhausted_applies_on_fail(run_procedure, tmp_path):
    record = run_procedure(_retry_procedure(tmp_path, 1), params={"passes_after": "5"})
    assert record.verdict == "fail"
    assert [s.id for s in record.steps][-1] == "failed"
    assert sum(1 for c in record.checks if c.id == "steady") == 2


def _validated(tmp_path: Path, steps: str) -> ValidationReport:
    path = tmp_path / "procedure.yaml"
    path.write_text("procedure: p\nversion: 1\nsteps:" + steps, encoding="utf-8")
    return check_procedure(path)


@pytest.mark.parametrize("steps, message", [
    ("""
  - id: a
    rest: {duration: 1s}
  - id: b
    check: [{id: c, value: pack_v, low: 1V}]
    on_fail: goto a
""", "on_fail: goto a jumps back"),
    ("""
  - id: a
    rest: {duration: 1s}
  - id: b
    goto: a
""", "loop for ever"),
    ("""
  - id: a
    check: [{id: c, value: pack_v, low: 1V}]
    retry: {times: 2, from: b}
  - id: b
    rest: {duration: 1s}
""", "a retry runs an earlier group"),
])
def test_validate_refuses_endless_loops(tmp_path: Path, steps: str, message: str) -> None:
    report = _validated(tmp_path, steps)
    assert any(message in e.message for e in report.errors), [str(e) for e in report.errors]
    assert all(e.line is not None for e in report.errors if message in e.message)


def test_validate_accepts_a_bounded_loop(tmp_path: Path) -> None:
    assert _validated(tmp_path, """
  - id: a
    rest: {duration: 1s}
  - id: again
    repeat: {goto: a, times: 3}
""").errors == []


def test_on_fail_form_is_checked(tmp_path: Path) -> None:
    report = _validated(tmp_path, """
  - id: a
    check: [{id: c, value: pack_v, low: 1V}]
    on_fail: stop
""")
    assert report.errors and "on_fail is 'abort', 'continue' or 'goto <step id>'" in report.errors[0].message
    assert report.errors[0].line == 6
    with pytest.raises(InputErrors):
        raise InputErrors(report.errors)


def test_charge_paused_with_the_output_off_while_the_bms_allows_no_current(run_procedure, tmp_path):
    scenario = tmp_path / "frozen.yaml"
    scenario.write_text("name: frozen\nseed: 3\nambient_c: -5.0\ncells: {soc_pct: 40.0}\n", encoding="utf-8")
    record = run_procedure(PROCEDURES / "cold_charge.yaml", scenario=str(scenario))
    assert record.verdict == "pass"
    assert record.sim_truth is not None and record.sim_truth.output_transitions == []  # never switched on
    assert record.ah_charged == 0.0
    pauses = [e for e in record.events if e.kind == "pause"]
    assert pauses and "allows no charge current (CCL 0.0 A" in pauses[0].message
