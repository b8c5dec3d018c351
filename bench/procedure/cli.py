"""``bench validate`` and ``bench schema`` (mounted into the ``bench`` CLI by bench.cli).

Input problems print as ``file:line:column: message`` lines (all of them) and exit with code 2,
never a traceback; nothing here touches an instrument.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bench.config import StationConfig, load_station
from bench.errors import InputError, InputErrors
from bench.procedure.loader import check_procedure, parse_param_pairs
from bench.procedure.schema import schema_text

EXIT_INPUT_ERROR = 2

app = typer.Typer(help="Procedure files: validate them, publish their JSON Schema.", no_args_is_help=True,
                  add_completion=False)


def _error_dict(error: InputError) -> dict[str, object]:
    return {"file": error.file, "line": error.line, "column": error.column, "field": error.field,
            "message": error.message, "text": error.format()}


def _flatten(error: InputError) -> list[InputError]:
    return list(error.errors) if isinstance(error, InputErrors) else [error]


@app.command()
def validate(
    procedure: Annotated[Path, typer.Argument(help="procedure YAML file")],
    station: Annotated[Path | None,
                       typer.Option(help="station YAML file (default: embedded simulator)")] = None,
    param: Annotated[list[str] | None,
                     typer.Option("--param", "-p", help="override a parameter: NAME=VALUE")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Check a procedure (schema, names, jump targets, setpoints, end conditions) without running it."""
    errors: list[InputError] = []
    params: dict[str, str] = {}
    try:
        params = parse_param_pairs(param or [])
    except InputError as exc:
        errors += _flatten(exc)
    station_config: StationConfig | None = None
    try:
        station_config = load_station(station)
    except InputError as exc:
        errors += _flatten(exc)
    report = check_procedure(procedure, station_config, params)
    errors += report.errors
    if as_json:
        typer.echo(json.dumps({"ok": not errors, "errors": [_error_dict(e) for e in errors],
                               "notes": report.notes}, indent=2))
    else:
        for error in errors:
            typer.echo(error.format(), err=True)
    if errors:
        raise typer.Exit(EXIT_INPUT_ERROR)
    if not as_json and report.procedure is not None:
        proc = report.procedure
        station_name = station_config.name if station_config else "?"
        typer.echo(f"OK: {procedure}: {proc.procedure} {proc.version}, {len(proc.steps)} steps, "
                   f"{len(proc.parameters)} parameters, {len(proc.safety)} safety limits "
                   f"(station {station_name})")
        for note in report.notes:
            typer.echo(f"note: {note}")


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(help="write to this file instead of stdout")] = None,
    station: Annotated[bool, typer.Option("--station", help="the station file schema instead")] = False,
) -> None:
    """Print (or write) the JSON Schema of procedure files (or of station files)."""
    text = schema_text(station=station)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"{out}: cannot write: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_INPUT_ERROR) from None
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
