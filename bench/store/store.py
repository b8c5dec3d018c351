"""``RunStore``: writes runs to SQLite or PostgreSQL as they go, and answers history questions.

Every public call is one transaction. The engine may call :meth:`RunStore.update_run` as often
as it likes with the growing record: the run row is upserted and the run's own child rows
(steps, checks, events, files, instruments) are replaced in the same transaction, so whatever
point a crash hits, the database holds the state of the last completed call. Samples are rows
keyed by (run_id, t_s) and inserted with ``ON CONFLICT DO NOTHING``, so re-sending a batch after a
crash or a retry never duplicates them. Shared rows (stations, instruments, packs) are upserted
with ``INSERT … ON CONFLICT DO UPDATE``, which PostgreSQL serialises per key, not per table:
several benches can write to one database at once.
"""

from __future__ import annotations

import csv
import fcntl
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, delete, event, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from bench.errors import InputError, StoreError
from bench.record import (
    SAMPLE_COLUMNS,
    CheckRecord,
    PackVisit,
    RunRecord,
    RunSummary,
    mark_aborted,
)
from bench.store.models import (
    TEXT_SAMPLE_COLUMNS,
    Check,
    Event,
    Instrument,
    Pack,
    Run,
    RunFile,
    RunInstrument,
    Station,
    Step,
    samples_table,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: ``revision = '0002'`` and ``down_revision = '0001'`` (or None) lines of a migration script
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:'([^']*)'|\"([^\"]*)\"|(None))\s*$",
                            re.MULTILINE)


