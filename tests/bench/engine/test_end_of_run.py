"""Ctrl-C and SIGTERM while a run ends (bench/engine/end_of_run.py): noted, not raised, so that
the outputs go off, a trip keeps its reason and the record is sealed; the handlers put back after.

Real signals to this process: a driver method is wrapped to send SIGINT as it is called, on the
in-process simulator (ground truth from its output transitions).
"""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path

import pytest

import bench.run
from bench.engine.end_of_run import EndOfRun
from bench.run import RunRequest, execute_run
from tests.bench.engine.conftest import (
    LONG_CHARGE,
    PROCEDURES,
    RETRY_MAX_S,
    link_drop,
    output_on_at,
    scenario_file,
    sim_station_with,
)


@pytest.fixture
def terminal_handlers():
    """SIGINT raises KeyboardInterrupt, SIGTERM SystemExit, as in a terminal with the CLI's handler
    (a shell that starts pytest in the background has SIGINT ignored); put back afterwards."""
    def on_term(signum, frame):
        raise SystemExit(143)

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    yield on_term
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _signal(sig: int = signal.SIGINT) -> None:
    os.kill(os.getpid(), sig)  # its Python handler runs before os.kill returns (main thread)


# ----------------------------------------------------------------------------- EndOfRun itself
def test_requests_are_noted_while_the_run_ends_and_act_again_after(terminal_handlers) -> None:
    end = EndOfRun()
    end.begin()
    end.begin()  # idempotent: a trip, then the run's end
    _signal(signal.SIGTERM)
    assert end.exit_requested
    end.close()
    end.close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is terminal_handlers
    with pytest.raises(KeyboardInterrupt):
        _signal()


def test_an_operator_who_insists_is_not_held(terminal_handlers) -> None:
    """The second request puts the handlers back: the third acts as it would have."""
    end = EndOfRun()
    end.begin()
    _signal()
    _signal()
    with pytest.raises(KeyboardInterrupt):
        _signal()
    end.close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_signal_stays_ignored(terminal_handlers) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end = EndOfRun()
    end.begin()
    _signal()
    assert not end.exit_requested and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    end.close()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_off_the_main_thread_it_leaves_the_handlers_alone(terminal_handlers) -> None:
    end = EndOfRun()
    thread = threading.Thread(target=end.begin)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is terminal_handlers
    end.close()
    assert signal.getsignal(signal.SIGTERM) is terminal_handlers and not end.exit_requested


# ----------------------------------------------------------------------------- runs
def _interrupt_when(drv, method: str, ready, fired: list[float], now) -> None:
    """Ctrl-C as ``drv.<method>`` is first called once ``ready()`` holds, before the instrument is
    sent anything; the bench time it fired at goes into ``fired``."""
    real = getattr(drv, method)

    def interrupted(*args, **kwargs):
        if not fired and ready():
            fired.append(now())
            _signal()
        return real(*args, **kwargs)

    setattr(drv, method, interrupted)


def _run(request: RunRequest):
    try:
        record = execute_run(request, console=None)
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped the engine: no verdict, the outputs maybe left on")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back after the run
    return record


def _request(tmp_path: Path, **kwargs) -> RunRequest:
    return RunRequest(**{"procedure": LONG_CHARGE, "out_dir": tmp_path / "run", "yes": True, "watchdog": False,
                         "db": f"sqlite:///{tmp_path / 'b.db'}", **kwargs})


@pytest.mark.usefixtures("terminal_handlers")
def test_ctrl_c_while_the_outputs_are_switched_off_does_not_stop_it(tmp_path: Path):
    """The operator stops the run, then hits Ctrl-C just as the supply is to be switched off: the
    off command goes out all the same, the supply is off (ground truth), the record says so."""
    fired: list[float] = []
    engines = []

    def on_engine(engine) -> None:
        engines.append(engine)
        _interrupt_when(engine.bench.supply, "safe_state", lambda: True, fired, engine.clock.now)

    record = _run(_request(tmp_path, on_engine=on_engine, stop_requested=lambda: (
        "stopped by the operator" if engines[0].clock.now() >= 600 else None)))
    assert fired and fired[0] >= 600
    assert record.verdict == "aborted" and record.abort_reason == "stopped by the operator"
    assert record.sim_truth.outputs_off_at_end and record.outputs_not_confirmed_off == []
    assert record.exit_requested


