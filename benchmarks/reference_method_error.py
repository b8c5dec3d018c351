"""Error of the bench's reference capacity method against the simulator's true capacity.

Run: python benchmarks/reference_method_error.py [packs]   (default 200; ~35 s per 100 packs per case)

Follows procedures/soc_calibration.yaml on the pack model alone: CC-CV (100 A to 28.4 V, 4 A tail),
30 min rest, 0.2C discharge to a min cell of 2.95 V (the BMS empty point), 1 h rest, then the
step ``measure_capacity``: Ah discharged / (1 - ocv_soc(cell_v_mean)/100) with the bench's own
table (bench/domain/ocv.py). Compared with ``Pack.true_capacity_ah()`` for seeded packs drawn like a
scenario's defaults, with the OCV departures (docs/simulator.md "OCV departures") off, only the
offsets, only the knee shapes, and all. BMS measurement errors are left out.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.domain.ocv import soc_from_ocv
from bench.sim.pack import Pack
from bench.sim.scenario import Distribution, OcvScenario, Scenario
from tests.bench.sim.pack_charging import cc_cv_charge, rest

DISCHARGE_A = 40.0      # 0.2C (procedure default)
EMPTY_CELL_V = 2.95     # BMS empty sync (docs/simulator.md "SOC gauge")


def _departures(drawn: OcvScenario, case: str) -> OcvScenario:
    no_cells = Distribution(mean=0.0, sd=0.0)
    if case == "none":
        return OcvScenario(pack_offset_mv=0.0, cell_offset_mv=no_cells, knee_shift_low_pct=0.0,
                           knee_shift_high_pct=0.0)
    if case == "offsets":
        return OcvScenario(pack_offset_mv=drawn.pack_offset_mv, cell_offset_mv=drawn.cell_offset_mv,
                           knee_shift_low_pct=0.0, knee_shift_high_pct=0.0)
    if case == "knees":
        return OcvScenario(pack_offset_mv=0.0, cell_offset_mv=no_cells,
                           knee_shift_low_pct=drawn.knee_shift_low_pct, knee_shift_high_pct=drawn.knee_shift_high_pct)
    return drawn


def reference_error_pct(seed: int, case: str) -> float:
    scenario = Scenario(name="reference-method", seed=seed, cells={"soc_pct": 90.0})
    scenario.ocv = _departures(scenario.ocv, case)
    pack = Pack(scenario.pack_params())
    cc_cv_charge(pack, cc_a=100.0, cc_until_cell_v=3.55, cv_pack_v=28.4, tail_a=4.0, dt_s=5.0)
    rest(pack, 1800.0, 30.0)
    ah = 0.0
    while min(pack.cell_voltages(-DISCHARGE_A)) > EMPTY_CELL_V:
        pack.advance(5.0, -DISCHARGE_A)
        ah += DISCHARGE_A * 5.0 / 3600.0
    rest(pack, 3600.0, 30.0)
    cell_v_mean = sum(pack.cell_voltages(0.0)) / len(pack.cell_soc)
    reference = ah / (1.0 - soc_from_ocv(cell_v_mean))
    return 100.0 * (reference / pack.true_capacity_ah() - 1.0)


def main(packs: int = 200) -> None:
    for case in ("none", "offsets", "knees", "all"):
        errors = [reference_error_pct(seed, case) for seed in range(packs)]
        print(f"departures={case:8s} packs={packs}  mean {statistics.mean(errors):+.2f} %  "
              f"sd {statistics.pstdev(errors):.2f} %  range {min(errors):+.2f} .. {max(errors):+.2f} %")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
