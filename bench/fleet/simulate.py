"""Synthetic fleet telematics with a known answer.

Each vehicle is a tractor whose VS02 PRO pack is charged by the alternator while driving
(state ``drive``), runs the parking AC while parked overnight (state ``idle``) and sometimes sits
on shore power on days off (state ``charge``). Vectorised over vehicles (numpy); the only Python
loop is over the hours, because SOC integrates current and clamps at empty/full.

Per vehicle: SOH fade (calendar + cycle, battery.md §8 ``aging``), optionally an accelerated fade,
a low starting SOH, a cell divergence that drifts or sits high, or a charging fault (alternator
no longer brings the pack above ~75-90 %). The reported divergence follows the OCV curve's
slope, so it is only visible near full (battery.md §1.6). Noise: sensor noise and rounding,
single-sample glitches, dropped samples and multi-day telemetry outages.

The truth (which vehicle a correct analysis flags, for which rule) is derived from the noise-free
parameters with the rule definitions of :mod:`bench.fleet.rules`; parameters whose noise-free value
would sit close to a threshold are re-drawn, so the answer is unambiguous.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from bench.errors import InputError
from bench.fleet import rules as fleet_rules

OCV_TABLE = Path(__file__).resolve().parent.parent / "sim" / "data" / "lfp_ocv_recommended.csv"
NAMEPLATE_AH = 200.0  # battery.md §0
PACK_RESISTANCE_OHM = 8 * 0.0005 + 0.0008  # battery.md §0: 0.5 mOhm per cell + 0.8 mOhm interconnect
MIN_DAYS = 100  # the SOH rule needs a full quarter plus margin

# Share of the fleet in each fault class (the rest is healthy).
FAULT_SHARES = {"soh_fast": 0.08, "soh_low": 0.05, "divergence_drift": 0.05,
                "divergence_high": 0.05, "charging_fault": 0.06}
IDLE, DRIVE, CHARGE = 0, 1, 2


@dataclass(frozen=True)
class FleetTruth:
    """What a correct analysis must flag: vehicle id -> rule names, plus the parameters used."""

    flagged: dict[str, list[str]]
    vehicles: dict[str, dict[str, Any]]
    meta: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps({"meta": self.meta, "flagged": self.flagged, "vehicles": self.vehicles}, indent=1)


def _ocv() -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(OCV_TABLE, delimiter=",", comments="#", skiprows=2, usecols=(0, 1))
    return table[:, 0], table[:, 1]


def divergence_visibility(soc: np.ndarray, mismatch_pct: float = 2.0) -> np.ndarray:
    """Fraction of the at-full divergence visible at ``soc`` (battery.md §1.6, from the OCV table).

    Two cells ``mismatch_pct`` apart show OCV(s) - OCV(s - m) near the top and OCV(s + m) - OCV(s)
    near the bottom; normalised by the value at 100 %.
    """
    soc_grid, ocv = _ocv()
    at_full = np.interp(100.0, soc_grid, ocv) - np.interp(100.0 - mismatch_pct, soc_grid, ocv)
    top = np.interp(soc, soc_grid, ocv) - np.interp(soc - mismatch_pct, soc_grid, ocv)
    bottom = np.interp(soc + mismatch_pct, soc_grid, ocv) - np.interp(soc, soc_grid, ocv)
    return np.clip(np.maximum(top, 0.3 * bottom) / at_full, 0.0, 1.0)


def _assign_classes(rng: np.random.Generator, vehicles: int) -> np.ndarray:
    classes = np.full(vehicles, "healthy", dtype=object)
    order = rng.permutation(vehicles)
    start = 0
    for name, share in FAULT_SHARES.items():
        count = max(1, round(share * vehicles)) if vehicles >= 2 * len(FAULT_SHARES) else 0
        classes[order[start:start + count]] = name
        start += count
    return classes


def _draw_parameters(rng: np.random.Generator, classes: np.ndarray, days: int) -> dict[str, np.ndarray]:
    n = len(classes)
    q = fleet_rules.DAYS_PER_QUARTER
    p: dict[str, np.ndarray] = {
        # battery.md §8 aging: 2 %/year calendar + 0.8 %/100 FEC at ~1 FEC/day = ~1.2 %/quarter.
        "fade_per_day": rng.uniform(0.25, 1.2, n) / q,
        "fast_fade_per_day": np.where(classes == "soh_fast", rng.uniform(3.0, 6.0, n) / q, 0.0),
        "fast_onset_day": rng.uniform(0, days - fleet_rules.SOH_WINDOW_DAYS - 4, n),
        "soh0": rng.uniform(85.0, 101.0, n),
        "div0": rng.uniform(0.005, 0.06, n),
        "div_slow_per_day": rng.uniform(0.0, 0.004, n) / fleet_rules.DAYS_PER_MONTH,
        "div_drift_per_day": np.where(classes == "divergence_drift",
                                      rng.uniform(0.075, 0.12, n) / fleet_rules.DAYS_PER_MONTH, 0.0),
        "div_drift_onset_day": days - rng.uniform(80, min(110.0, days - 1.0), n),
        "charge_cap_soc": np.where(classes == "charging_fault", rng.uniform(75.0, 90.0, n), 101.0),
        "charge_fault_onset_day": days - rng.uniform(30, min(90.0, days - 1.0), n),
        "alternator_a": rng.uniform(70.0, 110.0, n),
        "ac_load_a": rng.uniform(5.0, 13.0, n),
        "install_age_years": rng.uniform(0.3, 7.5, n),
        "divergence_floor_v": rng.uniform(0.002, 0.006, n),
    }
    high = classes == "divergence_high"
    p["div0"] = np.where(high, rng.uniform(0.18, 0.30, n), p["div0"])
    p["div_slow_per_day"] = np.where(high, 0.0, p["div_slow_per_day"])
    low = classes == "soh_low"
    end_target = rng.uniform(60.0, 68.0, n)
    p["soh0"] = np.where(low, end_target + p["fade_per_day"] * days, p["soh0"])
    return p


def _soh_at(p: dict[str, np.ndarray], day: np.ndarray | float) -> np.ndarray:
    return np.asarray(p["soh0"] - p["fade_per_day"] * day
                      - p["fast_fade_per_day"] * np.maximum(0.0, day - p["fast_onset_day"]))


def _divergence_at(p: dict[str, np.ndarray], day: np.ndarray | float) -> np.ndarray:
    return np.asarray(p["div0"] + p["div_slow_per_day"] * day
                      + p["div_drift_per_day"] * np.maximum(0.0, day - p["div_drift_onset_day"]))


def _resolve_ambiguity(rng: np.random.Generator, p: dict[str, np.ndarray], classes: np.ndarray,
                       days: int) -> None:
    """Re-draw starting SOH / install age where the noise-free answer sits near a threshold."""
    for _ in range(100):
        soh_end = _soh_at(p, float(days))
        near = (np.abs(soh_end - fleet_rules.SOH_REPLACE_PCT) < 2.0) & (classes != "soh_low")
        # Healthy packs must not reach the replacement threshold within the period.
        near |= (soh_end < fleet_rules.SOH_REPLACE_PCT + 2.0) & (classes == "healthy")
        age_end = p["install_age_years"] + days / 365.25
        near_age = np.abs(age_end - fleet_rules.WARRANTY_YEARS) < 0.1
        if not near.any() and not near_age.any():
            return
        n = len(classes)
        p["soh0"] = np.where(near, np.minimum(p["soh0"] + rng.uniform(2.0, 6.0, n), 103.0), p["soh0"])
        p["install_age_years"] = np.where(near_age, rng.uniform(0.3, 7.5, n), p["install_age_years"])
    raise RuntimeError("could not draw unambiguous fleet parameters")


def _truth(p: dict[str, np.ndarray], classes: np.ndarray, days: int, ids: list[str]) -> FleetTruth:
    end = float(days)
    soh_window, div_window = fleet_rules.SOH_WINDOW_DAYS, fleet_rules.DIVERGENCE_WINDOW_DAYS
    quarter_slope = ((_soh_at(p, end) - _soh_at(p, end - soh_window)) / soh_window
                     * fleet_rules.DAYS_PER_QUARTER)
    month_slope = ((_divergence_at(p, end) - _divergence_at(p, end - div_window)) / div_window
                   * fleet_rules.DAYS_PER_MONTH)
    # persistent: above the limit for well over PERSISTENT_MIN_DAYS measurement days before the end
    streak_start = end - 3 * fleet_rules.PERSISTENT_MIN_DAYS
    persistent = _divergence_at(p, streak_start) > fleet_rules.DIVERGENCE_LIMIT_V + 0.01
    expected = {
        "soh_decline": quarter_slope < -fleet_rules.SOH_DECLINE_PCT_PER_QUARTER,
        "divergence_drift": month_slope > fleet_rules.DIVERGENCE_DRIFT_V_PER_MONTH,
        "charging_anomaly": classes == "charging_fault",
        "soh_low": _soh_at(p, end) < fleet_rules.SOH_REPLACE_PCT,
        "divergence_persistent": persistent,
    }
    flagged: dict[str, list[str]] = {}
    vehicles: dict[str, dict[str, Any]] = {}
    for i, vid in enumerate(ids):
        rules = [name for name in fleet_rules.RULE_NAMES if expected[name][i]]
        if rules:
            flagged[vid] = rules
        vehicles[vid] = {
            "class": str(classes[i]),
            "soh_end_pct": round(float(_soh_at(p, end)[i]), 2),
            "soh_slope_pct_per_quarter": round(float(quarter_slope[i]), 3),
            "divergence_end_v": round(float(_divergence_at(p, end)[i]), 4),
            "divergence_slope_v_per_month": round(float(month_slope[i]), 4),
            "pack_age_years_at_end": round(float(p["install_age_years"][i] + days / 365.25), 2),
            **({"charge_cap_soc_pct": round(float(p["charge_cap_soc"][i]), 1)}
               if classes[i] == "charging_fault" else {}),
        }
    return FleetTruth(flagged=flagged, vehicles=vehicles, meta={})


def _schedule(rng: np.random.Generator, n: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """State per vehicle-hour and the parked-load multiplier; shape (n, days * 24)."""
    hour = np.arange(24)
    work = rng.random((n, days)) < 0.78
    extended = rng.random((n, days)) < 0.9
    start = rng.integers(5, 9, (n, days))
    length = np.where(extended, rng.integers(6, 11, (n, days)), rng.integers(1, 4, (n, days)))
    driving = work[..., None] & (hour >= start[..., None]) & (hour < (start + length)[..., None])
    shore = (~work & (rng.random((n, days)) < 0.5))[..., None] & (hour >= 9) & (hour < 15)
    state = np.where(driving, DRIVE, np.where(shore, CHARGE, IDLE)).astype(np.int8)
    night = (hour >= 19) | (hour < 6)
    load = np.where(night, rng.uniform(0.5, 1.5, (n, days))[..., None], 0.1)
    return state.reshape(n, days * 24), load.reshape(n, days * 24)


def _simulate_soc(p: dict[str, np.ndarray], state: np.ndarray, load: np.ndarray,
                  soh_hourly: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    n, hours = state.shape
    soc = np.empty((n, hours), dtype=np.float32)
    current = np.empty((n, hours), dtype=np.float32)
    level = np.full(n, 60.0)
    fault_hour = p["charge_fault_onset_day"] * 24
    for h in range(hours):
        s = state[:, h]
        cap = np.where(h >= fault_hour, p["charge_cap_soc"], 101.0)
        target = np.minimum(cap, 100.0)
        # CC until 95 %, then a tapering absorption current up to the (possibly faulty) limit.
        charge_a = np.where(s == DRIVE, p["alternator_a"], 40.0)
        charge_a = np.where(level < target - 5.0, charge_a, np.where(level < target, 0.3 * charge_a, 0.0))
        # Parked: AC load until the BMS low cut at 5 % SOC.
        parked_a = np.where(level > 5.0, -p["ac_load_a"] * load[:, h], 0.0)
        amps = np.where(s == IDLE, parked_a, charge_a)
        capacity_ah = NAMEPLATE_AH * soh_hourly[:, h] / 100.0
        level = np.clip(level + amps / capacity_ah * 100.0, 0.0, np.maximum(target, level))
        soc[:, h] = level
        current[:, h] = amps
    return soc, current


def generate(vehicles: int, days: int, *, seed: int = 1,
             start: dt.datetime = dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
             con: duckdb.DuckDBPyConnection | None = None) -> tuple[duckdb.DuckDBPyRelation, FleetTruth]:
    """Generate the fleet; returns a relation of rows (documented columns) and the truth."""
    if vehicles < 1:
        raise InputError("--vehicles must be at least 1")
    if days < MIN_DAYS:
        raise InputError(f"--days must be at least {MIN_DAYS} (the SOH rule needs a full quarter)")
    rng = np.random.default_rng(seed)
    con = con or duckdb.connect()
    classes = _assign_classes(rng, vehicles)
    p = _draw_parameters(rng, classes, days)
    _resolve_ambiguity(rng, p, classes, days)
    ids = [f"TR-{i + 1:04d}" for i in range(vehicles)]
    truth = _truth(p, classes, days, ids)

    hours = days * 24
    day_of_hour = np.arange(hours) / 24.0
    soh_hourly = _soh_at({k: v[:, None] for k, v in p.items()}, day_of_hour[None, :])
    state, load = _schedule(rng, vehicles, days)
    soc, current = _simulate_soc(p, state, load, soh_hourly, days)

    shape = (vehicles, hours)
    # The BMS shows 100 % only after its full-charge detection (battery.md §8 full_sync), 99 % before.
    soc_reported = np.where(soc >= 99.95, 100.0, np.clip(np.round(soc + rng.normal(0, 0.5, shape)), 0, 99))
    soh_reported = np.round(soh_hourly + rng.normal(0, 0.3, shape), 1)
    full_div = _divergence_at({k: v[:, None] for k, v in p.items()}, day_of_hour[None, :])
    divergence = (full_div * divergence_visibility(soc) + p["divergence_floor_v"][:, None]
                  + 0.00005 * np.abs(current) + rng.normal(0, 0.003, shape))
    glitch = rng.random(shape) < 0.0005
    divergence = np.round(np.clip(divergence + glitch * rng.uniform(0.1, 0.3, shape), 0.0, 1.5), 3)
    soc_grid, ocv = _ocv()
    pack_v = 8 * np.interp(soc, soc_grid, ocv) + current * PACK_RESISTANCE_OHM + rng.normal(0, 0.02, shape)
    cell_max = np.round(pack_v / 8 + 0.5 * divergence, 3)
    cell_min = np.round(cell_max - divergence, 3)
    pack_i = np.round(current + rng.normal(0, 0.05, shape), 2)

    keep = rng.random(shape) >= 0.005  # dropped samples
    outage_start = rng.integers(0, hours, (vehicles, 2))
    outage_len = np.where(rng.random((vehicles, 2)) < 0.3, rng.integers(24, 96, (vehicles, 2)), 0)
    hour_index = np.arange(hours)[None, :]
    for k in range(2):
        outage_end = (outage_start + outage_len)[:, k:k + 1]
        keep &= ~((hour_index >= outage_start[:, k:k + 1]) & (hour_index < outage_end))

    vehicle_index, hour_of = np.nonzero(keep)
    arrays = {  # noqa: F841 - scanned by DuckDB by name
        "v": vehicle_index.astype(np.int32), "h": hour_of.astype(np.int32),
        "soc_pct": soc_reported[keep], "soh_pct": soh_reported[keep],
        "cell_v_min": cell_min[keep], "cell_v_max": cell_max[keep],
        "pack_v": np.round(pack_v[keep], 2), "pack_i": pack_i[keep], "state": state[keep],
    }
    install = np.datetime64(start.date(), "D") - (p["install_age_years"] * 365.25).astype("timedelta64[D]")
    installs = {"v": np.arange(vehicles, dtype=np.int32),  # noqa: F841
                "install_date": install.astype("datetime64[D]").astype(str)}
    truth.meta.update(vehicles=vehicles, days=days, seed=seed, start=start.isoformat(),
                      rows=int(keep.sum()), classes={c: int((classes == c).sum()) for c in set(classes)})
    start_sql = start.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE fleet_rows AS
        SELECT printf('TR-%04d', a.v + 1) AS vehicle_id,
               strftime(TIMESTAMP '{start_sql}' + to_hours(a.h), '%Y-%m-%dT%H:%M:%SZ') AS timestamp,
               a.soc_pct, a.soh_pct, a.cell_v_min, a.cell_v_max, a.pack_v, a.pack_i,
               ['idle', 'drive', 'charge'][a.state + 1] AS state, i.install_date::DATE AS install_date
        FROM arrays a JOIN installs i USING (v) ORDER BY a.v, a.h""")
    return con.table("fleet_rows"), truth


