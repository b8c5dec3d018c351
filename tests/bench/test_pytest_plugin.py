"""The pytest plugin, exercised through pytest's own ``pytester`` on the in-process simulated bench.

Every inner test talks to the real simulator (SCPI over TCP, CAN on the python-can virtual bus)
and asserts on what it measured or on the simulator's ground truth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# pytester's in-process runs drop modules first imported inside them; SQLAlchemy (the records
# store) breaks when imported twice into one interpreter, so load the run machinery up front.
# bench.store and reports load SQLAlchemy/Alembic lazily, so name those modules here.
import alembic.command
import alembic.context  # noqa: F401
import pytest
import sqlalchemy  # noqa: F401

import bench.run
import bench.store
import bench.store.store  # noqa: F401
import reports.html  # noqa: F401

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
PULSE_YAML = (Path(__file__).parent / "plugin_procedures" / "pulse.yaml").read_text(encoding="utf-8")
HEALTHY_SERIAL = "VS02P-25-004711"  # bench/sim/scenarios/healthy.yaml
DEGRADED_SERIAL = "VS02P-22-000318"  # bench/sim/scenarios/degraded_cell.yaml


def junit_properties(path: Path) -> dict[str, dict[str, str]]:
    """testcase name -> {property name: value}."""
    out: dict[str, dict[str, str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        out[case.get("name", "")] = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
    return out


def test_fixtures_connect_once_and_scenario_marker_switches_the_simulator(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=f"""
        import pytest

        SEEN = []

        def test_identity_over_uds(station, bms, supply, load, bench):
            SEEN.append(bench)
            assert station.simulator is not None
            assert bms.read_identity()["serial"] == "{HEALTHY_SERIAL}"
            volts, amps = supply.measure()
            assert 20.0 < volts < 29.2 and abs(amps) < 0.5   # LFP 8S window, nothing flowing

        def test_same_connection(bench, sim):
            assert bench is SEEN[0]                            # connected once per session
            assert sim.truth()["soc_pct"] == pytest.approx(60.0, abs=1.0)   # healthy scenario

        @pytest.mark.scenario("degraded_cell")
        def test_other_scenario(bms, sim):
            assert bms.read_identity()["serial"] == "{DEGRADED_SERIAL}"
            assert min(sim.truth()["cell_capacity_ah"]) < 180   # cell 5: 172.5 Ah

        @pytest.mark.hardware
        def test_needs_real_instruments():
            raise AssertionError("must not run on the simulator")
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*hardware test: station 'sim' is simulated*"])


def test_outputs_are_off_after_a_failing_test_and_a_leak_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        def test_raises_mid_discharge(bench, sim):
            bench.discharge_cc(20.0, 20.0)
            bench.clock.sleep(5.0)
            assert sim.truth()["load_input_on"]
            raise RuntimeError("instrument exploded mid-discharge")

        def test_next_sees_everything_off(bench, sim, load):
            truth = sim.truth()
            assert not truth["load_input_on"] and not truth["supply_output_on"]
            bench.clock.sleep(1.0)                  # lockstep: let the simulator take a reading
            assert abs(load.measure()[1]) < 0.5

        def test_leaves_supply_on(supply):
            supply.set_voltage(27.0)
            supply.set_current(5.0)
            supply.output(True)            # driver used directly: the bench bookkeeping does not know

        def test_after_leak(sim):
            assert not sim.truth()["supply_output_on"]
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    # the raising test fails once (its leak is a report section, not a second error);
    # the passing test that left the supply on errors at teardown
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_leaves_supply_on*",
        "test left the supply output on; the bench plugin switched it off*",
    ])
    result.stdout.fnmatch_lines(["*Captured bench teardown*", "test left the load output on*"])


