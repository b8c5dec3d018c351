"""The service procedure's pack-health rules, as pure functions.

Source: vs02-pro-bms-calibration-procedure.txt ("BMS diagnostic readouts", "Cell voltage divergence
analysis", "Calibration after deep-discharge event", fleet "service decision framework"), and
battery.md §1.6 (LFP divergence only shows near full).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from bench.diagnostics.model import (
    Action,
    Assessment,
    BalancingEntry,
    DivergenceClass,
    DtcEntry,
    PackIdentity,
    PackReading,
    Warranty,
)
from bench.domain.ocv import default_ocv_table

# calibration procedure, "Cell voltage divergence analysis": < 0.05 V normal, 0.05-0.10 V BMS
# balancing, 0.10-0.15 V extended balancing, > 0.15 V persistent: replacement flag
DIVERGENCE_NORMAL_V = 0.05
DIVERGENCE_BALANCING_V = 0.10
DIVERGENCE_REPLACEMENT_V = 0.15
# calibration procedure, "Healthy pack": all cells within ±0.02 V, SOH > 85 %, no recent fault codes
CELL_BAND_V = 0.02
SOH_HEALTHY_PCT = 85.0
# calibration procedure, fleet decision framework: SOH < 70 % triggers planned pack replacement
SOH_REPLACE_PCT = 70.0
# calibration procedure: "fault codes ... in past 90 days"; replacement "within 5-year window"
FAULT_WINDOW_DAYS = 90
WARRANTY_YEARS = 5
# calibration procedure, "Verify recalibration": SOC within ±3 %
SOC_TOLERANCE_PCT = 3.0
# battery.md §1.6 / docs/simulator.md "Built-in scenarios": the divergence thresholds apply at the end
# of CV absorption; mid-plateau the cells sit on a flat OCV and hide the imbalance.
DEFINED_CONDITION = "end_of_cv"
# below this the pack is at rest and its cell voltages are close to OCV (BMS divergence condition)
REST_CURRENT_A = 1.0
# OCV read at rest: BMS cell accuracy (U(-2, +3) mV offset + 1 mV noise) plus relaxation [assumption]
OCV_TOLERANCE_V = 0.005
# how recent a balancing-log entry must be to count as "engaging" without a charge of our own [assumption]
BALANCING_RECENT_DAYS = 7
# DTC whose presence marks a pack-level deep discharge (a cell UV alone can be one weak cell)
DEEP_DISCHARGE_DTCS = frozenset({"pack_undervoltage"})

PROCEDURES = {
    "soc_calibration": "procedures/soc_calibration.yaml",
    "bms_reset": "procedures/bms_reset.yaml",
    "extended_balancing": "procedures/extended_balancing.yaml",
    "measure_at_full": "procedures/pack_health.yaml",
}


def classify_divergence(divergence_v: float) -> DivergenceClass:
    """The source's four divergence bands (boundaries belong to the higher band)."""
    if divergence_v < DIVERGENCE_NORMAL_V:
        return "normal"
    if divergence_v < DIVERGENCE_BALANCING_V:
        return "balancing"
    if divergence_v <= DIVERGENCE_REPLACEMENT_V:
        return "extended_balancing"
    return "replacement"


def cells_within_band(cell_voltages_v: Iterable[float], band_v: float = CELL_BAND_V) -> bool:
    """Every cell within ±band of the cells' mean."""
    cells = list(cell_voltages_v)
    mean = sum(cells) / len(cells)
    return all(abs(v - mean) <= band_v + 1e-9 for v in cells)


def soc_window_from_ocv(cell_v_mean: float, tolerance_v: float = OCV_TOLERANCE_V) -> tuple[float, float]:
    """SOC range (%) whose rested OCV, on either hysteresis branch (battery.md §1.3-§1.4), is within
    ``tolerance_v`` of ``cell_v_mean``. Narrow on the steep ends, wide on the plateau."""
    table = default_ocv_table()
    grid = [i * 0.5 for i in range(201)]
    plausible = [
        s for s in grid
        if table.ocv_discharge(s / 100.0) - tolerance_v <= cell_v_mean <= table.ocv_charge(s / 100.0) + tolerance_v
    ]
    if not plausible:  # beyond the table: the nearer end
        return (100.0, 100.0) if cell_v_mean > table.ocv_charge(0.5) else (0.0, 0.0)
    return plausible[0], plausible[-1]


