"""Malformed telematics: whole-file errors name file and column; bad rows are skipped with file:line."""

from __future__ import annotations

import json

import pytest

from bench.errors import InputError
from bench.fleet.analyze import analyze

HEADER = "vehicle_id,timestamp,soc_pct,soh_pct,cell_v_min,cell_v_max,pack_v,pack_i,state"
GOOD = "TR-1,2025-01-01T{h:02d}:00:00Z,50,95.5,3.30,3.31,26.4,-5.0,idle"


def test_bad_rows_are_reported_with_file_and_line_and_skipped(tmp_path):
    lines = [HEADER, GOOD.format(h=0),
             "TR-1,2025-13-01T01:00:00Z,50,95.5,3.30,3.31,26.4,-5.0,idle",   # line 3: bad timestamp
             "TR-1,2025-01-01T02:00:00Z,104,95.5,3.30,3.31,26.4,-5.0,idle",  # line 4: SOC out of range
             "",                                                             # line 5: blank, ignored
             "TR-1,2025-01-01T03:00:00Z,50,95.5,3.30,3.31,26.4,-5.0,parked",  # line 6: unknown state
             "TR-1,2025-01-01T04:00:00Z,50,95.5,3.30",                       # line 7: short row
             "TR-1,2025-01-01T05:00:00Z,abc,95.5,3.30,3.31,26.4,-5.0,drive",  # line 8: not a number
             "TR-1,2025-01-01T06:00:00Z,50,95.5,3.40,3.31,26.4,-5.0,drive",   # line 9: min above max
             GOOD.format(h=7)]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    report = analyze(path)
    errors = {e.line: e.message for e in report.row_errors}
    assert all(e.file == str(path) for e in report.row_errors)
    assert sorted(errors) == [3, 4, 6, 7, 8, 9]
    assert "timestamp: '2025-13-01T01:00:00Z' is not ISO 8601" in errors[3]
    assert "soc_pct: 104.0 outside 0..100 %" in errors[4]
    assert "state: 'parked' is not one of drive/charge/idle" in errors[6]
    assert errors[7] == "expected 9 fields, found 5"
    assert "soc_pct: 'abc' is not a number" in errors[8]
    assert "cell_v_max below cell_v_min" in errors[9]
    assert report.rows_used == 2
    assert report.row_errors_total == 6
    assert report.sources[0].rows_skipped == 6


def test_missing_column_rejects_the_whole_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER.replace(",soh_pct", "") + "\n")
    with pytest.raises(InputError) as caught:
        analyze(path)
    assert caught.value.file == str(path)
    assert "missing column 'soh_pct'" in caught.value.format()


def test_divergence_column_replaces_cell_voltages(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("vehicle_id,timestamp,soc_pct,soh_pct,divergence_v,pack_v,pack_i,state\n"
                    "TR-1,2025-01-01T00:00:00+02:00,100,95,0.2,28.0,1.0,charge\n")
    report = analyze(path)
    assert report.rows_used == 1
    assert report.period_start == "2024-12-31T22:00"  # the offset is honoured, stored as UTC


def test_jsonl_bad_lines_are_located(tmp_path):
    record = {"vehicle_id": "TR-1", "timestamp": "2025-01-01T00:00:00Z", "soc_pct": 50, "soh_pct": 95,
              "divergence_v": 0.01, "pack_v": 26.4, "pack_i": -3, "state": "idle"}
    lines = [json.dumps(record), "{not json", json.dumps({**record, "soh_pct": -4}), "[1, 2]"]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = analyze(path)
    errors = {e.line: e.message for e in report.row_errors}
    assert errors == {2: "not a JSON object", 3: "soh_pct: -4.0 outside 0..110 %", 4: "not a JSON object"}
    assert report.rows_used == 1


@pytest.mark.parametrize("name, message", [("absent.csv", "file not found"),
                                           ("data.xlsx", "unsupported file type '.xlsx'")])
def test_unusable_files(tmp_path, name, message):
    path = tmp_path / name
    if name.endswith(".xlsx"):
        path.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match=message):
        analyze(path)


def test_bad_rows_deep_in_a_large_clean_file_are_located(tmp_path):
    """The typed scan flags them; only they are read again, at their physical line."""
    from bench.fleet.simulate import simulate

    path = tmp_path / "fleet.csv"
    simulate(12, 100, path, seed=3)
    lines = path.read_text().splitlines()
    assert len(lines) > 25_000
    header = lines[0].split(",")
    soc = header.index("soc_pct")
    for number, value in ((20_001, "abc"), (27_500, "150")):
        fields = lines[number - 1].split(",")
        fields[soc] = value
        lines[number - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    report = analyze(path)
    assert [(e.line, e.message) for e in report.row_errors] == [
        (20_001, "soc_pct: 'abc' is not a number"), (27_500, "soc_pct: 150.0 outside 0..100 %")]
    assert report.row_errors_total == 2
    assert report.rows_used == len(lines) - 3


def test_padded_and_capitalised_values_are_accepted_as_before(tmp_path):
    """The typed scan's cheap branch must not reject what the validation accepts."""
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "\n"
                    " TR-1 ,2025-01-01T00:00:00Z,50,95.5,3.30,3.31,26.4,-5.0, Drive\n"
                    "TR-1,2025-01-01T01:00:00Z,50,95.5,3.30,3.31,26.4,-5.0,IDLE\n")
    report = analyze(path)
    assert report.row_errors_total == 0
    assert report.rows_used == 2 and report.vehicles == 1
