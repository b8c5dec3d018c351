"""Alembic environment of the records store.

Run programmatically by :meth:`bench.store.RunStore.migrate`, which passes its open connection in
``config.attributes["connection"]`` (so the same code path serves SQLite and PostgreSQL and no
``alembic.ini`` is needed). Running ``alembic`` by hand works too with ``-x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from bench.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run_with(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode recreates tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run_with(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: pass the database with -x url=sqlite:///path.db")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run_with(conn)
    engine.dispose()
