"""``bench fleet`` commands through typer, as the lead mounts them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bench.fleet.cli import app

runner = CliRunner()


def test_simulate_then_analyze_json_active_and_html(tmp_path):
    out = tmp_path / "fleet.csv"
    result = runner.invoke(app, ["simulate", "--vehicles", "20", "--days", "200", "--out", str(out),
                                 "--seed", "4", "--truth", str(tmp_path / "truth.json")])
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["analyze", str(out), "--json", "--html", str(html)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    flagged: dict[str, list[str]] = {}
    for flag in report["flags"]:
        flagged.setdefault(flag["vehicle_id"], []).append(flag["rule"])
    assert flagged == truth["flagged"]
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    for vehicle in truth["flagged"]:
        assert f"<td>{vehicle}</td>" in page
    # --active: only the alerts that still hold at the end of the data
    result = runner.invoke(app, ["analyze", str(out), "--json", "--active"])
    assert result.exit_code == 0, result.output
    active = json.loads(result.stdout)["flags"]
    assert active and all(flag["active"] for flag in active)
    assert len(active) < len(report["flags"])
    expected = sorted((a["vehicle_id"], a["rule"]) for a in truth["alerts"] if a["active"])
    assert sorted((f["vehicle_id"], f["rule"]) for f in active) == expected


def test_missing_column_exits_2_with_one_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("vehicle_id,timestamp,soc_pct\nTR-1,2025-01-01T00:00:00Z,50\n")
    result = runner.invoke(app, ["analyze", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}: missing column 'soh_pct'"
    assert "Traceback" not in result.output


def test_simulate_rejects_too_short_a_period(tmp_path):
    result = runner.invoke(app, ["simulate", "--vehicles", "5", "--days", "30",
                                 "--out", str(tmp_path / "f.csv")])
    assert result.exit_code == 2
    assert "--days must be at least 100" in result.output
