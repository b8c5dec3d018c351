"""Apply the fleet rules to telematics files or to any DuckDB relation.

``analyze([...paths])`` reads CSV / JSON lines / Parquet exports; ``analyze(relation)`` takes a
DuckDB relation (for example the bench's run history, one ``vehicle_id`` per pack serial) with the
documented columns. All row work happens inside DuckDB; Python only handles the alerts and the
bad rows. A CSV file is read once, typed and in parallel, straight into one aggregate per vehicle
and day (:func:`bench.fleet.rules.day_groups_sql`); its bad lines alone are read again to word
their message (see :mod:`bench.fleet.schema`).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict

from bench.errors import InputError
from bench.fleet import rules as fleet_rules
from bench.fleet.schema import (
    check_columns,
    locate_csv_errors,
    read_csv_typed,
    stage_file,
    stage_relation,
    validation_sql,
)

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
    """One alert: a rule that held on a vehicle from ``first_held`` to ``last_held`` (UTC days).

    ``active``: it still holds on the vehicle's last day of data. ``evidence``: as the monitor saw
    it on ``last_held`` (for an active alert, as now).
    """

    model_config = ConfigDict(extra="forbid")
    vehicle_id: str
    rule: str
    title: str
    first_held: str
    last_held: str
    active: bool
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

    def flagged(self, *, active: bool = False) -> dict[str, list[str]]:
        """Vehicle id -> names of the rules that raised an alert (``active``: only alerts still active)."""
        result: dict[str, list[str]] = {}
        for flag in self.flags:
            rules = result.setdefault(flag.vehicle_id, []) if flag.active or not active else None
            if rules is not None and flag.rule not in rules:
                rules.append(flag.rule)
        return result

    def active_only(self) -> FleetReport:
        """The same report with only the alerts still active at the end of the data ("now")."""
        return self.model_copy(update={"flags": [f for f in self.flags if f.active]})


Source = str | Path | duckdb.DuckDBPyRelation


def connect(memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    # rows need no order (every rule orders by time itself): lets DuckDB load in parallel
    con.execute("SET preserve_insertion_order = false")
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


# The columns every source is turned into (:func:`bench.fleet.rules.day_groups_sql` reduces them).
SAMPLE_COLUMNS = "vehicle_id, ts, soc_pct, soh_pct, divergence_v, drive, install_date, ok"


class _Loaded(BaseModel):
    """What loading found: per-source counts and the located bad rows (the first MAX_ROW_ERRORS)."""

    sources: list[SourceSummary]
    errors: list[RowError]


@dataclass(frozen=True)
class _Source:
    """One source as the loader sees it: its label, its samples query, and how its rows are counted."""

    label: str
    samples: str  # SQL with SAMPLE_COLUMNS
    csv: Path | None = None  # a CSV file read by the typed scan; its rejects table is ``rejects``
    rejects: str = ""
    checked: str = ""  # otherwise the table of validated rows (with ``error``) behind ``samples``


def _label(source: Source) -> str:
    return f"<relation {source.alias}>" if isinstance(source, duckdb.DuckDBPyRelation) else str(source)


def _is_csv(source: Source) -> bool:
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".csv" and Path(source).is_file()


def _prepare(con: duckdb.DuckDBPyConnection, index: int, source: Source) -> _Source:
    """A CSV file: the typed parallel scan, nothing read yet. Anything else: every row through the
    validation query (it words the errors), kept in a table."""
    label = _label(source)
    if not isinstance(source, duckdb.DuckDBPyRelation) and _is_csv(source):
        return _csv_source(Path(source), index, trim_ids=False)
    if isinstance(source, duckdb.DuckDBPyRelation):
        staged = stage_relation(source, label=label)
        columns = check_columns(list(source.columns), label)
    else:
        staged = stage_file(con, Path(source))
        columns = check_columns(_staged_columns(con, staged), label)
    table = f"fleet_checked_{index}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {validation_sql(staged, columns)}")
    return _Source(label=label, checked=table, samples=(
        "SELECT vehicle_id, ts, soc_pct, soh_pct, divergence_v, state = 'drive' AS drive, install_date, "
        f"error IS NULL AS ok FROM {table}"))


def _csv_source(path: Path, index: int, *, trim_ids: bool) -> _Source:
    rejects = f"fleet_rejects_{index}" + ("_trimmed" if trim_ids else "")
    return _Source(label=str(path), samples=read_csv_typed(path, rejects, trim_ids=trim_ids), csv=path,
                   rejects=rejects)


def _staged_columns(con: duckdb.DuckDBPyConnection, staged: str) -> list[str]:
    return [c for c in con.sql(f"SELECT * FROM ({staged}) LIMIT 0").columns if c not in {"file", "line"}]


def _reduce(con: duckdb.DuckDBPyConnection, prepared: list[_Source]) -> None:
    """The one pass over every source's samples into ``day_groups``; a failure names its source."""
    if len(prepared) == 1:
        samples, counts = prepared[0].samples, None
    else:
        samples = " UNION ALL ".join(f"SELECT {i} AS source, {SAMPLE_COLUMNS} FROM ({p.samples})"
                                     for i, p in enumerate(prepared))
        counts = {f"rows_{i}": f"count(*) FILTER (WHERE source = {i})" for i in range(len(prepared))}
    try:
        con.execute(fleet_rules.day_groups_sql(samples, counts))
    except duckdb.Error as exc:
        raise InputError(f"cannot read telematics: {str(exc).splitlines()[0]}",
                         file=_failing(con, prepared).label) from None