def test_ctrl_c_switches_outputs_off_before_the_session_ends(pytester: pytest.Pytester) -> None:
    truth_file = pytester.path / "truth_at_interrupt.json"
    pytester.makeconftest(f"""
        import json
        STATE = {{}}

        def pytest_keyboard_interrupt(excinfo):
            truth = STATE["sim"].truth()
            with open({str(truth_file)!r}, "w") as fh:
                json.dump({{"load": truth["load_input_on"], "supply": truth["supply_output_on"]}}, fh)
    """)
    pytester.makepyfile(test_inner="""
        import conftest

        def test_operator_hits_ctrl_c(bench, sim):
            conftest.STATE["sim"] = sim
            bench.discharge_cc(30.0, 20.0)
            bench.clock.sleep(2.0)
            assert sim.truth()["load_input_on"]
            raise KeyboardInterrupt

        def test_never_runs():
            pass
    """)
    recorder = pytester.inline_run("-p", "no:cacheprovider", no_reraise_ctrlc=True)
    assert recorder.ret == pytest.ExitCode.INTERRUPTED
    assert json.loads(truth_file.read_text()) == {"load": False, "supply": False}


def test_yaml_procedure_item_passes_and_junit_carries_every_check(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", pulse=PULSE_YAML)
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest("pulse.yaml", "-p", "no:cacheprovider", "-rP",
                                f"--junitxml={xml}", "--operator", "plugin-test")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pulse_check 0.1.0: PASS*", "PASS rested_pack_voltage: *"])
    props = junit_properties(xml)["pulse"]
    assert props["run.verdict"] == "pass"
    volts = float(props["check.rested_pack_voltage.value"])
    assert 24.0 <= volts <= 29.2
    assert props["check.rested_pack_voltage.low"] == "24.0"
    assert props["check.rested_pack_voltage.high"] == "29.2"
    assert props["check.rested_pack_voltage.unit"] == "V"
    assert props["check.bms_soc_known.passed"] == "True"
    record = json.loads((Path(props["run.dir"]) / "record.json").read_text())
    assert record["operator"] == "plugin-test"
    assert record["checks"][0]["value"] == pytest.approx(volts, abs=1e-6)


def test_failing_check_fails_the_item_with_its_message_not_a_traceback(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", pulse=PULSE_YAML)
    result = pytester.runpytest("pulse.yaml", "-p", "no:cacheprovider", "--bench-param", "min_rest_v=28V")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["1 of 2 checks failed",
                                 "FAIL rested_pack_voltage: rested pack voltage: 2* in [[]28, 29.2] *"])
    assert "Traceback" not in result.stdout.str() and "runtest" not in result.stdout.str()


def test_yaml_files_are_collected_only_when_named_or_configured(pytester: pytest.Pytester) -> None:
    pytester.mkdir("procs")
    (pytester.path / "procs" / "pulse.yaml").write_text(PULSE_YAML, encoding="utf-8")
    (pytester.path / "procs" / "notes.yaml").write_text("procedure: a name only\n", encoding="utf-8")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["test_plain.py::test_plain"])
    assert "pulse" not in result.stdout.str()
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q",
                                "-o", "bench_procedure_dirs=procs")
    result.stdout.fnmatch_lines(["procs/pulse.yaml::pulse"])
    assert "notes" not in result.stdout.str()  # a YAML file without steps is not a procedure


