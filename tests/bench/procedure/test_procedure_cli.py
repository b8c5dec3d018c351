"""``bench validate`` / ``bench schema`` through the typer app and through a real subprocess.

Every file under ``bad/`` starts with ``# expect LINE:COLUMN: text``: validating it must exit
with code 2, print no traceback, and report an error at exactly that place containing that text.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.procedure.cli import app

HERE = Path(__file__).parent
BAD = sorted((HERE / "bad").glob("*.yaml"))
REPO = HERE.parents[2]
GOOD = REPO / "procedures" / "soc_calibration.yaml"
EXPECT = re.compile(r"^# expect (\d+):(\d+): (.+)$")

runner = CliRunner()


def expectation(path: Path) -> tuple[int, int, str]:
    match = EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert match, f"{path.name}: first line must be '# expect LINE:COLUMN: text'"
    return int(match[1]), int(match[2]), match[3]


def test_there_are_at_least_twenty_malformed_procedures() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_malformed_procedure_is_located(path: Path) -> None:
    line, column, text = expectation(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    prefix = f"{path}:{line}:{column}: "
    located = [out for out in result.output.splitlines() if out.startswith(prefix)]
    assert located, f"no error at {line}:{column} in:\n{result.output}"
    assert any(text in out for out in located), result.output


def test_json_output_lists_every_error_as_objects(tmp_path: Path) -> None:
    bad = tmp_path / "two.yaml"
    bad.write_text(
        "procedure: t\nversion: 1\nsteps:\n"
        "  - id: a\n    rest: {}\n    until: [{when: \"pack_v > foo\", goto: nowhere}]\n"
        "  - id: a\n    goto: elsewhere\n",
        encoding="utf-8")
    result = runner.invoke(app, ["validate", str(bad), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False
    where = {(e["line"], e["column"]) for e in report["errors"]}
    # unknown name foo, unknown goto target, duplicate id, unknown goto step
    assert {(6, 30), (6, 42), (7, 9), (8, 11)} <= where, report["errors"]
    assert all(e["file"] == str(bad) for e in report["errors"])


def test_good_procedure_validates() -> None:
    result = runner.invoke(app, ["validate", str(GOOD)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK: {GOOD}: soc_calibration ")


def test_param_override_is_applied_and_checked() -> None:
    result = runner.invoke(app, ["validate", str(GOOD), "--param", "charge_current_a=150A"])
    assert result.exit_code == 2
    # the override reaches every step that uses the parameter: charge (line 42) and recharge
    assert re.search(rf"{re.escape(str(GOOD))}:\d+:\d+: charge current 150 A exceeds", result.output)
    ok = runner.invoke(app, ["validate", str(GOOD), "-p", "charge_current_a=40A", "-p", "soc_tolerance_pct=2"])
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize(("args", "message"), [
    (["--param", "nope=3"], "--param nope=3: unknown parameter 'nope'"),
    (["--param", "charge_current_a=3 +"], "--param charge_current_a=3 +: expression '3 +': unexpected end"),
    (["--param", "charge_current_a=10parsec"], "unknown unit 'parsec'"),
    (["--param", "no_equals_sign"], "expected NAME=VALUE"),
])
def test_bad_cli_parameters(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["validate", str(GOOD), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_station_ranges_are_used(tmp_path: Path) -> None:
    station = tmp_path / "small.yaml"
    station.write_text(
        "name: small\nsupply: {family: x, resource: 'sim:supply', "
        "ranges: {voltage_max_v: 30, current_max_a: 20, power_max_w: 600}}\n"
        "load: {family: y, resource: 'sim:load',\n"
        "       ranges: {voltage_max_v: 60, current_max_a: 30, power_max_w: 300}}\n"
        "adapter: {interface: virtual, channel: 'sim:can'}\n", encoding="utf-8")
    proc = tmp_path / "p.yaml"
    proc.write_text(
        "procedure: t\nversion: 1\nsteps:\n"
        "  - id: c\n    charge: {mode: cc_cv, current: 25A, voltage: 28V}\n"
        "    until: [{when: step_time > 1h}]\n"
        "  - id: d\n    discharge: {mode: cp, power: 400W}\n    until: [{when: step_time > 1h}]\n",
        encoding="utf-8")
    result = runner.invoke(app, ["validate", str(proc), "--station", str(station)])
    assert result.exit_code == 2
    out = result.output
    assert f"{proc}:5:36: charge current 25 A exceeds the supply's current range: at most 20 A" in out
    assert f"{proc}:8:34: discharge power 400 W exceeds the load's power range: at most 300 W" in out
    # the same procedure is fine without that station's small instruments
    assert runner.invoke(app, ["validate", str(proc)]).exit_code == 0


def test_a_derated_station_refuses_what_its_model_could_take(tmp_path: Path) -> None:
    """Issue 16 point 2: the station's ranges derate the model's (IT8514C+: 240 A) for validation
    as for the run (tests/bench/test_station.py: the bench uses the same 30 A)."""
    text = (REPO / "stations" / "sim.yaml").read_text(encoding="utf-8")
    derated = tmp_path / "derated.yaml"
    derated.write_text(text.replace("  model: IT8514C+", "  model: IT8514C+\n  ranges: "
                                    "{voltage_max_v: 120, current_max_a: 30, power_max_w: 1200}"), encoding="utf-8")
    line = GOOD.read_text(encoding="utf-8").splitlines().index(
        "    discharge: {mode: cc, current: discharge_current_a}") + 1
    args = ["validate", str(GOOD), "-p", "discharge_current_a=40A"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--station", str(derated)])
    assert result.exit_code == 2
    assert f"{GOOD}:{line}:36: discharge current 40 A exceeds the load's current range: at most 30 A" \
        in result.output
    assert runner.invoke(app, ["validate", str(GOOD), "--station", str(derated)]).exit_code == 0


@pytest.mark.parametrize(("current", "ok"), [("100A", False), ("52A", False), ("51A", True)])
def test_a_cc_discharge_beyond_the_load_power_rating_is_refused(tmp_path: Path, current: str, ok: bool) -> None:
    """Issue 15 point 6: 100 A on the BK 8614 (1500 W) passed, then the run aborted on a load that
    could not take it. At the pack's maximum 29.2 V (8 x 3.65 V) the load takes at most 51.37 A."""
    proc = tmp_path / "p.yaml"
    proc.write_text(
        "procedure: t\nversion: 1\nsteps:\n"
        f"  - id: d\n    discharge: {{mode: cc, current: {current}}}\n    until: [{{when: step_time > 1h}}]\n",
        encoding="utf-8")
    result = runner.invoke(app, ["validate", str(proc), "--station", str(REPO / "stations" / "sim_external.yaml")])
    if ok:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2
    amps = float(current.removesuffix("A"))
    assert (f"{proc}:5:36: discharge current {amps:g} A at the pack's maximum 29.2 V is {amps * 29.2:g} W, "
            "beyond the load's power rating 1500 W: at most 51.37 A") in result.output


