"""The watchdog: a separate OS process that puts the bench in its safe state if the engine dies.

``bench run`` starts it (:func:`start_watchdog`) with ``python -m bench.watchdog``, in its own
session so a terminal hang-up or Ctrl-C to the engine's process group does not take it down.
It opens its OWN connections to the supply and the load (a TCP/LXI instrument accepts a second
session; for serial/USB instruments see docs/safety.md: the watchdog must own the port and
proxy it, or a hardware watchdog relay must cut the DC path).

Heartbeats travel over the watchdog's stdin, one line per control interval (``<bench t_s>``).
The watchdog acts when

* the pipe reaches end-of-file: the engine process is gone (the kernel closes its end on any
  death, SIGKILL included), detected at once;
* the engine's pid is gone or a zombie (polled);
* no heartbeat arrived for ``missed_intervals`` control intervals (a hung engine), never less
  than :data:`MIN_TIMEOUT_WALL_S` of wall time, because the controller's own latencies (UDS
  round trips, fsync) do not speed up with a sped-up simulator;
* it receives SIGTERM (``bench resume`` taking over, or an operator);
* a ``handover <s>`` line: the engine must exit with an output it could not confirm off (its
  instrument unreachable) and hands the off command over for ``<s>`` more bench seconds.

Acting = load input off, supply output off (reverse of activation), read both states back,
retry with back-off until both read back off or the station's ``supervision.off_retry_s`` (or
the handed-over time) has passed, then append what it did and when to ``watchdog.json`` and
``watchdog.log`` in the run folder, and exit. A ``stop`` line (the run ended normally) makes it
exit without touching the instruments or the run folder (the record has already hashed the
folder's files).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench.config import SIM_STATION, load_station
from bench.drivers_factory import open_load, open_supply
from bench.errors import InstrumentError, SafetyTrip
from bench.watchdog_files import log, read_sessions, trips, update_session

MIN_TIMEOUT_WALL_S = 1.0
READY_TIMEOUT_S = 30.0
POLL_S = 0.005
SAFE_STATE_ATTEMPTS = 3
#: wall seconds between two rounds of off commands to an unreachable instrument: first, most
RETRY_FIRST_WALL_S = 0.2
RETRY_MAX_WALL_S = 5.0


# ---------------------------------------------------------------------------- engine side
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: dead for our purpose
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop_previous(run_dir: Path, timeout_s: float = 10.0) -> list[int]:
    """``bench resume`` takes over: SIGTERM any watchdog of this run folder still alive
    (it then makes the bench safe and records it) and wait for it to exit."""
    stopped = []
    for session in read_sessions(run_dir):
        pid = int(session.get("pid", 0))
        if pid <= 0 or session.get("ended_at") is not None or not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        stopped.append(pid)
    return stopped


class WatchdogClient:
    """The engine's end: ``heartbeat(t_s)`` each sample, ``stop()`` when the run ends."""

    def __init__(self, proc: subprocess.Popen[bytes], run_dir: Path) -> None:
        self.proc = proc
        self.run_dir = run_dir
        self.pid = proc.pid
        self.handed_over = False

    def heartbeat(self, t_s: float) -> None:
        if self.proc.poll() is not None:
            self._gone(f"exited with code {self.proc.returncode}")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{t_s:.3f}\n".encode())
            self.proc.stdin.flush()
        except OSError as exc:
            self._gone(str(exc))

    def _gone(self, detail: str) -> None:
        acted = [s for s in trips(self.run_dir) if s.get("pid") == self.pid]
        why = f"; it made the bench safe: {acted[-1].get('reason')}" if acted else ""
        raise SafetyTrip(f"watchdog process {self.pid} is gone ({detail}){why}: the run is no longer "
                         "protected; stopped (resume with bench resume)")

    def hand_over(self, instruments: list[str], bench_s: float) -> str | None:
        """The engine must exit with ``instruments`` not confirmed off: the watchdog keeps sending
        the off command for ``bench_s`` more bench seconds. Returns who took it over, for the record."""
        if self.proc.poll() is not None or self.proc.stdin is None:
            return None
        try:
            self.proc.stdin.write(f"handover {bench_s:.3f} {','.join(instruments)}\n".encode())
            self.proc.stdin.flush()
        except OSError:
            return None
        self.handed_over = True
        return f"watchdog pid {self.pid} for {bench_s:.0f} s more"

    def leave_in_charge(self) -> None:
        """The engine did not carry its run to the end (it raised): close the heartbeat pipe
        without ``stop``, as a crash would; the watchdog makes the bench safe and records it."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def stop(self) -> None:
        if self.handed_over:
            return  # it is still sending off commands, in its own session: not ours to wait for
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(b"stop\n")
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def start_watchdog(station: Any, run_dir: Path, station_path: str | None, *,
                   interval_s: float) -> WatchdogClient:
    """Start the watchdog process for this run; returns once it holds its own instrument sessions."""
    run_dir = Path(run_dir)
    stop_previous(run_dir)
    command = [sys.executable, "-m", "bench.watchdog", "--station", str(station_path or SIM_STATION),
               "--run-dir", str(run_dir), "--interval", repr(float(interval_s)),
               "--engine-pid", str(os.getpid())]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
    line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    if line != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise InstrumentError("watchdog", "start",
                              f"watchdog did not start: {line or err.decode(errors='replace')[-500:]}")
    return WatchdogClient(proc, run_dir)


# ---------------------------------------------------------------------------- watchdog side
@dataclass
class _Watch:
    run_dir: Path
    engine_pid: int
    interval_s: float
    speed: float
    timeout_wall_s: float
    supply: Any
    load: Any
    off_retry_wall_s: float = 0.0
    last_beat_t: float | None = None
    last_beat_wall: float = field(default_factory=time.monotonic)

    def bench_time_now(self) -> float | None:
        if self.last_beat_t is None:
            return None
        return self.last_beat_t + (time.monotonic() - self.last_beat_wall) * self.speed


def make_safe(supply: Any, load: Any, retry_wall_s: float = 0.0) -> dict[str, Any]:
    """Load off, supply off, read back; retry, with back-off for up to ``retry_wall_s`` while an
    output does not read back off (its instrument unreachable). Never raises."""
    problems: list[str] = []
    readback: dict[str, bool | None] = {"load_input_on": None, "supply_output_on": None}
    deadline = time.monotonic() + retry_wall_s
    delay = RETRY_FIRST_WALL_S
    attempt = 0
    while attempt < SAFE_STATE_ATTEMPTS or time.monotonic() < deadline:
        if attempt >= SAFE_STATE_ATTEMPTS:
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2.0, RETRY_MAX_WALL_S)
        attempt += 1
        problems = []
        for name, drv in (("load", load), ("supply", supply)):
            if attempt > 1 and readback[f"{name}_{'output' if name == 'supply' else 'input'}_on"] is not False:
                # a session that died with the link is not re-opened by every driver by itself
                with contextlib.suppress(Exception):
                    drv.reconnect()
            try:
                problems.extend(f"{name}: {p}" for p in drv.safe_state())
            except Exception as exc:
                problems.append(f"{name}: {exc}")
        for key, drv in (("load_input_on", load), ("supply_output_on", supply)):
            try:
                readback[key] = drv.output_is_on()
            except Exception as exc:
                problems.append(f"read back {key}: {exc}")
                readback[key] = None
        if readback["load_input_on"] is False and readback["supply_output_on"] is False:
            break
    verified = readback["load_input_on"] is False and readback["supply_output_on"] is False
    return {"readback": readback, "verified": verified, "problems": problems, "attempts": attempt}


def _act(watch: _Watch, reason: str, retry_wall_s: float | None = None) -> int:
    detected = datetime.now(UTC)
    bench_t = watch.bench_time_now()
    result = make_safe(watch.supply, watch.load,
                       watch.off_retry_wall_s if retry_wall_s is None else retry_wall_s)
    done = datetime.now(UTC)
    update_session(watch.run_dir, os.getpid(), action="safe_state", reason=reason,
                    detected_at=detected.isoformat(), done_at=done.isoformat(),
                    last_heartbeat_t_s=watch.last_beat_t, bench_t_s_estimate=bench_t,
                    ended_at=done.isoformat(), **result)
    took_ms = (done - detected).total_seconds() * 1000
    log(watch.run_dir, f"{reason}: safe state {'verified' if result['verified'] else 'NOT verified'} "
                        f"in {took_ms:.0f} ms, read back {result['readback']}"
                        + (f", problems {result['problems']}" if result["problems"] else ""))
    return 0 if result["verified"] else 1


def watch(w: _Watch) -> int:
    terminated: list[str] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        terminated.append("SIGTERM (bench resume taking over, or an operator)")

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the engine
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)
    buffer = b""
    next_pid_poll = 0.0
    while True:
        if terminated:
            return _act(w, f"stopped by {terminated[0]}")
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                chunk = b"?"
            if not chunk:
                return _act(w, "engine process gone: heartbeat pipe closed")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip() == b"stop":
                    return 0
                if line.startswith(b"handover"):
                    _, seconds, *names = line.decode(errors="replace").split()
                    return _act(w, f"handed over by the engine: {' '.join(names) or 'outputs'} not "
                                   f"confirmed off", float(seconds) / w.speed)
                try:
                    w.last_beat_t = float(line)
                except ValueError:
                    continue
                w.last_beat_wall = time.monotonic()
        now = time.monotonic()
        if now - w.last_beat_wall > w.timeout_wall_s:
            return _act(w, f"no heartbeat for {now - w.last_beat_wall:.2f} s wall "
                           f"(limit {w.timeout_wall_s:.2f} s)")
        if now >= next_pid_poll:
            next_pid_poll = now + 0.1
            if not _alive(w.engine_pid):
                return _act(w, f"engine process {w.engine_pid} gone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watchdog")
    parser.add_argument("--station", required=True)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--interval", required=True, type=float, help="control interval, bench s")
    parser.add_argument("--engine-pid", required=True, type=int)
    args = parser.parse_args(argv)
    station = load_station(args.station)
    speed = station.simulator.speed if station.simulator is not None else 1.0
    missed = station.watchdog.missed_intervals
    timeout = max(missed * args.interval / speed, MIN_TIMEOUT_WALL_S)
    supply = open_supply(station.supply, {}, None)
    load = open_load(station.load, {}, None)
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    update_session(run_dir, os.getpid(), started_at=datetime.now(UTC).isoformat(),
                    engine_pid=args.engine_pid, interval_s=args.interval, speed=speed,
                    missed_intervals=missed, timeout_wall_s=timeout, ended_at=None,
                    supply=station.supply.resource, load=station.load.resource)
    log(run_dir, f"armed for engine pid {args.engine_pid}: {missed} x {args.interval:g} s intervals "
                  f"at {speed:g}x = {timeout:.2f} s wall; supply {station.supply.resource}, "
                  f"load {station.load.resource}")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    w = _Watch(run_dir, args.engine_pid, args.interval, speed, timeout, supply, load,
               off_retry_wall_s=station.supervision.off_retry_s / speed)
    try:
        return watch(w)
    finally:
        for drv in (load, supply):
            with contextlib.suppress(Exception):
                drv.close()


if __name__ == "__main__":
    sys.exit(main())
