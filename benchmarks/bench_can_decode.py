"""Broadcast decoding throughput of the driver's decode path vs the 500 kbit/s bus maximum.

Run: python benchmarks/bench_can_decode.py
Feeds one simulator broadcast cycle (encoded from the repo DBC) through
``drivers.vs02_broadcast.BroadcastState.update`` (the per-frame work of the driver's listener)
on one core, then builds snapshots. Goal: >= 10x the ~4,000 frames/s a 500 kbit/s bus can carry.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sim.can_adapter import BroadcastEncoder, broadcast_values
from drivers.vs02_broadcast import BroadcastState
from tests.bench.sim.bms_standin import StandinBms

BUS_MAX_FRAMES_PER_S = 4_000  # 500 kbit/s, ~125 bits per 8-byte classic frame incl. stuffing


def main(frames: int = 100_000) -> None:
    frames_cycle = [(m.arbitration_id, bytes(m.data)) for m in BroadcastEncoder().encode(
        broadcast_values(StandinBms(), 0, 0.0))]
    state = BroadcastState(time.monotonic)
    t0 = time.perf_counter()
    for i in range(frames):
        arbitration_id, data = frames_cycle[i % len(frames_cycle)]
        state.update(arbitration_id, data)
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    snapshots = 2_000
    for _ in range(snapshots):
        state.snapshot()
    snapshot_s = time.perf_counter() - t0
    rate = frames / decode_s
    print(f"{'path':<28}{'rate':>14}{'vs bus max':>12}")
    print(f"{'decode (update)':<28}{rate:>10,.0f} f/s{rate / BUS_MAX_FRAMES_PER_S:>11.1f}x")
    print(f"{'snapshot()':<28}{snapshots / snapshot_s:>10,.0f} /s")
    print(f"goal >= 10x bus max: {'met' if rate >= 10 * BUS_MAX_FRAMES_PER_S else 'NOT met'}")


if __name__ == "__main__":
    main()
