"""``bench db upgrade | runs | pack SERIAL``: the records database from the command line."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.store.liveness import mark_orphan_runs
from bench.store.url import DB_ENV_VAR, resolve_db_url
from reports.html import render_pack_history

if TYPE_CHECKING:
    from bench.store.store import RunStore

app = typer.Typer(help="The run records database (SQLite by default, PostgreSQL via --db or $BENCH_DB).",
                  no_args_is_help=True, add_completion=False)
#: why a run found ``running`` with no process holding its folder is recorded as aborted
ORPHAN_REASON = "orphaned: no process was running it any more (found at start-up; outputs state unknown)"
_out = Console(highlight=False, soft_wrap=True)

DbOpt = Annotated[str | None, typer.Option(
    "--db", help=f"SQLAlchemy URL (else ${DB_ENV_VAR}, else RUNS_DIR/bench.db).")]
RunsDirOpt = Annotated[Path, typer.Option("--runs-dir", help="Where run folders and the SQLite file live.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _store(db: str | None, runs_dir: Path) -> RunStore:
    """The store, schema brought up to date (a no-op when it is; a fresh SQLite file just works)."""
    from bench.store.store import RunStore  # lazy: SQLAlchemy/Alembic only when a db command runs

    store = RunStore(resolve_db_url(db, None, runs_dir))
    store.migrate()
    return store


def _json(rows: list[Any]) -> None:
    typer.echo(json.dumps([asdict(row) for row in rows], default=str, indent=2))


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@app.command("upgrade")
def upgrade_command(db: DbOpt = None, runs_dir: RunsDirOpt = Path("runs")) -> None:
    """Create or migrate the schema to the newest revision."""
    store = _store(db, runs_dir)
    typer.echo(f"{store.display_url}: schema up to date")


@app.command("runs")
def runs_command(
    *,
    db: DbOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    serial: Annotated[str | None, typer.Option(help="Only this pack.")] = None,
    verdict: Annotated[str | None, typer.Option(help="pass | fail | aborted | running")] = None,
    station: Annotated[str | None, typer.Option(help="Only this station.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Started on or after (ISO date/time).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Started before (ISO date/time).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first (runs left ``running`` by a dead process are first marked aborted)."""
    store = _store(db, runs_dir)
    mark_orphan_runs(store, runs_dir, reason=ORPHAN_REASON)
    rows = store.runs(limit, serial=serial, verdict=verdict, station=station, since=since, until=until)
    if as_json:
        _json(rows)
        return
    table = Table("started", "run", "station", "pack", "procedure", "operator", "verdict")
    for r in rows:
        table.add_row(r.started_at.strftime("%Y-%m-%d %H:%M"), r.run_id, r.station, r.pack_serial,
                      f"{r.procedure_name} {r.procedure_version}", r.operator,
                      r.verdict + (" (sim)" if r.simulated else ""))
    _out.print(table)


@app.command("pack")
def pack_command(
    serial: Annotated[str, typer.Argument(help="Pack serial number.")],
    db: DbOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    html: Annotated[Path | None, typer.Option("--html", help="Also write a history page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A pack's history: every visit's SOH, learned capacity, divergence and verdict."""
    visits = _store(db, runs_dir).pack_history(serial)
    if html is not None:
        html.write_text(render_pack_history(serial, visits), encoding="utf-8")
    if as_json:
        _json(visits)
        return
    table = Table("started", "run", "station", "procedure", "SOH %", "SOH % (BMS)", "ref Ah", "learned Ah",
                  "divergence V", "verdict", title=f"pack {serial}")
    for v in visits:
        table.add_row(v.started_at.strftime("%Y-%m-%d %H:%M"), v.run_id, v.station, v.procedure_name,
                      _num(v.soh_pct), _num(v.as_received_soh_pct), _num(v.reference_capacity_ah, 2),
                      _num(v.bms_learned_capacity_ah, 2), _num(v.divergence_v, 3), v.verdict)
    _out.print(table)
    if html is not None:
        typer.echo(html)
