"""The procedure model: loading, step kinds, expression positions, parameters, semantics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bench.config import load_station
from bench.errors import InputErrors
from bench.procedure.loader import check_procedure, load, parse_param_pairs
from bench.procedure.model import (
    BmsRead,
    BmsRoutine,
    BmsSession,
    ChargeAction,
    procedure_sha256,
)

REPO = Path(__file__).parents[3]
GOOD = REPO / "procedures" / "soc_calibration.yaml"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text("procedure: t\nversion: 1\n" + body, encoding="utf-8")
    return path


def test_soc_calibration_loads_with_kinds_and_actions() -> None:
    proc = load(GOOD)
    kinds = {step.id: step.kind for step in proc.steps}
    assert kinds["charge"] == "charge" and kinds["balance"] == "balance" and kinds["finish"] == "end"
    charge = proc.step("charge")
    assert isinstance(charge.action, ChargeAction) and charge.action.mode == "cc_cv"
    precheck = proc.step("precheck").action
    assert isinstance(precheck[0], BmsSession) and isinstance(precheck[1], BmsRead)
    assert isinstance(proc.step("results").action[0], BmsRoutine)
    assert proc.version == "1.1.0"


def test_expressions_know_their_exact_file_position() -> None:
    proc = load(GOOD)
    lines = GOOD.read_text(encoding="utf-8").splitlines()
    for step in proc.steps:
        for condition in step.until:
            expr = condition.when
            assert expr.file == str(GOOD) and expr.exact
            assert lines[expr.line - 1][expr.column - 1:].startswith(expr.text)
    voltage = proc.step("charge").action.voltage
    assert lines[voltage.line - 1][voltage.column - 1:].startswith("charge_voltage_v")


def test_parameter_defaults_evaluate_with_c_rate_and_ranges() -> None:
    proc = load(GOOD)
    env = {"capacity_nominal": 200.0, "supply.current_max": 60.0}
    assert proc.parameters["charge_current_a"].default.evaluate(env) == pytest.approx(60.0)
    assert proc.parameters["taper_current_a"].default.evaluate(env) == pytest.approx(4.0)


def test_param_overrides_replace_defaults() -> None:
    proc = load(GOOD, None, {"charge_current_a": "0.25C"})
    parameter = proc.parameters["charge_current_a"]
    assert parameter.overridden and parameter.default.text == "0.25C"
    assert parameter.default.evaluate({"capacity_nominal": 200.0}) == pytest.approx(50.0)
    assert not proc.parameters["taper_current_a"].overridden


def test_load_raises_every_error(tmp_path: Path) -> None:
    path = write(tmp_path, "steps:\n  - id: a\n    goto: b\n  - id: a\n    rest: {duration: x}\n")
    with pytest.raises(InputErrors) as info:
        load(path)
    messages = [e.format() for e in info.value.errors]
    assert any(m.startswith(f"{path}:6:9: ") and "duplicate step id 'a'" in m for m in messages), messages
    assert any(m.startswith(f"{path}:7:22: ") and "unknown name 'x'" in m for m in messages), messages
    assert any(m.startswith(f"{path}:5:11: ") and "unknown step 'b'" in m for m in messages), messages


def test_names_from_set_bms_routine_prompt_and_step_results_are_known(tmp_path: Path) -> None:
    path = write(tmp_path, """\
parameters:
  hold: {default: 10min, unit: s}
steps:
  - id: ask
    prompt: {message: "ambient?", input: {name: ambient_c, type: number}}
  - id: read
    bms:
      - {read: [soc, learned_capacity], into: before}
      - {routine: {name: capacity_learning, action: results, into: learning}}
      - {read_dtcs: {into: dtcs}}
  - id: vars
    set: {target: "before.soc - 5", twice: "target * 2"}
  - id: rest
    rest: {}
    until: [{when: "step_time > hold and bms_soc < target"}]
  - id: done
    check:
      - {id: c1, value: rest.duration, unit: s, low: 0}
      - {id: c2, value: learning.learned_capacity, unit: Ah, reference: 200, tolerance: 3,
         tolerance_kind: pct}
      - {id: c3, value: ambient_c + twice + ask.answer * 0 + dtcs.count * 0, low: -20, high: 60}
    next: finish
  - id: finish
    if: {when: "learning.qualification == 'learned'", then: ok, else: ko}
  - id: ok
    end: {verdict: pass}
  - id: ko
    end: {verdict: fail}
