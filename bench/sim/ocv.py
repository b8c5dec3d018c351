"""LFP cell open-circuit voltage vs state of charge, with charge/discharge hysteresis branches.

The table is battery.md §1.4 (file ``data/lfp_ocv_recommended.csv``): a measured LFP pseudo-OCV
(mean) with charge and discharge branches at mean ± the hysteresis half-width. Every breakpoint
of the table lies on a 0.25 % SOC grid, so we resample it onto that uniform grid once at import:
lookup is then an index computation instead of a search, and the piecewise-linear curve is
reproduced exactly (a finer grid through all breakpoints changes nothing).

Outside 0..1 the curves are extrapolated with their end slopes: a cell pushed past full keeps
rising (so a charger left on reaches cell over-voltage) and one pushed past empty keeps falling.
All functions take SOC as a fraction (0..1).
"""

from __future__ import annotations

import bisect
import csv
import itertools
from pathlib import Path

OCV_TABLE_PATH = Path(__file__).with_name("data") / "lfp_ocv_recommended.csv"

# Resampling grid: 0.25 % SOC, the finest spacing of the §1.4 table (checked at load).
GRID_STEP = 0.0025
_GRID_N = round(1.0 / GRID_STEP)

# Physical bounds on what an extrapolated voltage may report (a cell cannot go below 0 V, and
# nothing in the bench's range is above 5 V); keeps a runaway extrapolation finite.
_V_FLOOR = 0.0
_V_CEILING = 5.0


def _read_table(path: Path) -> tuple[list[float], list[float], list[float], list[float]]:
    socs: list[float] = []
    mean: list[float] = []
    charge: list[float] = []
    discharge: list[float] = []
    with path.open(encoding="utf-8") as fh:
        rows = (line for line in fh if not line.startswith("#"))
        for row in csv.DictReader(rows):
            socs.append(float(row["soc_pct"]) / 100.0)
            mean.append(float(row["ocv_mean_V"]))
            charge.append(float(row["ocv_charge_V"]))
            discharge.append(float(row["ocv_discharge_V"]))
    if socs[0] != 0.0 or abs(socs[-1] - 1.0) > 1e-12:
        raise ValueError(f"{path}: OCV table must span 0..100 % SOC")
    for s in socs:
        if abs(s / GRID_STEP - round(s / GRID_STEP)) > 1e-9:
            raise ValueError(f"{path}: breakpoint {s * 100:g} % is not on the {GRID_STEP * 100:g} % grid")
    return socs, mean, charge, discharge


def _resample(socs: list[float], values: list[float]) -> list[float]:
    out = []
    for k in range(_GRID_N + 1):
        s = k * GRID_STEP
        j = min(max(bisect.bisect_right(socs, s) - 1, 0), len(socs) - 2)
        frac = (s - socs[j]) / (socs[j + 1] - socs[j])
        out.append(values[j] + frac * (values[j + 1] - values[j]))
    return out


_SOC, _MEAN, _CHARGE, _DISCHARGE = _read_table(OCV_TABLE_PATH)
GRID_MEAN = _resample(_SOC, _MEAN)
GRID_CHARGE = _resample(_SOC, _CHARGE)
GRID_DISCHARGE = _resample(_SOC, _DISCHARGE)


def _interp_grid(grid: list[float], soc: float) -> float:
    """Piecewise-linear value on the uniform grid, end-slope extrapolation outside 0..1."""
    x = soc * _GRID_N
    k = int(x)
    if k < 0 or x < 0.0:
        k = 0
    elif k >= _GRID_N:
        k = _GRID_N - 1
    v0 = grid[k]
    v = v0 + (x - k) * (grid[k + 1] - v0)
    if v < _V_FLOOR:
        return _V_FLOOR
    if v > _V_CEILING:
        return _V_CEILING
    return v


def ocv_mean(soc: float) -> float:
    """Mean (hysteresis-free) OCV in volts at ``soc`` (fraction)."""
    return _interp_grid(GRID_MEAN, soc)


def ocv_branch(soc: float, h: float) -> float:
    """OCV with hysteresis state ``h`` in [-1, 1]: -1 discharge branch, +1 charge branch.

    One-state model (battery.md §1.3): U = (1+h)/2 · U_charge + (1-h)/2 · U_discharge.
    """
    if h > 1.0:
        h = 1.0
    elif h < -1.0:
        h = -1.0
    w_charge = 0.5 * (1.0 + h)
    return w_charge * _interp_grid(GRID_CHARGE, soc) + (1.0 - w_charge) * _interp_grid(GRID_DISCHARGE, soc)


def soc_from_ocv_mean(voltage_v: float) -> float:
    """Inverse of :func:`ocv_mean` (fraction); extrapolates with the end slopes outside the table.

    The mean curve is strictly increasing, so the inverse is unique.
    """
    if voltage_v <= GRID_MEAN[0]:
        slope = (GRID_MEAN[1] - GRID_MEAN[0]) / GRID_STEP
        return (voltage_v - GRID_MEAN[0]) / slope
    if voltage_v >= GRID_MEAN[-1]:
        slope = (GRID_MEAN[-1] - GRID_MEAN[-2]) / GRID_STEP
        return 1.0 + (voltage_v - GRID_MEAN[-1]) / slope
    k = bisect.bisect_right(GRID_MEAN, voltage_v) - 1
    v0, v1 = GRID_MEAN[k], GRID_MEAN[k + 1]
    return (k + (voltage_v - v0) / (v1 - v0)) * GRID_STEP


def _check_monotonic() -> None:
    for a, b in itertools.pairwise(GRID_MEAN):
        if b <= a:
            raise ValueError(f"{OCV_TABLE_PATH}: mean OCV must rise strictly with SOC")


_check_monotonic()
