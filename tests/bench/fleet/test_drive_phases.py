"""Drive phases from each day's own samples equal the per-sample definition (one sort of every sample)."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from bench.fleet import rules as fleet_rules

# The definition, over every sample in time order: a phase is a run of drive samples with no other
# state between and no gap over PHASE_GAP_HOURS; extended when first to last is >= EXTENDED_DRIVE_HOURS.
PER_SAMPLE = f"""
    WITH seq AS (
      SELECT vehicle_id, ts, soc_pct, drive,
             drive IS DISTINCT FROM lag(drive) OVER w
               OR ts - lag(ts) OVER w > INTERVAL {fleet_rules.PHASE_GAP_HOURS} HOUR AS starts_phase
      FROM samples WINDOW w AS (PARTITION BY vehicle_id ORDER BY ts, drive)),
    drive AS (
      SELECT vehicle_id, ts, soc_pct,
             sum(starts_phase::INTEGER) OVER (PARTITION BY vehicle_id ORDER BY ts, drive
                                              ROWS UNBOUNDED PRECEDING) AS phase
      FROM seq WHERE drive)
    SELECT vehicle_id, min(ts) AS start, max(ts) AS stop, max(soc_pct) AS max_soc
    FROM drive GROUP BY vehicle_id, phase
    HAVING max(ts) - min(ts) >= INTERVAL {fleet_rules.EXTENDED_DRIVE_HOURS} HOUR"""


def _samples(seed: int) -> list[tuple]:
    """Irregular samples: runs of each state, gaps at and around 2 h, drives through midnight and
    over whole days, repeated timestamps (a non-drive sample at the same instant sorts first)."""
    rng = np.random.default_rng(seed)
    rows = []
    for vehicle in range(6):
        t = dt.datetime(2025, 3, 1) + dt.timedelta(minutes=int(rng.integers(0, 600)))
        for _ in range(400):
            state = rng.choice(["drive", "idle", "charge"], p=[0.5, 0.35, 0.15])
            for _ in range(int(rng.integers(1, 30))):
                step = rng.choice([0, 1, 10, 60, 119, 120, 121, 240], p=[0.02, 0.05, 0.2, 0.5, 0.07, 0.08, 0.05, 0.03])
                t += dt.timedelta(minutes=int(step), seconds=int(rng.choice([0, 0, 0, 1])))
                rows.append((f"V{vehicle}", t, float(rng.integers(0, 101)), state == "drive"))
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_day_segments_stitched_across_midnight_equal_the_per_sample_phases(seed):
    con = duckdb.connect()
    con.execute("CREATE TABLE samples (vehicle_id VARCHAR, ts TIMESTAMP, soc_pct DOUBLE, drive BOOLEAN)")
    columns = [list(column) for column in zip(*_samples(seed), strict=True)]
    con.execute("INSERT INTO samples SELECT unnest(?), unnest(?), unnest(?), unnest(?)", columns)
    con.execute(fleet_rules.day_groups_sql(
        "SELECT vehicle_id, ts, soc_pct, 90.0 AS soh_pct, 0.01 AS divergence_v, drive, "
        "NULL::DATE AS install_date, true AS ok FROM samples"))
    con.execute(fleet_rules.PHASES_SQL)
    expected = con.sql(PER_SAMPLE).fetchall()
    got = con.sql("SELECT vehicle_id, start, stop, max_soc FROM phases").fetchall()
    assert len(expected) > 100
    # phases that run through midnight or over whole days are among them
    assert any(start.date() != stop.date() for _, start, stop, _ in expected)
    assert sorted(got) == sorted(expected)
