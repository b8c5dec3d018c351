"""Broadcast decoding throughput of the driver's decode path vs the 500 kbit/s bus maximum.

Run: ``python benchmarks/bench_can_decode.py [cycles]``. Goal: >= 10x the ~4,000 frames/s a
500 kbit/s bus can carry.

The stream is ``cycles`` (default 500) consecutive simulator broadcast cycles, encoded from the
repo DBC, of a pack discharging at 50 A: per cycle the message counter, uptime, pack voltage,
SOC and the noisy cell voltages and current move as on a real bus, while the identity and limit
frames repeat. Each
frame goes through ``drivers.vs02_broadcast.BroadcastState.update`` (the per-frame work of the
driver's listener), which decodes a changed payload with cantools and reuses the signals of a
repeated one; the script prints how many frames of the stream changed, so the figure says how
much decoding it contains (a stream of one cycle repeated would decode nothing after the first).

The stream is fed ``ROUNDS`` times to a fresh state; the figures are the median rate over the
rounds in CPU time of this thread (the steadier one on a shared machine) with its range, and
the wall rate of the same rounds. Then ``snapshot()`` (the engine's per-sample read), likewise.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sim.can_adapter import BroadcastEncoder, broadcast_values
from drivers.vs02_broadcast import BroadcastState
from tests.bench.sim.bms_standin import StandinBms

BUS_MAX_FRAMES_PER_S = 4_000  # 500 kbit/s, ~125 bits per 8-byte classic frame incl. stuffing
GOAL_X = 10
ROUNDS = 7
CYCLE_S = 0.1  # the simulator's broadcast period


def discharge_stream(cycles: int) -> list[tuple[int, bytes]]:
    """(id, payload) of ``cycles`` broadcast cycles of a pack discharging at 50 A, readings with
    the sensor noise of a real BMS: a few LSBs at the DBC's resolution (1 mV per cell, 0.1 A)."""
    noise = random.Random(17)
    bms = StandinBms()
    cells = list(bms.cell_voltages_v)
    encoder = BroadcastEncoder()
    frames: list[tuple[int, bytes]] = []
    for n in range(cycles):
        bms.cell_voltages_v = [v + noise.choice((-0.002, -0.001, 0.0, 0.001, 0.002)) for v in cells]
        bms.pack_voltage_v = sum(bms.cell_voltages_v)
        bms.current_a = -50.0 + noise.choice((-0.1, 0.0, 0.1))
        bms.soc_pct = 63.27 - 50.0 * CYCLE_S * n / 3600 / bms.design_capacity_ah * 100
        frames += [(m.arbitration_id, bytes(m.data))
                   for m in encoder.encode(broadcast_values(bms, n, n * CYCLE_S))]
    return frames


def changed_frames(frames: list[tuple[int, bytes]]) -> int:
    last: dict[int, bytes] = {}
    changed = 0
    for arbitration_id, data in frames:
        changed += last.get(arbitration_id) != data
        last[arbitration_id] = data
    return changed


def rates(action: Callable[[], int]) -> tuple[list[float], list[float]]:
    """Items per second of ``action()`` (which returns how many it handled), CPU and wall, per round."""
    cpu, wall = [], []
    for _ in range(ROUNDS):
        started_cpu, started_wall = time.thread_time(), time.perf_counter()
        count = action()
        cpu.append(count / (time.thread_time() - started_cpu))
        wall.append(count / (time.perf_counter() - started_wall))
    return cpu, wall


def main(cycles: int) -> None:
    frames = discharge_stream(cycles)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min); "
          f"stream: {cycles} cycles, {len(frames)} frames, {changed_frames(frames)} of them changed "
          f"from the previous frame of their ID; {ROUNDS} rounds")

    def decode() -> int:
        state = BroadcastState(time.monotonic)
        update = state.update
        for arbitration_id, data in frames:
            update(arbitration_id, data)
        return len(frames)

    state = BroadcastState(time.monotonic)
    for arbitration_id, data in frames:
        state.update(arbitration_id, data)

    def snapshots() -> int:
        for _ in range(2_000):
            state.snapshot()
        return 2_000

    decode_cpu, decode_wall = rates(decode)
    snapshot_cpu, snapshot_wall = rates(snapshots)
    rate = statistics.median(decode_cpu)
    print(f"{'path':<18}{'median (CPU)':>16}{'range (CPU)':>24}{'median (wall)':>18}{'vs bus max':>12}")
    for name, unit, cpu, wall in (("decode (update)", "f/s", decode_cpu, decode_wall),
                                  ("snapshot()", "/s", snapshot_cpu, snapshot_wall)):
        spread = f"{min(cpu):,.0f}-{max(cpu):,.0f} {unit}"
        ratio = f"{statistics.median(cpu) / BUS_MAX_FRAMES_PER_S:>11.1f}x" if cpu is decode_cpu else ""
        print(f"{name:<18}{statistics.median(cpu):>12,.0f} {unit:<3}{spread:>24}"
              f"{statistics.median(wall):>14,.0f} {unit:<3}{ratio}")
    verdict = "met" if rate >= GOAL_X * BUS_MAX_FRAMES_PER_S else "NOT met"
    print(f"decode {rate / BUS_MAX_FRAMES_PER_S:.1f}x the bus maximum (CPU), goal >= {GOAL_X}x: {verdict}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
