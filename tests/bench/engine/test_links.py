"""Instrument links that drop mid-run (scenario fault ``instrument_disconnect``), on the in-process
simulator: the run pauses with every reachable output off, reconnects with back-off and goes on;
a drop longer than the station's window aborts with every output confirmed off or named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.run import RunRequest, execute_run
from tests.bench.engine.conftest import (
    LONG_CHARGE,
    RETRY_MAX_S,
    link_drop,
    output_on_at,
    sim_station_with,
)

DROP_AT = 1800.0


def _run(tmp_path: Path, scenario: str, station: str | None = None):
    return execute_run(RunRequest(procedure=LONG_CHARGE, station=station, scenario=scenario,
                                  out_dir=tmp_path / "run", yes=True, watchdog=False,
                                  db=f"sqlite:///{tmp_path / 'b.db'}"), console=None)


@pytest.mark.parametrize("lost", ["supply", "load"])
def test_two_minute_drop_pauses_with_outputs_off_and_the_charge_goes_on(tmp_path: Path, lost: str):
    record = _run(tmp_path, link_drop(tmp_path, lost, DROP_AT, 120.0))
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
            assert not output_on_at(transitions, "supply", t), t
    else:
        # an unreachable supply cannot be told anything: the load stays off, and the first thing
        # the supply hears when its link is back is the off command
        off = next(c for c in transitions if c["instrument"] == "supply" and not c["on"]
                   and c["t_s"] >= DROP_AT)
        assert back <= off["t_s"] <= back + RETRY_MAX_S + 1.0
    for t in range(int(DROP_AT), int(back)):
        assert not output_on_at(transitions, "load", t), t
    # ... and then the charge went on: the supply back on after the link returned
    assert any(c["instrument"] == "supply" and c["on"] and c["t_s"] > back for c in transitions)
    pause = next(e for e in record.events if e.kind == "pause")
    assert "instrument_lost" in pause.message and lost in pause.message
    resume = next(e for e in record.events if e.kind == "resume")
    assert back <= resume.t_s <= back + RETRY_MAX_S + 2.0
    assert any(e.kind == "info" and f"{lost} answers again" in e.message for e in record.events)


def test_drop_longer_than_the_window_aborts_and_the_off_command_is_retried_until_confirmed(tmp_path: Path):
    station = sim_station_with(tmp_path, "{reconnect_window_s: 60, off_retry_s: 600}")
    record = _run(tmp_path, link_drop(tmp_path, "supply", 600.0, 300.0), station)
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
    station = sim_station_with(tmp_path, "{reconnect_window_s: 60, off_retry_s: 120}")
    record = _run(tmp_path, link_drop(tmp_path, "supply", 600.0, 100000.0), station)
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

    station = sim_station_with(tmp_path, "{reconnect_window_s: 30, off_retry_s: 60}")
    scenario = link_drop(tmp_path, "supply", 120.0, 100000.0)
    done = run_bench("run", str(LONG_CHARGE), "--station", station, "--scenario", scenario, "--yes",
                     "--json", "--out", str(tmp_path / "cli-run"), "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert done.returncode == 3, done.stderr  # aborted
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["outputs_not_confirmed_off"][0]["instrument"] == "supply"
    assert "DANGER: the supply output could NOT be confirmed OFF" in done.stderr



