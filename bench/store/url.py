"""Which database a bench writes to."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the records database (a SQLAlchemy URL).
DB_ENV_VAR = "BENCH_DB"
#: File name of the embedded SQLite database kept next to the run folders.
DEFAULT_SQLITE_NAME = "bench.db"


def resolve_db_url(cli_url: str | None, station_url: str | None, runs_dir: str | Path) -> str:
    """The database URL by precedence: ``--db`` > ``$BENCH_DB`` > station file > SQLite in ``runs_dir``.

    An empty string counts as "not given" at every level, so ``BENCH_DB=`` does not hide the station.
    """
    for candidate in (cli_url, os.environ.get(DB_ENV_VAR), station_url):
        if candidate:
            return candidate
    return f"sqlite:///{Path(runs_dir).resolve() / DEFAULT_SQLITE_NAME}"
