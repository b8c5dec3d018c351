"""The expression language: parsing, evaluation, units, and refusal of anything unsafe."""

from __future__ import annotations

import time

import pytest

from bench.errors import ConfigError, ProcedureError
from bench.procedure.expr import Expr


def value(text: str, **env: object) -> object:
    return Expr.parse(text).evaluate(env)


@pytest.mark.parametrize(("text", "expected"), [
    ("1 + 2 * 3", 7.0),
    ("(1 + 2) * 3", 9.0),
    ("10 / 4", 2.5),
    ("-2 * -3", 6.0),
    ("2 - 3 - 4", -5.0),          # left associative
    ("12 / 3 / 2", 2.0),
    ("3.65V", 3.65),
    ("10mV", 0.010),
    ("50mA", 0.050),
    ("30min", 1800.0),
    ("8h", 28800.0),
    ("5Ah", 5.0),
    ("250mAh", 0.25),
    ("1.5kW", 1500.0),
    ("3%", 3.0),
    ("1e3", 1000.0),
    (".5", 0.5),
    ("abs(-4)", 4.0),
    ("min(3, 1, 2)", 1.0),
    ("max(3, 1, 2)", 3.0),
    ("round(2.345, 2)", 2.35),
    ("clamp(12, 0, 10)", 10.0),
    ("clamp(-1, 0, 10)", 0.0),
    ("true", True),
    ("not false", True),
    ("1 < 2 and 2 < 3", True),
    ("1 > 2 or 3 >= 3", True),
    ("not 1 > 2 and 2 > 1", True),  # not binds tighter than and
    ("2 == 2.0", True),
    ("2 != 2", False),
])
def test_constant_expressions(text: str, expected: object) -> None:
    result = value(text)
    assert result == pytest.approx(expected) if isinstance(expected, float) else result is expected


def test_names_are_looked_up_whole_with_dots() -> None:
    expr = Expr.parse("min(0.5C, supply.current_max) + charge.ah")
    assert expr.names() == {"supply.current_max", "charge.ah"}
    env = {"supply.current_max": 60.0, "charge.ah": 1.5, "capacity_nominal": 200.0}
    assert expr.evaluate(env) == pytest.approx(61.5)


def test_c_rate_resolves_against_capacity_at_bind_time_or_from_the_environment() -> None:
    expr = Expr.parse("abs_current < 0.02C")
    assert expr.uses_c_rate()
    assert expr.evaluate({"abs_current": 3.9, "capacity_nominal": 200.0}) is True
    assert expr.evaluate({"abs_current": 4.1, "capacity_nominal": 200.0}) is False
    bound = expr.bind_units(100.0)  # a 100 Ah pack: 0.02C = 2 A
    assert bound.evaluate({"abs_current": 3.0}) is False
    assert bound.evaluate({"abs_current": 1.9}) is True
    assert Expr.parse("0.5C").bind_units(200.0).is_constant()
    assert Expr.parse("0.5C").bind_units(200.0).evaluate({}) == pytest.approx(100.0)


def test_short_circuit_does_not_evaluate_the_right_side() -> None:
    # bms_soc is missing: only evaluated when the left side does not decide
    assert value("1 > 2 and bms_soc > 3") is False
    assert value("1 < 2 or bms_soc > 3") is True


def test_string_equality_only() -> None:
    assert value("learning.qualification == 'learned'", **{"learning.qualification": "learned"}) is True
    assert value('state != "x"', state="y") is True


def test_functions_given_by_the_engine() -> None:
    expr = Expr.parse("ocv_soc(cell_v_mean) > 95")
    assert expr.evaluate({"cell_v_mean": 3.40}, {"ocv_soc": lambda v: 99.6 if v > 3.37 else 50.0}) is True
    with pytest.raises(ProcedureError, match="ocv_soc"):
        expr.evaluate({"cell_v_mean": 3.40})


