"""Lockstep CAN cost: one broadcast cycle sent by the simulator and settled in the driver.

Run: ``python benchmarks/bench_can_lockstep.py [--cycles 2000]``.

What the engine pays per control interval for the BMS broadcast on the in-process simulator:
the simulated adapter encodes the 11 DBC messages and sends them on a python-can virtual bus;
the driver's Notifier thread hands each frame to its listeners (bus capture to BLF, broadcast
decoder, ISO-TP stack); the controller waits until all of them are decoded (``wait_frames``).

Baseline measured in the same run: the same cycle encoded and decoded inline on one thread
(no bus, no threads): the ratio is the price of the real transport and its thread hand-offs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import can

from bench.sim.can_adapter import BroadcastEncoder, SimAdapter, broadcast_values
from drivers.vs02_adapter import CanConfig, Vs02Adapter
from drivers.vs02_broadcast import BroadcastState
from tests.bench.sim.bms_standin import StandinBms


def lockstep(cycles: int, capture: Path | None) -> tuple[float, float, int]:
    """(wall s, CPU s of all threads, frames) for ``cycles`` emit + settle rounds."""
    channel = f"bench-lockstep-{time.monotonic_ns()}"
    sim_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    sim = SimAdapter(StandinBms(), sim_bus, lock=threading.RLock())
    driver = Vs02Adapter(CanConfig(interface="virtual", channel=channel), log_path=capture)
    driver.open()
    try:
        sim.emit_due(0.0)
        driver.wait_frames(sim.frames_sent, timeout_s=2.0)
        wall, cpu = time.perf_counter(), time.process_time()
        for k in range(1, cycles + 1):
            sim.emit_due(float(k))
            if not driver.wait_frames(sim.frames_sent, timeout_s=2.0):
                raise SystemExit(f"cycle {k}: frames not decoded within 2 s")
        return time.perf_counter() - wall, time.process_time() - cpu, sim.frames_sent
    finally:
        driver.close()
        sim_bus.shutdown()


def inline(cycles: int) -> float:
    """Baseline: encode + decode of the same cycles on this thread only."""
    bms = StandinBms()
    encoder = BroadcastEncoder()
    state = BroadcastState(time.monotonic)
    started = time.perf_counter()
    for k in range(cycles):
        for frame in encoder.encode(broadcast_values(bms, k, float(k))):
            state.update(frame.arbitration_id, frame.data)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=2000)
    options = parser.parse_args()
    n = options.cycles
    base = inline(n)
    print(f"{'path':<44}{'us/cycle':>10}{'CPU us/cycle':>14}{'vs inline':>11}")
    print(f"{'inline encode + decode (baseline)':<44}{base / n * 1e6:>10.0f}{'':>14}{1.0:>10.1f}x")
    with tempfile.TemporaryDirectory(prefix="bench-lockstep-") as tmp:
        for label, capture in (("virtual bus + Notifier, no capture", None),
                               ("virtual bus + Notifier + BLF capture", Path(tmp) / "can.blf")):
            wall, cpu, frames = lockstep(n, capture)
            print(f"{label:<44}{wall / n * 1e6:>10.0f}{cpu / n * 1e6:>14.0f}{wall / base:>10.1f}x")
    print(f"frames per cycle: {frames / (n + 1):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
