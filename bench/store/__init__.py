"""Run records store: SQLite by default, PostgreSQL for a factory (see docs/records.md)."""

from bench.store.store import PackVisit, RunStore, RunSummary, measured_divergence_v, measured_soh_pct
from bench.store.url import DB_ENV_VAR, resolve_db_url

__all__ = [
    "DB_ENV_VAR",
    "PackVisit",
    "RunStore",
    "RunSummary",
    "measured_divergence_v",
    "measured_soh_pct",
    "resolve_db_url",
]
