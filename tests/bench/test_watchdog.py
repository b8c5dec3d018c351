"""The watchdog process on its own (no engine): a real ``python -m bench.watchdog`` process with
its own SCPI sessions to the in-process simulator's instruments, fed heartbeats by this test."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench.config import load_station
from bench.errors import SafetyTrip
from bench.station import connect_bench
from bench.watchdog import start_watchdog
from bench.watchdog_files import trips


def _station_file(tmp_path: Path, bench) -> Path:
    sim_station = Path(__file__).resolve().parents[2] / "bench" / "stations" / "sim.yaml"
    data = yaml.safe_load(sim_station.read_text(encoding="utf-8"))
    data["supply"]["resource"] = bench.sim.endpoints.supply_resource
    data["load"]["resource"] = bench.sim.endpoints.load_resource
    data.pop("simulator")  # the watchdog sees real-looking TCP instruments
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_missed_heartbeats_trip_the_watchdog_which_turns_the_outputs_off(tmp_path: Path):
    with connect_bench(load_station(None)) as bench:
        station_path = _station_file(tmp_path, bench)
        run_dir = tmp_path / "run"
        watchdog = start_watchdog(load_station(station_path), run_dir, str(station_path), interval_s=0.2)
        try:
            bench.discharge_cc(20.0, 22.0)
            for i in range(5):
                watchdog.heartbeat(float(i))
                time.sleep(0.1)
            assert bench.sim.truth()["load_input_on"]
            hung_at = time.monotonic()  # the engine hangs: no more heartbeats
            while bench.sim.truth()["load_input_on"] and time.monotonic() - hung_at < 10:
                time.sleep(0.01)
            reaction = time.monotonic() - hung_at
            assert not bench.sim.truth()["load_input_on"]
            # 3 x 0.2 s, floored at 1 s of wall time (bench.watchdog.MIN_TIMEOUT_WALL_S)
            assert 0.85 <= reaction < 2.5, reaction  # measured from the last beat, 0.1 s earlier
            deadline = time.monotonic() + 10
            while not trips(run_dir) and time.monotonic() < deadline:
                time.sleep(0.02)
            trip = trips(run_dir)[0]
            assert "no heartbeat" in trip["reason"] and trip["verified"]
            # the engine, if it comes back, finds the watchdog gone and stops
            try:
                watchdog.proc.wait(timeout=10)
                watchdog.heartbeat(9.0)
                raise AssertionError("heartbeat to a dead watchdog must raise")
            except SafetyTrip as exc:
                assert "no heartbeat" in str(exc)
        finally:
            watchdog.stop()


def test_normal_stop_leaves_outputs_and_run_folder_alone(tmp_path: Path):
    with connect_bench(load_station(None)) as bench:
        station_path = _station_file(tmp_path, bench)
        run_dir = tmp_path / "run"
        watchdog = start_watchdog(load_station(station_path), run_dir, str(station_path), interval_s=1.0)
        before = (run_dir / "watchdog.json").read_text()
        bench.charge(27.0, 5.0)
        watchdog.heartbeat(1.0)
        watchdog.stop()
        assert watchdog.proc.returncode == 0
        assert bench.sim.truth()["supply_output_on"]  # the run ended normally: not the watchdog's business
        assert (run_dir / "watchdog.json").read_text() == before  # hashed files unchanged
        assert not trips(run_dir) and json.loads(before)["sessions"][0]["ended_at"] is None


def test_handed_over_off_command_is_retried_until_the_link_is_back(tmp_path: Path):
    """The engine must exit while the supply is unreachable and on: the watchdog keeps sending
    the off command, over a re-opened session, until the output reads back off."""
    with connect_bench(load_station(None)) as bench:
        station_path = _station_file(tmp_path, bench)
        data = yaml.safe_load(station_path.read_text(encoding="utf-8"))
        data["supply"]["reconnect"] = {"attempts": 0}  # each failed command fails at once
        station_path.write_text(yaml.safe_dump(data), encoding="utf-8")
        run_dir = tmp_path / "run"
        watchdog = start_watchdog(load_station(station_path), run_dir, str(station_path), interval_s=1.0)
        try:
            bench.charge(27.0, 5.0)
            watchdog.heartbeat(1.0)
            bench.sim.supply_server.disconnect(20.0)  # world seconds: advanced by this test below
            taker = watchdog.hand_over(["supply"], 60.0)
            assert taker is not None and str(watchdog.pid) in taker
            watchdog.stop()  # returns at once: the watchdog goes on alone
            for _ in range(20):  # ~3 s of wall time with the link down: nobody can reach the supply
                bench.sim.advance(1.0)
                time.sleep(0.15)
            assert bench.sim.truth()["supply_output_on"] and not trips(run_dir)
            back = datetime.now(UTC)
            bench.sim.advance(1.0)  # the link is back
            deadline = time.monotonic() + 30
            while not trips(run_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            (trip,) = trips(run_dir)
            assert "handed over by the engine" in trip["reason"] and trip["verified"], trip
            assert datetime.fromisoformat(trip["done_at"]) >= back
            assert not bench.sim.truth()["supply_output_on"]
        finally:
            watchdog.proc.kill()
            watchdog.proc.wait(timeout=10)
