"""``bench sim serve``: the simulated bench as a standalone process at ``speed`` x real time.

A pacing thread advances the world by ``speed`` x the real time elapsed, in small real-time
ticks, so the instruments and the CAN bus behave like hardware on a wall clock. The BMS's
bus is also exposed as an SLCAN (Lawicel) serial device on a pseudo-terminal and on a TCP
socket (python-can ``interface="slcan", channel="socket://host:port"``).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from rich.console import Console

from bench.errors import ConfigError
from bench.sim.control_port import ControlPort
from bench.sim.scenario import Scenario, load_scenario
from bench.sim.slcan_bridge import SlcanBridge
from bench.sim.world import SimulatedBench

TICK_S = 0.02


def load_scenario_option(value: str, option: str = "--scenario") -> Scenario:
    """Load the scenario a command-line option names. A problem inside a scenario file is
    already located (file:line:column: key); an unknown built-in name is reported against
    the option, so the one-line error names where the bad value came from."""
    try:
        return load_scenario(value)
    except ConfigError as exc:
        if exc.file or exc.field:
            raise
        raise ConfigError(exc.message, field=option) from None


class Pacer:
    """Advance ``world`` at ``speed`` x real time on a background thread."""

    def __init__(self, world: SimulatedBench, speed: float) -> None:
        self.world = world
        self.speed = speed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sim-pacer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            self.world.advance((now - last) * self.speed)
            last = now


def start_standalone(scenario: str, speed: float, host: str = "127.0.0.1",
                     supply_family: str | None = None, load_family: str | None = None,
                     supply_port: int = 0, load_port: int = 0, can_port: int = 0,
                     control_port: int = 0,
                     ) -> tuple[SimulatedBench, Pacer, Any, dict[str, Any]]:
    world = SimulatedBench(load_scenario_option(scenario), supply_family=supply_family,
                           load_family=load_family)
    endpoints = world.start(host=host, supply_port=supply_port, load_port=load_port)
    bridge = SlcanBridge(endpoints.can_channel)
    tcp_port = bridge.start_tcp(host=host, port=can_port)
    control = ControlPort(world, host=host, port=control_port)
    pty_path = bridge.start_pty()
    pacer = Pacer(world, speed)
    pacer.start()
    info = {
        "scenario": scenario,
        "speed": speed,
        "supply": {"resource": endpoints.supply_resource, "family": endpoints.supply_family},
        "load": {"resource": endpoints.load_resource, "family": endpoints.load_family},
        "adapter": {
            "interface": "slcan",
            "channel": f"socket://{host}:{tcp_port}",
            "pty": pty_path,
            "bitrate": 500000,
            "in_process": {"interface": endpoints.can_interface, "channel": endpoints.can_channel},
        },
        # ground truth for tests (bench.sim.control_port): one JSON request per line
        "control": {"host": host, "port": control.port},
    }
    return world, pacer, bridge, info


def serve(*, scenario: str, speed: float, host: str, supply_family: str | None,
          load_family: str | None, as_json: bool, console: Console,
          ports: dict[str, int] | None = None) -> None:
    world, pacer, bridge, info = start_standalone(scenario, speed, host, supply_family, load_family,
                                                  **(ports or {}))
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if as_json:
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
    else:
        console.print(f"simulated VS02 bench, scenario [bold]{scenario}[/], {speed:g}x real time")
        console.print(f"  supply  {info['supply']['resource']}  ({info['supply']['family']})")
        console.print(f"  load    {info['load']['resource']}  ({info['load']['family']})")
        console.print(f"  CAN     slcan {info['adapter']['channel']}  or  {info['adapter']['pty']}")
        console.print("Ctrl-C to stop")
    try:
        while not stop.wait(0.2):
            pass
    finally:
        pacer.stop()
        bridge.close()
        world.close()
