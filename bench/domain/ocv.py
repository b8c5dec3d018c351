"""What the bench believes about LFP rest voltage: the battery.md §1.4 OCV table, mean and branches.

Source: ``/work/shared/domain/lfp_ocv_recommended.csv`` (copied to ``data/``): the measured
LithiumWerks APR18650M1B pseudo-OCV re-normalised so 0 % = 2.50 V, with charge/discharge branches
at mean ± an assumed hysteresis half-width (battery.md §1.2-§1.4).

This is the *controller's* table (reference-capacity arithmetic in procedures, the diagnostics'
SOC window). The simulator keeps its own model in ``bench/sim/ocv.py`` and its cells depart from
this table (docs/simulator.md, "OCV departures"), so a controller that trusts the table too much
shows it in simulation too.

SOC is a fraction (0..1) everywhere in this module.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

OCV_TABLE_PATH = Path(__file__).with_name("data") / "lfp_ocv_recommended.csv"


@dataclass(frozen=True)
class OcvTable:
    """Rested OCV vs SOC: mean curve and the charge/discharge hysteresis branches (volts)."""

    soc: tuple[float, ...]
    mean: tuple[float, ...]
    charge: tuple[float, ...]
    discharge: tuple[float, ...]

    def _at(self, curve: tuple[float, ...], soc: float) -> float:
        # Inside the table: piecewise linear. Outside: the end segment's slope, so a voltage above
        # the top of the table still reads as "more than full" rather than exactly full.
        xs = self.soc
        if soc < xs[0]:
            slope = (curve[1] - curve[0]) / (xs[1] - xs[0])
            return curve[0] + (soc - xs[0]) * slope
        if soc > xs[-1]:
            slope = (curve[-1] - curve[-2]) / (xs[-1] - xs[-2])
            return curve[-1] + (soc - xs[-1]) * slope
        return float(np.interp(soc, xs, curve))

    def ocv_mean(self, soc: float) -> float:
        return self._at(self.mean, soc)

    def ocv_charge(self, soc: float) -> float:
        return self._at(self.charge, soc)

    def ocv_discharge(self, soc: float) -> float:
        return self._at(self.discharge, soc)

    def soc_from_ocv(self, voltage_v: float) -> float:
        """SOC (fraction) whose mean rested OCV is ``voltage_v``; end slopes beyond the table.

        Meaningful only on the steep ends of the curve (battery.md §4.2): on the plateau a few mV
        of error are many percent of SOC.
        """
        v, s = self.mean, self.soc
        if voltage_v < v[0]:
            return s[0] + (voltage_v - v[0]) * (s[1] - s[0]) / (v[1] - v[0])
        if voltage_v > v[-1]:
            return s[-1] + (voltage_v - v[-1]) * (s[-1] - s[-2]) / (v[-1] - v[-2])
        return float(np.interp(voltage_v, v, s))


def load_ocv_table(path: Path = OCV_TABLE_PATH) -> OcvTable:
    """Read a table with columns soc_pct, ocv_mean_V, ocv_charge_V, ocv_discharge_V ('#' comments)."""
    rows: list[tuple[float, float, float, float]] = []
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            rows.append((float(row["soc_pct"]) / 100.0, float(row["ocv_mean_V"]),
                         float(row["ocv_charge_V"]), float(row["ocv_discharge_V"])))
    rows.sort()
    soc, mean, charge, discharge = (tuple(col) for col in zip(*rows, strict=True))
    if any(b <= a for a, b in itertools.pairwise(mean)):
        raise ValueError(f"{path}: the mean OCV must rise strictly with SOC")
    return OcvTable(soc, mean, charge, discharge)


@cache
def default_ocv_table() -> OcvTable:
    """The bench's table (battery.md §1.4), loaded once per process."""
    return load_ocv_table()


def soc_from_ocv(voltage_v: float) -> float:
    """Rested cell voltage -> SOC (fraction) on the bench's mean curve (battery.md §1.4)."""
    return default_ocv_table().soc_from_ocv(voltage_v)