def migrations_head() -> str | None:
    """The one head revision of the migration scripts, read from their ``revision`` lines
    without Alembic; None when that is not certain (a script without both lines, a merge, a
    branch): the caller then asks Alembic. ``tests/bench/store/test_run_store.py`` compares it
    with Alembic's own answer."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        if script.name == "__init__.py":
            continue
        found = {m.group(1): m.group(2) or m.group(3) for m in _REVISION_LINE.finditer(script.read_text("utf-8"))}
        if set(found) != {"revision", "down_revision"} or not found["revision"]:
            return None
        revisions.add(str(found["revision"]))
        if found["down_revision"] is not None:
            parents.add(str(found["down_revision"]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


#: pg_advisory_xact_lock key serialising concurrent ``migrate()`` calls of several benches.
_MIGRATION_LOCK_KEY = 0x56_53_30_32  # "VS02"
#: SQLite: how long a writer waits for another bench's transaction before giving up.
_SQLITE_BUSY_TIMEOUT_S = 30.0
#: PostgreSQL: how long connecting may take (TCP + start-up exchange) before it is an error; without
#: it a server that accepts and never answers hangs the caller for ever (issue 18 item 2). libpq and
#: psycopg round values under 2 s up to 2 s.
_PG_CONNECT_TIMEOUT_S = 10.0
#: Check ids whose values feed the pack-history columns (a convention with the procedure files).
SOH_CHECK_IDS = ("soh_pct", "soh")
DIVERGENCE_CHECK_PREFIX = "divergence"

_SUMMARY_FIELDS = tuple(f.name for f in fields(RunSummary))
_VISIT_FIELDS = tuple(f.name for f in fields(PackVisit))


class RunStore:
    """The records database at ``url`` (``sqlite:///path.db`` or ``postgresql+psycopg://…``)."""

    def __init__(self, url: str, *, timeout_s: float | None = None) -> None:
        """``timeout_s`` bounds connecting and waiting for locks (and, on PostgreSQL, each statement)."""
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise InputError(f"not a database URL: {url!r} ({exc})", field="db") from exc
        self.url = url
        self.display_url = parsed.render_as_string(hide_password=True)
        self.backend = parsed.get_backend_name()
        if self.backend not in ("sqlite", "postgresql"):
            raise InputError(f"unsupported database {self.display_url}: use sqlite or postgresql", field="db")
        try:
            if self.backend == "sqlite":
                if parsed.database and parsed.database != ":memory:":
                    try:
                        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                    except OSError as exc:
                        raise StoreError(f"records store {self.display_url}: cannot create its folder: "
                                         f"{exc}") from exc
                busy = _SQLITE_BUSY_TIMEOUT_S if timeout_s is None else timeout_s
                self._engine = create_engine(url, connect_args={"timeout": busy})
                event.listen(self._engine, "connect", _sqlite_pragmas)
            else:
                connect: dict[str, Any] = {
                    "connect_timeout": max(2, math.ceil(timeout_s or _PG_CONNECT_TIMEOUT_S))}
                if timeout_s is not None:
                    connect["options"] = f"-c statement_timeout={int(timeout_s * 1000)}"
                self._engine = create_engine(url, pool_pre_ping=True, connect_args=connect,
                                             pool_timeout=timeout_s or 30.0)
        except (NoSuchModuleError, ImportError) as exc:
            raise StoreError(f"records store {self.display_url}: driver not installed: {exc}") from exc
        #: What this store's committed transactions wrote for the run being written: a shared
        #: row's values and id by its key, the run's child rows by table. The engine rewrites the
        #: record every checkpoint; rows equal to those already committed are not written again
        #: (see :meth:`_write_record`).
        self._written: dict[tuple[Any, ...], Any] = {}
        self._written_run: str | None = None  # the run whose rows _written remembers

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    # -- schema ------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to call from several benches).

        A database already at the newest revision (every run after the first on a bench) is
        left alone without loading Alembic: its import and its script directory cost ~0.25 s
        of each ``bench run`` (issue 17)."""
        if self.at_head():
            return
        # lazy: Alembic only when there is something to upgrade (see above)
        from alembic import command
        from alembic.config import Config
        from alembic.util import CommandError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._sqlite_migration_lock(), self._transaction("migrate") as conn:
            if self.backend == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:  # e.g. a revision this software does not know
                raise StoreError(
                    f"records store {self.display_url}: migrate: {exc}: the database was migrated by "
                    f"a newer bench software (this one knows up to revision {migrations_head() or '?'}); "
                    "update this bench before it writes there") from exc

    def at_head(self) -> bool:
        """True when the database's ``alembic_version`` names the one head revision of
        :data:`MIGRATIONS_DIR`; False when it does not, has no such table, or either cannot be
        read (then :meth:`migrate` lets Alembic decide)."""
        head = migrations_head()
        if head is None:
            return False
        try:
            with self._engine.connect() as conn:
                versions = [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
        except SQLAlchemyError:  # a new database: no version table yet
            return False
        return versions == [head]

    @contextmanager
    def _sqlite_migration_lock(self) -> Iterator[None]:
        """SQLite has no advisory lock: two benches migrating a fresh file at once would both try
        to create the tables. A lock file beside the database serialises them (threads and processes)."""
        database = make_url(self.url).database
        if self.backend != "sqlite" or not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def ping(self) -> None:
        with self._transaction("ping") as conn:
            conn.execute(text("SELECT 1"))

    # -- writing a run -----------------------------------------------------------------------

    def start_run(self, record: RunRecord) -> None:
        """Upsert station, instruments and pack; write the run row (normally verdict ``running``)."""
        self._write_record(record, "start_run")

    def update_run(self, record: RunRecord) -> None:
        """Replace the run's row and child rows with ``record``'s state; idempotent."""
        self._write_record(record, "update_run")

    def finish_run(self, record: RunRecord) -> None:
        if record.verdict == "running":
            raise StoreError(f"records store: finish_run({record.run_id}): verdict is still 'running'")
        self._write_record(record, "finish_run")

    def add_sample_lines(self, run_id: str, lines: Sequence[str]) -> None:
        """Insert samples given as lines of ``samples.csv``, as the sample log wrote them."""
        self.add_samples(run_id, list(csv.reader(lines)))

    def add_samples(self, run_id: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert sample rows (values in :data:`SAMPLE_COLUMNS` order); rows already stored are skipped."""
        if not rows:
            return
        columns = _sample_columns(run_id, rows)
        values = list(zip(*columns.values(), strict=True))
        with self._transaction(f"add_samples({run_id})") as conn:
            # A checkpoint hands over hundreds of rows of 25 plain numbers and strings, already the
            # columns' Python types: they go to the DBAPI driver as they are, in multi-row INSERTs
            # of up to 32 rows (statements compiled once per dialect and size), not through
            # SQLAlchemy's executemany, which processes every bound value in Python (~25 us a
            # row), nor the driver's, which steps one statement a row (issue 17).
            start = 0
            while start < len(values):
                size = _SAMPLES_CHUNK
                while size > len(values) - start:
                    size //= 2
                sql, names, positional = _samples_insert(conn, size)
                chunk = chain.from_iterable(values[start:start + size])
                start += size
                conn.exec_driver_sql(sql, tuple(chunk) if positional else dict(zip(names, chunk, strict=True)))

    # -- reading -----------------------------------------------------------------------------

    def runs(
        self,
        limit: int = 50,
        *,
        serial: str | None = None,
        verdict: str | None = None,
        station: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RunSummary]:
        """Runs newest first, optionally filtered."""
        query = (
            select(*Run.__table__.c, Station.name.label("station"), Pack.serial.label("pack_serial"))
            .join(Station, Run.station_id == Station.id)
            .join(Pack, Run.pack_id == Pack.id)
            .order_by(Run.started_at.desc(), Run.run_id.desc())
            .limit(limit)
        )
        if serial:
            query = query.where(Pack.serial == serial)
        if verdict:
            query = query.where(Run.verdict == verdict)
        if station:
            query = query.where(Station.name == station)
        if since:
            query = query.where(Run.started_at >= since)
        if until:
            query = query.where(Run.started_at < until)
        with self._transaction("runs") as conn:
            rows = conn.execute(query).all()
        return [RunSummary(**{f: row._mapping[f] for f in _SUMMARY_FIELDS}) for row in rows]

    def pack_history(self, serial: str) -> list[PackVisit]:
        """Every run of the pack ``serial``, oldest first."""
        query = (
            select(*Run.__table__.c, Station.name.label("station"))
            .join(Station, Run.station_id == Station.id)
            .join(Pack, Run.pack_id == Pack.id)
            .where(Pack.serial == serial)
            .order_by(Run.started_at, Run.run_id)
        )
        with self._transaction("pack_history") as conn:
            rows = conn.execute(query).all()
        return [PackVisit(**{f: row._mapping[f] for f in _VISIT_FIELDS}) for row in rows]

    def retest_count(self, serial: str, procedure: str) -> int:
        """How many runs of procedure ``procedure`` the pack ``serial`` already has (any verdict)."""
        query = (
            select(func.count())
            .select_from(Run)
            .join(Pack, Run.pack_id == Pack.id)
            .where(Pack.serial == serial, Run.procedure_name == procedure)
        )
        with self._transaction("retest_count") as conn:
            return int(conn.execute(query).scalar_one())

    def get_record(self, run_id: str) -> RunRecord | None:
        """The record as last written (for resuming a run), or None."""
        with self._transaction("get_record") as conn:
            blob = conn.execute(select(Run.record_json).where(Run.run_id == run_id)).scalar_one_or_none()
        return None if blob is None else RunRecord.model_validate_json(blob)

    def sample_rows(self, run_id: str) -> list[tuple[Any, ...]]:
        """The stored samples of a run, in time order, in :data:`SAMPLE_COLUMNS` order."""
        columns = [samples_table.c[name] for name in SAMPLE_COLUMNS]
        query = select(*columns).where(samples_table.c.run_id == run_id).order_by(samples_table.c.t_s)
        with self._transaction("sample_rows") as conn:
            return [tuple(row) for row in conn.execute(query)]

    def sample_count(self, run_id: str) -> int:
        query = select(func.count()).select_from(samples_table).where(samples_table.c.run_id == run_id)
        with self._transaction("sample_count") as conn:
            return int(conn.execute(query).scalar_one())

    def mark_orphans(self, alive: Callable[[str], bool | None], *, reason: str,
                     station: str | None = None) -> list[str]:
        """Record as aborted every ``running`` run that ``alive(run_id)`` says has no process behind it.

        ``alive`` returns None when it cannot tell (the run folder is on another machine): such a
        run is left alone. Returns the run ids marked.
        """
        marked = []
        for summary in self.runs(limit=10_000, verdict="running", station=station):
            if alive(summary.run_id) is not False:
                continue
            record = self.get_record(summary.run_id)
            if record is None or record.verdict != "running":
                continue
            mark_aborted(record, reason)
            self.finish_run(record)
            marked.append(summary.run_id)
        return marked

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StoreError(f"records store {self.display_url}: {operation}: {detail}") from exc

    def _write_record(self, record: RunRecord, operation: str) -> None:
        """Upsert the shared rows and the run row; replace the run's child rows.

        A shared row this store already upserted with the same values, and a table of child
        rows equal to those this store last committed for the run, are left as they are: the
        database holds them already. The engine writes the record every checkpoint (~80 times a
        calibration) and these rows seldom change: rewriting them cost the store's writer thread
        ~0.2 s of CPU per calibration, taken from the engine's loop (issue 17). Only this store
        writes a run's rows while it runs (another process marks it aborted only once it is dead).
        """
        if self._written_run != record.run_id:
            # what was written for another run is forgotten (at worst written once more): another
            # store may have changed a shared row since; only this run's rows are this store's alone
            self._written, self._written_run = {}, record.run_id
        written: dict[tuple[Any, ...], Any] = {}  # remembered once the transaction commits
        with self._transaction(f"{operation}({record.run_id})") as conn:
            station_id = self._upsert_id(conn, Station.__table__, {
                "name": record.station.name,
                "location": record.station.location,
                "simulated": record.station.simulated,
                "production": record.station.production,
            }, ("name",), written)
            pack_id = self._upsert_id(conn, Pack.__table__, {
                "serial": record.pack.serial,
                "part_number": record.pack.part_number,
                "nominal_capacity_ah": record.pack.nominal_capacity_ah,
            }, ("serial",), written)
            run_values = _run_row(record, station_id, pack_id)
            upsert = _insert(conn, Run.__table__).values(run_values)
            conn.execute(upsert.on_conflict_do_update(
                index_elements=["run_id"], set_={k: v for k, v in run_values.items() if k != "run_id"}
            ))
            for table, rows in self._children(conn, record, written):
                key = ("children", record.run_id, table.__tablename__)
                if self._written.get(key) == rows:
                    continue
                conn.execute(delete(table).where(table.run_id == record.run_id))
                if rows:
                    conn.execute(table.__table__.insert(), rows)
                written[key] = rows
        self._written.update(written)

    def _upsert_id(self, conn: Connection, table: Any, values: dict[str, Any], key: tuple[str, ...],
                   written: dict[tuple[Any, ...], Any]) -> int:
        """:func:`_upsert_id`, skipped when the last values this store committed for the row's key
        during this run are the same (values A, B, then A again are written three times)."""
        natural = (table.name, *(values[k] for k in key))
        known = written.get(natural, self._written.get(natural))
        if known is not None and known[0] == values:
            return int(known[1])
        row_id = _upsert_id(conn, table, values, key)
        written[natural] = (dict(values), row_id)
        return row_id

    def _children(self, conn: Connection, record: RunRecord,
                  written: dict[tuple[Any, ...], Any]) -> list[tuple[Any, list[dict[str, Any]]]]:
        """The run's child rows by table (upserting the instruments they refer to)."""
        run_id = record.run_id
        instrument_rows = []
        for inst in record.instruments:
            instrument_id = self._upsert_id(conn, Instrument.__table__, {
                "family": inst.family,
                "make": inst.make,
                "model": inst.model,
                "serial": inst.serial,
                "firmware": inst.firmware,
                "calibration_due": inst.calibration_due,
            }, ("family", "make", "model", "serial"), written)
            instrument_rows.append({
                "run_id": run_id, "name": inst.name, "instrument_id": instrument_id, "role": inst.role,
                "resource": inst.resource, "calibration_overdue": inst.calibration_overdue,
            })
        steps = [
            {"run_id": run_id, "seq": seq, "step_id": s.id, "kind": s.kind, "start_s": s.start_s,
             "end_s": s.end_s, "end_reason": s.end_reason, "ah": s.ah, "wh": s.wh, "resumed": s.resumed}
            for seq, s in enumerate(record.steps)
        ]
        checks = [_check_row(run_id, seq, c) for seq, c in enumerate(record.checks)]
        events = [
            {"run_id": run_id, "seq": seq, "t_s": e.t_s, "kind": e.kind, "message": e.message,
             "actor": e.actor}
            for seq, e in enumerate(record.events)
        ]
        files = [
            {"run_id": run_id, "name": f.name, "sha256": f.sha256, "bytes": f.bytes} for f in record.files
        ]
        return [(RunInstrument, instrument_rows), (Step, steps), (Check, checks), (Event, events),
                (RunFile, files)]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (reports, `bench runs`) never block the engine
    cursor.close()


def _insert(conn: Connection, table: Table | Any) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT`` on both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        # lazy: the PostgreSQL dialect (~20 ms of imports) only on a PostgreSQL store, where
        # create_engine has loaded it already; a SQLite run never needs it (issue 17)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite.insert(table)


def _upsert_id(conn: Connection, table: Any, values: dict[str, Any], key: tuple[str, ...]) -> int:
    """Insert or update a shared row by its natural ``key``; return its id (one statement, race-free)."""
    updates = {k: v for k, v in values.items() if k not in key} or {key[0]: values[key[0]]}
    statement = (
        _insert(conn, table)
        .values(values)
        .on_conflict_do_update(index_elements=list(key), set_=updates)
        .returning(table.c.id)
    )
    return int(conn.execute(statement).scalar_one())


def _run_row(record: RunRecord, station_id: int, pack_id: int) -> dict[str, Any]:
    received = record.pack.as_received
    return {
        "run_id": record.run_id,
        "station_id": station_id,
        "pack_id": pack_id,
        "verdict": record.verdict,
        "abort_reason": record.abort_reason,
        "procedure_name": record.procedure.name,
        "procedure_version": record.procedure.version,
        "procedure_sha256": record.procedure.sha256,
        "software_version": record.software_version,
        "operator": record.operator,
        "simulated": record.station.simulated,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "bms_serial": record.pack.bms_serial,
        "bms_sw_version": record.pack.bms_sw_version,
        "bms_hw_version": record.pack.bms_hw_version,
        "as_received_soc_pct": received.soc_pct,
        "as_received_soh_pct": received.soh_pct,
        "as_received_cycle_count": received.cycle_count,
        "as_received_dtcs": list(received.dtcs),
        "ah_charged": record.ah_charged,
        "ah_discharged": record.ah_discharged,
        "wh_charged": record.wh_charged,
        "wh_discharged": record.wh_discharged,
        "reference_capacity_ah": record.reference_capacity_ah,
        "bms_learned_capacity_ah": record.bms_learned_capacity_ah,
        "soh_pct": measured_soh_pct(record),
        "divergence_v": measured_divergence_v(record),
        "bench_hours": record.bench_hours,
        "sample_count": record.sample_count,
        "record_json": record.model_dump_json(),
    }


def _numeric_check(record: RunRecord, accept: Callable[[str], bool]) -> float | None:
    for check in record.checks:
        if accept(check.id) and isinstance(check.value, int | float) and not isinstance(check.value, bool):
            return float(check.value)
    return None


def measured_soh_pct(record: RunRecord) -> float | None:
    """SOH of a visit: a check named ``soh_pct``/``soh``, else reference capacity / nominal capacity."""
    soh = _numeric_check(record, lambda check_id: check_id in SOH_CHECK_IDS)
    if soh is None and record.reference_capacity_ah and record.pack.nominal_capacity_ah:
        soh = 100.0 * record.reference_capacity_ah / record.pack.nominal_capacity_ah
    return soh


def measured_divergence_v(record: RunRecord) -> float | None:
    """Cell divergence of a visit: the first numeric check whose id starts with ``divergence``."""
    return _numeric_check(record, lambda check_id: check_id.startswith(DIVERGENCE_CHECK_PREFIX))


def _check_row(run_id: str, seq: int, check: CheckRecord) -> dict[str, Any]:
    value = check.value
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "run_id": run_id, "seq": seq, "check_id": check.id, "step_id": check.step_id, "t_s": check.t_s,
        "value_num": float(value) if numeric else None,  # type: ignore[arg-type]
        "value_text": None if numeric or value is None else json.dumps(value),
        "unit": check.unit, "low": check.low, "high": check.high, "passed": check.passed,
        "decision_rule": check.decision_rule, "message": check.message,
        "description": check.description, "reference": check.reference, "tolerance": check.tolerance,
        "tolerance_kind": check.tolerance_kind, "action": check.action, "retried": check.retried,
    }


