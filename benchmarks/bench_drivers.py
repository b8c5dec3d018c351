"""Driver measure() throughput vs raw pyvisa query() of the same measurement, same instrument.

Run: ``python benchmarks/bench_drivers.py [seconds_per_case]``. Each simulated family is served
by ScpiServer on loopback and read through pyvisa-py; the ratio driver/raw should be >= 0.9.
"""

from __future__ import annotations

import random
import sys
import threading
import time

from bench.sim.instruments import SIM_LOAD_FAMILIES, SIM_SUPPLY_FAMILIES, make_instrument
from bench.sim.scpi_server import ScpiServer
from drivers.registry import open_instrument
from drivers.visa import open_resource

ROUNDS = 5


def rate(action: object, seconds: float) -> float:
    assert callable(action)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        action()
        count += 1
    return count / (time.perf_counter() - started)


def main(seconds: float) -> None:
    print(f"{'family':<18} {'raw q/s':>9} {'driver q/s':>11} {'ratio':>6} {'server us/msg':>14}")
    for family in SIM_SUPPLY_FAMILIES + SIM_LOAD_FAMILIES:
        instrument = make_instrument(family, random.Random(0))
        server = ScpiServer(instrument, threading.RLock())
        port = server.start()
        resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
        driver = open_instrument(family, resource, timeout_s=2.0)
        raw = open_resource(resource, 2.0)
        command = driver.family.commands["measure"]
        raw_measure = lambda: [float(x) for x in raw.query(command).split(";")]  # noqa: B023, E731
        # Alternate short rounds and keep the best of each: the machine is shared and noisy.
        raw_rate = driver_rate = 0.0
        for _ in range(ROUNDS):
            raw_rate = max(raw_rate, rate(raw_measure, seconds / ROUNDS))
            driver_rate = max(driver_rate, rate(driver.measure, seconds / ROUNDS))
        n, started = 20000, time.perf_counter()
        for _ in range(n):
            instrument.handle(command)
        server_us = (time.perf_counter() - started) / n * 1e6
        print(f"{family:<18} {raw_rate:>9.0f} {driver_rate:>11.0f} {driver_rate / raw_rate:>6.2f} "
              f"{server_us:>14.1f}")
        raw.close()
        driver.close()
        server.close()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