def soc_consistency(reading: PackReading, *, after_full_charge: bool) -> tuple[bool | None, tuple[float, float] | None]:
    """Is the BMS SOC consistent with the pack's state? (source: "SOC reading consistent with last charge")

    Right after our charge to full the BMS must read full (±3 %); at rest its SOC must fall within
    the OCV window (±3 %); under load it cannot be judged (None).
    """
    if after_full_charge:
        return reading.soc_pct >= 100.0 - SOC_TOLERANCE_PCT, (100.0 - SOC_TOLERANCE_PCT, 100.0)
    if abs(reading.current_a) > REST_CURRENT_A:
        return None, None
    low, high = soc_window_from_ocv(reading.cell_v_mean)
    consistent = low - SOC_TOLERANCE_PCT <= reading.soc_pct <= high + SOC_TOLERANCE_PCT
    return consistent, (low, high)


def recent_dtcs(dtcs: Iterable[DtcEntry], now: datetime, days: int = FAULT_WINDOW_DAYS) -> list[DtcEntry]:
    """Active DTCs and those whose last occurrence is within ``days`` of ``now``."""
    horizon = now - timedelta(days=days)
    return [d for d in dtcs if d.active or (d.last_seen is not None and d.last_seen >= horizon)]


def balancing_engaging(active_cells: list[int], log: Iterable[BalancingEntry], since: datetime) -> bool:
    """Balancing is engaging if cells bleed now or a log entry ran after ``since``."""
    return bool(active_cells) or any(e.end >= since for e in log)


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def warranty_status(identity: PackIdentity, today: date) -> tuple[Warranty, date | None]:
    """Within the 5-year window from the install date? Without an install date, a manufacturing date
    less than 5 years ago still proves it (a pack is installed after it is made); otherwise unknown."""
    if identity.install_date is not None:
        until = add_years(identity.install_date, WARRANTY_YEARS)
        return ("in_warranty" if today <= until else "out_of_warranty"), until
    try:
        made = date.fromisoformat(identity.manufacturing_date)
    except ValueError:
        return "unknown", None
    until = add_years(made, WARRANTY_YEARS)
    return ("in_warranty", until) if today <= until else ("unknown", None)


def _replacement_action(warranty: Warranty, until: date | None, why: str) -> Action:
    if warranty == "in_warranty":
        return Action(id="replace_under_warranty", reason=why,
                      text=f"flag the pack for replacement under warranty (window ends {until})")
    if warranty == "out_of_warranty":
        return Action(id="replace_scheduled", reason=why,
                      text=f"flag the pack for scheduled replacement (warranty ended {until})")
    return Action(id="replace", reason=why,
                  text="flag the pack for replacement; warranty unknown: give the install date (--install-date)")


