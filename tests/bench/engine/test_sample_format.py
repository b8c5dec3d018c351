"""samples.csv lines from the engine's fast formatter are byte-equal to the csv module's rows of
rounded numbers (what the log wrote before issue 17's change), for every kind of value a sample
can hold: the reference runs' samples.csv stay byte-equal only if this holds everywhere."""

from __future__ import annotations

import csv
import io
import math
import random

import pytest

from bench.engine.datalog import format_row
from bench.record import SAMPLE_COLUMNS

#: the engine's rounding before issue 17, written out independently of the module under test:
#: pack_v .. ref_soc_pct at 4 decimals, ah 6, wh 5, step_ah 6, divergence_v 5
DIGITS = (4,) * 16 + (6, 5, 6, 5)
REF_SOC = SAMPLE_COLUMNS.index("ref_soc_pct") - 2


def _reference(t_s, step, values, supply_on, load_on) -> str:
    def rounded(value, digits):
        if value is None:
            return ""
        if isinstance(value, float):
            return round(value, digits)
        return value if isinstance(value, int | str) else str(value)

    out = io.StringIO()
    csv.writer(out).writerow([round(t_s, 3), step, *(rounded(v, d) for v, d in zip(values, DIGITS, strict=False)),
                              int(supply_on), int(load_on)])
    return out.getvalue()


def _random_value(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.6:
        return rng.uniform(-300.0, 300.0)
    if kind < 0.85:
        return round(rng.uniform(-30.0, 30.0), rng.randint(0, 7))  # short decimals, trailing zeros
    if kind < 0.95:
        return float(rng.randint(-5000, 5000))
    if kind < 0.995:
        return rng.uniform(-2e-4, 2e-4)  # around the exponent notation of a repr
    return rng.uniform(-1e10, 1e10)


def test_random_rows_match_the_csv_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.engine.datalog as datalog

    slow = 0
    plain_line = datalog._plain_line

    def counted(*args):
        nonlocal slow
        line = plain_line(*args)
        slow += line is None
        return line

    monkeypatch.setattr(datalog, "_plain_line", counted)
    rng = random.Random(17)
    for _ in range(20000):
        values = [_random_value(rng) for _ in DIGITS]
        if rng.random() < 0.3:
            values[REF_SOC] = None  # ref_soc before the anchor
        t_s = float(rng.randint(0, 200000)) if rng.random() < 0.8 else rng.uniform(0, 1e5)
        args = (t_s, "charge2", values, rng.random() < 0.5, rng.random() < 0.5)
        assert format_row(*args) == _reference(*args), args
    assert 2000 < slow < 10000  # both paths taken, the fast one most


@pytest.mark.parametrize("value", [0.0, -0.0, 1e-4, -1e-4, 5e-5, 4.9999e-5, 1e-5, -1.2e-5, 1e-7, -1e-7,
                                   0.00005, 0.000049, 26.0, 100.0, 1200.5, 3.3, 0.1, 999999999.9999,
                                   1e9, 1e15, 1e16, 1e22, math.nan, -math.nan, math.inf, -math.inf,
                                   None, 3, True, False, 2**40, "x", [3.3, 3.4]])
def test_edge_values_match_the_csv_module(value: object) -> None:
    for column in range(len(DIGITS)):
        values = [3.3] * len(DIGITS)
        values[column] = value
        args = (1.0, "settle", values, True, False)
        assert format_row(*args) == _reference(*args), (column, value)


def test_step_ids_and_times_match_the_csv_module() -> None:
    values = [1.25] * len(DIGITS)
    for step in ["step10", "s0", "a_0", "with,comma", 'quote"d', "", " lead"]:
        for t_s in [0.0, 0.0004, 0.0005, 1.0, 10.0, 36608.0, 1234.5678, 1e-5]:
            assert format_row(t_s, step, values, False, True) == _reference(t_s, step, values, False, True)


def test_the_row_has_every_column() -> None:
    assert len(DIGITS) + 4 == len(SAMPLE_COLUMNS)
    line = format_row(1.0, "settle", [1.5] * len(DIGITS), True, False)
    assert next(csv.reader([line])) == ["1.0", "settle", *["1.5"] * len(DIGITS), "1", "0"]


def test_fewer_cells_keep_the_row_as_it_was() -> None:
    values = [3.3] * (len(DIGITS) - 2)
    assert format_row(1.0, "settle", values, False, False) == _reference(1.0, "settle", values, False, False)


def test_the_store_gets_the_numbers_the_file_holds(tmp_path) -> None:
    """The records store is handed the synced lines as text rows: each column read back with
    float() (as the store does) is the rounded number the engine handed over before; the file
    parses to the same rows."""
    from bench.engine.datalog import SampleLog

    log = SampleLog(tmp_path / "samples.csv", fsync=False, sync_every_s=math.inf)
    rng = random.Random(5)
    expected, synced = [], []
    for i in range(200):
        values = [_random_value(rng) for _ in DIGITS]
        if i % 3:
            values[REF_SOC] = None
        synced += log.append(format_row(float(i), "charge", values, i % 2 == 0, False), float(i)) or []
        expected.append([round(float(i), 3), "charge", *(None if v is None else round(v, d) for v, d in
                                                         zip(values, DIGITS, strict=True)), i % 2 == 0, 0])
    synced += log.sync()
    log.close()
    rows = list(csv.reader(synced))  # as the records store reads them (RunStore.add_sample_lines)
    stored = [[float(row[0]), row[1], *(None if x == "" else float(x) for x in row[2:])] for row in rows]
    assert stored == expected
    with (tmp_path / "samples.csv").open(newline="") as f:
        assert list(csv.reader(f))[1:] == rows