#: rows per samples INSERT at most: the largest power of two (a batch goes as 32, 16, .. 1-row
#: statements) whose bound values stay under the 999 variables SQLite allowed before 3.32 (Ubuntu
#: 20.04, RHEL 8): 32 rows of 25 values
_SAMPLES_CHUNK = 1 << ((999 // (len(SAMPLE_COLUMNS) + 1)).bit_length() - 1)
_SAMPLES_INSERT: dict[tuple[str, int], tuple[str, tuple[str, ...], bool]] = {}


def _samples_insert(conn: Connection, size: int) -> tuple[str, tuple[str, ...], bool]:
    """The ``size``-row samples INSERT .. ON CONFLICT DO NOTHING compiled for the connection's
    dialect: its SQL, its parameters' names (``<column>__<row>``, row by row, columns in table
    order) and whether they are positional (then bound in that order) or named."""
    dialect = conn.dialect
    key = (f"{dialect.name}:{dialect.driver}:{dialect.paramstyle}", size)
    if key not in _SAMPLES_INSERT:
        columns = ["run_id", *SAMPLE_COLUMNS]
        names = tuple(f"{c}__{i}" for i in range(size) for c in columns)
        rows: list[dict[str, Any]] = [{c: bindparam(f"{c}__{i}") for c in columns} for i in range(size)]
        compiled = _insert(conn, samples_table).values(rows).on_conflict_do_nothing().compile(dialect=dialect)
        if compiled.positional and tuple(compiled.positiontup or ()) != names:
            raise StoreError(f"records store: {dialect.name} orders the samples INSERT's parameters "
                             "unexpectedly")
        _SAMPLES_INSERT[key] = (compiled.string, names, compiled.positional)
    return _SAMPLES_INSERT[key]


def _sample_columns(run_id: str, rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """The rows as the samples table's columns (``run_id`` first): text for the step id; a float
    or None (empty, None or NaN: not measured) for every other value, bools as 0.0/1.0.

    Converted a column at a time with no call per value: per row and value it cost the store's
    writer thread ~0.3 s of CPU per calibration, taken from the engine's loop (issue 17)."""
    width = len(SAMPLE_COLUMNS)
    for row in rows:
        if len(row) != width:
            raise StoreError(f"records store: add_samples({run_id}): row has {len(row)} values, expected {width}")
    columns: dict[str, list[Any]] = {"run_id": [run_id] * len(rows)}
    for name, values in zip(SAMPLE_COLUMNS, zip(*rows, strict=True), strict=True):
        if name in TEXT_SAMPLE_COLUMNS:
            columns[name] = [str(v) for v in values]
        else:
            columns[name] = _float_column(values)
    return columns


def _float_column(values: Sequence[Any]) -> list[float | None]:
    """One column as floats, None where not measured (empty, None or NaN). The common column, all
    numbers, converts in C (``map(float)``: ~0.1 us a value against ~0.25 us for the general
    comprehension, on the writer thread that shares the GIL with the engine's loop)."""
    try:
        column: list[float | None] = list(map(float, values))
    except (TypeError, ValueError):  # an empty field or None: not measured
        return [None if v is None or v == "" or (x := float(v)) != x else x for v in values]
    if True in map(math.isnan, column):  # type: ignore[arg-type]  # all floats here
        return [None if x is not None and math.isnan(x) else x for x in column]
    return column
