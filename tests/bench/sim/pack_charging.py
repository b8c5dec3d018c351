"""Reference charge protocols the physics tests drive the Pack with (not a mock: the real Pack)."""

from __future__ import annotations

from bench.sim.pack import Pack


def cell_resistances(pack: Pack) -> tuple[list[float], list[float]]:
    """Per-cell (zero-current voltage, instantaneous resistance) from the Pack's own read-outs."""
    at_zero = pack.cell_voltages(0.0)
    at_one = pack.cell_voltages(1.0)
    return at_zero, [b - a for a, b in zip(at_zero, at_one, strict=True)]


def cc_cv_charge(pack: Pack, cc_a: float = 100.0, cc_until_cell_v: float = 3.55, cv_pack_v: float = 28.4,
                 cell_limit_v: float = 3.65, tail_a: float = 10.0, dt_s: float = 1.0,
                 max_s: float = 12 * 3600) -> tuple[float, list[float]]:
    """battery.md §9.2 charge: CC until the highest cell reaches ``cc_until_cell_v``, then CV at
    ``cv_pack_v`` with the current also held so no cell exceeds ``cell_limit_v`` (BMS charge-current
    limit), until the current falls to ``tail_a``. Returns (tail current, cell voltages at the end)."""
    t = 0.0
    while max(pack.cell_voltages(cc_a)) < cc_until_cell_v:
        pack.advance(dt_s, cc_a)
        t += dt_s
        assert t < max_s, "CC phase did not end"
    while True:
        current = min(cc_a, (cv_pack_v - pack.open_circuit_emf()) / pack.series_resistance())
        v0, r = cell_resistances(pack)
        current = min(current, *((cell_limit_v - v) / ri for v, ri in zip(v0, r, strict=True)))
        if current <= tail_a:
            return current, pack.cell_voltages(current)
        pack.advance(dt_s, current)
        t += dt_s
        assert t < max_s, "CV phase did not end"


def rest(pack: Pack, seconds: float, dt_s: float = 10.0) -> None:
    for _ in range(round(seconds / dt_s)):
        pack.advance(dt_s, 0.0)