def test_bench_run_procedure_marker_and_scenario(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", pulse=PULSE_YAML)
    pytester.makepyfile(test_inner=f"""
        import pytest

        @pytest.mark.procedure("pulse.yaml", min_rest_v="28V")
        def test_marker_runs_with_params(procedure_record):
            assert procedure_record.verdict == "fail"
            assert procedure_record.parameters["min_rest_v"] == 28.0
            [failed] = procedure_record.failed_checks
            assert failed.id == "rested_pack_voltage" and failed.value < 28.0

        @pytest.mark.scenario("degraded_cell")
        def test_bench_run_on_the_marked_scenario(bench_run):
            record = bench_run("pulse.yaml", pulse_current_a=10)
            assert record.verdict == "pass"
            assert record.station.scenario == "degraded_cell"
            assert record.pack.bms_serial == "{DEGRADED_SERIAL}"
            assert record.sim_truth.outputs_off_at_end
            pulse = next(s for s in record.steps if s.id == "pulse")
            assert pulse.ah_discharged == pytest.approx(10.0 * 60 / 3600, rel=0.05)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(("args", "message"), [
    (["--station", "missing.yaml"], "*missing.yaml*"),
    (["--scenario", "no_such_scenario"], "*no_such_scenario*"),
    (["--bench-param", "no_equals_sign"], "*--bench-param: expected NAME=VALUE, got 'no_equals_sign'*"),
])
def test_bad_bench_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.slow
def test_acceptance_soc_calibration_passes_and_fails_when_the_bms_cannot_learn(tmp_path: Path) -> None:
    """Issue 6 acceptance: the two full calibrations run side by side (~1-2 min wall)."""
    runs = {}
    for name, extra in (("healthy", []), ("cannot_learn", ["--scenario", "bms_cannot_learn"])):
        cmd = [sys.executable, "-m", "pytest", "procedures/soc_calibration.yaml", "-p", "no:cacheprovider",
               f"--junitxml={tmp_path / name}.xml", f"--bench-out={tmp_path / name}", *extra]
        runs[name] = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env={**os.environ, "BENCH_DB": ""})
    out = {name: proc.communicate(timeout=600)[0] for name, proc in runs.items()}
    assert runs["healthy"].returncode == 0, out["healthy"]
    assert runs["cannot_learn"].returncode == 1, out["cannot_learn"]
    assert "FAIL learned_capacity: BMS learned capacity vs bench-measured capacity: 183 vs reference" \
        in out["cannot_learn"]
    assert "Traceback" not in out["cannot_learn"]
    for name in runs:
        props = junit_properties(tmp_path / f"{name}.xml")["soc_calibration"]
        record = json.loads((Path(props["run.dir"]) / "record.json").read_text())
        assert record["checks"], name
        for check in record["checks"]:
            key = f"check.{check['id']}"
            value = check["value"]
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert float(props[f"{key}.value"]) == pytest.approx(value)
            else:
                assert props[f"{key}.value"] == str(value)
            assert props[f"{key}.passed"] == str(check["passed"])
            for limit in ("low", "high", "reference", "tolerance"):
                if check[limit] is not None:
                    assert float(props[f"{key}.{limit}"]) == pytest.approx(check[limit])
        learned = props["check.learned_capacity.passed"]
        assert learned == ("True" if name == "healthy" else "False")


def test_ctrl_c_as_a_procedure_item_ends_stops_the_session(pytester: pytest.Pytester) -> None:
    """Ctrl-C while a procedure item's run is ending (here: as its report is written) is noted
    by the run and passed on: the session stops, the next item never runs."""
    pytester.makefile(".yaml", a_pulse=PULSE_YAML, b_pulse=PULSE_YAML)
    pytester.makeconftest("""
        import os
        import signal

        import bench.run

        def pytest_configure(config):
            config.saved_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
            real = bench.run.write_report

            def interrupted(run_dir):
                os.kill(os.getpid(), signal.SIGINT)
                return real(run_dir)

            bench.run.write_report = interrupted
            config.real_write_report = real

        def pytest_unconfigure(config):
            signal.signal(signal.SIGINT, config.saved_sigint)
            bench.run.write_report = config.real_write_report
    """)
    out = pytester.path / "runs"
    recorder = pytester.inline_run("a_pulse.yaml", "b_pulse.yaml", "-p", "no:cacheprovider",
                                   "--bench-out", str(out), no_reraise_ctrlc=True)
    assert recorder.ret == pytest.ExitCode.INTERRUPTED
    (record,) = (json.loads(path.read_text()) for path in out.rglob("record.json"))  # b never ran
    assert record["procedure"]["name"] == "pulse_check" and record["verdict"] == "pass"
