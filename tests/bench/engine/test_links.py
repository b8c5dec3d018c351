"""Instrument links that drop mid-run (scenario fault ``instrument_disconnect``), on the in-process
simulator: the run pauses with every reachable output off, reconnects with back-off and goes on;
a drop longer than the station's window aborts with every output confirmed off or named."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest

from bench.run import RunRequest, execute_run
from tests.bench.engine.conftest import PROCEDURES, REPO, scenario_file

LONG_CHARGE = PROCEDURES / "long_charge.yaml"
DROP_AT = 1800.0
RETRY_MAX_S = 15.0  # bench.engine.links.RETRY_MAX_S: the longest gap between two attempts


def _drop(tmp_path: Path, instrument: str, at_s: float, duration_s: float) -> str:
    return scenario_file(tmp_path, "healthy", "faults:\n"
                         f"  - {{at_s: {at_s}, kind: instrument_disconnect, instrument: {instrument}, "
                         f"duration_s: {duration_s}}}\n")


def _station(tmp_path: Path, supervision: str) -> str:
    text = (REPO / "bench" / "stations" / "sim.yaml").read_text(encoding="utf-8")
    path = tmp_path / "station.yaml"
    path.write_text(text + f"supervision: {supervision}\n", encoding="utf-8")
    return str(path)


def _run(tmp_path: Path, scenario: str, station: str | None = None):
    return execute_run(RunRequest(procedure=LONG_CHARGE, station=station, scenario=scenario,
                                  out_dir=tmp_path / "run", yes=True, watchdog=False,
                                  db=f"sqlite:///{tmp_path / 'b.db'}"), console=None)


def _state_at(transitions: list[dict], instrument: str, t_s: float) -> bool:
    on = False
    for change in transitions:
        if change["instrument"] == instrument and change["t_s"] <= t_s + 1e-9:
            on = change["on"]
    return on


@pytest.mark.parametrize("lost", ["supply", "load"])
def test_two_minute_drop_pauses_with_outputs_off_and_the_charge_goes_on(tmp_path: Path, lost: str):
    record = _run(tmp_path, _drop(tmp_path, lost, DROP_AT, 120.0))
    assert record.verdict == "pass", record.abort_reason
    charge = next(s for s in record.steps if s.id == "charge")
    assert charge.end_reason == "time"
    truth = record.sim_truth
    assert truth.outputs_off_at_end and record.outputs_not_confirmed_off == []
    transitions = truth.output_transitions
    back = DROP_AT + 120.0
    if lost == "load":
        # the supply (reachable) went off in the interval that saw the drop and stayed off
        off = next(c for c in transitions if c["instrument"] == "supply" and not c["on"]
                   and c["t_s"] >= DROP_AT)
        assert off["t_s"] - DROP_AT <= 1.0 + 1e-6
        for t in range(int(DROP_AT) + 2, int(back)):
            assert not _state_at(transitions, "supply", t), t
    else:
        # an unreachable supply cannot be told anything: the load stays off, and the first thing
        # the supply hears when its link is back is the off command
        off = next(c for c in transitions if c["instrument"] == "supply" and not c["on"]
                   and c["t_s"] >= DROP_AT)
        assert back <= off["t_s"] <= back + RETRY_MAX_S + 1.0
    for t in range(int(DROP_AT), int(back)):
        assert not _state_at(transitions, "load", t), t
    # ... and then the charge went on: the supply back on after the link returned
    assert any(c["instrument"] == "supply" and c["on"] and c["t_s"] > back for c in transitions)
    pause = next(e for e in record.events if e.kind == "pause")
    assert "instrument_lost" in pause.message and lost in pause.message
    resume = next(e for e in record.events if e.kind == "resume")
    assert back <= resume.t_s <= back + RETRY_MAX_S + 2.0
    assert any(e.kind == "info" and f"{lost} answers again" in e.message for e in record.events)


def test_drop_longer_than_the_window_aborts_and_the_off_command_is_retried_until_confirmed(tmp_path: Path):
    station = _station(tmp_path, "{reconnect_window_s: 60, off_retry_s: 600}")
    record = _run(tmp_path, _drop(tmp_path, "supply", 600.0, 300.0), station)
    assert record.verdict == "aborted"
    reason = record.abort_reason or ""
    assert reason.startswith("instrument_lost: supply unreachable for 6") and "window 60 s" in reason
    abort = next(e for e in record.events if e.kind == "abort")
    assert 660.0 <= abort.t_s <= 662.0
    # the engine kept sending the off command until the link came back at 900 s
    assert record.outputs_not_confirmed_off == []
    assert record.sim_truth.outputs_off_at_end
    off = [c for c in record.sim_truth.output_transitions if c["instrument"] == "supply" and not c["on"]]
    assert 900.0 <= off[-1]["t_s"] <= 900.0 + 2 * RETRY_MAX_S
    assert any("supply confirmed off after" in e.message for e in record.events)


def test_output_never_confirmed_off_is_listed_in_the_record_and_the_report(tmp_path: Path):
    station = _station(tmp_path, "{reconnect_window_s: 60, off_retry_s: 120}")
    record = _run(tmp_path, _drop(tmp_path, "supply", 600.0, 100000.0), station)
    assert record.verdict == "aborted"
    # the truth: the supply is still on, and the record says so instead of claiming safety
    assert record.sim_truth.outputs_off_at_end is False
    (unconfirmed,) = record.outputs_not_confirmed_off
    assert unconfirmed.instrument == "supply" and unconfirmed.retried_s >= 120.0
    saved = json.loads((tmp_path / "run" / "record.json").read_text())
    assert saved["outputs_not_confirmed_off"][0]["instrument"] == "supply"
    html = (tmp_path / "run" / "report.html").read_text()
    assert "the supply output could NOT be confirmed OFF" in html and 'id="outputs-not-off"' in html
    assert any(e.kind == "warning" and "DANGER" in e.message for e in record.events)


def test_cli_says_an_output_is_not_confirmed_off_in_words_an_operator_will_not_miss(tmp_path: Path):
    from tests.simserve import run_bench

    station = _station(tmp_path, "{reconnect_window_s: 30, off_retry_s: 60}")
    scenario = _drop(tmp_path, "supply", 120.0, 100000.0)
    done = run_bench("run", str(LONG_CHARGE), "--station", station, "--scenario", scenario, "--yes",
                     "--json", "--out", str(tmp_path / "cli-run"), "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert done.returncode == 3, done.stderr  # aborted
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["outputs_not_confirmed_off"][0]["instrument"] == "supply"
    assert "DANGER: the supply output could NOT be confirmed OFF" in done.stderr




@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal (a shell that starts
    pytest in the background has it ignored); the handlers as they were afterwards."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


def _interrupt_when(drv, method: str, ready) -> None:
    """Ctrl-C (a real SIGINT to this process) as ``drv.<method>`` is first called once ``ready()``
    holds, before the instrument is sent anything."""
    real = getattr(drv, method)
    fired: list[bool] = []

    def interrupted(*args, **kwargs):
        if not fired and ready():
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    setattr(drv, method, interrupted)


def _run_catching_interrupts(request: RunRequest):
    try:
        record = execute_run(request, console=None)
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped the engine: no verdict, the outputs maybe left on")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back after the run
    return record


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_while_the_outputs_are_switched_off_does_not_stop_it(tmp_path: Path):
    """The operator stops the run, then hits Ctrl-C just as the supply is to be switched off: the
    off command goes out all the same, the supply is off (simulator ground truth), the record says so."""
    engines = []

    def on_engine(engine) -> None:
        engines.append(engine)
        _interrupt_when(engine.bench.supply, "safe_state", lambda: True)

    record = _run_catching_interrupts(RunRequest(
        procedure=LONG_CHARGE, out_dir=tmp_path / "run", yes=True, watchdog=False,
        db=f"sqlite:///{tmp_path / 'b.db'}", on_engine=on_engine,
        stop_requested=lambda: "stopped by the operator" if engines[0].clock.now() >= 600 else None))
    assert record.verdict == "aborted" and record.abort_reason == "stopped by the operator"
    assert record.sim_truth.outputs_off_at_end and record.outputs_not_confirmed_off == []
    assert record.exit_requested


@pytest.mark.usefixtures("ctrl_c_raises")
def test_told_to_exit_as_an_abort_begins_keeps_its_reason_and_does_not_retry(tmp_path: Path):
    """SIGTERM/Ctrl-C arriving just as a lost link's abort switches the outputs off (CI saw it
    exit 130, the record left 'running'): the abort keeps its reason, the load is off, and the
    engine ends without retrying the unreachable supply's off command, which the record names."""
    station = _station(tmp_path, "{reconnect_window_s: 60, off_retry_s: 600}")
    engines = []

    def on_engine(engine) -> None:
        engines.append(engine)
        # the window ends at 660 s: the trip's own off commands, before the abort's
        _interrupt_when(engine.bench.load, "safe_state", lambda: engine.clock.now() >= 655)

    record = _run_catching_interrupts(RunRequest(
        procedure=LONG_CHARGE, station=station, scenario=_drop(tmp_path, "supply", 600.0, 100000.0),
        out_dir=tmp_path / "run", yes=True, watchdog=False, db=f"sqlite:///{tmp_path / 'b.db'}",
        on_engine=on_engine))
    assert record.verdict == "aborted"
    assert (record.abort_reason or "").startswith("instrument_lost: supply unreachable")
    assert any(e.kind == "trip" for e in record.events)
    (unconfirmed,) = record.outputs_not_confirmed_off
    assert unconfirmed.instrument == "supply" and unconfirmed.retried_s == 0.0
    assert not _state_at(record.sim_truth.output_transitions, "load", math.inf)
    assert record.exit_requested


