import csv
import itertools

import pytest

from bench.sim.ocv import OCV_TABLE_PATH, ocv_branch, ocv_mean, soc_from_ocv_mean


def _table():
    with OCV_TABLE_PATH.open(encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def test_curves_pass_through_every_table_point():
    for row in _table():
        soc = float(row["soc_pct"]) / 100.0
        assert ocv_mean(soc) == pytest.approx(float(row["ocv_mean_V"]), abs=1e-9)
        assert ocv_branch(soc, 1.0) == pytest.approx(float(row["ocv_charge_V"]), abs=1e-9)
        assert ocv_branch(soc, -1.0) == pytest.approx(float(row["ocv_discharge_V"]), abs=1e-9)


def test_interpolates_linearly_between_points():
    # 50 % -> 3.2992 V, 51 % -> 3.2996 V in the table (battery.md §1.4)
    assert ocv_mean(0.505) == pytest.approx((3.2992 + 3.2996) / 2, abs=1e-9)


def test_hysteresis_state_blends_the_branches():
    lo, hi = ocv_branch(0.5, -1.0), ocv_branch(0.5, 1.0)
    assert hi - lo == pytest.approx(0.020, abs=1e-6)  # ±10 mV half-width on the plateau (§1.4)
    assert ocv_branch(0.5, 0.0) == pytest.approx((lo + hi) / 2)
    assert ocv_branch(0.5, 0.0) == pytest.approx(ocv_mean(0.5), abs=1e-6)
    assert ocv_branch(0.5, 5.0) == hi  # h is clamped to [-1, 1]


def test_plateau_and_walls_match_battery_md():
    # §1.2: the plateau 30-98 % lies inside the MAX17055 keep-out window 3.275-3.350 V
    assert 3.275 <= ocv_mean(0.30) < ocv_mean(0.95) <= 3.350
    assert ocv_mean(0.0) == pytest.approx(2.50)
    assert ocv_mean(1.0) == pytest.approx(3.598, abs=1e-3)


def test_extrapolates_beyond_full_and_empty():
    top_slope = (ocv_mean(1.0) - ocv_mean(0.9975)) / 0.0025
    assert ocv_mean(1.01) == pytest.approx(ocv_mean(1.0) + 0.01 * top_slope)
    assert ocv_mean(1.005) > 3.75  # a charger left on drives the cell into over-voltage
    assert ocv_mean(-0.005) < 2.35 < ocv_mean(0.0)
    assert ocv_mean(-5.0) == 0.0  # clamped, never negative


def test_inverse_round_trips_and_is_monotonic():
    for soc in (-0.003, 0.0, 0.0123, 0.2, 0.5, 0.77, 0.99, 0.9999, 1.0, 1.002):
        assert soc_from_ocv_mean(ocv_mean(soc)) == pytest.approx(soc, abs=1e-9)
    volts = [ocv_mean(k / 400) for k in range(401)]
    assert all(b > a for a, b in itertools.pairwise(volts))
