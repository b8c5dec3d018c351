"""Which database a bench writes to."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bench.errors import InputError

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


#: ``dialect[+driver]://...``: the shape of a SQLAlchemy URL, enough to refuse a wrong one before a
#: run touches anything (SQLAlchemy itself, in the store's process, has the last word)
_URL_SCHEME = re.compile(r"^([A-Za-z0-9_]+)(\+[A-Za-z0-9_]+)?://")
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def check_db_url(url: str) -> None:
    """Raise :class:`InputError` (field ``db``) for a URL that is not a SQLite or PostgreSQL one."""
    match = _URL_SCHEME.match(url)
    if match is None:
        raise InputError(f"not a database URL: {url!r}", field="db")
    if match.group(1) not in ("sqlite", "postgresql"):
        shown = _PASSWORD.sub(r"\1***@", url)
        raise InputError(f"unsupported database {shown}: use sqlite or postgresql", field="db")
