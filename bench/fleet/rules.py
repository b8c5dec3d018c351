"""The fleet service decision framework as DuckDB SQL.

Source: "Telematics data interpretation and fleet service decision framework" in
``vs02-pro-bms-calibration-procedure.txt`` (the *procedure* below). Every rule looks at a
trailing window ending at the vehicle's last sample (the export's "now"), works on daily
aggregates (median of the day's samples, so single-sample glitches cannot move it) and, where it
judges a trend, fits an ordinary least-squares line through those daily values.

Input: a table ``telemetry(vehicle_id, ts, soc_pct, soh_pct, divergence_v, pack_v, pack_i, state,
install_date)`` of validated rows. :data:`PREPARE_SQL` builds the shared per-vehicle and daily
tables; each :class:`Rule` query returns one row per flagged vehicle with its evidence columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DAYS_PER_QUARTER = 365.25 / 4
DAYS_PER_MONTH = 365.25 / 12

# procedure: "flag any tractor showing >2% SOH decline per quarter".
SOH_DECLINE_PCT_PER_QUARTER = 2.0
SOH_WINDOW_DAYS = 91
SOH_MIN_DAYS = 45  # at least half the quarter must have data for a slope
# procedure: "flag any tractor showing >0.05V divergence increase per month".
DIVERGENCE_DRIFT_V_PER_MONTH = 0.05
DIVERGENCE_WINDOW_DAYS = 61  # two months: a month-rate fitted over two is far less noise-sensitive
DIVERGENCE_MIN_DAYS = 10
# battery.md §1.6: LFP divergence is only visible at the top knee (the 0.05 V threshold corresponds
# to a 0.3-1 % SOC mismatch *measured at 98-99 % SOC*, and it keeps growing up to full); on the
# plateau it reads ~0 V. §8 defines the condition as end of CV / rest after full, which a BMS marks by
# reporting 100 % (full-charge sync). A day's divergence measurement is therefore the median of its
# FULL_SAMPLES highest-SOC samples at SOC >= FULL_SOC_PCT (a median of three ignores one glitch).
FULL_SOC_PCT = 99.5
FULL_SAMPLES = 3
# procedure: "Cell divergence >0.15V persistent triggers warranty investigation"; persistent =
# at least this many consecutive full-charge measurement days above the limit, up to the latest.
DIVERGENCE_LIMIT_V = 0.15
PERSISTENT_MIN_DAYS = 5
# procedure: "the 5-year window" for replacement under warranty.
WARRANTY_YEARS = 5
# procedure: "SOH <70% triggers planned pack replacement scheduling"; judged on the last week.
SOH_REPLACE_PCT = 70.0
SOH_CURRENT_DAYS = 7
# procedure: "failure to charge to >95% SOC after extended driving phase".
CHARGE_TARGET_SOC_PCT = 95.0
EXTENDED_DRIVE_HOURS = 4  # first to last drive sample of one uninterrupted drive phase
PHASE_GAP_HOURS = 2  # a telemetry gap longer than this ends a phase
CHARGE_MIN_FAILURES = 3
CHARGE_MIN_FAILURE_SHARE = 0.5  # of the extended drives since the first failure


PREPARE_SQL: tuple[str, ...] = (
    """CREATE OR REPLACE TEMP TABLE vehicles AS
       SELECT vehicle_id, min(ts) AS first_ts, max(ts) AS t_end, max(install_date) AS install_date,
              count(*) AS rows
       FROM telemetry GROUP BY vehicle_id""",
    f"""CREATE OR REPLACE TEMP TABLE daily AS
       SELECT vehicle_id, time_bucket(INTERVAL 1 DAY, ts) AS day, median(soh_pct) AS soh,
              list_median(arg_max(divergence_v, soc_pct, {FULL_SAMPLES})
                          FILTER (WHERE soc_pct >= {FULL_SOC_PCT})) AS full_divergence
       FROM telemetry GROUP BY ALL""",
)


@dataclass(frozen=True)
class Rule:
    """One decision rule: the SQL that finds flagged vehicles and the action it prescribes."""

    name: str
    title: str
    sql: str
    action: Callable[[dict[str, Any]], str]


def _trend_sql(value: str, window_days: int, min_days: int, per_days: float, condition: str) -> str:
    """Least-squares slope of a daily value over a trailing window, per ``per_days`` days."""
    return f"""
        WITH w AS (
          SELECT d.vehicle_id, d.day, d.{value} AS y,
                 (epoch(d.day) - epoch(v.t_end)) / 86400.0 AS x
          FROM daily d JOIN vehicles v USING (vehicle_id)
          WHERE d.{value} IS NOT NULL AND d.day > v.t_end - INTERVAL {window_days} DAY),
        fit AS (
          SELECT vehicle_id, min(day) AS window_start, max(day) AS window_end, count(*) AS days,
                 regr_slope(y, x) AS slope, regr_intercept(y, x) AS intercept, min(x) AS x0,
                 max(x) AS x1, regr_r2(y, x) AS r2
          FROM w GROUP BY vehicle_id HAVING count(*) >= {min_days})
        SELECT vehicle_id, window_start, window_end, days, slope * {per_days} AS slope,
               intercept + slope * x0 AS fitted_start, intercept + slope * x1 AS fitted_end, r2
        FROM fit WHERE {condition}"""


SOH_DECLINE_SQL = _trend_sql("soh", SOH_WINDOW_DAYS, SOH_MIN_DAYS, DAYS_PER_QUARTER,
                             f"slope * {DAYS_PER_QUARTER} < -{SOH_DECLINE_PCT_PER_QUARTER}")
DIVERGENCE_DRIFT_SQL = _trend_sql(
    "full_divergence", DIVERGENCE_WINDOW_DAYS, DIVERGENCE_MIN_DAYS, DAYS_PER_MONTH,
    f"slope * {DAYS_PER_MONTH} > {DIVERGENCE_DRIFT_V_PER_MONTH}")

SOH_LOW_SQL = f"""
    SELECT t.vehicle_id, median(t.soh_pct) AS soh_pct, min(t.ts) AS window_start, max(t.ts) AS window_end,
           count(*) AS samples
    FROM telemetry t JOIN vehicles v USING (vehicle_id)
    WHERE t.ts > v.t_end - INTERVAL {SOH_CURRENT_DAYS} DAY
    GROUP BY t.vehicle_id HAVING median(t.soh_pct) < {SOH_REPLACE_PCT}"""

DIVERGENCE_PERSISTENT_SQL = f"""
    WITH m AS (SELECT vehicle_id, day, full_divergence AS div FROM daily WHERE full_divergence IS NOT NULL),
    last_ok AS (SELECT vehicle_id, max(day) FILTER (WHERE div <= {DIVERGENCE_LIMIT_V}) AS day FROM m
                GROUP BY vehicle_id),
    streak AS (SELECT m.* FROM m JOIN last_ok l USING (vehicle_id) WHERE l.day IS NULL OR m.day > l.day)
    SELECT s.vehicle_id, min(s.day) AS since, max(s.day) AS last_measured, count(*) AS days,
           median(s.div) AS median_v, min(s.div) AS min_v, max(s.div) AS max_v,
           any_value(v.install_date) AS install_date, any_value(v.t_end) AS t_end,
           date_diff('day', any_value(v.install_date), any_value(v.t_end)) / 365.25 AS pack_age_years
    FROM streak s JOIN vehicles v USING (vehicle_id)
    GROUP BY s.vehicle_id HAVING count(*) >= {PERSISTENT_MIN_DAYS}"""

CHARGING_ANOMALY_SQL = f"""
    WITH seq AS (
      SELECT vehicle_id, ts, state, soc_pct,
             state IS DISTINCT FROM lag(state) OVER w
               OR ts - lag(ts) OVER w > INTERVAL {PHASE_GAP_HOURS} HOUR AS starts_phase
      FROM telemetry WINDOW w AS (PARTITION BY vehicle_id ORDER BY ts)),
    drive AS (
      SELECT vehicle_id, ts, soc_pct,
             sum(starts_phase::INTEGER) OVER (PARTITION BY vehicle_id ORDER BY ts
                                              ROWS UNBOUNDED PRECEDING) AS phase
      FROM seq WHERE state = 'drive'),
    phases AS (
      SELECT vehicle_id, phase, min(ts) AS start, max(ts) AS stop, max(soc_pct) AS max_soc
      FROM drive GROUP BY vehicle_id, phase
      HAVING max(ts) - min(ts) >= INTERVAL {EXTENDED_DRIVE_HOURS} HOUR),
    judged AS (
      SELECT *, max_soc <= {CHARGE_TARGET_SOC_PCT} AS failed,
             min(start) FILTER (WHERE max_soc <= {CHARGE_TARGET_SOC_PCT})
               OVER (PARTITION BY vehicle_id) AS first_failure
      FROM phases)
    SELECT vehicle_id, count(*) FILTER (WHERE failed) AS failures,
           count(*) FILTER (WHERE start >= first_failure) AS drives_since_first_failure,
           count(*) AS extended_drives, min(first_failure) AS first_failure,
           max(stop) FILTER (WHERE failed) AS last_failure,
           max(max_soc) FILTER (WHERE failed) AS best_soc_in_failed,
           median(max_soc) FILTER (WHERE failed) AS median_soc_in_failed
    FROM judged GROUP BY vehicle_id
    HAVING count(*) FILTER (WHERE failed) >= {CHARGE_MIN_FAILURES}
       AND count(*) FILTER (WHERE failed)
           >= {CHARGE_MIN_FAILURE_SHARE} * count(*) FILTER (WHERE start >= first_failure)"""


def _warranty_action(evidence: dict[str, Any]) -> str:
    age = evidence.get("pack_age_years")
    if age is None:
        return ("warranty investigation: pack install date not in the data; check the warranty record, "
                "then replace under warranty (within 5 years) or schedule a replacement")
    if age < WARRANTY_YEARS:
        return (f"warranty investigation: pack installed {evidence['install_date']} ({age:.1f} years, "
                f"within the {WARRANTY_YEARS}-year window): flag for pack replacement under warranty")
    return (f"warranty investigation: pack installed {evidence['install_date']} ({age:.1f} years, "
            f"outside the {WARRANTY_YEARS}-year window): schedule a pack replacement")


RULES: tuple[Rule, ...] = (
    Rule("soh_decline", f"SOH decline > {SOH_DECLINE_PCT_PER_QUARTER:g} % per quarter", SOH_DECLINE_SQL,
         lambda e: "faster than expected degradation: schedule a pack health check (bench diag) "
                   "and review the duty cycle"),
    Rule("divergence_drift", f"cell divergence increase > {DIVERGENCE_DRIFT_V_PER_MONTH:g} V per month",
         DIVERGENCE_DRIFT_SQL,
         lambda e: "divergence growing faster than balancing corrects: run the pack health "
                   "measurement at full charge, then extended balancing"),
    Rule("charging_anomaly", f"no charge above {CHARGE_TARGET_SOC_PCT:g} % SOC after extended driving",
         CHARGING_ANOMALY_SQL, lambda e: "alternator + pack joint diagnostic"),
    Rule("soh_low", f"SOH below {SOH_REPLACE_PCT:g} %", SOH_LOW_SQL,
         lambda e: "plan pack replacement scheduling"),
    Rule("divergence_persistent", f"cell divergence > {DIVERGENCE_LIMIT_V:g} V persistent",
         DIVERGENCE_PERSISTENT_SQL, _warranty_action),
)
RULE_NAMES = tuple(r.name for r in RULES)