@pytest.mark.parametrize(("text", "offset", "message"), [
    ("__import__('os').system('x')", 0, "names starting with '__'"),
    ("abs(pack_v).real", 11, "attribute access"),
    ("().__class__", 1, "unexpected ')'"),
    ("cells[0] > 3", 5, "subscripts"),
    ("lambda: 1", 0, "'lambda' is not allowed"),
    ("exec('1')", 0, "'exec' is not allowed"),
    ("open('f')", 0, "'open' is not allowed"),
    ("sqrt(2)", 0, "unknown function 'sqrt'"),
    ("pack_v(1)", 0, "unknown function 'pack_v'"),
    ("(pack_v)(1)", 8, "only the allowed functions"),
    ("pack_v = 28", 7, "assignment"),
    ("2 ** 8", 2, "'**'"),
    ("3 % 2", 2, "'%' is only allowed as a unit"),
    ("10parsec", 2, "unknown unit 'parsec'"),
    ("'x'", 0, "strings are only allowed"),
    ("'a' + 1", 0, "strings are only allowed"),
    ("1 < 2 < 3", 6, "chained comparisons"),
    ("pack_v >", 8, "unexpected end"),
    ("(1 + 2", 6, "missing ')'"),
    ("min(1)", 0, "takes 2 to 16 arguments"),
    ("clamp(1, 2)", 0, "takes 3 arguments"),
    ("1 and pack_v", 0, "expected a condition"),
    ("(1 < 2) + 3", 1, "expected a number"),
    ("a ; b", 2, "unexpected character ';'"),
    ("", 0, "empty expression"),
    ("x if y else z", 2, "'if' is not allowed"),
])
def test_rejected_with_exact_column(text: str, offset: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Expr.parse(text, file="p.yaml", line=7, column=21)
    error = info.value
    assert (error.file, error.line, error.column) == ("p.yaml", 7, 21 + offset)
    assert message in error.message
    assert error.format().startswith(f"p.yaml:7:{21 + offset}: ")


def test_runtime_errors_name_the_expression_and_its_place() -> None:
    expr = Expr.parse("pack_v / step_time > 1")
    expr.set_origin("proc.yaml", 12, 20, True)
    with pytest.raises(ProcedureError, match=r"proc\.yaml:12:20: .*division by zero"):
        expr.evaluate({"pack_v": 1.0, "step_time": 0.0})
    with pytest.raises(ProcedureError, match=r"proc\.yaml:12:20: .*no value for 'step_time'"):
        expr.evaluate({"pack_v": 1.0})


def test_dimensions() -> None:
    dims = {"pack_v": "V", "current": "A", "step_time": "s"}
    assert Expr.parse("pack_v - 10mV").dimension(dims) == ("V", [])
    assert Expr.parse("min(0.5C, 30A)").dimension(dims) == ("A", [])
    assert Expr.parse("2 * pack_v").dimension(dims) == ("V", [])
    assert Expr.parse("pack_v * current").dimension(dims)[0] is None  # W: not tracked
    _, problems = Expr.parse("step_time > 8h and pack_v > 3A").dimension(dims)
    assert [offset for offset, _ in problems] == [19]
    assert "a current (A) and a voltage (V)" in problems[0][1]


def test_fold_gives_the_value_only_when_every_name_is_known() -> None:
    expr = Expr.parse("min(0.5C, supply.current_max)")
    assert expr.fold({"capacity_nominal": 200.0}) is None
    assert expr.fold({"capacity_nominal": 200.0, "supply.current_max": 60.0}) == pytest.approx(60.0)


def test_evaluation_is_fast() -> None:
    expr = Expr.parse("abs_current < 0.02C").bind_units(200.0)
    env = {"abs_current": 3.0}
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        expr.evaluate(env)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 20e-6, f"{per_call * 1e6:.2f} us per evaluation"  # ~1 us on a desktop; slack for CI
