"""Several sources feed the one pass; per-file counts and errors stay per file."""

from __future__ import annotations

import pytest

from bench.errors import InputError
from bench.fleet.analyze import analyze
from bench.fleet.simulate import simulate


def test_a_fleet_split_over_two_files_gives_the_same_report_with_counts_per_file(tmp_path):
    whole = tmp_path / "fleet.csv"
    truth = simulate(12, 120, whole, seed=7)
    header, *rows = whole.read_text().splitlines()
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("\n".join([header, *rows[:5000]]) + "\n")
    # a vehicle-day split across the files, and one bad row in the second file
    second.write_text("\n".join([header, *rows[5000:], rows[0].replace(",idle,", ",parked,")]) + "\n")
    one, two = analyze(whole), analyze([first, second])
    assert two.flags == one.flags and two.flagged() == truth.flagged
    assert two.rows_used == one.rows_used == truth.meta["rows"]
    assert [(s.file, s.rows, s.rows_skipped) for s in two.sources] == [
        (str(first), 5000, 0), (str(second), len(rows) - 5000 + 1, 1)]
    assert [(e.file, e.line) for e in two.row_errors] == [(str(second), len(rows) - 5000 + 2)]


def test_a_file_that_is_not_utf8_is_rejected_naming_it(tmp_path):
    good = tmp_path / "good.csv"
    simulate(4, 100, good, seed=2)
    header, first = good.read_text().splitlines()[:2]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(f"{header}\n{first}\n".encode() + first.replace("idle", "id\xffle").encode("latin-1") + b"\n")
    with pytest.raises(InputError) as caught:
        analyze([good, bad])
    assert caught.value.file == str(bad)
