"""Driver measure() throughput vs raw pyvisa query() of the same measurement, same instrument.

Run: ``python benchmarks/bench_drivers.py [seconds_per_case]``. Each simulated family is served
by ScpiServer on loopback and read through pyvisa-py; the ratio driver/raw should be >= 0.95.

The two are timed interleaved, in batches of ``BATCH`` calls each, alternating, over the same
period: a shared machine's load then weighs on both alike, and the ratio of their total times is
the driver's own cost. Which of the two goes first alternates from batch to batch; the figure
is the median of ``ROUNDS`` such periods.

The last column is the driver's own cost per call, which is what the ratio measures but without
the socket: the same pair through the ``@inprocess`` VISA backend (drivers.visa_inprocess), in
CPU time of this thread, interleaved the same way (median of ``ROUNDS``).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable

from bench.sim.instruments import SIM_LOAD_FAMILIES, SIM_SUPPLY_FAMILIES, make_instrument
from bench.sim.scpi_server import ScpiServer
from drivers.registry import open_instrument
from drivers.visa import open_resource
from drivers.visa_inprocess import BACKEND, register

ROUNDS = 5
BATCH = 50


def interleaved_rates(first: Callable[[], object], second: Callable[[], object], seconds: float,
                      timer: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """Calls per second (of ``timer``) of ``first`` and ``second``, timed in alternating batches
    over ``seconds`` of wall time."""
    spent = [0.0, 0.0]
    calls = 0
    deadline = time.perf_counter() + seconds
    order = [(0, first), (1, second)]
    while time.perf_counter() < deadline:
        for index, action in order:
            started = timer()
            for _ in range(BATCH):
                action()
            spent[index] += timer() - started
        calls += BATCH
        order.reverse()
    return calls / spent[0], calls / spent[1]


def median_rates(first: Callable[[], object], second: Callable[[], object], seconds: float,
                 timer: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    rounds = sorted((interleaved_rates(first, second, seconds / ROUNDS, timer) for _ in range(ROUNDS)),
                    key=lambda rates: rates[1] / rates[0])
    return rounds[ROUNDS // 2]


def main(seconds: float) -> None:
    print(f"{'family':<18} {'raw q/s':>9} {'driver q/s':>11} {'ratio':>6} {'server us/msg':>14} "
          f"{'driver own us/call':>19}")
    for family in SIM_SUPPLY_FAMILIES + SIM_LOAD_FAMILIES:
        instrument = make_instrument(family, random.Random(0))
        server = ScpiServer(instrument, threading.RLock())
        port = server.start()
        resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
        driver = open_instrument(family, resource, timeout_s=2.0)
        raw = open_resource(resource, 2.0)
        command = driver.family.commands["measure"]
        raw_measure = lambda: [float(x) for x in raw.query(command).split(";")]  # noqa: B023, E731
        raw_rate, driver_rate = median_rates(raw_measure, driver.measure, seconds)
        register(resource, server)
        local_driver = open_instrument(family, resource, timeout_s=2.0, backend=BACKEND)
        local_raw = open_resource(resource, 2.0, BACKEND)
        local_measure = lambda: [float(x) for x in local_raw.query(command).split(";")]  # noqa: B023, E731
        local_raw_rate, local_driver_rate = median_rates(local_measure, local_driver.measure, seconds,
                                                         time.thread_time)
        own_us = (1 / local_driver_rate - 1 / local_raw_rate) * 1e6
        n, started = 20000, time.perf_counter()
        for _ in range(n):
            instrument.handle(command)
        server_us = (time.perf_counter() - started) / n * 1e6
        print(f"{family:<18} {raw_rate:>9.0f} {driver_rate:>11.0f} {driver_rate / raw_rate:>6.2f} "
              f"{server_us:>14.1f} {own_us:>19.2f}")
        for session in (raw, driver, local_raw, local_driver):
            session.close()
        server.close()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
