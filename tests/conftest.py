"""Fixtures of the records store tests: a session-wide throwaway PostgreSQL and a per-test database."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PostgresCluster, find_pg_bin


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    pg_bin = find_pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip('psycopg (v3) not installed: pip install "psycopg[binary]"')
    cluster = PostgresCluster(pg_bin)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bench.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()
