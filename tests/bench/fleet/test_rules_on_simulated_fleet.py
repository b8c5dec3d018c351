"""The rules against the generator's known answer, at its realistic noise level."""

from __future__ import annotations

import json

import duckdb
import pytest

from bench.fleet.analyze import analyze, connect
from bench.fleet.rules import RULE_NAMES
from bench.fleet.simulate import generate, simulate


@pytest.fixture(scope="module")
def fleet_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet") / "fleet.csv"
    truth = simulate(50, 120, out, seed=7)
    return out, truth


def test_analyze_flags_exactly_the_vehicles_the_generator_marked(fleet_csv):
    out, truth = fleet_csv
    report = analyze(out)
    # every rule is exercised by this fleet, and most vehicles are healthy
    assert {rule for rules in truth.flagged.values() for rule in rules} == set(RULE_NAMES)
    assert 5 < len(truth.flagged) < 25
    assert report.flagged() == truth.flagged
    assert report.vehicles == 50
    assert report.row_errors_total == 0


def test_truth_file_is_written_next_to_the_output(fleet_csv):
    out, truth = fleet_csv
    written = json.loads(out.with_suffix(".truth.json").read_text())
    assert written["flagged"] == truth.flagged
    assert written["meta"]["rows"] == truth.meta["rows"]


def test_evidence_carries_dates_values_and_regression_slope(fleet_csv):
    out, truth = fleet_csv
    report = analyze(out)
    for flag in report.flags:
        expected = truth.vehicles[flag.vehicle_id]
        if flag.rule == "soh_decline":
            # the regression recovers the generator's fade rate within 0.3 %/quarter
            assert flag.evidence["slope"] == pytest.approx(expected["soh_slope_pct_per_quarter"], abs=0.3)
            assert flag.evidence["window_start"] < flag.evidence["window_end"]
        if flag.rule == "divergence_drift":
            assert flag.evidence["slope"] == pytest.approx(expected["divergence_slope_v_per_month"], abs=0.02)
        if flag.rule == "soh_low":
            assert flag.evidence["soh_pct"] == pytest.approx(expected["soh_end_pct"], abs=0.5)
        if flag.rule == "divergence_persistent":
            assert flag.evidence["days"] >= 5
            assert flag.evidence["min_v"] > 0.15
            within = expected["pack_age_years_at_end"] < 5
            assert ("within the 5-year window" in flag.action) == within
        if flag.rule == "charging_anomaly":
            assert flag.evidence["best_soc_in_failed"] <= 95
            assert flag.action == "alternator + pack joint diagnostic"


def test_jsonl_and_parquet_give_the_same_answer(tmp_path):
    jsonl, parquet = tmp_path / "f.jsonl", tmp_path / "f.parquet"
    truth = simulate(24, 105, jsonl, seed=3)
    simulate(24, 105, parquet, seed=3)
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
