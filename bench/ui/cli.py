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
_ACCOUNTS = "accounts file (per-person passwords/PINs, roles, badges): see `bench station account add`"
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
    accounts: Annotated[Path | None, typer.Option("--accounts", help=_ACCOUNTS)] = None,
) -> None:
    """Serve the operator station (operator screen /, depot overview /depot, engineer page /engineer)."""
    # lazy: FastAPI, uvicorn and the station's whole stack load only when the server starts, not
    # at every `bench` start (bench.cli mounts this app)
    from bench.ui.accounts import Accounts
    from bench.ui.app import build_station
    from bench.ui.security import AccessPolicy, bind_sockets, bound_addresses
    from bench.ui.server import make_server

    sockets = []
    try:
        for path in procedure or []:
            if not path.is_file():
                raise InputError("procedure file not found", file=str(path), field="--procedure")
        people = Accounts.load(accounts) if accounts is not None else None
        sockets = bind_sockets(host, port)
        policy = AccessPolicy(host, port, operator_secret=os.environ.get(token_env) or None,
                              engineer_secret=os.environ.get(engineer_token_env) or None,
                              extra_hosts=tuple(allowed_host or ()), bound=bound_addresses(sockets),
                              accounts=people)
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


account_app = typer.Typer(help="Per-person accounts of the operator station.", no_args_is_help=True)
app.add_typer(account_app, name="account")
_FILE = "accounts file"


@account_app.command("add")
def account_add(
    name: Annotated[str, typer.Argument(help="the person's name as it goes into the records")],
    file: Annotated[Path, typer.Option("--file", help=_FILE)] = Path("accounts.yaml"),
    role: Annotated[list[str] | None, typer.Option("--role", help="operator | engineer (repeat)")] = None,
    badge: Annotated[bool, typer.Option("--badge", help="also ask for the badge code (scan it)")] = False,
) -> None:
    """Add a person, or reset their password/PIN and roles (asked for twice, never echoed)."""
    from bench.ui.accounts import ROLE_NAMES, Accounts  # lazy: import hashes a dummy secret (scrypt)

    roles = role or ["operator"]
    try:
        unknown = [r for r in roles if r not in ROLE_NAMES]
        if unknown:
            raise InputError(f"unknown role {unknown[0]!r} (operator or engineer)", field="--role")
        people = Accounts.load_or_new(file)
        secret = typer.prompt("password or PIN", hide_input=True, confirmation_prompt=True)
        code = typer.prompt("badge code (scan the badge)", hide_input=True) if badge else None
        people.set(name, roles, secret, badge=code)  # type: ignore[arg-type]
        people.save()
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{name}: {', '.join(roles)} in {file}")


@account_app.command("remove")
def account_remove(name: Annotated[str, typer.Argument()],
                   file: Annotated[Path, typer.Option("--file", help=_FILE)] = Path("accounts.yaml")) -> None:
    """Remove a person's account."""
    from bench.ui.accounts import Accounts  # lazy: import hashes a dummy secret (scrypt)

    try:
        people = Accounts.load(file)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not people.remove(name):
        typer.echo(f"error: no account {name!r} in {file}", err=True)
        raise typer.Exit(2)
    people.save()
    typer.echo(f"{name} removed from {file}")
