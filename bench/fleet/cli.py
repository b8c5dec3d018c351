"""``bench fleet``: apply the fleet service rules to telematics exports; generate synthetic fleets.

Exit codes: 0 done (flags are results, not failures), 2 unusable input (one line, no traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench.errors import InputError

if TYPE_CHECKING:
    from bench.fleet.analyze import FleetReport

app = typer.Typer(help="Fleet telematics: service rules (analyze) and synthetic fleets (simulate).",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
EXIT_INPUT = 2
ROW_ERRORS_SHOWN = 20


def _fail(exc: InputError) -> None:
    err.print(f"error: {exc.format()}", markup=False)
    raise typer.Exit(EXIT_INPUT)


def _print_text(report: FleetReport) -> None:
    from bench.fleet.report import format_evidence, held_text  # lazy: see analyze_command

    table = Table(title=f"{report.vehicles} vehicles, {report.rows_used} rows, "
                        f"{report.period_start} .. {report.period_end}")
    for column in ("vehicle", "rule", "held", "evidence (last day held)", "action"):
        table.add_column(column, overflow="fold")
    for flag in report.flags:
        table.add_row(flag.vehicle_id, flag.rule, held_text(flag), format_evidence(flag.evidence), flag.action)
    out.print(table)
    flagged = len({f.vehicle_id for f in report.flags})
    active = sum(f.active for f in report.flags)
    out.print(f"{flagged} vehicles with alerts ({len(report.flags)} alerts, {active} active at the end); "
              f"{report.row_errors_total} rows skipped", markup=False)


@app.command("analyze")
def analyze_command(
    files: Annotated[list[Path], typer.Argument(help="Telematics exports (.csv, .jsonl, .parquet).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[Path | None,
                    typer.Option("--html", help="Also write a self-contained HTML report.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only the alerts still active at the end of the "
                                                          "data (what a dashboard shows now).")] = False,
) -> None:
    """Every alert the fleet service rules would have raised, as a daily monitor, over the whole period.

    Each alert has the day it first held, the day it last held, and whether it is still active at
    the end of the data. Skipped rows are listed on stderr.
    """
    # lazy: DuckDB (~0.15 s) loads for the analysis only, not for every `bench` command (this
    # sub-application is mounted by bench.cli)
    from bench.fleet.analyze import analyze
    from bench.fleet.report import render_html

    try:
        report = analyze(files)
    except InputError as exc:
        _fail(exc)
        return
    if active:
        report = report.active_only()
    for row_error in report.row_errors[:ROW_ERRORS_SHOWN]:
        err.print(f"skipped: {row_error.format()}", markup=False)
    if report.row_errors_total > ROW_ERRORS_SHOWN:
        err.print(f"skipped: ... and {report.row_errors_total - ROW_ERRORS_SHOWN} more rows", markup=False)
    if as_json:
        typer.echo(report.model_dump_json(indent=1))  # plain: a large report needs no rendering
    else:
        _print_text(report)
    if html is not None:
        try:
            html.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            _fail(InputError(f"cannot write: {exc.strerror}", file=str(html)))


@app.command("simulate")
def simulate_command(
    vehicles: Annotated[int, typer.Option("--vehicles", help="Number of vehicles.")],
    days: Annotated[int, typer.Option("--days", help="Days of hourly telematics (at least 100).")],
    out_file: Annotated[Path, typer.Option("--out", help="Output file: .csv, .jsonl or .parquet.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same fleet).")] = 1,
    truth: Annotated[Path | None,
                     typer.Option("--truth", help="Truth JSON (default: OUT with .truth.json).")] = None,
) -> None:
    """Generate a synthetic fleet and the alerts a correct analysis raises (truth JSON)."""
    from bench.fleet.simulate import simulate  # lazy: numpy and the generator, not needed by analyze

    try:
        result = simulate(vehicles, days, out_file, seed=seed, truth_out=truth)
    except InputError as exc:
        _fail(exc)
        return
    except OSError as exc:
        _fail(InputError(f"cannot write: {exc}", file=str(out_file)))
        return
    out.print(f"wrote {result.meta['rows']} rows for {vehicles} vehicles to {out_file}; "
              f"{len(result.flagged)} vehicles should have alerts ({len(result.alerts)} alerts, "
              f"{len(result.flagged_active())} vehicles with an active one)", markup=False)


if __name__ == "__main__":
    app()
