"""Conditions that raise at run time stop the run, located; a value not yet available does not
(issue 15, point 4). Before, ``until``/``when``/``if`` swallowed the error and read as false: the
step then waited for its time-out, hours later, or the run took the wrong branch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.procedure.loader import check_procedure

# `flag` is set by a step that the `if` always skips: bench validate (which reads the steps in
# file order) cannot know, the run finds no value for it.
_HEAD = """\
procedure: broken_condition
version: 1.0.0
control_interval_s: 1.0
steps:
  - id: choose
    if: {when: "pack_v > 0", then: work}
  - id: set_flag
    set: {flag: 1}
"""

CASES = {
    "until": ("""\
  - id: work
    rest: {duration: 2h}
    until:
      - {when: "flag > 0", reason: flagged}
""", "flag > 0", "no value for 'flag'"),
    "until_division": ("""\
  - id: work
    rest: {duration: 2h}
    until:
      - {when: "ah / step_ah > 2", reason: ratio}
""", "ah / step_ah > 2", "division by zero"),
    "wait_for": ("""\
  - id: work
    wait_for: {when: "flag > 0", timeout: 2h}
""", "flag > 0", "no value for 'flag'"),
    "if": ("""\
  - id: work
    if: {when: "flag > 0", then: done}
  - id: rest
    rest: {duration: 10min}
  - id: done
    rest: {duration: 1min}
""", "flag > 0", "no value for 'flag'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_condition_that_raises_aborts_the_run_with_the_expression_and_its_location(
        run_procedure, tmp_path: Path, case: str) -> None:
    step, text, error = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(_HEAD + step, encoding="utf-8")
    assert check_procedure(path).ok  # what validation cannot see
    record = run_procedure(path)
    assert record.verdict == "aborted"
    reason = record.abort_reason or ""
    expr_line = next(i for i, line in enumerate((_HEAD + step).splitlines(), 1) if text in line)
    assert re.search(rf"{re.escape(str(path))}:{expr_line}:\d+: '{re.escape(text)}': {re.escape(error)}", reason), \
        reason
    work = next(s for s in record.steps if s.id == "work")
    assert work.end_s - work.start_s < 5.0  # at once, not after the 2 h time-out
    assert record.sim_truth is not None and record.sim_truth.outputs_off_at_end
    assert any(e.kind == "abort" and "expression failed" in e.message for e in record.events)


def test_a_value_not_yet_available_is_not_an_error(run_procedure, tmp_path: Path) -> None:
    """``ref_soc`` has no value until a step anchors it: its condition is simply not met yet."""
    path = tmp_path / "missing.yaml"
    path.write_text("""\
procedure: missing_value
version: 1.0.0
control_interval_s: 1.0
steps:
  - id: wait
    rest: {duration: 3min}
    until:
      - {when: "ref_soc - 50 > 0", reason: anchored}
  - id: verify
    check:
      - {id: reference_known, value: ref_soc, unit: "%", high: 100}
""", encoding="utf-8")
    record = run_procedure(path)
    wait = next(s for s in record.steps if s.id == "wait")
    assert wait.end_reason == "duration"
    # the check on a missing value fails as a check (verdict fail), it does not abort the run
    assert record.verdict == "fail" and record.abort_reason is None
    (failed,) = record.failed_checks
    assert "no value" in (failed.message or "")
