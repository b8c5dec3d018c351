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
MAX_DIVERGENCE_V = 0.5  # an unserviced drift levels off (the BMS would cut charging near 3.65 V per cell)
MIN_DAYS = 100  # the SOH rule needs a full quarter plus margin

# Share of the fleet in each fault class (the rest is healthy).
FAULT_SHARES = {"soh_fast": 0.08, "soh_low": 0.05, "divergence_drift": 0.05,
                "divergence_high": 0.05, "charging_fault": 0.06}
IDLE, DRIVE, CHARGE = 0, 1, 2


@dataclass(frozen=True)
class FleetTruth:
    """What a correct analysis must flag: vehicle id -> rule names, plus the parameters used."""

    flagged: dict[str, list[str]]
    alerts: list[dict[str, Any]]  # vehicle_id, rule, first_held, last_held, active (noise-free)
    vehicles: dict[str, dict[str, Any]]
    meta: dict[str, Any]

    def flagged_active(self) -> dict[str, list[str]]:
        """Vehicle id -> rules whose alert still holds at the end (what ``--active`` shows)."""
        result: dict[str, list[str]] = {}
        for alert in self.alerts:
            if alert["active"] and alert["rule"] not in result.setdefault(alert["vehicle_id"], []):
                result[alert["vehicle_id"]].append(alert["rule"])
        return {k: v for k, v in result.items() if v}

    def to_json(self) -> str:
        return json.dumps({"meta": self.meta, "flagged": self.flagged, "alerts": self.alerts,
                           "vehicles": self.vehicles}, indent=1)


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


