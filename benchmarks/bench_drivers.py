"""Driver ``measure()`` against the plainest pyvisa ``query()`` of the same command, same session.

Run: ``python benchmarks/bench_drivers.py [seconds_per_family]`` (default 2). Goal (issue 17):
``measure()`` at >= 0.95x the raw query's rate in every family, in the same run.

For each simulated family, one ScpiServer on loopback and ONE pyvisa-py session to it: the driver
is built on that session and the raw side is ``session.query(command)`` on the same resource
object, with ``command`` the family table's ``measure`` string. Before timing, the bytes the
server receives for one ``measure()`` and one raw query are compared: the benchmark stops if they
differ (the ratio would then compare different work).

Timing: short batches of ``BATCH`` calls, in pairs of four batches (driver, raw, raw, driver;
then raw, driver, driver, raw; ...), the first ``WARMUP_PAIRS`` pairs discarded. Each pair gives
one ratio (raw time / driver time = driver rate / raw rate); the figure is the median over the
pairs, with the inter-quartile range. A pair lasts ~1.6 ms, so the load of the shared machine and
the server thread's scheduling weigh on both sides alike, and a pair hit by a stall is one
outlier among hundreds instead of a bias in a total. The ratio of the totals is printed too (the
old figure: it moves with every stall).

The same is then done through the ``@inprocess`` VISA backend (drivers.visa_inprocess: no socket,
no thread; the simulator's SCPI parser runs in this thread) timed in CPU time of this thread:
that ratio and the driver's own cost per call (driver minus raw, per pair, median) isolate what
the driver adds. ``expected`` is the wall ratio that cost predicts on the socket:
raw / (raw + own).

``A/A`` is the control: the raw query against itself, timed the same way on the socket for half
the time. It shows what the method reads when there is no difference: when it is off 1 by more
than ``CONTROL_TOLERANCE`` (a heavily loaded machine, too few pairs), the row is marked ``noisy``
and the verdict is "inconclusive" rather than met or not met.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyvisa.resources import MessageBasedResource

from bench.sim.instruments import SIM_LOAD_FAMILIES, SIM_SUPPLY_FAMILIES, make_instrument
from bench.sim.scpi_server import ScpiServer
from drivers.registry import driver_class
from drivers.scpi import ScpiInstrument
from drivers.scpi_power import ScpiPowerBase
from drivers.visa import open_resource
from drivers.visa_inprocess import BACKEND, register, unregister

GOAL = 0.95
#: the A/A control must read 1 within this, or the family's figures are marked noisy
CONTROL_TOLERANCE = 0.02
BATCH = 10
WARMUP_PAIRS = 25


@dataclass(frozen=True)
class Paired:
    """Per-pair ratios raw/driver of batch times and per-call times, warm-up excluded."""

    ratios: list[float]
    driver_s: list[float]  # per call, one value per pair
    raw_s: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def iqr(self) -> tuple[float, float]:
        quartiles = statistics.quantiles(self.ratios, n=4)
        return quartiles[0], quartiles[2]

    @property
    def ratio_of_totals(self) -> float:
        return sum(self.raw_s) / sum(self.driver_s)

    @property
    def own_s(self) -> float:
        """The driver's cost beyond the raw query per call (median over pairs)."""
        return statistics.median(d - r for d, r in zip(self.driver_s, self.raw_s, strict=True))


def _batch(action: Callable[[], object], timer: Callable[[], float]) -> float:
    started = timer()
    for _ in range(BATCH):
        action()
    return timer() - started


def paired(driver: Callable[[], object], raw: Callable[[], object], seconds: float,
           timer: Callable[[], float]) -> Paired:
    """Pairs of ``driver`` and ``raw`` for ``seconds``: each pair is four batches in the order
    driver, raw, raw, driver (or raw, driver, driver, raw, alternately), so a batch's position
    in the pair weighs on both sides alike within every pair."""
    ratios: list[float] = []
    driver_s: list[float] = []
    raw_s: list[float] = []
    deadline = time.perf_counter() + seconds
    pair = 0
    while time.perf_counter() < deadline or len(ratios) < 20:
        if pair % 2 == 0:
            d = _batch(driver, timer)
            r = _batch(raw, timer) + _batch(raw, timer)
            d += _batch(driver, timer)
        else:
            r = _batch(raw, timer)
            d = _batch(driver, timer) + _batch(driver, timer)
            r += _batch(raw, timer)
        pair += 1
        if pair <= WARMUP_PAIRS or d <= 0 or r <= 0:  # warm-up; a CPU clock that did not tick
            continue
        driver_s.append(d / (2 * BATCH))
        raw_s.append(r / (2 * BATCH))
        ratios.append(r / d)
    return Paired(ratios, driver_s, raw_s)


