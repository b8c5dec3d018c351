"""Run records store: SQLite by default, PostgreSQL for a factory (see docs/records.md).

The store module pulls in SQLAlchemy and Alembic (about 0.4 s); it is imported on first use so
that `bench validate` and the other commands that never touch a database start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.store.url import DB_ENV_VAR, resolve_db_url

if TYPE_CHECKING:
    from bench.record import PackVisit, RunSummary
    from bench.store.store import RunStore, measured_divergence_v, measured_soh_pct

__all__ = [
    "DB_ENV_VAR",
    "PackVisit",
    "RunStore",
    "RunSummary",
    "measured_divergence_v",
    "measured_soh_pct",
    "resolve_db_url",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bench.store import store  # lazy on purpose: SQLAlchemy/Alembic on first use only

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
