"""The rules, as a daily monitor, against the generator's known answer at its realistic noise level."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from bench.fleet import rules as fleet_rules
from bench.fleet.analyze import FleetReport, analyze, connect
from bench.fleet.rules import RULE_NAMES
from bench.fleet.simulate import FleetTruth, generate, simulate

# How far a noisy analysis may date an alert from the noise-free one (days). The charging rule
# counts failed drives in a trailing month, so after a repair its alert lasts until the good
# drives outnumber the failures in that month.
FIRST_TOLERANCE = {"charging_anomaly": 7}
LAST_TOLERANCE = {"charging_anomaly": fleet_rules.CHARGE_WINDOW_DAYS}
TOLERANCE = 4


@pytest.fixture(scope="module")
def year(tmp_path_factory) -> tuple[FleetTruth, FleetReport]:
    out = tmp_path_factory.mktemp("fleet") / "fleet.csv"
    truth = simulate(48, 365, out, seed=6)
    return truth, analyze(out)


def _days(a: str, b: str) -> int:
    return (dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days


def test_every_planted_event_is_found_whatever_its_date(year):
    truth, report = year
    expected: dict[tuple[str, str], list[dict]] = {}
    for alert in truth.alerts:
        expected.setdefault((alert["vehicle_id"], alert["rule"]), []).append(alert)
    found: dict[tuple[str, str], list] = {}
    for flag in report.flags:
        found.setdefault((flag.vehicle_id, flag.rule), []).append(flag)
    assert sorted(found) == sorted(expected)
    for key, alerts in expected.items():
        flags = found[key]
        assert len(flags) == len(alerts), key
        for flag, alert in zip(flags, alerts, strict=True):
            assert flag.active == alert["active"], key
            assert abs(_days(flag.first_held, alert["first_held"])) <= FIRST_TOLERANCE.get(key[1], TOLERANCE), key
            late = _days(flag.last_held, alert["last_held"])
            assert -TOLERANCE <= late <= LAST_TOLERANCE.get(key[1], TOLERANCE), key


def test_the_fleet_has_events_at_varied_dates_some_serviced(year):
    """The answer above is not trivial: events start across the year and many no longer hold."""
    truth, _ = year
    assert {rule for rules in truth.flagged.values() for rule in rules} == set(RULE_NAMES)
    months = sorted({alert["first_held"][:7] for alert in truth.alerts})
    assert len(months) >= 4 and _days(months[-1] + "-01", months[0] + "-01") > 180
    resolved = {alert["rule"] for alert in truth.alerts if not alert["active"]}
    assert resolved == set(RULE_NAMES)


def test_an_event_nobody_serviced_in_march_is_reported_in_december(year):
    """Before the monitor, an alert that had ended by the last sample was not reported at all."""
    truth, report = year
    ended = [f for f in report.flags if not f.active]
    assert ended, "the fleet has serviced events"
    assert all(f.last_held < (report.period_end or "")[:10] for f in ended)
    # the "active now" view is a filter of the same alerts
    assert report.active_only().flagged() == truth.flagged_active()
    assert report.flagged(active=True) == truth.flagged_active()
    assert report.flagged() == truth.flagged


def test_no_alert_on_healthy_vehicles(year):
    truth, report = year
    healthy = {vid for vid, v in truth.vehicles.items() if v["class"] == "healthy"}
    assert len(healthy) > 20
    assert not [f for f in report.flags if f.vehicle_id in healthy]


def test_evidence_is_the_monitors_view_on_the_last_day_held(year):
    truth, report = year
    for flag in report.flags:
        expected = truth.vehicles[flag.vehicle_id]
        evidence = flag.evidence
        if flag.rule == "soh_decline":
            assert evidence["slope"] < -2 and evidence["window_end"] == flag.last_held
            assert evidence["window_start"] < evidence["window_end"]
            if flag.active:  # the regression recovers the generator's fade rate within 0.3 %/quarter
                assert evidence["slope"] == pytest.approx(expected["soh_slope_end_pct_per_quarter"], abs=0.3)
        if flag.rule == "divergence_drift":
            assert evidence["slope"] > 0.05 and evidence["days"] >= 10
        if flag.rule == "soh_low":
            assert evidence["soh_pct"] < 70
            if flag.active:
                assert evidence["soh_pct"] == pytest.approx(expected["soh_end_pct"], abs=0.5)
        if flag.rule == "divergence_persistent":
            assert evidence["days"] >= 5
            assert evidence["min_v"] > 0.15
            assert evidence["last_measured"] <= flag.last_held
            within = evidence["pack_age_years"] < 5
            assert ("within the 5-year window" in flag.action) == within
        if flag.rule == "charging_anomaly":
            assert evidence["failures"] >= 3
            assert evidence["best_soc_in_failed"] <= 95
            assert flag.action == "alternator + pack joint diagnostic"


def test_truth_file_is_written_next_to_the_output(tmp_path):
    out = tmp_path / "fleet.csv"
    truth = simulate(12, 100, out, seed=2)
    written = json.loads(out.with_suffix(".truth.json").read_text())
    assert written["flagged"] == truth.flagged
    assert written["alerts"] == truth.alerts
    assert written["meta"]["rows"] == truth.meta["rows"]


def test_jsonl_and_parquet_give_the_same_answer(tmp_path):
    jsonl, parquet = tmp_path / "f.jsonl", tmp_path / "f.parquet"
    truth = simulate(24, 105, jsonl, seed=3)
    simulate(24, 105, parquet, seed=3)
    assert truth.flagged
    assert analyze(jsonl).flagged() == truth.flagged
    assert analyze(parquet).flagged() == truth.flagged


def test_analyze_accepts_a_duckdb_relation():
    con = connect()
    relation, truth = generate(24, 105, seed=5, con=con)
    # a run-history adapter passes rows with the documented columns, e.g. one "vehicle" per pack serial
    renamed = con.sql(f"SELECT * FROM ({relation.sql_query()})")
    report = analyze(renamed, con=con)
    assert report.flagged() == truth.flagged
    assert report.sources[0].file.startswith("<relation")


def test_healthy_fleet_is_not_flagged(tmp_path):
    con = duckdb.connect()
    relation, truth = generate(8, 100, seed=9, con=con)  # too small a fleet for fault classes
    assert truth.flagged == {}
    assert analyze(con.sql(relation.sql_query()), con=con).flags == []