""")
    report = check_procedure(path)
    assert report.errors == []


def test_load_checks_against_the_station_and_names_unknown_parameters(tmp_path: Path) -> None:
    path = write(tmp_path, "steps:\n  - id: c\n    charge: {mode: cc, current: 0.4C, voltage: 28.4V}\n"
                           "    until: [{when: step_time > 1h}]\n")
    assert load(path, load_station(None), {}).step("c").kind == "charge"
    with pytest.raises(InputErrors) as info:
        load(path, load_station(None), {"nope": "1"})
    assert [p.format() for p in info.value.errors] == ["--param nope=1: unknown parameter 'nope' (parameters: none)"]


def test_param_pairs_have_one_parser() -> None:
    assert parse_param_pairs([" a = 1 ", "b=2V", "a=3"]) == {"a": "3", "b": "2V"}
    with pytest.raises(InputErrors) as info:
        parse_param_pairs(["ok=1", "no_equals", "=3", "x="], option="--bench-param")
    assert [e.format() for e in info.value.errors] == [
        "--bench-param: expected NAME=VALUE, got 'no_equals'", "--bench-param: expected NAME=VALUE, got '=3'",
        "--bench-param: expected NAME=VALUE, got 'x='"]


@pytest.mark.parametrize(("step", "reachable"), [
    ("charge: {mode: cc_cv, current: 50A, voltage: 28.4V}\n    until: [{when: 'pack_v >= 28.4V'}]", True),
    ("charge: {mode: cc_cv, current: 50A, voltage: 28.4V}\n    until: [{when: 'pack_v > 28.4V'}]", False),
    ("charge: {mode: cc_cv, current: 50A, voltage: 28.4V}\n    until: [{when: 'cell_v_min > 3.6V'}]", False),
    ("charge: {mode: cc_cv, current: 50A, voltage: 28.4V}\n    until: [{when: 'cell_v_max > 3.6V'}]", True),
    ("charge: {mode: cc, current: 50A, voltage: 28.4V}\n    until: [{when: 'abs_current > 60A'}]", False),
    ("discharge: {mode: cc, current: 40A, cutoff_v: 22V}\n    until: [{when: 'pack_v < 21V'}]", False),
    ("discharge: {mode: cc, current: 40A, cutoff_v: 22V}\n    until: [{when: 'pack_v <= 22V'}]", True),
    ("discharge: {mode: cc, current: 40A}\n    until: [{when: 'pack_v < 20.5V or step_time > 2h'}]", True),
    ("discharge: {mode: cc, current: 40A}\n    until: [{when: 'pack_v < 19V and step_time > 2h'}]", False),
    ("rest: {}\n    until: [{when: 'false'}]", False),
])
def test_end_condition_reachability(tmp_path: Path, step: str, reachable: bool) -> None:
    path = write(tmp_path, f"steps:\n  - id: s\n    {step}\n")
    errors = check_procedure(path).errors
    never = [e for e in errors if "can never be true" in e.message]
    assert (not never) == reachable, [e.format() for e in errors]
    if not reachable:
        assert (never[0].line, never[0].column) == (6, 21) and any("never ends" in e.message for e in errors)


def test_procedure_sha256_is_of_the_file_bytes() -> None:
    assert procedure_sha256(GOOD) == hashlib.sha256(GOOD.read_bytes()).hexdigest()


def test_rest_and_end_without_mapping_mean_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "steps:\n  - id: r\n    rest:\n    until: [{when: step_time > 1s}]\n"
                           "  - id: e\n    end:\n")
    proc = load(path)
    assert proc.steps[0].kind == "rest" and proc.steps[0].action.duration is None
    assert proc.steps[1].action.verdict == "auto"
