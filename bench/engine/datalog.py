"""Durable sample storage: ``samples.csv`` in the run folder.

Rows are written as they are taken; the file is flushed and fsynced at least every
``sync_every_s`` of bench time (5 s by default, the engine's requirement), so a crash of any
kind loses at most that much. With ``fsync=False`` (a simulated run) a sync only flushes to the
operating system: that survives a SIGKILL of the controller, which is all a simulated run's
resume needs (a power cut merely costs a re-run). On resume, rows after the checkpoint are moved to
``samples.interrupted-<n>.csv`` (kept, never deleted) so the main file stays one timeline.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from bench.engine.values import Value
from bench.record import SAMPLE_COLUMNS

#: one samples.csv row (bench.record.SAMPLE_COLUMNS): numbers, the step id, "" for no value
Row = Sequence[float | str]

#: decimals of the numeric columns between ``step`` and ``supply_on`` (bench.record.SAMPLE_COLUMNS):
#: 4, but the integrals' (Ah to the µAh, Wh to 10 mWh) and the divergence's; ``t_s`` has 3
_MEASURED = SAMPLE_COLUMNS[2:-2]
DIGITS = tuple({"ah": 6, "wh": 5, "step_ah": 6, "divergence_v": 5}.get(name, 4) for name in _MEASURED)
#: the one column commonly empty: the reference SOC before the procedure anchors it
_REF_SOC = _MEASURED.index("ref_soc_pct")


def _numbers_format(empty: int | None) -> str:
    return ",".join(["%.3f", *("" if i == empty else f"%.{d}f" for i, d in enumerate(DIGITS))])


_FORMAT = _numbers_format(None)
_FORMAT_NO_REF = _numbers_format(_REF_SOC)
_FLOAT_ONLY = frozenset({float})


def format_row(t_s: float, step: str, values: Sequence[Value], supply_on: bool, load_on: bool) -> str:
    """The samples.csv line of one sample (``values``: the columns of :data:`DIGITS`): what csv
    writes for the row of rounded numbers, ``repr(round(v, digits))`` and "" for None."""
    line = _plain_line(t_s, step, values, supply_on, load_on)
    if line is None:
        out = io.StringIO()
        csv.writer(out).writerow(_rounded_row(t_s, step, values, supply_on, load_on))
        line = out.getvalue()
    return line


def _plain_line(t_s: float, step: str, values: Sequence[Value], supply_on: bool, load_on: bool) -> str | None:
    """:func:`format_row` for the usual sample, without rounding then repr'ing each number (two
    float-to-decimal conversions a column, ~11 us a row, every control interval: issue 17).

    ``"%.4f"`` gives the digits of ``round(v, 4)`` (both are CPython's correctly rounded dtoa,
    mode 3), and a decimal of at most 15 significant digits is the repr of its nearest double:
    only the trailing zeros go. None where the row holds anything else: an int, NaN, a number
    too large for that, or one small enough for an exponent (1e-05), an empty column but the
    reference SOC's, a step id csv would quote."""
    if len(values) != len(DIGITS) or not step.isidentifier():
        return None
    ref_missing = values[_REF_SOC] is None
    given = (t_s, *values[:_REF_SOC], *values[_REF_SOC + 1:]) if ref_missing else (t_s, *values)
    if not _FLOAT_ONLY.issuperset(map(type, given)):
        return None
    numbers = cast(tuple[float, ...], given)
    if not max(map(abs, numbers)) < 1e9:  # at most 15 significant digits with 6 decimals (or NaN)
        return None
    ah, wh, step_ah, divergence = numbers[-4:]  # 5 or 6 decimals: 1e-05 would be written so
    if 0.0 < abs(ah) < 1e-4 or 0.0 < abs(wh) < 1e-4 or 0.0 < abs(step_ah) < 1e-4 or 0.0 < abs(divergence) < 1e-4:
        return None
    text = (_FORMAT_NO_REF if ref_missing else _FORMAT) % numbers + ","
    if "n" in text:  # nan, inf
        return None
    # every field has a decimal point, so a "0," is always a trailing zero of a fraction. A field
    # has at most 6 decimals, so at most 7 zeros end it (0.000000): four, then two, then one
    # leave none, in three passes instead of one pass a zero (issue 17; 26.0000 -> 26.)
    text = text.replace("0000,", ",").replace("00,", ",").replace("0,", ",")
    t_text, _, rest = text.replace(".,", ".0,").partition(",")  # 26. -> 26.0
    return f"{t_text},{step},{rest}{supply_on:d},{load_on:d}\r\n"


def _rounded_row(t_s: float, step: str, values: Sequence[Value], supply_on: bool, load_on: bool) -> Row:
    return [round(t_s, 3), step, *(_rounded(v, d) for v, d in zip(values, DIGITS, strict=False)),
            int(supply_on), int(load_on)]


def _rounded(value: Value, digits: int) -> float | str:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, int | str):
        return value
    return str(value)


class SampleLog:
    def __init__(self, path: Path, *, sync_every_s: float = 5.0, fsync: bool = True) -> None:
        self.path = path
        self.sync_every_s = sync_every_s
        self.fsync = fsync
        new = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="", encoding="utf-8")
        if new:
            csv.writer(self._file).writerow(SAMPLE_COLUMNS)  # the header; rows come as format_row lines
            self._sync()
        self._last_sync_t = float("-inf")
        self.rows_written = 0
        #: lines written since the last sync, for the records store's copy
        self._pending: list[str] = []

    def append(self, line: str, t_s: float) -> list[str] | None:
        """Write one line (:func:`format_row`); return the lines made durable when this call
        synced, else None."""
        self._file.write(line)
        self._pending.append(line)
        self.rows_written += 1
        if t_s - self._last_sync_t >= self.sync_every_s:
            self._last_sync_t = t_s
            return self.sync()
        return None

    def lines_written(self) -> list[str]:
        """Every sample line the file holds (the header left out), as written."""
        self._file.flush()
        with self.path.open(newline="", encoding="utf-8") as f:
            return f.readlines()[1:]

    def sync(self) -> list[str]:
        """Make the lines written durable; return them as the file holds them, for the records
        store's copy (``RunStore.add_sample_lines`` reads them in its own process)."""
        self._sync()
        synced, self._pending = self._pending, []
        return synced

    def _sync(self) -> None:
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._sync()
            self._file.close()

    @staticmethod
    def truncate_after(path: Path, t_s: float) -> int:
        """Move rows with ``t_s`` later than the checkpoint aside; return how many were moved."""
        if not path.exists():
            return 0
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if not rows:
            return 0
        header, body = rows[0], rows[1:]
        keep = [r for r in body if r and float(r[0]) <= t_s + 1e-9]
        moved = [r for r in body if r and float(r[0]) > t_s + 1e-9]
        if moved:
            n = 1
            while (aside := path.with_name(f"samples.interrupted-{n}.csv")).exists():
                n += 1
            with aside.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(moved)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(keep)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return len(moved)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
