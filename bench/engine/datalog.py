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
import os
from collections.abc import Sequence
from pathlib import Path

from bench.record import SAMPLE_COLUMNS

#: one samples.csv row (bench.record.SAMPLE_COLUMNS): numbers, the step id, "" for no value
Row = Sequence[float | str]


class SampleLog:
    def __init__(self, path: Path, *, sync_every_s: float = 5.0, fsync: bool = True) -> None:
        self.path = path
        self.sync_every_s = sync_every_s
        self.fsync = fsync
        new = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(SAMPLE_COLUMNS)
            self._sync()
        self._last_sync_t = float("-inf")
        self.rows_written = 0
        self._pending: list[Row] = []

    def append(self, row: Row, t_s: float) -> list[Row] | None:
        """Write one row; return the rows made durable when this call synced, else None."""
        self._writer.writerow(row)
        self._pending.append(row)
        self.rows_written += 1
        if t_s - self._last_sync_t >= self.sync_every_s:
            self._sync()
            self._last_sync_t = t_s
            synced, self._pending = self._pending, []
            return synced
        return None

    def sync(self) -> list[Row]:
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
