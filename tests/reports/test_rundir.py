"""Reading samples.csv back: the fast reader for the files the sample log writes, the general
reader for anything else, and both giving the same columns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from reports import rundir
from reports.rundir import load_samples

HEADER = "t_s,step,pack_v,ref_soc_pct,supply_on\r\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "samples.csv"
    path.write_bytes(text.encode("utf-8"))
    return path


def _general(path: Path) -> rundir.Samples:
    """The same file through the csv-module reader only (the fast reader switched off)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rundir, "_read_plain", lambda header, body, wanted=None: None)
        return load_samples(path)


def _assert_same(a: rundir.Samples, b: rundir.Samples) -> None:
    assert a.steps == b.steps
    assert a.columns.keys() == b.columns.keys()
    for name in a.columns:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_empty_fields_anywhere_read_as_nan_by_both_readers(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER
                  + "1.0,settle,26.4,,0\r\n"      # one empty field mid-row
                  + "2.0,charge,,,1\r\n"          # two adjacent empty fields
                  + "3.0,charge,26.6,55.5,\r\n")  # empty last field
    fast = load_samples(path)
    assert rundir._read_plain(HEADER.strip().split(","), path.read_text().partition("\n")[2]) is not None
    assert fast.steps == ["settle", "charge", "charge"]
    assert math.isnan(fast["ref_soc_pct"][0]) and math.isnan(fast["pack_v"][1])
    assert math.isnan(fast["ref_soc_pct"][1]) and math.isnan(fast["supply_on"][2])
    assert fast["ref_soc_pct"][2] == 55.5 and fast["supply_on"][1] == 1.0
    _assert_same(fast, _general(path))


def test_a_torn_last_line_is_dropped_and_every_earlier_sample_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "1.0,settle,26.4,,0\r\n2.0,settle,26.5,,0\r\n3.0,char")
    samples = load_samples(path)
    assert list(samples["t_s"]) == [1.0, 2.0]
    _assert_same(samples, _general(path))


def test_text_the_fast_reader_refuses_goes_through_the_general_reader(tmp_path: Path) -> None:
    # boolean words (older files) and a quoted step id: not the sample log's plain numbers
    path = _write(tmp_path, HEADER + '1.0,"a,b",26.4,,true\r\n2.0,charge,26.5,50.0,false\r\n')
    samples = load_samples(path)
    assert samples.steps == ["a,b", "charge"]
    assert list(samples["supply_on"]) == [1.0, 0.0]
    assert list(samples["pack_v"]) == [26.4, 26.5]


def test_a_row_of_another_width_is_dropped_not_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "1.0,settle,26.4,,0\r\n2.0,settle\r\n3.0,settle,26.6,,0\r\n")
    assert list(load_samples(path)["t_s"]) == [1.0, 3.0]
    # also when the short row holds every column asked for (the others are not converted)
    assert list(load_samples(path, ["pack_v"])["t_s"]) == [1.0, 3.0]
    wide = _write(tmp_path, HEADER + "1.0,settle,26.4,,0\r\n2.0,settle,26.5,,0,9\r\n")
    assert list(load_samples(wide, ["pack_v"])["pack_v"]) == [26.4]


def test_only_the_columns_asked_for_are_read_with_the_same_values(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "1.0,settle,26.4,,0\r\n2.0,charge,26.5,50.0,1\r\n")
    some = load_samples(path, ["pack_v"])
    assert sorted(some.columns) == ["pack_v", "t_s"]  # t_s always: it orders and filters the rows
    assert some.steps == ["settle", "charge"]
    everything = load_samples(path)
    for name in some.columns:
        np.testing.assert_array_equal(some[name], everything[name])
    with pytest.MonkeyPatch.context() as patch:  # the general reader honours the choice too
        patch.setattr(rundir, "_read_plain", lambda header, body, wanted=None: None)
        assert sorted(load_samples(path, ["pack_v"]).columns) == ["pack_v", "t_s"]


def test_a_real_run_reads_the_same_through_both_readers(tmp_path: Path) -> None:
    from tests.synthetic import make_run_folder

    run = make_run_folder(tmp_path, run_id="run-read", hours=1.0)
    header, _, body = (run / "samples.csv").read_text().partition("\n")
    assert rundir._read_plain(header.split(","), body) is not None  # the fast reader took it
    fast = load_samples(run / "samples.csv")
    assert len(fast) > 1000
    _assert_same(fast, _general(run / "samples.csv"))


def test_a_whole_last_line_without_its_line_end_is_kept_by_both_readers(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "1.0,settle,26.4,,0\r\n2.0,settle,26.5,,0")
    samples = load_samples(path)
    assert list(samples["t_s"]) == [1.0, 2.0]
    _assert_same(samples, _general(path))