@pytest.mark.usefixtures("ctrl_c_raises")
def test_second_ctrl_c_ends_the_retrying_of_the_off_command(tmp_path: Path):
    """docs/safety.md: the first Ctrl-C ends the run, whose end keeps sending an unreachable
    supply its off command; the second ends that at once (the watchdog's to carry on, if any)."""
    station = _station(tmp_path, "{reconnect_window_s: 600, off_retry_s: 600}")
    engines = []

    def on_engine(engine) -> None:
        engines.append(engine)
        _interrupt_when(engine.bench.load, "measure", lambda: engine.clock.now() >= 700)  # paused
        _interrupt_when(engine.bench.supply, "reconnect", lambda: engine.clock.now() >= 800)

    record = _run_catching_interrupts(RunRequest(
        procedure=LONG_CHARGE, station=station, scenario=_drop(tmp_path, "supply", 600.0, 100000.0),
        out_dir=tmp_path / "run", yes=True, watchdog=False, db=f"sqlite:///{tmp_path / 'b.db'}",
        on_engine=on_engine))
    assert record.verdict == "aborted"
    assert (record.abort_reason or "").startswith("interrupted by the operator")
    (unconfirmed,) = record.outputs_not_confirmed_off
    assert unconfirmed.instrument == "supply" and 60.0 <= unconfirmed.retried_s <= 120.0 + RETRY_MAX_S
    assert record.exit_requested