def _failing(con: duckdb.DuckDBPyConnection, prepared: list[_Source]) -> _Source:
    """The source whose samples alone fail to read (the first one if none does alone)."""
    for item in prepared[1:]:
        try:
            con.execute(f"SELECT count(*) FROM ({item.samples})").fetchall()
        except duckdb.Error:
            return item
    return prepared[0]


def _csv_errors(con: duckdb.DuckDBPyConnection, path: Path, rejects: str, bad: int,
                vehicles: list[str | None]) -> tuple[int, list[RowError]]:
    """Rows DuckDB rejected, and the located errors of the bad lines (read again, only they)."""
    # one rejects entry per failing column: count rows by where they start
    rejected = con.execute(f"SELECT count(DISTINCT line_byte_position) FROM {rejects} "
                           "WHERE trim(csv_line, chr(10) || chr(13) || ' ') <> ''").fetchall()[0][0]
    if not (bad or rejected):
        return 0, []
    # (bad rows of other sources widen the filter; their good lines here give no error)
    bad_lines = locate_csv_errors(path, rejects, vehicles)
    located = con.execute(f"SELECT DISTINCT file, line, error FROM ({bad_lines}) "
                          f"ORDER BY line LIMIT {MAX_ROW_ERRORS}").fetchall()
    return int(rejected), [RowError(file=f, line=line, message=m) for f, line, m in located]


def _checked_errors(con: duckdb.DuckDBPyConnection, item: _Source) -> list[RowError]:
    located = con.execute(f"""SELECT file, line, error FROM {item.checked} WHERE error IS NOT NULL
                              ORDER BY line LIMIT {MAX_ROW_ERRORS}""").fetchall()
    con.execute(f"DROP TABLE {item.checked}")
    return [RowError(file=f, line=line, message=m) for f, line, m in located]


