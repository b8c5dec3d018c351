"""``bench station serve``: the operator station web server (mounted by bench/cli.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bench.errors import InputError

app = typer.Typer(help="Operator station: web UI for end-of-line lines and depots.", no_args_is_help=True)


@app.callback()
def station() -> None:
    """Operator station: web UI for end-of-line lines and depots."""


_STATION = "station file (repeat for several benches); default: the embedded simulated bench"
_HOST = 'address to listen on ("" = every interface); beyond loopback a token is required'
_TOKEN = "environment variable holding the operator password/token"
_ENGINEER = "environment variable holding the engineer password/token"
_PROCEDURE = "allowed procedure file (repeat; first = default)"
_ALLOWED = "extra host name browsers use to reach the station (Host header check; repeat)"
_DB = "records database URL (default: $BENCH_DB, the station file, or SQLite in runs/)"


@app.command()
def serve(
    station: Annotated[list[str] | None, typer.Option("--station", help=_STATION)] = None,
    host: Annotated[str, typer.Option(help=_HOST)] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8470,
    token_env: Annotated[str, typer.Option(help=_TOKEN)] = "BENCH_STATION_TOKEN",
    engineer_token_env: Annotated[str, typer.Option(help=_ENGINEER)] = "BENCH_STATION_ENGINEER_TOKEN",
    procedure: Annotated[list[Path] | None, typer.Option("--procedure", help=_PROCEDURE)] = None,
    db: Annotated[str | None, typer.Option(help=_DB)] = None,
    allowed_host: Annotated[list[str] | None, typer.Option("--allowed-host", help=_ALLOWED)] = None,
) -> None:
    """Serve the operator station (operator screen /, depot overview /depot, engineer page /engineer)."""
    from bench.ui.app import build_station
    from bench.ui.security import AccessPolicy, bind_sockets, bound_addresses
    from bench.ui.server import make_server

    sockets = []
    try:
        for path in procedure or []:
            if not path.is_file():
                raise InputError("procedure file not found", file=str(path), field="--procedure")
        sockets = bind_sockets(host, port)
        policy = AccessPolicy(host, port, operator_secret=os.environ.get(token_env) or None,
                              engineer_secret=os.environ.get(engineer_token_env) or None,
                              extra_hosts=tuple(allowed_host or ()), bound=bound_addresses(sockets))
        station_model = build_station(list(station or []) or [None], policy, db=db, procedures=procedure)
    except InputError as exc:
        for sock in sockets:
            sock.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for run_id in station_model.mark_orphans():
        typer.echo(f"run {run_id} was left 'running' by a process that is gone: recorded as aborted")
    shown = ", ".join(f"[{a}]" if ":" in a else a for a in policy.addresses)
    typer.echo(f"operator station on {shown} port {port}  benches: {', '.join(station_model.slots)}")
    make_server(station_model).run(sockets=sockets)
