"""The fleet service decision framework as DuckDB SQL, evaluated as a daily monitor.

Source: "Telematics data interpretation and fleet service decision framework" in
``vs02-pro-bms-calibration-procedure.txt`` (the *procedure* below). The procedure's rules are
monitoring rules: a dashboard raises an alert on the day the condition appears. Each rule is
therefore evaluated on every day a vehicle has data, as a monitor would have seen it that evening:
a trailing window ending on that day, on daily aggregates (median of the day's samples, so
single-sample glitches cannot move it) and, where it judges a trend, an ordinary least-squares
line through those daily values (window aggregates, so one pass per rule). The days on which a
rule held form alerts: first day held, last day held, and whether it still holds on the vehicle's
last day (*active*). An event in March that nobody serviced is thus reported in December, and
"what holds now" is the subset of active alerts.

Input: a table ``telemetry(vehicle_id, ts, soc_pct, soh_pct, divergence_v, drive, install_date)``
of validated rows. :data:`PREPARE_SQL` builds the shared ``daily`` and ``phases`` tables; each
:class:`Rule` has a per-day query (``vehicle_id, day, held`` and its evidence columns) and
:func:`alerts_sql` turns the held days into alerts carrying the evidence of their last held day.
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


# A monitor's alert ends when the condition has not held for this many days with data; a shorter
# dip (noise around a threshold for a day or two) does not end one alert and open another.
ALERT_GAP_DAYS = 3
# Charging anomaly: the failures are counted in the drives of the last month (as of each day).
CHARGE_WINDOW_DAYS = 30
EPOCH = "DATE '2000-01-01'"  # x origin of the fits (days); slopes do not depend on it


PREPARE_SQL: tuple[str, ...] = (
    # One row per vehicle and UTC day with data; the day's last sample stands for the monitor's "now".
    # ``n`` numbers a vehicle's days with data (alerts are merged across gaps counted in them).
    f"""CREATE OR REPLACE TEMP TABLE daily AS
       SELECT *, row_number() OVER (v ORDER BY day) AS n, max(day) OVER v AS last_day
       FROM (SELECT vehicle_id, ts::DATE AS day, median(soh_pct) AS soh, count(*) AS samples,
                    max(ts) AS last_ts, max(install_date) AS install_date,
                    date_diff('day', {EPOCH}, ts::DATE)::DOUBLE AS x,
                    list_median(arg_max(divergence_v, soc_pct, {FULL_SAMPLES})
                                FILTER (WHERE soc_pct >= {FULL_SOC_PCT})) AS full_divergence
             FROM telemetry GROUP BY vehicle_id, ts::DATE)
       WINDOW v AS (PARTITION BY vehicle_id)""",
    # Extended drive phases: a run of drive rows with no other state and no gap > PHASE_GAP_HOURS.
    f"""CREATE OR REPLACE TEMP TABLE phases AS
       WITH seq AS (
         SELECT vehicle_id, ts, soc_pct, drive,
                drive IS DISTINCT FROM lag(drive) OVER w
                  OR ts - lag(ts) OVER w > INTERVAL {PHASE_GAP_HOURS} HOUR AS starts_phase
         FROM telemetry WINDOW w AS (PARTITION BY vehicle_id ORDER BY ts)),
       drive AS (
         SELECT vehicle_id, ts, soc_pct,
                sum(starts_phase::INTEGER) OVER (PARTITION BY vehicle_id ORDER BY ts
                                                 ROWS UNBOUNDED PRECEDING) AS phase
         FROM seq WHERE drive)
       SELECT vehicle_id, min(ts) AS start, max(ts) AS stop, max(soc_pct) AS max_soc
       FROM drive GROUP BY vehicle_id, phase
       HAVING max(ts) - min(ts) >= INTERVAL {EXTENDED_DRIVE_HOURS} HOUR""",
)


@dataclass(frozen=True)
class Rule:
    """One decision rule: its per-day query, the evidence of an alert, and the action it prescribes.

    ``days_sql`` returns one row per vehicle and day with data: ``vehicle_id, day, n, last_day``
    (from ``daily``), ``held`` and any evidence columns it has anyway. ``evidence_sql`` (optional)
    computes the rest of the evidence only for the days that need it, the rows of ``alert_days``
    (``vehicle_id, day``: each alert's last held day); it is far cheaper than carrying every
    evidence column through the day-by-day windows.
    """

    name: str
    title: str
    days_sql: str
    action: Callable[[dict[str, Any]], str]
    evidence_sql: str | None = None


def _trailing(days: int) -> str:
    return (f"(PARTITION BY vehicle_id ORDER BY day "
            f"RANGE BETWEEN INTERVAL {days - 1} DAY PRECEDING AND CURRENT ROW)")


def _in_window(days: int, value: str) -> str:
    """Join ``alert_days`` a to the ``daily`` rows d of the trailing window ending on a.day."""
    return (f"alert_days a JOIN daily d ON d.vehicle_id = a.vehicle_id AND d.{value} IS NOT NULL "
            f"AND d.day BETWEEN a.day - INTERVAL {days - 1} DAY AND a.day")


def _trend(value: str, window_days: int, min_days: int, per_days: float, condition: str) -> tuple[str, str]:
    """Least-squares slope of a daily value over the trailing window ending on each day.

    ``condition`` is on ``slope`` (per ``per_days``). Returns the per-day query and the evidence query.
    """
    slope = f"regr_slope({value}, x) OVER w * {per_days}"
    days_sql = f"""
        SELECT vehicle_id, day, n, last_day,
               coalesce(count({value}) OVER w >= {min_days} AND {condition.replace("slope", slope)}, false) AS held
        FROM daily WINDOW w AS {_trailing(window_days)}"""
    fit = f"regr_slope(d.{value}, d.x)"
    evidence_sql = f"""
        SELECT a.vehicle_id, a.day, min(d.day) AS window_start, max(d.day) AS window_end, count(*) AS days,
               {fit} * {per_days} AS slope,
               regr_avgy(d.{value}, d.x) + {fit} * (min(d.x) - regr_avgx(d.{value}, d.x)) AS fitted_start,
               regr_avgy(d.{value}, d.x) + {fit} * (max(d.x) - regr_avgx(d.{value}, d.x)) AS fitted_end,
               regr_r2(d.{value}, d.x) AS r2
        FROM {_in_window(window_days, value)} GROUP BY a.vehicle_id, a.day"""
    return days_sql, evidence_sql


SOH_DECLINE_SQL, SOH_DECLINE_EVIDENCE = _trend(
    "soh", SOH_WINDOW_DAYS, SOH_MIN_DAYS, DAYS_PER_QUARTER, f"slope < -{SOH_DECLINE_PCT_PER_QUARTER}")
DIVERGENCE_DRIFT_SQL, DIVERGENCE_DRIFT_EVIDENCE = _trend(
    "full_divergence", DIVERGENCE_WINDOW_DAYS, DIVERGENCE_MIN_DAYS, DAYS_PER_MONTH,
    f"slope > {DIVERGENCE_DRIFT_V_PER_MONTH}")

# Most of the daily median SOH values of the last SOH_CURRENT_DAYS days below the threshold (their
# median is, for an odd count): a count per window, far cheaper than a windowed median.
SOH_LOW_SQL = f"""
    SELECT vehicle_id, day, n, last_day,
           coalesce(2 * sum((soh < {SOH_REPLACE_PCT})::INTEGER) OVER w > count(soh) OVER w, false) AS held
    FROM daily WINDOW w AS {_trailing(SOH_CURRENT_DAYS)}"""
SOH_LOW_EVIDENCE = f"""
    SELECT a.vehicle_id, a.day, median(d.soh) AS soh_pct, min(d.day) AS window_start, a.day AS window_end,
           sum(d.samples) AS samples
    FROM {_in_window(SOH_CURRENT_DAYS, "soh")} GROUP BY a.vehicle_id, a.day"""

# On each measurement day: how many consecutive measurement days above the limit end there
# (``run`` counts the measurements at or below it so far, so one run = one streak). Every day then
# carries the verdict of its latest measurement (ASOF join): a vehicle that has not been fully
# charged since still has the divergence last measured.
DIVERGENCE_PERSISTENT_SQL = f"""
    WITH m AS (
      SELECT vehicle_id, day, full_divergence > {DIVERGENCE_LIMIT_V} AS above,
             sum((full_divergence <= {DIVERGENCE_LIMIT_V})::INTEGER)
               OVER (PARTITION BY vehicle_id ORDER BY day ROWS UNBOUNDED PRECEDING) AS run
      FROM daily WHERE full_divergence IS NOT NULL),
    streak AS (
      SELECT vehicle_id, day, above,
             sum(above::INTEGER) OVER (PARTITION BY vehicle_id, run ORDER BY day ROWS UNBOUNDED PRECEDING) AS days
      FROM m)
    SELECT d.vehicle_id, d.day, d.n, d.last_day, coalesce(s.above AND s.days >= {PERSISTENT_MIN_DAYS}, false) AS held
    FROM daily d ASOF LEFT JOIN streak s ON d.vehicle_id = s.vehicle_id AND d.day >= s.day"""
# The streak behind an alert day: the measurements after the last one at or below the limit.
DIVERGENCE_PERSISTENT_EVIDENCE = f"""
    WITH measured AS (
      SELECT a.vehicle_id, a.day, d.day AS measured_day, d.full_divergence AS div
      FROM alert_days a JOIN daily d ON d.vehicle_id = a.vehicle_id AND d.day <= a.day
                                     AND d.full_divergence IS NOT NULL),
    since_ok AS (
      SELECT vehicle_id, day, max(measured_day) FILTER (WHERE div <= {DIVERGENCE_LIMIT_V}) AS last_ok
      FROM measured GROUP BY vehicle_id, day)
    SELECT m.vehicle_id, m.day, min(m.measured_day) AS since, max(m.measured_day) AS last_measured,
           count(*) AS days, median(m.div) AS median_v, min(m.div) AS min_v, max(m.div) AS max_v,
           any_value(d.install_date) AS install_date, any_value(d.last_ts) AS t_end,
           date_diff('day', any_value(d.install_date), any_value(d.last_ts)) / 365.25 AS pack_age_years
    FROM measured m JOIN since_ok o USING (vehicle_id, day)
         JOIN daily d ON d.vehicle_id = m.vehicle_id AND d.day = m.day
    WHERE o.last_ok IS NULL OR m.measured_day > o.last_ok
    GROUP BY m.vehicle_id, m.day"""

# At the end of each extended drive, over the extended drives of the last CHARGE_WINDOW_DAYS
# (``k`` numbers a vehicle's drives); every day carries the verdict of its latest drive.
_CHARGE_WINDOW = (f"(PARTITION BY vehicle_id ORDER BY stop "
                  f"RANGE BETWEEN INTERVAL {CHARGE_WINDOW_DAYS} DAY PRECEDING AND CURRENT ROW)")
CHARGING_ANOMALY_SQL = f"""
    WITH p AS (
      SELECT vehicle_id, stop, max_soc <= {CHARGE_TARGET_SOC_PCT} AS failed,
             row_number() OVER (PARTITION BY vehicle_id ORDER BY stop) AS k
      FROM phases),
    judged AS (
      SELECT vehicle_id, stop, sum(failed::INTEGER) OVER w AS failures,
             k - min(CASE WHEN failed THEN k END) OVER w + 1 AS drives_since_first_failure
      FROM p WINDOW w AS {_CHARGE_WINDOW})
    SELECT d.vehicle_id, d.day, d.n, d.last_day,
           coalesce(j.failures >= {CHARGE_MIN_FAILURES}
                    AND j.failures >= {CHARGE_MIN_FAILURE_SHARE} * j.drives_since_first_failure, false) AS held
    FROM daily d ASOF LEFT JOIN judged j ON d.vehicle_id = j.vehicle_id AND d.last_ts >= j.stop"""
# The drives behind an alert day: those of the window ending at the day's latest drive.
CHARGING_ANOMALY_EVIDENCE = f"""
    WITH latest AS (
      SELECT a.vehicle_id, a.day, j.stop
      FROM alert_days a JOIN daily d ON d.vehicle_id = a.vehicle_id AND d.day = a.day
           ASOF JOIN phases j ON j.vehicle_id = a.vehicle_id AND d.last_ts >= j.stop),
    drives AS (
      SELECT l.vehicle_id, l.day, p.start, p.stop, p.max_soc, p.max_soc <= {CHARGE_TARGET_SOC_PCT} AS failed
      FROM latest l JOIN phases p ON p.vehicle_id = l.vehicle_id
                                  AND p.stop BETWEEN l.stop - INTERVAL {CHARGE_WINDOW_DAYS} DAY AND l.stop),
    first AS (SELECT vehicle_id, day, min(stop) FILTER (WHERE failed) AS first_failed_stop
              FROM drives GROUP BY vehicle_id, day)
    SELECT vehicle_id, day, count(*) FILTER (WHERE failed) AS failures,
           count(*) FILTER (WHERE stop >= first_failed_stop) AS drives_since_first_failure,
           count(*) AS extended_drives, min(start) FILTER (WHERE failed) AS first_failure,
           max(stop) FILTER (WHERE failed) AS last_failure,
           max(max_soc) FILTER (WHERE failed) AS best_soc_in_failed,
           median(max_soc) FILTER (WHERE failed) AS median_soc_in_failed
    FROM drives JOIN first USING (vehicle_id, day) GROUP BY vehicle_id, day"""


def alerts_sql(rule: Rule) -> str:
    """Alerts from a rule's per-day rows: runs of held days (gaps < ALERT_GAP_DAYS data days merged).

    Columns: ``vehicle_id, first_held, last_held, active`` then the evidence of the last held day.
    """
    days_sql = rule.days_sql
    alerts = f"""
        WITH h AS (SELECT *, n - lag(n) OVER (PARTITION BY vehicle_id ORDER BY day) > {ALERT_GAP_DAYS} AS breaks
                   FROM ({days_sql}) WHERE held),
        g AS (SELECT *, sum(coalesce(breaks, true)::INTEGER)
                          OVER (PARTITION BY vehicle_id ORDER BY day ROWS UNBOUNDED PRECEDING) AS alert
              FROM h)
        SELECT vehicle_id, min(day) OVER a AS first_held, day AS last_held, day = last_day AS active,
               * EXCLUDE (vehicle_id, day, held, n, last_day, breaks, alert)
        FROM g WINDOW a AS (PARTITION BY vehicle_id, alert)
        QUALIFY day = max(day) OVER a"""
    if rule.evidence_sql is None:
        return alerts
    return f"""
        WITH alerts AS ({alerts}),
        alert_days AS (SELECT vehicle_id, last_held AS day FROM alerts),
        evidence AS ({rule.evidence_sql})
        SELECT alerts.*, evidence.* EXCLUDE (vehicle_id, day)
        FROM alerts LEFT JOIN evidence ON evidence.vehicle_id = alerts.vehicle_id
                                        AND evidence.day = alerts.last_held"""


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
                   "and review the duty cycle", SOH_DECLINE_EVIDENCE),
    Rule("divergence_drift", f"cell divergence increase > {DIVERGENCE_DRIFT_V_PER_MONTH:g} V per month",
         DIVERGENCE_DRIFT_SQL,
         lambda e: "divergence growing faster than balancing corrects: run the pack health "
                   "measurement at full charge, then extended balancing", DIVERGENCE_DRIFT_EVIDENCE),
    Rule("charging_anomaly", f"no charge above {CHARGE_TARGET_SOC_PCT:g} % SOC after extended driving",
         CHARGING_ANOMALY_SQL, lambda e: "alternator + pack joint diagnostic", CHARGING_ANOMALY_EVIDENCE),
    Rule("soh_low", f"SOH below {SOH_REPLACE_PCT:g} %", SOH_LOW_SQL,
         lambda e: "plan pack replacement scheduling", SOH_LOW_EVIDENCE),
    Rule("divergence_persistent", f"cell divergence > {DIVERGENCE_LIMIT_V:g} V persistent",
         DIVERGENCE_PERSISTENT_SQL, _warranty_action, DIVERGENCE_PERSISTENT_EVIDENCE),
)
RULE_NAMES = tuple(r.name for r in RULES)