def write(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, out: Path) -> None:
    """Write rows as CSV, JSON lines or Parquet, chosen by the file suffix."""
    formats = {".csv": "FORMAT CSV, HEADER", ".jsonl": "FORMAT JSON", ".ndjson": "FORMAT JSON",
               ".json": "FORMAT JSON", ".parquet": "FORMAT PARQUET"}
    options = formats.get(out.suffix.lower())
    if options is None:
        raise InputError(f"unsupported output type {out.suffix!r} (use .csv, .jsonl or .parquet)",
                         file=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    path = str(out).replace("'", "''")
    try:
        con.execute(f"COPY ({relation.sql_query()}) TO '{path}' ({options})")
    except duckdb.Error as exc:
        raise InputError(f"cannot write: {str(exc).splitlines()[0]}", file=str(out)) from None


def simulate(vehicles: int, days: int, out: Path, *, seed: int = 1,
             truth_out: Path | None = None) -> FleetTruth:
    """Generate a fleet and write rows to ``out`` and the truth JSON to ``truth_out``."""
    con = duckdb.connect()
    relation, truth = generate(vehicles, days, seed=seed, con=con)
    write(con, relation, out)
    target = truth_out or out.with_suffix(".truth.json")
    target.write_text(truth.to_json() + "\n", encoding="utf-8")
    return truth