def test_bad_station_file_is_located(tmp_path: Path) -> None:
    station = tmp_path / "s.yaml"
    station.write_text("name: s\nsupply: {family: x, resource: r, volts: 3}\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(GOOD), "--station", str(station)])
    assert result.exit_code == 2
    assert f"{station}:2:" in result.output and "unknown key 'volts'" in result.output
    assert f"{station}:1:1: " in result.output and "missing required key 'load'" in result.output


def test_schema_command_writes_procedure_and_station_schemas(tmp_path: Path) -> None:
    out = tmp_path / "procedure.schema.json"
    result = runner.invoke(app, ["schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert set(schema["required"]) == {"procedure", "version", "steps"}
    step = schema["$defs"]["Step"]
    assert {"if", "wait_for", "charge", "end"} <= set(step["properties"])
    assert len(step["oneOf"]) == 13 and step["additionalProperties"] is False
    station = json.loads(runner.invoke(app, ["schema", "--station"]).stdout)
    assert {"supply", "load", "adapter"} <= set(station["required"])


def test_real_subprocess_reports_and_exits_2() -> None:
    bad = HERE / "bad" / "code_injection.yaml"
    line, column, text = expectation(bad)
    proc = subprocess.run([sys.executable, "-m", "bench.procedure.cli", "validate", str(bad)],
                          capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{bad}:{line}:{column}: ") and text in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
