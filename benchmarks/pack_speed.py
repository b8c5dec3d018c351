"""Pack integration speed: 80,000 x (advance(1.0) + open_circuit_emf() + series_resistance()).

Run: python benchmarks/pack_speed.py   (budget from the pack brief: well under 3 s in CPython)
"""

from __future__ import annotations

import time

from bench.sim.pack import Pack, PackParams


def main(steps: int = 80_000) -> float:
    pack = Pack(PackParams.uniform(0.5))
    start = time.perf_counter()
    for k in range(steps):
        pack.advance(1.0, 50.0 if (k // 3600) % 2 else -50.0)
        pack.open_circuit_emf()
        pack.series_resistance()
    elapsed = time.perf_counter() - start
    print(f"{steps} steps in {elapsed:.2f} s ({elapsed / steps * 1e6:.1f} µs/step)")
    return elapsed


if __name__ == "__main__":
    main()
