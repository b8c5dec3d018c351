"""Machine-readable outputs (JUnit XML, CSV, Parquet) and the report/db command lines."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET

import duckdb
import pytest
from typer.testing import CliRunner

from bench.errors import InputError
from bench.record import RunRecord
from bench.store import RunStore
from bench.store.cli import app as db_app
from reports.cli import app as report_app
from reports.junit import junit_xml
from tests.reports.runs import aborted_run, complete_run

runner = CliRunner()


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    complete_run(root)
    aborted_run(root)
    return root


def _record(run_dir) -> RunRecord:
    return RunRecord.model_validate_json((run_dir / "record.json").read_text())


def test_junit_has_one_case_per_check_with_limits(runs_root):
    record = _record(runs_root / "run-complete")
    suite = ET.fromstring(junit_xml(record))
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.id for c in record.checks]
    assert suite.get("failures") == str(len(record.failed_checks)) != "0"
    for case, check in zip(cases, record.checks, strict=True):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["unit"] == check.unit
        failure = case.find("failure")
        assert (failure is None) == check.passed
        if failure is not None:
            assert check.message in failure.get("message")
    aborted = ET.fromstring(junit_xml(_record(runs_root / "run-aborted")))
    assert "cell5 voltage 3.71 V" in aborted.find("testcase/error").get("message")


def test_cli_report_formats_and_export(runs_root, tmp_path):
    result = runner.invoke(report_app, ["report", "run-complete", "--runs-dir", str(runs_root),
                                        "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "Battery pack test report" in (tmp_path / "r.html").read_text()
    result = runner.invoke(report_app, ["report", str(runs_root / "run-complete"), "--format", "junit",
                                        "--out", str(tmp_path / "j.xml")])
    assert result.exit_code == 0 and ET.parse(tmp_path / "j.xml").getroot().tag == "testsuite"
    result = runner.invoke(report_app, ["report", str(runs_root / "run-aborted"), "--format", "json"])
    assert json.loads(result.stdout)["verdict"] == "aborted"
    result = runner.invoke(report_app, ["report", "run-complete", "--runs-dir", str(runs_root),
                                        "--format", "doc"])
    assert isinstance(result.exception, InputError)

    parquet = tmp_path / "s.parquet"
    result = runner.invoke(report_app, ["export", str(runs_root / "run-complete"), "--format", "parquet",
                                        "--out", str(parquet)])
    assert result.exit_code == 0, result.output
    with (runs_root / "run-complete" / "samples.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    count, cell5, step = duckdb.sql(
        f"SELECT count(*), sum(cell5_v), max(step) FROM read_parquet('{parquet}')").fetchall()[0]
    assert count == len(rows)
    assert cell5 == pytest.approx(sum(float(r["cell5_v"]) for r in rows))
    assert step == max(r["step"] for r in rows)


def test_cli_db_runs_and_pack_history(runs_root, tmp_path):
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    assert runner.invoke(db_app, ["upgrade", "--db", url]).exit_code == 0
    store = RunStore(url)
    for name in ("run-complete", "run-aborted"):
        store.finish_run(_record(runs_root / name))
    result = runner.invoke(db_app, ["runs", "--db", url, "--verdict", "aborted", "--json"])
    assert [r["run_id"] for r in json.loads(result.stdout)] == ["run-aborted"]
    serial = _record(runs_root / "run-complete").pack.serial
    page = tmp_path / "pack.html"
    result = runner.invoke(db_app, ["pack", serial, "--db", url, "--html", str(page), "--json"])
    assert result.exit_code == 0, result.output
    visits = json.loads(result.stdout)
    assert [v["run_id"] for v in visits] == ["run-aborted", "run-complete"]  # same start: run id order
    assert visits[0]["soh_pct"] is None and visits[1]["soh_pct"] == pytest.approx(97.0)
    html = page.read_text()
    assert "<svg" in html and "SOH (measured)" in html and 'class="num">97<' in html