def _events(rng: np.random.Generator, n: int, days: int, fits: np.ndarray, earliest: float,
            latest: np.ndarray | float, duration: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Onset and end day of one event per vehicle: the onset anywhere in [earliest, latest]; where
    ``fits``, about 40 % are resolved (serviced) after ``duration`` days, the rest last to the end."""
    onset = rng.uniform(earliest, np.maximum(latest, earliest), n)
    length = rng.uniform(*duration, n)
    resolved = fits & (rng.random(n) < 0.4)
    return onset, np.where(resolved, onset + length, np.inf)


def _draw_parameters(rng: np.random.Generator, classes: np.ndarray, days: int) -> dict[str, np.ndarray]:
    n = len(classes)
    q = fleet_rules.DAYS_PER_QUARTER
    p: dict[str, np.ndarray] = {
        # battery.md §8 aging: 2 %/year calendar + 0.8 %/100 FEC at ~1 FEC/day = ~1.2 %/quarter.
        "fade_per_day": rng.uniform(0.25, 1.2, n) / q,
        "fast_fade_per_day": np.where(classes == "soh_fast", rng.uniform(3.0, 6.0, n) / q, 0.0),
        "soh0": rng.uniform(85.0, 101.0, n),
        "div0": rng.uniform(0.005, 0.06, n),
        "div_slow_per_day": rng.uniform(0.0, 0.004, n) / fleet_rules.DAYS_PER_MONTH,
        "div_drift_per_day": np.where(classes == "divergence_drift",
                                      rng.uniform(0.075, 0.12, n) / fleet_rules.DAYS_PER_MONTH, 0.0),
        "div_step_v": np.where(classes == "divergence_high", rng.uniform(0.18, 0.30, n), 0.0),
        "charge_cap_soc": np.where(classes == "charging_fault", rng.uniform(75.0, 90.0, n), 101.0),
        "alternator_a": rng.uniform(70.0, 110.0, n),
        "ac_load_a": rng.uniform(5.0, 13.0, n),
        "install_age_years": rng.uniform(0.3, 7.5, n),
        "divergence_floor_v": rng.uniform(0.002, 0.006, n),
        "replace_soh0": rng.uniform(98.0, 102.0, n),
    }
    # Events at any date; a resolved one ends early enough that its alert has cleared by the end
    # (the rule's window has moved past it), an unresolved one starts early enough to hold at the end.
    soh_window, div_window = fleet_rules.SOH_WINDOW_DAYS, fleet_rules.DIVERGENCE_WINDOW_DAYS
    always = np.ones(n, dtype=bool)
    # fast fade: at least a full SOH window long, so that the fitted slope reaches the fade rate
    fits = always & (days >= 2 * soh_window + 130)
    p["fast_onset_day"], p["fast_end_day"] = _events(
        rng, n, days, fits, 0.0, np.where(fits & (rng.random(n) < 0.5), days - 2 * soh_window - 130,
                                          days - soh_window - 4), (soh_window + 10, soh_window + 30))
    p["fast_onset_day"] = np.where(np.isfinite(p["fast_end_day"]), p["fast_onset_day"],
                                   np.minimum(p["fast_onset_day"], days - soh_window - 4))
    # drift: at least 70 days (the slope over the 61-day window reaches the drift rate)
    fits = always & (days >= 70 + 90 + div_window)
    p["div_drift_onset_day"], p["div_drift_end_day"] = _events(
        rng, n, days, fits, 0.0, days - 75.0, (70.0, 90.0))
    p["div_drift_onset_day"] = np.where(
        np.isfinite(p["div_drift_end_day"]), np.minimum(p["div_drift_onset_day"], days - 90 - div_window - 70),
        p["div_drift_onset_day"])
    # a cell fault: divergence steps up (from the start for a third of them), cell replaced later
    step_from_start = rng.random(n) < 0.35
    p["div_step_onset_day"], p["div_step_end_day"] = _events(
        rng, n, days, always, 0.0, days - 30.0, (25.0, 60.0))
    p["div_step_onset_day"] = np.where(step_from_start, 0.0, p["div_step_onset_day"])
    p["div_step_end_day"] = np.where(p["div_step_end_day"] > days - 25, np.inf, p["div_step_end_day"])
    # charging fault: 20-60 days when repaired, repaired at least 35 days before the end
    p["charge_fault_onset_day"], p["charge_fault_end_day"] = _events(
        rng, n, days, always, 0.0, days - 30.0, (20.0, 60.0))
    p["charge_fault_end_day"] = np.where(p["charge_fault_end_day"] > days - 35, np.inf,
                                         p["charge_fault_end_day"])
    low = classes == "soh_low"
    end_target = rng.uniform(60.0, 68.0, n)
    p["soh0"] = np.where(low, end_target + p["fade_per_day"] * days, p["soh0"])
    # low SOH: some packs are replaced (serviced) a while after crossing the replacement threshold
    crossing = np.maximum((p["soh0"] - fleet_rules.SOH_REPLACE_PCT) / p["fade_per_day"], 0.0)
    replace = low & (rng.random(n) < 0.4) & (crossing + 30 < days - 30)
    later = np.minimum(crossing + 30, days - 30.0)
    p["replace_day"] = np.where(replace, later + rng.random(n) * (days - 30.0 - later), np.inf)
    return p


def _soh_at(p: dict[str, np.ndarray], day: np.ndarray | float) -> np.ndarray:
    fast_days = np.clip(day - p["fast_onset_day"], 0.0, p["fast_end_day"] - p["fast_onset_day"])
    before = p["soh0"] - p["fade_per_day"] * day - p["fast_fade_per_day"] * fast_days
    after = p["replace_soh0"] - p["fade_per_day"] * (day - p["replace_day"])
    return np.asarray(np.where(day >= p["replace_day"], after, before))


def _divergence_at(p: dict[str, np.ndarray], day: np.ndarray | float) -> np.ndarray:
    # extended balancing (the service for drift) brings the divergence back to its base line
    drifting = (day >= p["div_drift_onset_day"]) & (day < p["div_drift_end_day"])
    stepped = (day >= p["div_step_onset_day"]) & (day < p["div_step_end_day"])
    total = (p["div0"] + p["div_slow_per_day"] * day
             + p["div_drift_per_day"] * np.where(drifting, day - p["div_drift_onset_day"], 0.0)
             + p["div_step_v"] * stepped)
    return np.asarray(np.minimum(total, MAX_DIVERGENCE_V))


def _soh_slopes(p: dict[str, np.ndarray], days: int) -> np.ndarray:
    """Per vehicle and day, the noise-free SOH slope (%/quarter) the soh_decline rule fits."""
    soh = _soh_at({k: v[:, None] for k, v in p.items()}, np.arange(days)[None, :] + 0.5)
    return _rolling_slope(soh, np.ones_like(soh, dtype=bool), fleet_rules.SOH_WINDOW_DAYS,
                          fleet_rules.SOH_MIN_DAYS) * fleet_rules.DAYS_PER_QUARTER


def _resolve_ambiguity(rng: np.random.Generator, p: dict[str, np.ndarray], classes: np.ndarray,
                       days: int) -> None:
    """Re-draw starting SOH / install age where the noise-free answer sits near a threshold."""
    for _ in range(100):
        soh_min = np.minimum(_soh_at(p, float(days)), _soh_at(p, np.minimum(p["replace_day"], days) - 1e-6))
        near = (np.abs(soh_min - fleet_rules.SOH_REPLACE_PCT) < 2.0) & (classes != "soh_low")
        # Healthy packs must not reach the replacement threshold within the period.
        near |= (soh_min < fleet_rules.SOH_REPLACE_PCT + 2.0) & (classes == "healthy")
        age_end = p["install_age_years"] + days / 365.25
        near_age = np.abs(age_end - fleet_rules.WARRANTY_YEARS) < 0.1
        soh_slope = _soh_slopes(p, days)
        worst = np.nanmin(np.nan_to_num(soh_slope, nan=0.0), axis=1)
        near_slope = (worst < -1.6) & (worst > -2.5) | (np.abs(np.nan_to_num(soh_slope[:, -1]) + 2.0) < 0.4)
        if not near.any() and not near_age.any() and not near_slope.any():
            return
        n = len(classes)
        redraw = _draw_parameters(rng, classes, days)
        for key in ("fast_onset_day", "fast_end_day"):
            p[key] = np.where(near_slope, redraw[key], p[key])
        p["soh0"] = np.where(near, np.minimum(p["soh0"] + rng.uniform(2.0, 6.0, n), 103.0), p["soh0"])
        p["install_age_years"] = np.where(near_age, rng.uniform(0.3, 7.5, n), p["install_age_years"])
    raise RuntimeError("could not draw unambiguous fleet parameters")


def _rolling_slope(y: np.ndarray, mask: np.ndarray, window: int, min_count: int) -> np.ndarray:
    """Per day, the OLS slope of ``y`` over the ``mask``ed days of the trailing ``window`` (NaN: too few)."""
    n, days = y.shape
    x = np.arange(days, dtype=float)[None, :]
    m = mask.astype(float)
    yy = np.where(mask, y, 0.0)
    low = np.maximum(np.arange(days) - window + 1, 0)

    def roll(a: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((n, 1)), np.cumsum(a, axis=1)], axis=1)
        return np.asarray(c[:, 1:] - c[:, low])

    count, sx, sy, sxx, sxy = roll(m), roll(m * x), roll(yy), roll(m * x * x), roll(yy * x)
    den = count * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (count * sxy - sx * sy) / den
    return np.asarray(np.where((count >= min_count) & (den > 0), slope, np.nan))


def _episodes(held: np.ndarray) -> list[tuple[int, int]]:
    """Runs of held days (first, last), merged across gaps shorter than the monitor's."""
    runs: list[tuple[int, int]] = []
    for day in np.flatnonzero(held):
        if runs and day - runs[-1][1] <= fleet_rules.ALERT_GAP_DAYS:
            runs[-1] = (runs[-1][0], int(day))
        else:
            runs.append((int(day), int(day)))
    return runs


def _monitor_truth(p: dict[str, np.ndarray], classes: np.ndarray, days: int,
                   full_days: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The rules applied day by day to the noise-free series: held[rule] (vehicle, day), and which
    vehicles' divergence sits too close to a threshold for a noisy analysis to agree (to be re-drawn;
    SOH was settled by :func:`_resolve_ambiguity`)."""
    r = fleet_rules
    mid = np.arange(days)[None, :] + 0.5
    soh = _soh_at({k: v[:, None] for k, v in p.items()}, mid)
    # what the BMS reports at full: the divergence plus the sensor floor
    div = _divergence_at({k: v[:, None] for k, v in p.items()}, mid) + p["divergence_floor_v"][:, None]
    soh_slope = _soh_slopes(p, days)
    div_slope = _rolling_slope(div, full_days, r.DIVERGENCE_WINDOW_DAYS, r.DIVERGENCE_MIN_DAYS) * r.DAYS_PER_MONTH
    week_ago = np.maximum(np.arange(days) - r.SOH_CURRENT_DAYS // 2, 0)
    held = {
        "soh_decline": np.nan_to_num(soh_slope, nan=0.0) < -r.SOH_DECLINE_PCT_PER_QUARTER,
        "divergence_drift": np.nan_to_num(div_slope, nan=0.0) > r.DIVERGENCE_DRIFT_V_PER_MONTH,
        "soh_low": soh[:, week_ago] < r.SOH_REPLACE_PCT,
    }
    # persistent: the latest measurement closes a run of PERSISTENT_MIN_DAYS measurements above the limit
    n = len(classes)
    streak, last_held = np.zeros(n), np.zeros(n, dtype=bool)
    recent = np.zeros((n, r.PERSISTENT_MIN_DAYS))  # the last measurements, for the ambiguity check
    peak = np.zeros(n)
    persistent = np.zeros((n, days), dtype=bool)
    for d in range(days):
        measured = full_days[:, d]
        above = div[:, d] > r.DIVERGENCE_LIMIT_V
        streak = np.where(measured, np.where(above, streak + 1, 0), streak)
        last_held = np.where(measured, above & (streak >= r.PERSISTENT_MIN_DAYS), last_held)
        recent = np.where(measured[:, None], np.concatenate([recent[:, 1:], div[:, d:d + 1]], axis=1), recent)
        peak = np.maximum(peak, recent.min(axis=1))
        persistent[:, d] = last_held
    held["divergence_persistent"] = persistent
    day = np.arange(days)[None, :]
    held["charging_anomaly"] = ((classes == "charging_fault")[:, None] & (day >= p["charge_fault_onset_day"][:, None])
                                & (day < p["charge_fault_end_day"][:, None]))
    # too close to call: a trend's extreme or the last value within a band around its threshold
    div_worst = np.nanmax(np.nan_to_num(div_slope, nan=0.0), axis=1)
    last_div = div[np.arange(n), np.maximum(days - 1 - np.argmax(full_days[:, ::-1], axis=1), 0)]
    ambiguous = (div_worst > 0.035) & (div_worst < 0.07)
    ambiguous |= (np.abs(np.nan_to_num(div_slope[:, -1], nan=0.0) - 0.05) < 0.015)
    ambiguous |= (peak > 0.135) & (peak < 0.17)
    ambiguous |= np.abs(last_div - r.DIVERGENCE_LIMIT_V) < 0.015
    return held, ambiguous


def _truth(p: dict[str, np.ndarray], classes: np.ndarray, days: int, ids: list[str],
           held: dict[str, np.ndarray], start: dt.date) -> FleetTruth:
    def date(day: float) -> str | None:
        return (start + dt.timedelta(days=int(day))).isoformat() if np.isfinite(day) else None

    flagged: dict[str, list[str]] = {}
    alerts: list[dict[str, Any]] = []
    vehicles: dict[str, dict[str, Any]] = {}
    end = float(days)
    soh_slope_end = _soh_slopes(p, days)[:, -1]
    for i, vid in enumerate(ids):
        for name in fleet_rules.RULE_NAMES:
            for first, last in _episodes(held[name][i]):
                alerts.append({"vehicle_id": vid, "rule": name, "first_held": date(first),
                               "last_held": date(last), "active": last == days - 1})
                if name not in flagged.setdefault(vid, []):
                    flagged[vid].append(name)
        events = {
            "soh_fast": ("fast_onset_day", "fast_end_day"), "divergence_drift": ("div_drift_onset_day",
                                                                                 "div_drift_end_day"),
            "divergence_high": ("div_step_onset_day", "div_step_end_day"),
            "charging_fault": ("charge_fault_onset_day", "charge_fault_end_day"),
            "soh_low": (None, "replace_day"),
        }.get(str(classes[i]))
        vehicles[vid] = {
            "class": str(classes[i]),
            **({"event_start": date(p[events[0]][i]) if events[0] else None,
                "event_serviced": date(p[events[1]][i])} if events else {}),
            "soh_end_pct": round(float(_soh_at(p, end)[i]), 2),
            "soh_slope_end_pct_per_quarter": round(float(soh_slope_end[i]), 3),
            "divergence_end_v": round(float(_divergence_at(p, end)[i]), 4),
            "pack_age_years_at_end": round(float(p["install_age_years"][i] + days / 365.25), 2),
            **({"charge_cap_soc_pct": round(float(p["charge_cap_soc"][i]), 1)}
               if classes[i] == "charging_fault" else {}),
        }
    flagged = {k: v for k, v in flagged.items() if v}
    return FleetTruth(flagged=flagged, alerts=alerts, vehicles=vehicles, meta={})


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
    fault_hour, repair_hour = p["charge_fault_onset_day"] * 24, p["charge_fault_end_day"] * 24
    for h in range(hours):
        s = state[:, h]
        cap = np.where((h >= fault_hour) & (h < repair_hour), p["charge_cap_soc"], 101.0)
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

    hours = days * 24
    day_of_hour = np.arange(hours) / 24.0
    soh_hourly = _soh_at({k: v[:, None] for k, v in p.items()}, day_of_hour[None, :])
    state, load = _schedule(rng, vehicles, days)
    soc, current = _simulate_soc(p, state, load, soh_hourly, days)
    # Days with a full charge (the BMS reports 100 %): the only days divergence is measured.
    full_days: np.ndarray = np.asarray((soc >= 99.95).reshape(vehicles, days, 24).any(axis=2))
    # Divergence does not feed back into SOC: re-draw it where the answer would be too close to call.
    for _ in range(100):
        held, ambiguous = _monitor_truth(p, classes, days, full_days)
        if not ambiguous.any():
            break
        redraw = _draw_parameters(rng, classes, days)
        for key in ("div0", "div_slow_per_day", "div_drift_per_day", "div_step_v", "div_drift_onset_day",
                    "div_drift_end_day", "div_step_onset_day", "div_step_end_day", "divergence_floor_v"):
            p[key] = np.where(ambiguous, redraw[key], p[key])
    else:
        raise RuntimeError("could not draw unambiguous fleet parameters")
    truth = _truth(p, classes, days, ids, held, start.date())

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
