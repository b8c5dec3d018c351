"""Samples in other formats: a clean CSV copy and Parquet (via DuckDB)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.errors import BenchError, InputError
from bench.record import SAMPLE_COLUMNS
from reports.rundir import SAMPLES_FILE

FORMATS = ("csv", "parquet")


def _samples_path(run_dir: Path) -> Path:
    path = run_dir / SAMPLES_FILE
    if not path.is_file():
        raise InputError(f"no {SAMPLES_FILE} in run folder", file=str(run_dir))
    return path


def export_csv(run_dir: Path, out: Path) -> Path:
    source = _samples_path(run_dir)
    if source.resolve() != out.resolve():
        shutil.copyfile(source, out)
    return out


def export_parquet(run_dir: Path, out: Path) -> Path:
    """Typed Parquet of ``samples.csv`` (step as text, every other column as DOUBLE)."""
    try:
        import duckdb  # lazy: ~0.15 s of import for --format parquet only; reports.cli loads at `bench` start
    except ImportError as exc:
        raise BenchError("Parquet export needs DuckDB: pip install duckdb") from exc
    source = _samples_path(run_dir)
    types = ", ".join(f"'{name}': '{'VARCHAR' if name == 'step' else 'DOUBLE'}'" for name in SAMPLE_COLUMNS)
    connection = duckdb.connect()
    try:
        # paths are passed as parameters; the column map is built from our own constant
        connection.execute(
            f"COPY (SELECT * FROM read_csv(?, header = true, columns = {{{types}}}, ignore_errors = true)) "
            "TO '" + str(out).replace("'", "''") + "' (FORMAT PARQUET, COMPRESSION ZSTD)",
            [str(source)],
        )
    except duckdb.Error as exc:
        raise BenchError(f"Parquet export of {source} failed: {exc}") from exc
    finally:
        connection.close()
    return out


def export_samples(run_dir: Path, fmt: str, out: Path | None = None) -> Path:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}", field="format")
    target = out or run_dir / f"samples.{fmt}"
    return export_csv(run_dir, target) if fmt == "csv" else export_parquet(run_dir, target)
