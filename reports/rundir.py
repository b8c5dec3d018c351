"""Reading a run folder: ``record.json``, ``samples.csv`` and the raw files next to them."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from bench.errors import InputError
from bench.record import SAMPLE_COLUMNS, RunRecord

RECORD_FILE = "record.json"
SAMPLES_FILE = "samples.csv"
#: Raw data files whose SHA-256 the report lists when present (besides those in ``record.files``).
RAW_FILES = ("record.json", "samples.csv", "can.blf", "events.jsonl")
_BOOL_TEXT = {"true": 1.0, "false": 0.0, "": float("nan")}


@dataclass
class Samples:
    """Columns of ``samples.csv``: floats (NaN where empty) except ``step``, the step ids."""

    columns: dict[str, np.ndarray]
    steps: list[str]

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


@dataclass
class FileDigest:
    name: str
    sha256: str
    bytes: int
    recorded_sha256: str | None = None

    @property
    def matches_record(self) -> bool | None:
        return None if self.recorded_sha256 is None else self.recorded_sha256 == self.sha256


@dataclass
class RunData:
    path: Path
    record: RunRecord
    samples: Samples
    files: list[FileDigest] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_record(run_dir: Path) -> RunRecord:
    path = run_dir / RECORD_FILE
    if not path.is_file():
        raise InputError(f"no {RECORD_FILE} in run folder", file=str(run_dir))
    try:
        return RunRecord.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise InputError(f"invalid run record: {exc}", file=str(path)) from exc


def load_samples(path: Path, columns: Collection[str] | None = None) -> Samples:
    """Read ``samples.csv``; a torn last line (a crash mid-write) is dropped, not an error.

    ``columns``: the numeric columns to convert (``t_s`` always is; default every one). The
    report draws 10 of the 23: converting only those halves the read (issue 17)."""
    if not path.is_file():
        return _no_samples(SAMPLE_COLUMNS, columns)
    header_line, _, body = path.read_text(encoding="utf-8", errors="replace").partition("\n")
    header = next(csv.reader([header_line]), None)
    if not header:
        return _no_samples(SAMPLE_COLUMNS, columns)
    wanted = None if columns is None else {"t_s", *columns}
    table, steps = _read_plain(header, body, wanted) or _read_general(header, body, wanted)
    if not steps:
        return _no_samples(header, columns)
    # Drop rows whose time did not parse (a torn line that still had the right comma count).
    keep = ~np.isnan(table["t_s"])
    if not keep.all():
        table = {name: values[keep] for name, values in table.items()}
        steps = [step for step, kept in zip(steps, keep, strict=True) if kept]
    return Samples(table, steps)


def _no_samples(names: Sequence[str], columns: Collection[str] | None = None) -> Samples:
    return Samples({name: np.empty(0) for name in names
                    if name != "step" and (columns is None or name in columns or name == "t_s")}, [])


def _read_plain(header: list[str], body: str, wanted: Collection[str] | None = None
                ) -> tuple[dict[str, np.ndarray], list[str]] | None:
    """The file as the sample log writes it (numbers, empty fields, no quoting) through numpy's C
    reader; None for anything else, which :func:`_read_general` reads.

    Why: the report re-reads the samples of every run it renders; for a 10-hour calibration
    (36,600 rows) the csv module plus a conversion per column took ~0.4 s of the command's
    wall time, this ~0.15 s."""
    if '"' in body:
        return None
    cut = body.rfind("\n") + 1
    body, tail = body[:cut], body[cut:]
    if tail.count(",") == len(header) - 1:  # a last line without its line end: kept when whole,
        body += tail + "\n"                 # as the csv reader keeps it; a torn one is dropped
    if not body:
        return None
    # an empty field is a quantity not measured at that sample: NaN, as _floats reads it
    # (",,,": the second replace fills the fields the first one's overlapping matches skipped)
    filled = body.replace(",,", ",nan,").replace(",,", ",nan,").replace(",\n", ",nan\n")
    step_at = header.index("step") if "step" in header else None
    numeric = [i for i in range(len(header)) if i != step_at and (wanted is None or header[i] in wanted)]
    try:
        table = np.loadtxt(io.StringIO(filled), delimiter=",", usecols=numeric, dtype=float,
                           ndmin=2, comments=None)
    except ValueError:  # a short row, text where a number belongs (true/false), ...
        return None
    lines = body.splitlines()
    # every row as wide as the header (the columns not converted are not checked by loadtxt)
    if len(lines) != len(table) or body.count(",") != (len(header) - 1) * len(lines):
        return None
    steps = [""] * len(lines) if step_at is None else [line.split(",", step_at + 1)[step_at] for line in lines]
    return {header[i]: table[:, j].copy() for j, i in enumerate(numeric)}, steps


def _read_general(header: list[str], body: str, wanted: Collection[str] | None = None
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Any CSV with ``header``'s columns: rows of another width (torn lines) are dropped."""
    width = len(header)
    rows = [row for row in csv.reader(io.StringIO(body, newline="")) if len(row) == width]
    if not rows:
        return {}, []
    columns: dict[str, np.ndarray] = {}
    steps: list[str] = [""] * len(rows)
    for name, values in zip(header, zip(*rows, strict=True), strict=True):
        if name == "step":
            steps = list(values)
        elif wanted is None or name in wanted:
            columns[name] = _floats(values)
    return columns, steps


def _floats(values: tuple[str, ...]) -> np.ndarray:
    try:
        return np.array(values, dtype=float)
    except ValueError:
        return np.array([_BOOL_TEXT.get(v.strip().lower()) if not _is_number(v) else float(v)
                         for v in values], dtype=float)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def digest_files(run_dir: Path, record: RunRecord) -> list[FileDigest]:
    """SHA-256 of every raw file of the run, next to the digest the record holds (if any)."""
    recorded = {f.name: f.sha256 for f in record.files}
    names = list(dict.fromkeys([*recorded, *RAW_FILES]))
    digests = []
    for name in names:
        path = run_dir / name
        if path.is_file():
            digests.append(FileDigest(name, sha256_file(path), path.stat().st_size, recorded.get(name)))
    return digests


def load_run(run_dir: Path, columns: Collection[str] | None = None) -> RunData:
    """The run folder's record, samples (``columns`` as :func:`load_samples`) and file digests."""
    record = load_record(run_dir)
    return RunData(run_dir, record, load_samples(run_dir / SAMPLES_FILE, columns), digest_files(run_dir, record))