def load(con: duckdb.DuckDBPyConnection, sources: Sequence[Source]) -> _Loaded:
    """Read every source once into ``day_groups`` (see :func:`bench.fleet.rules.day_groups_sql`)."""
    if not sources:
        raise InputError("no telematics source given")
    prepared: list[_Source] = []
    for index, source in enumerate(sources):
        try:
            prepared.append(_prepare(con, index, source))
        except duckdb.Error as exc:
            raise InputError(f"cannot read telematics: {str(exc).splitlines()[0]}", file=_label(source)) from None
    _reduce(con, prepared)
    if any(item.csv for item in prepared) and con.execute(
            "SELECT count(*) FROM day_groups WHERE vehicle_id <> trim(vehicle_id)").fetchall()[0][0]:
        # The typed scan takes vehicle ids as they are (trimming every one costs ~8 % of the scan);
        # a file with padded ids is read again, trimming them.
        prepared = [_csv_source(item.csv, i, trim_ids=True) if item.csv else item for i, item in enumerate(prepared)]
        _reduce(con, prepared)
    column = "samples" if len(prepared) == 1 else "rows_{}"
    counted = con.execute("SELECT " + ", ".join(
        f"coalesce(sum({column.format(i)}), 0), coalesce(sum({column.format(i)}) FILTER (WHERE NOT ok), 0)"
        for i in range(len(prepared))) + " FROM day_groups").fetchall()[0]
    bad_rows = any(counted[1::2])
    vehicles = [row[0] for row in con.execute(
        "SELECT DISTINCT vehicle_id FROM day_groups WHERE NOT ok").fetchall()] if bad_rows else []
    summaries: list[SourceSummary] = []
    errors: list[RowError] = []
    for i, item in enumerate(prepared):
        parsed, bad = int(counted[2 * i]), int(counted[2 * i + 1])
        try:
            if item.csv is not None:
                rejected, found = _csv_errors(con, item.csv, item.rejects, bad, vehicles)
            else:
                rejected, found = 0, _checked_errors(con, item)
        except duckdb.Error as exc:  # e.g. the raw lines are not UTF-8
            raise InputError(f"cannot read telematics: {str(exc).splitlines()[0]}", file=item.label) from None
        summaries.append(SourceSummary(file=item.label, rows=parsed + rejected, rows_skipped=bad + rejected))
        errors.extend(found)
    errors.sort(key=lambda e: (e.file, e.line))
    summaries.sort(key=lambda s: s.file)
    return _Loaded(sources=summaries, errors=errors[:MAX_ROW_ERRORS])


def evaluate(con: duckdb.DuckDBPyConnection) -> list[Flag]:
    """Run every rule, as a daily monitor, over the ``day_groups`` table already loaded on ``con``."""
    for statement in fleet_rules.PREPARE_SQL:
        con.execute(statement)
    flags: list[Flag] = []
    for rule in fleet_rules.RULES:
        result = con.sql(fleet_rules.alerts_sql(rule))
        names = result.columns
        for row in result.fetchall():
            values = dict(zip(names, row, strict=True))
            evidence = {k: _jsonable(v) for k, v in values.items()
                        if k not in {"vehicle_id", "first_held", "last_held", "active"}}
            flags.append(Flag(vehicle_id=str(values["vehicle_id"]), rule=rule.name, title=rule.title,
                              first_held=_jsonable(values["first_held"]), last_held=_jsonable(values["last_held"]),
                              active=bool(values["active"]), evidence=evidence, action=rule.action(evidence)))
    flags.sort(key=lambda f: (f.vehicle_id, fleet_rules.RULE_NAMES.index(f.rule), f.first_held))
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
    loaded = load(con, items)
    flags = evaluate(con)
    totals = con.execute("SELECT count(DISTINCT vehicle_id), coalesce(sum(samples), 0), min(first_ts), max(last_ts) "
                         "FROM daily").fetchall()[0]
    return FleetReport(
        sources=loaded.sources, vehicles=totals[0], rows_used=int(totals[1]),
        period_start=_jsonable(totals[2]), period_end=_jsonable(totals[3]),
        row_errors_total=sum(s.rows_skipped for s in loaded.sources),
        row_errors=loaded.errors,
        flags=flags,
    )