def wire_bytes(server: ScpiServer, action: Callable[[], object]) -> bytes:
    """What the server receives (all sessions) while ``action`` runs."""
    received: list[bytes] = []
    execute = server.execute

    def recording(pending: bytes, chunk: bytes) -> tuple[str, bytes]:
        received.append(chunk)
        return execute(pending, chunk)

    server.execute = recording  # type: ignore[method-assign]
    try:
        action()
    finally:
        del server.execute  # back to the class's method
    return b"".join(received)


def build(family: str, resource: str, backend: str) -> tuple[ScpiPowerBase, MessageBasedResource, str]:
    """The family's driver on a fresh session, that same session (the raw side), the command."""
    session = open_resource(resource, 2.0, backend)
    assert isinstance(session, MessageBasedResource)
    driver = driver_class(family)(ScpiInstrument(session, family))
    assert driver.scpi.transport is session
    # a reply to a query proves the server has consumed the set-up writes (e.g. SYST:REM) before
    # the wire comparison starts
    session.query("*IDN?")
    command = driver.family.commands["measure"]
    return driver, session, command


class NotTheSameWork(Exception):
    """measure() and the raw query put different bytes on the wire: their ratio would be meaningless."""


@dataclass(frozen=True)
class FamilyFigures:
    family: str
    command: str
    wall: Paired  # socket, wall time
    control: Paired  # socket, raw against raw
    cpu: Paired  # @inprocess, CPU time of this thread

    @property
    def trusted(self) -> bool:
        return abs(self.control.median - 1) <= CONTROL_TOLERANCE

    def row(self) -> str:
        raw_us = statistics.median(self.wall.raw_s) * 1e6
        driver_us = statistics.median(self.wall.driver_s) * 1e6
        own_us = self.cpu.own_s * 1e6
        wall_iqr, cpu_iqr = self.wall.iqr, self.cpu.iqr
        return (f"{self.family:<17} {self.command:<17} {raw_us:>7.1f} {driver_us:>7.1f} {self.wall.median:>6.3f} "
                f"{wall_iqr[0]:>5.3f}-{wall_iqr[1]:<5.3f} {self.wall.ratio_of_totals:>6.3f} "
                f"{len(self.wall.ratios):>6} {self.control.median:>6.3f} | {self.cpu.median:>9.3f} "
                f"{cpu_iqr[0]:>5.3f}-{cpu_iqr[1]:<5.3f} {own_us:>6.2f} {raw_us / (raw_us + own_us):>8.3f}"
                f"{'' if self.trusted else '  noisy'}")


HEADER = (f"{'family':<17} {'command':<17} {'raw us':>7} {'drv us':>7} {'ratio':>6} {'IQR':>11} {'totals':>6} "
          f"{'pairs':>6} {'A/A':>6} | {'CPU ratio':>9} {'IQR':>11} {'own us':>6} {'expected':>8}")


def measure_family(family: str, seconds: float) -> FamilyFigures:
    server = ScpiServer(make_instrument(family, random.Random(0)), threading.RLock())
    server.start()
    try:
        driver, session, command = build(family, server.resource, "@py")

        def raw() -> str:
            return str(session.query(command))  # the plainest pyvisa query of the same string

        driver_wire, raw_wire = wire_bytes(server, driver.measure), wire_bytes(server, raw)
        if driver_wire != raw_wire or driver_wire != (command + "\n").encode("ascii"):
            raise NotTheSameWork(f"{family}: measure() sent {driver_wire!r}, the raw query {raw_wire!r}")
        wall = paired(driver.measure, raw, seconds, time.perf_counter)
        control = paired(raw, raw, seconds / 2, time.perf_counter)
        session.close()
        register(server.resource, server)
        try:
            local_driver, local_session, _ = build(family, server.resource, BACKEND)

            def local_raw() -> str:
                return str(local_session.query(command))

            cpu = paired(local_driver.measure, local_raw, seconds, time.thread_time)
            local_session.close()
        finally:
            unregister(server.resource, server)
    finally:
        server.close()
    return FamilyFigures(family, command, wall, control, cpu)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(seconds: float) -> int:
    print(f"load average {load_average()} (1/5/15 min), {os.cpu_count()} CPUs; batches of {BATCH}, "
          f"{WARMUP_PAIRS} warm-up pairs discarded, {seconds:g} s per family and path")
    print(HEADER)
    lowest, noisy = float("inf"), []
    for family in SIM_SUPPLY_FAMILIES + SIM_LOAD_FAMILIES:
        try:
            figures = measure_family(family, seconds)
        except NotTheSameWork as error:
            print(f"stopped: {error}: not the same work")
            return 1
        print(figures.row(), flush=True)
        lowest = min(lowest, figures.wall.median)
        if not figures.trusted:
            noisy.append(family)
    print(f"load average {load_average()} at the end")
    verdict = "met" if lowest >= GOAL else "NOT met"
    if noisy:
        verdict = f"inconclusive (A/A off: {', '.join(noisy)})"
    print(f"measure()/query() lowest median ratio {lowest:.3f}, goal >= {GOAL}: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0))
