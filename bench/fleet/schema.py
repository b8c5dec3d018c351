"""Telematics columns, how files are read, and row validation — all in DuckDB.

Every source (CSV file, JSON-lines file, Parquet file, or a DuckDB relation) is turned into the
same *staged* shape: ``file``, ``line`` and one column per documented telematics column. One
validation query then casts, range-checks and explains every row; valid rows go on to the rules,
invalid rows are reported as ``file:line: message`` and skipped. Problems that make a whole file
unusable (missing column, unreadable file) raise :class:`~bench.errors.InputError` naming the
file and the column.

CSV files take a fast path: one typed, parallel DuckDB scan (:func:`read_csv_typed`); DuckDB's
rejects table keeps the line of each row it cannot parse, and the few lines with a problem are
then worded by the same validation query (:func:`locate_csv_errors`). JSON lines are read as raw
physical lines (``row_number()`` over an order-preserving scan). Either way, reported line numbers
are the lines an editor shows, blank lines included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from bench.errors import InputError


@dataclass(frozen=True)
class Column:
    """One documented telematics column."""

    name: str
    sql_type: str  # DuckDB type the value is cast to
    unit: str
    description: str
    low: float | None = None  # inclusive plausible range; outside it the row is skipped
    high: float | None = None


# Ranges are plausibility limits for an 8S LFP pack, wider than the protection limits so that a
# real excursion still reaches the rules; values outside are sensor/transport garbage.
COLUMNS: tuple[Column, ...] = (
    Column("vehicle_id", "VARCHAR", "", "vehicle (tractor) or pack serial the row belongs to; non-empty"),
    Column("timestamp", "TIMESTAMP", "", "ISO 8601 date-time; an offset or Z is honoured, none means UTC"),
    Column("soc_pct", "DOUBLE", "%", "BMS state of charge", 0.0, 100.0),
    # SOH above 100 % is normal for new cells (201-205 Ah on a 200 Ah nameplate, battery.md §0).
    Column("soh_pct", "DOUBLE", "%", "BMS state of health (usable capacity / 200 Ah nameplate)", 0.0, 110.0),
    # Cell voltage: 2.5 V hard cut-off and 3.65 V charge limit (battery.md §2.1) with margin.
    Column("cell_v_min", "DOUBLE", "V", "lowest of the 8 cell voltages", 2.0, 4.2),
    Column("cell_v_max", "DOUBLE", "V", "highest of the 8 cell voltages", 2.0, 4.2),
    Column("divergence_v", "DOUBLE", "V", "cell_v_max - cell_v_min as reported by the BMS", 0.0, 2.0),
    # 8 x 2.0 V .. 8 x 4.2 V.
    Column("pack_v", "DOUBLE", "V", "pack terminal voltage", 16.0, 33.6),
    Column("pack_i", "DOUBLE", "A", "pack current, positive = charging (battery.md §6.2 sign)",
           -1000.0, 1000.0),
    Column("state", "VARCHAR", "", "vehicle state: drive (alternator charging), charge (shore/external "
           "charger) or idle (parked, parking AC on the pack)"),
    Column("install_date", "DATE", "", "optional: pack install date (ISO 8601), for the warranty window"),
)
COLUMN_BY_NAME = {c.name: c for c in COLUMNS}
REQUIRED = ("vehicle_id", "timestamp", "soc_pct", "soh_pct", "pack_v", "pack_i", "state")
DIVERGENCE_SOURCES = (("divergence_v",), ("cell_v_min", "cell_v_max"))
OPTIONAL = ("install_date",)
STATES = ("drive", "charge", "idle")

SUPPORTED_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                      ".parquet": "parquet"}


def check_columns(available: list[str], source: str) -> list[str]:
    """Return the documented columns present in ``available``; raise if a required one is missing."""
    present = set(available)
    for name in REQUIRED:
        if name not in present:
            raise InputError(f"missing column {name!r}", file=source)
    if not any(all(c in present for c in group) for group in DIVERGENCE_SOURCES):
        missing = next(c for c in ("cell_v_min", "cell_v_max") if c not in present)
        raise InputError(f"missing column {missing!r} (or give 'divergence_v')", file=source)
    return [c.name for c in COLUMNS if c.name in present]


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _raw_lines_sql(path: Path) -> str:
    """Every physical line of ``path`` as (line, raw); no quoting or delimiter processing."""
    with path.open("rb") as handle:
        first = handle.readline()
    newline = "\\r\\n" if first.endswith(b"\r\n") else "\\n"
    return (
        "SELECT row_number() OVER () AS line, raw FROM read_csv("
        f"{_sql_str(str(path))}, columns={{'raw': 'VARCHAR'}}, header=false, delim='\\x1f', "
        f"quote='', escape='', new_line='{newline}', auto_detect=false, strict_mode=false)"
    )


def _first_line(path: Path) -> str:
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        return handle.readline().rstrip("\r\n")


def _csv_field(index: int) -> str:
    # Exports quote text fields ("TR-0001"); telematics values never hold commas.
    return f"NULLIF(trim(trim(f[{index}]), '\"'), '')"


def csv_header(path: Path) -> list[str]:
    return [h.strip().strip('"').lstrip("\ufeff") for h in _first_line(path).split(",")]


def stage_csv_lines(label: str, header: list[str], lines_sql: str) -> str:
    """Staging SQL over ``lines_sql`` (``line, raw``: physical lines of a CSV file with ``header``)."""
    columns = check_columns(header, label)
    fields = ", ".join(f"{_csv_field(header.index(c) + 1)} AS {c}" for c in columns)
    count = len(header)
    return (
        f"SELECT {_sql_str(label)} AS file, line, {fields}, "
        f"CASE WHEN len(f) <> {count} THEN 'expected {count} fields, found ' || len(f) END AS shape_error "
        f"FROM (SELECT line, string_split(raw, ',') AS f FROM ({lines_sql}) "
        "WHERE line > 1 AND raw IS NOT NULL AND trim(raw) <> '')"
    )


def stage_csv(path: Path) -> str:
    """Staging SQL over every physical line of a CSV file (the row-by-row path)."""
    return stage_csv_lines(str(path), csv_header(path), _raw_lines_sql(path))


_CSV_TYPES = {"VARCHAR": "VARCHAR", "TIMESTAMP": "TIMESTAMPTZ", "DOUBLE": "DOUBLE", "DATE": "DATE"}


def _valid_sql(columns: list[str], typed: dict[str, str]) -> str:
    """True when a typed row passes every check of :func:`validation_sql` (NULL counts as false)."""
    checks = [f"coalesce({typed['vehicle_id']}, '') <> ''", f"{typed['timestamp']} IS NOT NULL",
              f"{typed['state']} IN ({', '.join(_sql_str(s) for s in STATES)})"]
    for name in columns:
        column = COLUMN_BY_NAME[name]
        if column.low is not None:
            checks.append(f"{typed[name]} BETWEEN {column.low} AND {column.high}")
    if "divergence_v" not in columns:
        checks.append(f"{typed['cell_v_max']} >= {typed['cell_v_min']}")
    return f"coalesce({' AND '.join(checks)}, false)"


def read_csv_typed(path: Path, rejects: str, *, trim_ids: bool = False) -> str:
    """One parallel, typed DuckDB scan of a CSV file: the documented columns plus ``ok``.

    Rows DuckDB cannot parse (wrong field count, a value that does not cast) go to the rejects
    table ``rejects`` with their line number and text; rows that parse but fail a range or state
    check come out with ``ok`` false. Neither costs a per-row pass outside DuckDB; only the few bad
    lines are later read again to word their message (:func:`locate_csv_errors`).

    ``trim_ids``: strip blanks around vehicle ids. Exports rarely pad them, so the caller reads
    them as they are and asks for this only when a padded id turns up among the distinct ids.
    """
    header = csv_header(path)
    columns = check_columns(header, str(path))
    types = ", ".join(
        f"{_sql_str(h)}: '{_CSV_TYPES[COLUMN_BY_NAME[h].sql_type] if h in COLUMN_BY_NAME else 'VARCHAR'}'"
        for h in header)
    typed = {c: f'"{c}"' for c in columns}
    # Per-row expressions are a large share of the scan: clean values take the cheap branch
    # (CASE evaluates the other one only for the rows that need it), and the UTC time is taken
    # from the instant's microseconds rather than through a time-zone conversion.
    if trim_ids:
        typed["vehicle_id"] = 'trim("vehicle_id")'
    known = ", ".join(_sql_str(s) for s in STATES)
    typed["state"] = f'CASE WHEN "state" IN ({known}) THEN "state" ELSE lower(trim("state")) END'
    typed["timestamp"] = 'make_timestamp(epoch_us("timestamp"))'
    divergence = (typed["divergence_v"] if "divergence_v" in columns
                  else f"round({typed['cell_v_max']} - {typed['cell_v_min']}, 6)")
    install = typed.get("install_date", "NULL::DATE")
    return (
        f"SELECT {typed['vehicle_id']} AS vehicle_id, {typed['timestamp']} AS ts, soc_pct, soh_pct, "
        f"{divergence} AS divergence_v, {typed['state']} = 'drive' AS drive, {install} AS install_date, "
        f"{_valid_sql(columns, typed)} AS ok "
        f"FROM read_csv({_sql_str(str(path))}, header=true, auto_detect=false, delim=',', quote='\"', "
        f"columns={{{types}}}, store_rejects=true, rejects_table='{rejects}', "
        f"rejects_scan='{rejects}_scan')"
    )


def locate_csv_errors(path: Path, rejects: str, bad_vehicles: list[str | None]) -> str:
    """The located ``file, line, error`` of a CSV file's bad rows, worded by :func:`validation_sql`.

    The bad lines are found in one scan of the raw lines, filtered before any other work: the
    text of each row DuckDB rejected (its rejects table has the text; its line numbers are not
    reliable in DuckDB 2.0, they can be off by one), and the lines of the vehicles that had a row
    failing a check (``bad_vehicles``, usually none).
    """
    header = csv_header(path)
    columns = check_columns(header, str(path))
    field = _csv_field(header.index("vehicle_id") + 1).replace("f[", "string_split(raw, ',')[")
    known = [v for v in bad_vehicles if v]
    tests = [f"raw IN (SELECT trim(csv_line, chr(10) || chr(13)) FROM {rejects})"]
    if known:
        tests.append(f"{field} IN ({', '.join(_sql_str(v) for v in known)})")
    if len(known) < len(bad_vehicles):
        tests.append(f"{field} IS NULL")
    lines = f"SELECT line, raw FROM ({_raw_lines_sql(path)}) WHERE line > 1 AND ({' OR '.join(tests)})"
    return (f"SELECT file, line, error FROM ({validation_sql(stage_csv_lines(str(path), header, lines), columns)}) "
            "WHERE error IS NOT NULL")


def _first_json_keys(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                if number >= 1000:
                    break
                continue
            if isinstance(record, dict):
                return [str(k) for k in record]
    raise InputError("no JSON object found in the first 1000 lines", file=str(path))


def stage_jsonl(path: Path) -> str:
    """JSON lines: the first parseable record defines which columns the file has."""
    columns = check_columns(_first_json_keys(path), str(path))
    paths = ", ".join(_sql_str(f"$.{c}") for c in columns)
    fields = ", ".join(f"NULLIF(v[{i + 1}], '') AS {c}" for i, c in enumerate(columns))
    return (
        f"SELECT {_sql_str(str(path))} AS file, line, {fields}, "
        "CASE WHEN NOT ok THEN 'not a JSON object' END AS shape_error "
        f"FROM (SELECT line, coalesce(json_valid(raw) AND starts_with(ltrim(raw), '{{'), false) AS ok, "
        f"CASE WHEN json_valid(raw) THEN json_extract_string(raw, [{paths}]) END AS v "
        f"FROM ({_raw_lines_sql(path)}) WHERE raw IS NOT NULL AND trim(raw) <> '')"
    )


def stage_relation(relation: duckdb.DuckDBPyRelation, *, label: str,
                   line_expr: str = "row_number() OVER ()") -> str:
    """Staging SQL over ``relation`` (inlined as a subquery); rows are numbered in scan order.

    ``label`` is the name row errors are reported under.
    """
    columns = check_columns(list(relation.columns), label)
    fields = ", ".join(f'"{c}" AS {c}' for c in columns)
    return (f"SELECT {_sql_str(label)} AS file, {line_expr} AS line, {fields}, "
            f"NULL::VARCHAR AS shape_error FROM ({relation.sql_query()})")


def stage_file(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """Staging SQL for one telematics file; raises InputError when the file is unusable."""
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"unsupported file type {path.suffix!r} (use .csv, .jsonl or .parquet)",
                         file=str(path))
    try:
        if kind == "csv":
            return stage_csv(path)
        if kind == "jsonl":
            return stage_jsonl(path)
        relation = con.sql(f"SELECT * FROM read_parquet({_sql_str(str(path))}, file_row_number=true)")
        return stage_relation(relation, label=str(path), line_expr="file_row_number + 1")
    except (OSError, UnicodeDecodeError, duckdb.Error) as exc:
        raise InputError(f"cannot read file: {str(exc).splitlines()[0]}", file=str(path)) from None


def _range_check(column: Column, value: str) -> str:
    return (f"CASE WHEN {value} IS NULL THEN '{column.name}: missing value' "
            f"WHEN NOT ({value} BETWEEN {column.low} AND {column.high}) THEN '{column.name}: ' || {value} "
            f"|| ' outside {column.low:g}..{column.high:g} {column.unit}' END")


def validation_sql(staged: str, columns: list[str]) -> str:
    """Typed, checked rows: the documented columns plus ``divergence_v`` and an ``error`` text.

    ``error`` is NULL for a valid row; otherwise the shape problem (wrong field count, not JSON) or
    every problem found on the row, joined by '; '.
    """
    typed: dict[str, str] = {}
    checks: list[str] = []
    for name in columns:
        column = COLUMN_BY_NAME[name]
        if name == "vehicle_id":
            typed[name] = "trim(vehicle_id::VARCHAR)"
            checks.append(f"CASE WHEN coalesce({typed[name]}, '') = '' THEN 'vehicle_id: missing value' END")
        elif name == "state":
            typed[name] = "lower(trim(state::VARCHAR))"
            allowed = ", ".join(_sql_str(s) for s in STATES)
            checks.append(f"CASE WHEN {typed[name]} IS NULL OR {typed[name]} NOT IN ({allowed}) THEN "
                          f"'state: ' || coalesce('''' || state::VARCHAR || '''', 'missing value') || "
                          f"' is not one of {'/'.join(STATES)}' END")
        elif name == "timestamp":
            typed[name] = "TRY_CAST(timestamp AS TIMESTAMPTZ)::TIMESTAMP"
            checks.append(f"CASE WHEN {typed[name]} IS NULL THEN 'timestamp: ' || "
                          "coalesce('''' || timestamp::VARCHAR || '''', 'missing value') "
                          "|| ' is not ISO 8601' END")
        elif name == "install_date":
            typed[name] = "TRY_CAST(install_date AS DATE)"
            checks.append(f"CASE WHEN install_date IS NOT NULL AND {typed[name]} IS NULL THEN "
                          "'install_date: ' || '''' || install_date::VARCHAR || '''' "
                          "|| ' is not an ISO 8601 date' END")
        else:
            typed[name] = f"TRY_CAST({name} AS DOUBLE)"
            checks.append(f"CASE WHEN {name} IS NOT NULL AND {typed[name]} IS NULL THEN "
                          f"'{name}: ' || '''' || {name}::VARCHAR || '''' || ' is not a number' "
                          f"ELSE {_range_check(column, typed[name])} END")
    if "divergence_v" in columns:
        divergence = typed["divergence_v"]
    else:
        # rounded to 1 µV so that 3.400 - 3.250 compares as 0.15, not 0.15000000000000002
        divergence = f"round({typed['cell_v_max']} - {typed['cell_v_min']}, 6)"
        checks.append(f"CASE WHEN {divergence} < 0 THEN 'cell_v_max below cell_v_min' END")
    install = typed.get("install_date", "NULL::DATE")
    return (
        f"SELECT file, line, {typed['vehicle_id']} AS vehicle_id, {typed['timestamp']} AS ts, "
        f"{typed['soc_pct']} AS soc_pct, {typed['soh_pct']} AS soh_pct, {divergence} AS divergence_v, "
        f"{typed['pack_v']} AS pack_v, {typed['pack_i']} AS pack_i, {typed['state']} AS state, "
        f"{install} AS install_date, "
        # a row of the wrong shape gets that one message, not one per column it lacks
        f"coalesce(shape_error, NULLIF(concat_ws('; ', {', '.join(checks)}), '')) AS error "
        f"FROM ({staged})"
    )


def describe_columns_markdown() -> str:
    """The column table used in docs and ``--help``."""
    rows = ["| column | type | unit | range | meaning |", "|---|---|---|---|---|"]
    for c in COLUMNS:
        span = f"{c.low:g}..{c.high:g}" if c.low is not None else ""
        rows.append(f"| `{c.name}` | {c.sql_type} | {c.unit} | {span} | {c.description} |")
    return "\n".join(rows)
