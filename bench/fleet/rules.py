"""The fleet service decision framework as DuckDB SQL, evaluated as a daily monitor.

Source: "Telematics data interpretation and fleet service decision framework" in
``vs02-pro-bms-calibration-procedure.txt`` (the *procedure* below). The procedure's rules are
monitoring rules: a dashboard raises an alert on the day the condition appears. Each rule is
therefore evaluated on every day a vehicle has data, as a monitor would have seen it that evening:
a trailing window ending on that day, on daily aggregates (median of the day's samples, so
single-sample glitches cannot move it) and, where it judges a trend, an ordinary least-squares
line through those daily values (window aggregates). The days on which a rule held form alerts:
first day held, last day held, and whether it still holds on the vehicle's last day (*active*).
An event in March that nobody serviced is thus reported in December, and "what holds now" is the
subset of active alerts.

Input: any query of samples ``(vehicle_id, ts, soc_pct, soh_pct, divergence_v, drive, install_date,
ok)``. :func:`day_groups_sql` reduces them in one pass to one row per vehicle, day and validity
(including the day's drive segments); :data:`PREPARE_SQL` then builds the ``daily`` table (valid
days, numbered, with both trend rules judged in the same ordered pass) and the ``phases`` table;
each :class:`Rule` has a per-day query (``vehicle_id, day, n, last_day, held``) and
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


# the same limits in µs, for the drive segments computed on epoch microseconds
GAP_US = PHASE_GAP_HOURS * 3_600_000_000
EXTENDED_US = EXTENDED_DRIVE_HOURS * 3_600_000_000


def day_groups_sql(samples: str, counts: dict[str, str] | None = None) -> str:
    """The one pass over the samples: a row per vehicle, UTC day and validity (``ok``).

    ``samples`` yields ``vehicle_id, ts, soc_pct, soh_pct, divergence_v, drive, install_date, ok``;
    ``counts`` adds named counts (for example per source). Rows that fail validation fall into
    their own groups (``ok`` false) and are only counted. Everything a rule needs per sample is
    reduced here, so no per-sample table is written and no sample is sorted across the fleet:

    - the daily values: median SOH (single-sample glitches cannot move it), the last sample (the
      monitor's "now"), the full-charge divergence measurement;
    - the day's drive segments: runs of drive samples with no other state between and no gap over
      PHASE_GAP_HOURS, each with its first and last sample, its highest SOC, and whether it starts
      with the day's first sample or ends with its last (it may then continue across midnight:
      :data:`PHASES_SQL` stitches those). Nothing is sorted beyond a day's own samples: ``seq``
      holds every sample as ``epoch µs * 2 + drive`` (a sample of another state at the same instant
      comes first), ``ds`` the drive samples (µs, SOC) in time order. ``ds`` is cut where two
      consecutive drive samples lie too far apart or are not neighbours among all samples (``b``:
      the index in ``ds`` where each segment begins; it ends where the next begins). Neighbours are
      checked by position (``p``, from ``seq`` sorted) only on the days where some other sample
      lies between the day's first and last drive sample; on the others (the usual day: one drive)
      all drive samples are neighbours.
    """
    extra = "".join(f"{expr} AS {name}, " for name, expr in (counts or {}).items())
    last = "coalesce(b[m + 1] - 1, len(ds))"  # index in ds of the last sample of segment m
    positions = ("list_filter(list_transform(list_sort(seq), lambda k, i: CASE WHEN k % 2 <> 0 THEN i END), "
                 "lambda i: i IS NOT NULL)")
    interleaved = ("len(list_filter(seq, lambda k: k % 2 = 0 AND k > ds[1].us * 2 + 1 "
                   "AND k < ds[-1].us * 2 + 1)) > 0")
    return f"""CREATE OR REPLACE TEMP TABLE day_groups AS
       SELECT * EXCLUDE (seq, ds, p, b),
              list_transform(b, lambda a, m: {{
                'start': ds[a].us, 'stop': ds[{last}].us,
                'max_soc': list_max(list_transform(ds[a:{last}], lambda d: d.soc)),
                'opens': ds[a].us * 2 + 1 = list_min(seq), 'closes': ds[{last}].us * 2 + 1 = list_max(seq)}})
                AS segments
       FROM (SELECT *, list_filter(range(1, len(ds) + 1),
                                   lambda j: j = 1 OR ds[j].us - ds[j - 1].us > {GAP_US}
                                             OR coalesce(p[j] <> p[j - 1] + 1, false)) AS b
             FROM (SELECT *, CASE WHEN ds IS NOT NULL AND {interleaved} THEN {positions} END AS p
                   FROM (SELECT * EXCLUDE (drives), list_sort(drives) AS ds
                         FROM (SELECT vehicle_id, ts::DATE AS day, ok, count(*) AS samples, {extra}
                                      median(soh_pct) AS soh, min(ts) AS first_ts, max(ts) AS last_ts,
                                      max(install_date) AS install_date,
                                      list_median(arg_max(divergence_v, soc_pct, {FULL_SAMPLES})
                                                  FILTER (WHERE soc_pct >= {FULL_SOC_PCT})) AS full_divergence,
                                      list(epoch_us(ts) * 2 + drive::BIGINT) AS seq,
                                      list({{'us': epoch_us(ts), 'soc': soc_pct}}) FILTER (WHERE drive) AS drives
                               FROM ({samples}) GROUP BY vehicle_id, ts::DATE, ok))))"""


# Extended drive phases: a day's drive segments are phases unless they touch midnight; those
# that do are stitched to the neighbouring day's (the previous day's last segment ends with its
# last sample, this one starts with the day's first, and the gap is <= PHASE_GAP_HOURS).
PHASES_SQL = f"""CREATE OR REPLACE TEMP TABLE phases AS
       WITH segment AS (
         SELECT vehicle_id, g.start, g.stop, g.max_soc, g.opens, g.closes
         FROM (SELECT vehicle_id, unnest(segments) AS g FROM day_groups WHERE ok AND segments IS NOT NULL)),
       edge AS (
         SELECT *, coalesce(opens AND lag(closes) OVER w AND start - lag(stop) OVER w <= {GAP_US}, false) AS joins
         FROM segment WHERE opens OR closes WINDOW w AS (PARTITION BY vehicle_id ORDER BY start)),
       stitched AS (
         SELECT vehicle_id, min(start) AS start, max(stop) AS stop, max(max_soc) AS max_soc
         FROM (SELECT *, sum((NOT joins)::INTEGER) OVER (PARTITION BY vehicle_id ORDER BY start
                                                          ROWS UNBOUNDED PRECEDING) AS chain FROM edge)
         GROUP BY vehicle_id, chain)
       SELECT vehicle_id, make_timestamp(start) AS start, make_timestamp(stop) AS stop, max_soc
       FROM (SELECT vehicle_id, start, stop, max_soc FROM segment WHERE NOT (opens OR closes)
             UNION ALL SELECT * FROM stitched)
       WHERE stop - start >= {EXTENDED_US}"""


@dataclass(frozen=True)
class Rule:
    """One decision rule: its per-day query, the evidence of an alert, and the action it prescribes.

    ``days_sql`` returns one row per vehicle and day with data: ``vehicle_id, day, n, last_day``
    (from ``daily``), ``held`` and any evidence columns it has anyway. A rule that can only hold on
    a vehicle with some cheap sign (a day below the SOH limit, ...) reads only those vehicles' days:
    the days it leaves out are days it does not hold. ``evidence_sql`` (optional)
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

    ``condition`` is on ``slope`` (per ``per_days``). Returns the held expression (evaluated in
    :data:`DAILY_SQL`) and the evidence query.
    """
    window = _trailing(window_days)
    slope = f"regr_slope({value}, x) OVER {window} * {per_days}"
    if value == "soh":  # never NULL on a day with data: "min_days in the window" is one lag away
        enough = (f"lag(day, {min_days - 1}) OVER (PARTITION BY vehicle_id ORDER BY day) "
                  f">= day - INTERVAL {window_days - 1} DAY")
    else:
        enough = f"count({value}) OVER {window} >= {min_days}"
    held_sql = f"coalesce({enough} AND {condition.replace('slope', slope)}, false)"
    fit = f"regr_slope(d.{value}, d.x)"
    evidence_sql = f"""
        SELECT a.vehicle_id, a.day, min(d.day) AS window_start, max(d.day) AS window_end, count(*) AS days,
               {fit} * {per_days} AS slope,
               regr_avgy(d.{value}, d.x) + {fit} * (min(d.x) - regr_avgx(d.{value}, d.x)) AS fitted_start,
               regr_avgy(d.{value}, d.x) + {fit} * (max(d.x) - regr_avgx(d.{value}, d.x)) AS fitted_end,
               regr_r2(d.{value}, d.x) AS r2
        FROM {_in_window(window_days, value)} GROUP BY a.vehicle_id, a.day"""
    return held_sql, evidence_sql


_SOH_DECLINE_HELD, SOH_DECLINE_EVIDENCE = _trend(
    "soh", SOH_WINDOW_DAYS, SOH_MIN_DAYS, DAYS_PER_QUARTER, f"slope < -{SOH_DECLINE_PCT_PER_QUARTER}")
_DIVERGENCE_DRIFT_HELD, DIVERGENCE_DRIFT_EVIDENCE = _trend(
    "full_divergence", DIVERGENCE_WINDOW_DAYS, DIVERGENCE_MIN_DAYS, DAYS_PER_MONTH,
    f"slope > {DIVERGENCE_DRIFT_V_PER_MONTH}")
# The valid days, with the x of the fits; ``n`` numbers a vehicle's days with data (alerts are
# merged across gaps counted in them) and ``last_day`` is its last one (the monitor's "now"). The
# trend rules are judged here too: one ordering of the daily table serves all these windows.
DAILY_SQL = f"""CREATE OR REPLACE TEMP TABLE daily AS
    SELECT *, row_number() OVER v AS n, max(day) OVER (PARTITION BY vehicle_id) AS last_day,
           {_SOH_DECLINE_HELD} AS soh_decline, {_DIVERGENCE_DRIFT_HELD} AS divergence_drift
    FROM (SELECT vehicle_id, day, soh, samples, first_ts, last_ts, install_date, full_divergence,
                 date_diff('day', {EPOCH}, day)::DOUBLE AS x
          FROM day_groups WHERE ok)
    WINDOW v AS (PARTITION BY vehicle_id ORDER BY day)"""
SOH_DECLINE_SQL = "SELECT vehicle_id, day, n, last_day, soh_decline AS held FROM daily"
DIVERGENCE_DRIFT_SQL = "SELECT vehicle_id, day, n, last_day, divergence_drift AS held FROM daily"

# Most of the daily median SOH values of the last SOH_CURRENT_DAYS days below the threshold (their
# median is, for an odd count): a count per window, far cheaper than a windowed median.
# Only vehicles with a day below the threshold can hold.
SOH_LOW_SQL = f"""
    SELECT vehicle_id, day, n, last_day,
           coalesce(2 * sum((soh < {SOH_REPLACE_PCT})::INTEGER) OVER w > count(soh) OVER w, false) AS held
    FROM daily WHERE vehicle_id IN (SELECT vehicle_id FROM daily WHERE soh < {SOH_REPLACE_PCT})
    WINDOW w AS {_trailing(SOH_CURRENT_DAYS)}"""
SOH_LOW_EVIDENCE = f"""
    SELECT a.vehicle_id, a.day, median(d.soh) AS soh_pct, min(d.day) AS window_start, a.day AS window_end,
           sum(d.samples) AS samples
    FROM {_in_window(SOH_CURRENT_DAYS, "soh")} GROUP BY a.vehicle_id, a.day"""

# On each measurement day: the latest PERSISTENT_MIN_DAYS measurements (this one included) are all
# above the limit, i.e. a streak of at least that many consecutive measurement days above it ends
# there. Every day then carries the verdict of its latest measurement (ASOF join): a vehicle that
# has not been fully charged since still has the divergence last measured. Only vehicles with a
# measurement above the limit can hold.
DIVERGENCE_PERSISTENT_SQL = f"""
    WITH v AS (SELECT * FROM daily
               WHERE vehicle_id IN (SELECT vehicle_id FROM daily WHERE full_divergence > {DIVERGENCE_LIMIT_V})),
    streak AS (
      SELECT vehicle_id, day, count(*) OVER w = {PERSISTENT_MIN_DAYS}
                              AND min(full_divergence) OVER w > {DIVERGENCE_LIMIT_V} AS persistent
      FROM v WHERE full_divergence IS NOT NULL
      WINDOW w AS (PARTITION BY vehicle_id ORDER BY day ROWS {PERSISTENT_MIN_DAYS - 1} PRECEDING))
    SELECT d.vehicle_id, d.day, d.n, d.last_day, coalesce(s.persistent, false) AS held
    FROM v d ASOF LEFT JOIN streak s ON d.vehicle_id = s.vehicle_id AND d.day >= s.day"""
# The streak behind an alert day: the measurements after the last one at or below the limit.
DIVERGENCE_PERSISTENT_EVIDENCE = f"""
    WITH alerted AS (SELECT * FROM daily WHERE vehicle_id IN (SELECT vehicle_id FROM alert_days)),
    measured AS (
      SELECT a.vehicle_id, a.day, d.day AS measured_day, d.full_divergence AS div
      FROM alert_days a JOIN alerted d ON d.vehicle_id = a.vehicle_id AND d.day <= a.day
                                       AND d.full_divergence IS NOT NULL),
    since_ok AS (
      SELECT vehicle_id, day, max(measured_day) FILTER (WHERE div <= {DIVERGENCE_LIMIT_V}) AS last_ok
      FROM measured GROUP BY vehicle_id, day)
    SELECT m.vehicle_id, m.day, min(m.measured_day) AS since, max(m.measured_day) AS last_measured,
           count(*) AS days, median(m.div) AS median_v, min(m.div) AS min_v, max(m.div) AS max_v,
           any_value(d.install_date) AS install_date, any_value(d.last_ts) AS t_end,
           date_diff('day', any_value(d.install_date), any_value(d.last_ts)) / 365.25 AS pack_age_years
    FROM measured m JOIN since_ok o USING (vehicle_id, day)
         JOIN alerted d ON d.vehicle_id = m.vehicle_id AND d.day = m.day
    WHERE o.last_ok IS NULL OR m.measured_day > o.last_ok
    GROUP BY m.vehicle_id, m.day"""

# At the end of each extended drive, over the extended drives of the last CHARGE_WINDOW_DAYS
# (``k`` numbers a vehicle's drives); every day carries the verdict of its latest drive. Only
# vehicles with at least CHARGE_MIN_FAILURES failed drives in all can hold.
_CHARGE_WINDOW = (f"(PARTITION BY vehicle_id ORDER BY stop "
                  f"RANGE BETWEEN INTERVAL {CHARGE_WINDOW_DAYS} DAY PRECEDING AND CURRENT ROW)")
CHARGING_ANOMALY_SQL = f"""
    WITH candidates AS (
      SELECT vehicle_id FROM phases WHERE max_soc <= {CHARGE_TARGET_SOC_PCT}
      GROUP BY vehicle_id HAVING count(*) >= {CHARGE_MIN_FAILURES}),
    p AS (
      SELECT vehicle_id, stop, max_soc <= {CHARGE_TARGET_SOC_PCT} AS failed,
             row_number() OVER (PARTITION BY vehicle_id ORDER BY stop) AS k
      FROM phases WHERE vehicle_id IN (SELECT vehicle_id FROM candidates)),
    judged AS (
      SELECT vehicle_id, stop, sum(failed::INTEGER) OVER w AS failures,
             k - min(CASE WHEN failed THEN k END) OVER w + 1 AS drives_since_first_failure
      FROM p WINDOW w AS {_CHARGE_WINDOW})
    SELECT d.vehicle_id, d.day, d.n, d.last_day,
           coalesce(j.failures >= {CHARGE_MIN_FAILURES}
                    AND j.failures >= {CHARGE_MIN_FAILURE_SHARE} * j.drives_since_first_failure, false) AS held
    FROM (SELECT * FROM daily WHERE vehicle_id IN (SELECT vehicle_id FROM candidates)) d
         ASOF LEFT JOIN judged j ON d.vehicle_id = j.vehicle_id AND d.last_ts >= j.stop"""
# The drives behind an alert day: those of the window ending at the day's latest drive.
CHARGING_ANOMALY_EVIDENCE = f"""
    WITH alerted AS (SELECT * FROM phases WHERE vehicle_id IN (SELECT vehicle_id FROM alert_days)),
    latest AS (
      SELECT a.vehicle_id, a.day, j.stop
      FROM alert_days a JOIN daily d ON d.vehicle_id = a.vehicle_id AND d.day = a.day
           ASOF JOIN alerted j ON j.vehicle_id = a.vehicle_id AND d.last_ts >= j.stop),
    drives AS (
      SELECT l.vehicle_id, l.day, p.start, p.stop, p.max_soc, p.max_soc <= {CHARGE_TARGET_SOC_PCT} AS failed
      FROM latest l JOIN alerted p ON p.vehicle_id = l.vehicle_id
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

# Run in order after :func:`day_groups_sql`: the tables every rule's days and evidence read.
PREPARE_SQL: tuple[str, ...] = (DAILY_SQL, PHASES_SQL)