def assess(identity: PackIdentity, as_received: PackReading, measured: PackReading, *,
           brought_to_full: bool, now: datetime, balancing_since: datetime | None = None) -> Assessment:
    """Apply the source's rules to the read-outs. ``measured`` is the reading the divergence is judged
    on (at the end of our charge when ``brought_to_full``); ``balancing_since`` is when the charge
    cycle whose balancing we verify began (default: the last ``BALANCING_RECENT_DAYS``)."""
    findings: list[str] = []
    actions: list[Action] = []
    div = measured.divergence_v
    cls = classify_divergence(div)
    # right after our charge the supply still holds 28.4 V: a pack already full reads "full_rest" (no
    # current) but it is the same end-of-CV point
    defined = measured.divergence_condition == DEFINED_CONDITION or (
        brought_to_full and measured.divergence_condition == "full_rest")

    soc_ok, window = soc_consistency(as_received, after_full_charge=False)
    if soc_ok is None and brought_to_full:
        soc_ok, window = soc_consistency(measured, after_full_charge=True)
    recent = recent_dtcs(measured.dtcs, now)
    deep_dtcs = [d.name for d in recent if d.name in DEEP_DISCHARGE_DTCS]
    deep = soc_ok is False or bool(deep_dtcs)
    if deep:
        why = []
        if soc_ok is False and window is not None:
            why.append(f"BMS SOC {as_received.soc_pct:.1f} % outside the {window[0]:.0f}-{window[1]:.0f} % "
                       f"its rested cell voltage ({as_received.cell_v_mean:.3f} V) allows")
        if deep_dtcs:
            why.append(f"{', '.join(deep_dtcs)} in the last {FAULT_WINDOW_DAYS} days")
        actions.append(Action(id="soc_calibration", procedure=PROCEDURES["soc_calibration"],
                              reason="deep-discharge event: " + "; ".join(why),
                              text="run the SOC calibration cycle (charge, balance, discharge to 5 %, recharge)"))

    engaging: bool | None = None
    warranty, until = warranty_status(identity, now.date())
    if not defined:
        findings.append(f"divergence read {measured.divergence_condition.replace('_', ' ')}: LFP cells hide "
                        f"imbalance there (battery.md §1.6), so {div:.3f} V is a lower bound")
        actions.append(Action(id="measure_at_full", procedure=PROCEDURES["measure_at_full"],
                              reason=f"divergence measured {measured.divergence_condition}, not at the end of CV",
                              text="measure the divergence at the end of a CC-CV charge to 28.4 V "
                                   "(bench diag --condition full, or the pack_health procedure)"))
    elif cls == "balancing":
        since = balancing_since or now - timedelta(days=BALANCING_RECENT_DAYS)
        engaging = balancing_engaging(measured.balancing_active_cells, measured.balancing_log, since)
        if engaging:
            findings.append("BMS balancing is engaging (activity log): no action, it is removing the imbalance")
        else:
            actions.append(Action(id="bms_reset", procedure=PROCEDURES["bms_reset"],
                                  reason=f"divergence {div:.3f} V and no balancing activity since "
                                         f"{since:%Y-%m-%d %H:%M}",
                                  text="run a BMS reset to clear a stuck balancing state, then verify on the "
                                       "next charge"))
    elif cls == "extended_balancing":
        actions.append(Action(id="extended_balancing", procedure=PROCEDURES["extended_balancing"],
                              reason=f"divergence {div:.3f} V is beyond the BMS's own balancing (0.10-0.15 V)",
                              text="run the extended balancing cycle (12-24 h balanced charging)"))
    elif cls == "replacement":
        actions.append(_replacement_action(
            warranty, until, f"divergence {div:.3f} V > {DIVERGENCE_REPLACEMENT_V} V: cells degrading beyond balance"))
    if measured.soh_pct < SOH_REPLACE_PCT and not any(a.id.startswith("replace") for a in actions):
        actions.append(_replacement_action(warranty, until, f"SOH {measured.soh_pct:.1f} % < {SOH_REPLACE_PCT:.0f} %"))

    # the ±0.02 V band is the Service App's as-read criterion: judged on the pack as received; at the end
    # of CV the divergence class carries the same information with the thresholds tuned for it
    band_ok = cells_within_band(as_received.cell_voltages_v)
    if soc_ok is not True:
        findings.append("SOC not consistent with the pack's state" if soc_ok is False
                        else "SOC consistency not judged (pack under load)")
    if not band_ok:
        findings.append(f"cells not all within ±{CELL_BAND_V} V of their mean (as received)")
    if measured.soh_pct <= SOH_HEALTHY_PCT:
        findings.append(f"SOH {measured.soh_pct:.1f} % is not above {SOH_HEALTHY_PCT:.0f} %")
    if recent:
        findings.append(f"fault codes in the last {FAULT_WINDOW_DAYS} days: {', '.join(d.name for d in recent)}")
    healthy = (bool(soc_ok) and band_ok and measured.soh_pct > SOH_HEALTHY_PCT and not recent
               and defined and cls == "normal")
    return Assessment(
        divergence_v=div, divergence_condition=measured.divergence_condition, divergence_class=cls,
        divergence_at_defined_condition=defined, balancing_engaging=engaging, soc_consistent=soc_ok,
        soc_window_pct=window, deep_discharge_suspected=deep, recent_dtcs=[d.name for d in recent],
        cells_within_band=band_ok, warranty=warranty, warranty_until=until, healthy=healthy,
        findings=findings, actions=actions)
