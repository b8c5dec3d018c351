"""Scenario faults aimed at the controller itself: ``controller_death`` and ``watchdog_death``.

The simulator cannot kill the process that drives it, so it queues these faults
(``SimulatedBench.controller_faults``); this small rig, running beside the engine, takes them
and carries them out the way a real failure would: the controller process is killed with
SIGKILL (no ``finally`` runs, exactly like a crash or OOM kill), the watchdog process likewise.
It reads only the fault queue, never the simulator's ground truth.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.sim.control_port import query_controller_faults

log = logging.getLogger(__name__)

FaultSource = Callable[[], list[str]]
#: in the run folder: the controller faults already carried out (a resume skips them)
CARRIED_OUT_FILE = "fault-injection.json"


def carried_out(run_dir: Path) -> list[str]:
    path = run_dir / CARRIED_OUT_FILE
    return list(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else []


class ControllerFaultInjector:
    def __init__(self, source: FaultSource, watchdog_pid: Callable[[], int | None], run_dir: Path,
                 interval_s: float = 0.05) -> None:
        self.source = source
        self.run_dir = run_dir
        self.watchdog_pid = watchdog_pid
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fault-injection", daemon=True)

    def start(self) -> ControllerFaultInjector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                faults = self.source()
            except OSError as exc:  # simulator gone: nothing more to inject
                log.debug("fault source unavailable: %s", exc)
                continue
            for fault in faults:
                self.carry_out(fault)

    def carry_out(self, fault: str) -> None:
        # noted first: a resumed run must not meet the same injected death again
        done = carried_out(self.run_dir)
        (self.run_dir / CARRIED_OUT_FILE).write_text(json.dumps([*done, fault]), encoding="utf-8")
        if fault == "watchdog_death":
            pid = self.watchdog_pid()
            if pid is None:
                log.warning("watchdog_death: this run has no watchdog process")
                return
            log.warning("fault injection: killing the watchdog (pid %d)", pid)
            os.kill(pid, signal.SIGKILL)
        elif fault == "controller_death":
            log.warning("fault injection: killing the controller (pid %d)", os.getpid())
            os.kill(os.getpid(), signal.SIGKILL)


def in_process_source(sim: Any) -> FaultSource:
    def take() -> list[str]:
        queue: list[str] = sim.controller_faults
        with sim.lock:
            faults, queue[:] = list(queue), []
        return faults

    return take


def control_port_source(host: str, port: int) -> FaultSource:
    return lambda: query_controller_faults(host, port)
