"""The ``bench`` command line as a user meets it: separate processes, real exit codes, stderr text.

Bad input (scenario, station, arguments) must give one readable line per problem naming the file
and key, exit code 2 and no traceback; ``bench instruments`` must report identity, calibration
and limits, and name an instrument that does not answer. The invocations are independent, so
they run concurrently (each pays ~1 s of imports on a slow machine) and each test checks one.
"""

from __future__ import annotations

import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.simserve import REPO, run_bench

PROCEDURE = str(REPO / "procedures" / "soc_calibration.yaml")
SIM_STATION = (REPO / "bench" / "stations" / "sim.yaml").read_text()

BAD_KEY_SCENARIO = """\
name: typo
seed: 1
cells:
  capacity_ah: {mean: 203, sd: 1.0}
  soc_pcnt: 50
"""
BROKEN_YAML = "name: broken\nseed: [1\n"
BAD_STATION = SIM_STATION.replace("  timeout_s: 2.0", "  timeout_s: -1", 1)

# Each command that takes a scenario: (name, argv before the scenario option).
SCENARIO_COMMANDS = {
    "sim serve": ["sim", "serve", "--json"],
    "run": ["run", PROCEDURE, "--yes"],
    "instruments": ["instruments"],
}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    # The supply on a port nobody listens on, short timeout, no reconnect: fails fast.
    dead = yaml.safe_load(SIM_STATION)
    dead["supply"].update(resource=f"TCPIP::127.0.0.1::{_closed_port()}::SOCKET", timeout_s=0.5,
                          reconnect={"attempts": 0})
    dead_station = yaml.safe_dump(dead)
    contents = {"bad_key.yaml": BAD_KEY_SCENARIO, "broken.yaml": BROKEN_YAML,
                "bad_station.yaml": BAD_STATION, "dead_station.yaml": dead_station}
    paths = {}
    for name, text in contents.items():
        paths[name] = d / name
        paths[name].write_text(text)
    return paths


@pytest.fixture(scope="module")
def results(files: dict[str, Path]) -> dict[str, subprocess.CompletedProcess[str]]:
    cases: dict[str, list[str]] = {}
    for cmd, argv in SCENARIO_COMMANDS.items():
        cases[f"{cmd}/unknown"] = [*argv, "--scenario", "no_such_scenario"]
        cases[f"{cmd}/bad_key"] = [*argv, "--scenario", str(files["bad_key.yaml"])]
    cases["sim serve/broken"] = ["sim", "serve", "--scenario", str(files["broken.yaml"])]
    cases["station/bad"] = ["instruments", "--station", str(files["bad_station.yaml"])]
    cases["station/missing"] = ["run", PROCEDURE, "--station", str(files["bad_station.yaml"]) + ".nope"]
    cases["usage/option"] = ["instruments", "--no-such-option"]
    cases["usage/value"] = ["sim", "serve", "--speed", "fast"]
    cases["usage/speed"] = ["sim", "serve", "--speed", "0"]
    cases["instruments/sim"] = ["instruments"]
    cases["instruments/dead"] = ["instruments", "--station", str(files["dead_station.yaml"])]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_bench, *argv, timeout=120) for name, argv in cases.items()}
        return {name: f.result() for name, f in futures.items()}


def _one_line_input_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("cmd", SCENARIO_COMMANDS)
def test_unknown_scenario_name_is_one_line_naming_the_option(results, cmd: str) -> None:
    line = _one_line_input_error(results[f"{cmd}/unknown"])
    assert line.startswith("error: --scenario: unknown scenario 'no_such_scenario'")
    assert "healthy" in line  # lists the built-ins


@pytest.mark.parametrize("cmd", SCENARIO_COMMANDS)
def test_malformed_scenario_file_is_one_line_naming_file_and_key(results, files, cmd: str) -> None:
    line = _one_line_input_error(results[f"{cmd}/bad_key"])
    assert line.startswith(f"error: {files['bad_key.yaml']}:5:")  # line 5 of the file
    assert line.endswith(": cells.soc_pcnt: unknown key 'soc_pcnt'")


def test_unparsable_scenario_yaml_is_located(results, files) -> None:
    line = _one_line_input_error(results["sim serve/broken"])
    assert line.startswith(f"error: {files['broken.yaml']}:")
    assert "invalid YAML" in line


def test_malformed_station_file_names_file_and_key(results, files) -> None:
    line = _one_line_input_error(results["station/bad"])
    assert line.startswith(f"error: {files['bad_station.yaml']}:")
    assert "supply.timeout_s" in line


def test_missing_station_file_is_invalid_input(results) -> None:
    line = _one_line_input_error(results["station/missing"])
    assert "bad_station.yaml.nope" in line


@pytest.mark.parametrize("case", ["usage/option", "usage/value", "usage/speed"])
def test_bad_arguments_exit_2_without_traceback(results, case: str) -> None:
    result = results[case]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip(), "a usage error must say what is wrong"


def test_instruments_reports_identity_calibration_and_limits(results) -> None:
    result = results["instruments/sim"]
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for row in ("make / model", "serial", "firmware", "calibration due", "ratings",
                "enforceable limits", "limits set", "status"):
        assert row in text
    assert "Keysight" in text and "N8735A" in text      # the embedded station's simulated supply
    assert "IT8514C+" in text                           # ... and load
    assert "VS02P-25-004711" in text                    # the BMS serial (healthy scenario), over UDS
    assert "ovp" in text and "uvp" in text
    assert "FAILED" not in text
    # Readable in a pipe: plain text (no ANSI escapes) that fits the 80-column default.
    assert "\x1b[" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_instruments_names_the_instrument_that_does_not_answer(results) -> None:
    result = results["instruments/dead"]
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith("FAILED supply (TCPIP::127.0.0.1::")
    assert "IT8514C+" in result.stdout  # the load still answered and is reported


@pytest.mark.parametrize("case", ["procedure", "db"])
def test_a_run_refused_for_its_input_creates_no_database(tmp_path: Path, case: str) -> None:
    """`bench run` starts its records store's writer first (issue 17); refused input must still
    leave nothing behind: no runs folder (no bench connected), no database, no writer process."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_YAML)
    if case == "procedure":
        result = run_bench("run", str(broken), "--yes", cwd=tmp_path, timeout=120)
        assert _one_line_input_error(result).startswith(f"error: {broken}:3:1: invalid YAML")
    else:
        result = run_bench("run", PROCEDURE, "--yes", "--db", "mysql://bench@localhost/bench", cwd=tmp_path,
                           timeout=120)
        assert _one_line_input_error(result) == ("error: db: unsupported database mysql://bench@localhost/bench: "
                                                 "use sqlite or postgresql")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml"]
    writers = subprocess.run(["pgrep", "-f", "bench.store.writer"], capture_output=True, text=True)
    assert not any(f"sqlite:///{tmp_path}" in line for line in writers.stdout.splitlines())
