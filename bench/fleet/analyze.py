"""Apply the fleet rules to telematics files or to any DuckDB relation.

``analyze([...paths])`` reads CSV / JSON lines / Parquet exports; ``analyze(relation)`` takes a
DuckDB relation (for example the bench's run history, one ``vehicle_id`` per pack serial) with the
documented columns. All row work happens inside DuckDB; Python only handles the few flags.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict

from bench.errors import InputError
from bench.fleet import rules as fleet_rules
from bench.fleet.schema import check_columns, stage_file, stage_relation, validation_sql

MAX_ROW_ERRORS = 200  # listed in the report; the total is always counted
MEMORY_LIMIT = "3GB"  # issue 7: < 4 GB peak for 8.8 M rows; DuckDB spills beyond this


class RowError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    line: int
    message: str

    def format(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class SourceSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    rows: int
    rows_skipped: int


class Flag(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vehicle_id: str
    rule: str
    title: str
    evidence: dict[str, Any]
    action: str


class FleetReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[SourceSummary]
    vehicles: int
    rows_used: int
    period_start: str | None
    period_end: str | None
    row_errors_total: int
    row_errors: list[RowError]
    flags: list[Flag]

    def flagged(self) -> dict[str, list[str]]:
        """Vehicle id -> names of the rules that flagged it."""
        result: dict[str, list[str]] = {}
        for flag in self.flags:
            result.setdefault(flag.vehicle_id, []).append(flag.rule)
        return result


Source = str | Path | duckdb.DuckDBPyRelation


def connect(memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{tempfile.gettempdir()}/bench-fleet-duckdb'")
    return con


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="minutes")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _stage(con: duckdb.DuckDBPyConnection, sources: Sequence[Source]) -> list[str]:
    queries: list[str] = []
    for source in sources:
        if isinstance(source, duckdb.DuckDBPyRelation):
            label = f"<relation {source.alias}>"
            staged = stage_relation(source, label=label)
            columns = check_columns(list(source.columns), label)
        else:
            staged = stage_file(con, Path(source))
            columns = check_columns(_staged_columns(con, staged), str(source))
        queries.append(validation_sql(staged, columns))
    return queries


def _staged_columns(con: duckdb.DuckDBPyConnection, staged: str) -> list[str]:
    return [c for c in con.sql(f"SELECT * FROM ({staged}) LIMIT 0").columns if c not in {"file", "line"}]


def load(con: duckdb.DuckDBPyConnection, sources: Sequence[Source]) -> None:
    """Create ``checked`` (every row with its ``error``) and ``telemetry`` (valid rows only)."""
    if not sources:
        raise InputError("no telematics source given")
    union = " UNION ALL ".join(f"({q})" for q in _stage(con, sources))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE checked AS {union}")
    except duckdb.Error as exc:
        raise InputError(f"cannot read telematics: {str(exc).splitlines()[0]}") from None
    con.execute("""CREATE OR REPLACE TEMP VIEW telemetry AS
                   SELECT vehicle_id, ts, soc_pct, soh_pct, divergence_v, pack_v, pack_i, state, install_date
                   FROM checked WHERE error IS NULL""")


def evaluate(con: duckdb.DuckDBPyConnection) -> list[Flag]:
    """Run every rule over the ``telemetry`` table already loaded on ``con``."""
    for statement in fleet_rules.PREPARE_SQL:
        con.execute(statement)
    flags: list[Flag] = []
    for rule in fleet_rules.RULES:
        result = con.sql(rule.sql + " ORDER BY vehicle_id")
        names = result.columns
        for row in result.fetchall():
            evidence = {k: _jsonable(v) for k, v in zip(names, row, strict=True) if k != "vehicle_id"}
            flags.append(Flag(vehicle_id=str(row[0]), rule=rule.name, title=rule.title,
                              evidence=evidence, action=rule.action(evidence)))
    flags.sort(key=lambda f: (f.vehicle_id, fleet_rules.RULE_NAMES.index(f.rule)))
    return flags


def analyze(sources: Source | Sequence[Source], *,
            con: duckdb.DuckDBPyConnection | None = None) -> FleetReport:
    """Validate the telematics rows and apply the fleet rules.

    ``sources``: one or more file paths (.csv, .jsonl/.ndjson/.json, .parquet) or DuckDB relations
    with the documented columns (see :mod:`bench.fleet.schema`). A relation passed here must belong
    to ``con``. Raises :class:`InputError` when a source is unusable as a whole (missing file or
    column); bad rows are skipped and listed in the report.
    """
    items: list[Source] = (
        [sources] if isinstance(sources, (str, Path, duckdb.DuckDBPyRelation)) else list(sources)
    )
    con = con or connect()
    load(con, items)
    per_source = con.sql("""SELECT file, count(*) AS rows, count(*) FILTER (WHERE error IS NOT NULL)
                            FROM checked GROUP BY file ORDER BY file""").fetchall()
    totals = con.execute(
        "SELECT count(DISTINCT vehicle_id), count(*), min(ts), max(ts) FROM telemetry").fetchall()[0]
    errors = con.sql(f"""SELECT file, line, error FROM checked WHERE error IS NOT NULL
                         ORDER BY file, line LIMIT {MAX_ROW_ERRORS}""").fetchall()
    error_total = sum(skipped for _, _, skipped in per_source)
    return FleetReport(
        sources=[SourceSummary(file=f, rows=n, rows_skipped=s) for f, n, s in per_source],
        vehicles=totals[0], rows_used=totals[1],
        period_start=_jsonable(totals[2]), period_end=_jsonable(totals[3]),
        row_errors_total=error_total,
        row_errors=[RowError(file=f, line=line, message=m) for f, line, m in errors],
        flags=evaluate(con),
    )