@pytest.mark.usefixtures("terminal_handlers")
def test_told_to_exit_as_a_lost_link_trips_keeps_the_reason_and_does_not_retry(tmp_path: Path):
    """SIGTERM/Ctrl-C arriving as a lost link's trip switches the outputs off (CI saw the abort's
    twin of this exit 130, the record left 'running'): the abort keeps its reason, the load is off,
    and the engine ends without sending the unreachable supply its off command again, neither
    retrying nor while closing the bench; the record names it as not confirmed off."""
    station = sim_station_with(tmp_path, "{reconnect_window_s: 60, off_retry_s: 600}")
    fired: list[float] = []
    supply_offs: list[float] = []

    def on_engine(engine) -> None:
        # the window ends at 660 s: the trip's own off commands, before its event
        _interrupt_when(engine.bench.load, "safe_state",
                        lambda: engine.clock.now() >= 655 and not any(e.kind == "trip" for e in engine.record.events),
                        fired, engine.clock.now)
        real = engine.bench.supply.safe_state

        def counted():
            supply_offs.append(engine.clock.now())
            return real()

        engine.bench.supply.safe_state = counted

    record = _run(_request(tmp_path, station=station, scenario=link_drop(tmp_path, "supply", 600.0, 100000.0),
                           on_engine=on_engine))
    assert fired and 655 <= fired[0] <= 662
    assert record.verdict == "aborted"
    assert (record.abort_reason or "").startswith("instrument_lost: supply unreachable")
    (unconfirmed,) = record.outputs_not_confirmed_off
    assert unconfirmed.instrument == "supply" and unconfirmed.retried_s == 0.0
    assert [t for t in supply_offs if t >= fired[0]] == []
    assert not output_on_at(record.sim_truth.output_transitions, "load", math.inf)
    assert record.exit_requested


@pytest.mark.usefixtures("terminal_handlers")
@pytest.mark.parametrize("trip", ["limit", "contactor"])
def test_ctrl_c_as_a_trip_switches_off_keeps_the_trips_reason(tmp_path: Path, trip: str):
    """A safety limit's trip (cell over-voltage, here at 3.32 V: the pack charges to 3.34 V) and a
    supervision trip (the BMS opens its contactor): Ctrl-C lands in their own off commands; the
    reason stays theirs."""
    if trip == "limit":
        procedure = tmp_path / "low_ov.yaml"
        procedure.write_text(LONG_CHARGE.read_text(encoding="utf-8").replace(
            "warn_above: 3.60V, trip_above: 3.65V", "warn_above: 3.30V, trip_above: 3.32V"), encoding="utf-8")
        scenario, reason = None, "cell over-voltage"
    else:
        procedure = PROCEDURES / "supervised_discharge.yaml"
        scenario = scenario_file(tmp_path, "healthy", "faults:\n  - {at_s: 225.5, kind: contactor_open, "
                                                      "duration_s: 600}\n")
        reason = "contactor_open"
    fired: list[float] = []

    def on_engine(engine) -> None:
        _interrupt_when(engine.bench.supply, "safe_state", lambda: True, fired, engine.clock.now)

    record = _run(_request(tmp_path, procedure=procedure, scenario=scenario, on_engine=on_engine))
    assert fired
    assert record.verdict == "aborted" and reason in (record.abort_reason or ""), record.abort_reason
    assert any(e.kind == "trip" for e in record.events)
    assert record.sim_truth.outputs_off_at_end and record.exit_requested


@pytest.mark.usefixtures("terminal_handlers")
def test_second_ctrl_c_ends_the_retrying_of_the_off_command(tmp_path: Path):
    """docs/safety.md: the first Ctrl-C ends the run, whose end keeps sending an unreachable
    supply its off command; the second ends that at once (the watchdog's to carry on, if any)."""
    station = sim_station_with(tmp_path, "{reconnect_window_s: 600, off_retry_s: 600}")
    first: list[float] = []
    second: list[float] = []

    def on_engine(engine) -> None:
        _interrupt_when(engine.bench.load, "measure", lambda: engine.clock.now() >= 700, first,
                        engine.clock.now)  # paused, the supply's link down since 600 s
        _interrupt_when(engine.bench.supply, "reconnect", lambda: engine.clock.now() >= 800, second,
                        engine.clock.now)

    record = _run(_request(tmp_path, station=station, scenario=link_drop(tmp_path, "supply", 600.0, 100000.0),
                           on_engine=on_engine))
    assert first and second
    assert record.verdict == "aborted"
    assert (record.abort_reason or "").startswith("interrupted by the operator")
    (unconfirmed,) = record.outputs_not_confirmed_off
    assert unconfirmed.instrument == "supply"
    assert second[0] - first[0] <= unconfirmed.retried_s <= second[0] - first[0] + RETRY_MAX_S + 1.0
    assert record.exit_requested


@pytest.mark.usefixtures("terminal_handlers")
def test_ctrl_c_while_the_report_is_written_is_passed_on_to_the_caller(tmp_path: Path, monkeypatch):
    """After the record is sealed nothing is left to note it in: the caller reads it from the run's
    EndOfRun (the pytest plugin then stops its session); the report is written all the same."""
    real = bench.run.write_report

    def interrupted(run_dir):
        _signal()
        return real(run_dir)

    monkeypatch.setattr(bench.run, "write_report", interrupted)
    end_of_run = EndOfRun()
    record = _run(_request(tmp_path, end_of_run=end_of_run))
    assert record.verdict == "pass" and end_of_run.exit_requested
    assert (tmp_path / "run" / "report.html").exists()
