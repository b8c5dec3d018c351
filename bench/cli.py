"""The ``bench`` command line.

Exit codes everywhere: 0 pass/ok, 1 fail, 2 invalid input (one readable message naming file,
line and field, no traceback, no instrument touched), 3 aborted or instrument failure.
Sub-applications (validate/schema, report, db, fleet, station) live beside the code they
drive and are mounted here, each loaded only when its command runs or ``--help`` lists it.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from bench.errors import BenchError, InputError
from bench.procedure.loader import parse_param_pairs
from bench.record import unconfirmed_outputs_warning

#: The sub-applications that live beside the code they drive: command name -> module whose
#: ``app`` holds it. A top-level command is one of that app's commands; a group is the whole app.
#: Importing them all at start cost every command ~0.1-0.2 s (the diagnostics and report models,
#: numpy, jinja2, ...; issue 17): each is imported when its command runs or --help lists it.
LAZY_COMMANDS = {"validate": "bench.procedure.cli", "schema": "bench.procedure.cli",
                 "report": "reports.cli", "export": "reports.cli", "diag": "bench.diag"}
LAZY_GROUPS = {"db": "bench.store.cli", "fleet": "bench.fleet.cli", "station": "bench.ui.cli"}


class _LazyGroup(TyperGroup):
    """The ``bench`` group: its own commands, then the sub-applications' on first use (click's
    documented lazy-loading pattern); ``--help`` lists them in the order they were mounted in."""

    def list_commands(self, ctx: Any) -> list[str]:
        own = list(self.commands)
        groups = [n for n in own if isinstance(self.commands[n], TyperGroup)]
        names = [n for n in own if n not in groups] + [n for n in LAZY_COMMANDS if n not in own]
        names += groups + [n for n in LAZY_GROUPS if n not in own]
        return [n for n in names if self.get_command(ctx, n) is not None]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and (cmd_name in LAZY_COMMANDS or cmd_name in LAZY_GROUPS):
            loaded = _load_subcommand(cmd_name)
            if loaded is not None:
                self.commands[cmd_name] = loaded
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and self.get_command(ctx, args[0]) is None:
            self.list_commands(ctx)  # load them all: "Did you mean ...?" looks among every command
        return super().resolve_command(ctx, args)


def _load_subcommand(name: str) -> Any:
    """The click command ``name`` built from its sub-application; None when that part of the
    project is not installed/built (then ``bench`` works without it)."""
    module_name = LAZY_COMMANDS.get(name) or LAZY_GROUPS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    sub = getattr(module, "app", None)
    if sub is None:
        return None
    group = typer.main.get_group(sub)
    if name in LAZY_GROUPS:
        group.name = name
        return group
    return group.commands.get(name)


app = typer.Typer(
    name="bench",
    help="Bench controller for the Vethy VS02 PRO pack BMS: calibration, diagnostics, simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_LazyGroup,
)
sim_app = typer.Typer(help="The simulated VS02 bench (pack, BMS, supply, load, CAN adapter).",
                      no_args_is_help=True)
app.add_typer(sim_app, name="sim")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_ABORTED = 0, 1, 2, 3

StationOpt = Annotated[str | None, typer.Option("--station", help="Station file (default: the embedded simulated bench).")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="Simulator scenario: a built-in name or a YAML file.")]


def _fail_input(exc: InputError) -> None:
    err.print(f"error: {exc.format()}", markup=False)
    raise typer.Exit(EXIT_INPUT)


class _Terminate(KeyboardInterrupt):
    """SIGTERM is handled like Ctrl-C: the engine's finally turns the outputs off."""


def _install_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminate()

    signal.signal(signal.SIGTERM, handler)


@app.command()
def run(
    procedure: Annotated[Path, typer.Argument(help="Procedure YAML file.")],
    station: StationOpt = None,
    scenario: ScenarioOpt = None,
    serial: Annotated[str | None, typer.Option("--serial", help="Pack serial number (default: read from the BMS).")] = None,
    operator: Annotated[str, typer.Option("--operator", help="Who runs it (recorded).")] = "",
    param: Annotated[list[str] | None, typer.Option("--param", help="Override a parameter: NAME=VALUE (repeatable).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/<run-id>).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Answer operator prompts with their first choice (unattended).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record's summary as one JSON object.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Records database URL (default: BENCH_DB, the station's, or SQLite in the runs folder).")] = None,
    no_watchdog: Annotated[bool, typer.Option("--no-watchdog", help="Do not start the watchdog process.")] = False,
) -> None:
    """Run a procedure on the bench (the embedded simulated bench by default)."""
    try:
        params = parse_param_pairs(param or [])
    except InputError as exc:
        _fail_input(exc)
        return
    store = _start_store(station, db)
    # lazy: every command's module loads only when that command runs, so `bench --help` and the
    # other commands stay quick (bench.run loads the engine, the drivers and the simulator)
    from bench.run import RunRequest, execute_run

    request = RunRequest(
        procedure=procedure, station=station, scenario=scenario, serial=serial, operator=operator,
        params=params, out_dir=out_dir, yes=yes, db=db, watchdog=not no_watchdog,
        interactive=not as_json and sys.stdin.isatty(), store=store,
    )
    _run_and_finish(lambda: execute_run(request, console=None if as_json else out), as_json)


def _start_store(station: str | None, db: str | None) -> Any:
    """The run's records store writer, started before the engine's modules load: its process
    (~0.6 s to load its own) then starts up while they do, not while the run waits for it
    (issue 17). None when the station file does not load: the run then reports why. A database
    URL that cannot be one is refused here (InputError), before anything else happens."""
    # lazy: as above; the station's models are the engine's too, the writer module is small
    from bench.config import load_station
    from bench.store.writer import open_run_store

    try:
        config = load_station(station)
    except InputError:
        return None
    return open_run_store(db, config.database_url, Path(config.runs_dir))


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The run folder of an interrupted run.")],
    yes: Annotated[bool, typer.Option("--yes")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: Annotated[str | None, typer.Option("--db")] = None,
) -> None:
    """Continue a run killed at any point, from its last checkpoint."""
    # lazy: loaded by this command only (see `run`)
    from bench.run import resume_run

    _run_and_finish(lambda: resume_run(run_dir, yes=yes, db=db, console=None if as_json else out), as_json)


def _run_and_finish(start: Any, as_json: bool) -> None:
    """Run (or resume) with SIGTERM handled like Ctrl-C; map the outcome to the exit code."""
    try:
        _install_sigterm()
        record = start()
    except InputError as exc:
        _fail_input(exc)
        return
    except BenchError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_ABORTED) from None
    _finish(record, as_json)


def _finish(record: Any, as_json: bool) -> None:
    summary = {
        "run_id": record.run_id, "verdict": record.verdict, "abort_reason": record.abort_reason,
        "procedure": record.procedure.name, "pack_serial": record.pack.serial,
        "bench_hours": round(record.bench_hours, 3), "ah_charged": round(record.ah_charged, 3),
        "ah_discharged": round(record.ah_discharged, 3),
        "reference_capacity_ah": record.reference_capacity_ah,
        "bms_learned_capacity_ah": record.bms_learned_capacity_ah,
        "checks": [{"id": c.id, "passed": c.passed, "message": c.message} for c in record.checks],
        "failed_checks": [c.message for c in record.failed_checks],
        "outputs_not_confirmed_off": [o.model_dump(mode="json") for o in record.outputs_not_confirmed_off],
    }
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    danger = unconfirmed_outputs_warning(record.outputs_not_confirmed_off)
    if danger is not None:  # on stderr in every mode, impossible to scroll past unnoticed
        err.print(f"\n[bold reverse red] {escape(danger)} [/]\n")
    code = {"pass": EXIT_OK, "fail": EXIT_FAIL}.get(record.verdict, EXIT_ABORTED)
    _process_state["run_finished"] = True
    raise typer.Exit(code)


@sim_app.command("serve")
def sim_serve(
    scenario: Annotated[str, typer.Option("--scenario", help="Built-in scenario name or YAML file.")] = "healthy",
    speed: Annotated[float, typer.Option("--speed", help="Simulated seconds per real second.")] = 1.0,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    supply_family: Annotated[str | None, typer.Option("--supply-family")] = None,
    load_family: Annotated[str | None, typer.Option("--load-family")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the endpoints as one JSON object.")] = False,
    supply_port: Annotated[int, typer.Option("--supply-port", help="Supply SCPI TCP port (0 = any free).")] = 0,
    load_port: Annotated[int, typer.Option("--load-port", help="Load SCPI TCP port (0 = any free).")] = 0,
    can_port: Annotated[int, typer.Option("--can-port", help="SLCAN TCP port (0 = any free).")] = 0,
    control_port: Annotated[int, typer.Option("--control-port", help="Ground-truth JSON-lines port (0 = any free).")] = 0,
) -> None:
    """Serve the simulated bench standalone at --speed x real time until SIGINT/SIGTERM."""
    # lazy: loaded by this command only (see `run`)
    from bench.sim.serve import serve

    if speed <= 0:
        _fail_input(InputError("must be positive", field="--speed"))
    try:
        serve(scenario=scenario, speed=speed, host=host, supply_family=supply_family,
              load_family=load_family, as_json=as_json, console=out,
              ports={"supply_port": supply_port, "load_port": load_port, "can_port": can_port,
                     "control_port": control_port})
    except InputError as exc:
        _fail_input(exc)


@sim_app.command("scenarios")
def sim_scenarios() -> None:
    """List the built-in scenarios."""
    # lazy: loaded by this command only (see `run`)
    from bench.sim.scenario import builtin_scenarios, load_scenario

    for name in builtin_scenarios():
        out.print(f"{name:22s} {load_scenario(name).description}", markup=False)


@app.command()
def instruments(station: StationOpt = None, scenario: ScenarioOpt = None) -> None:
    """Connect to every instrument of a station; print identity, status, calibration and enforceable limits."""
    # lazy: loaded by this command only (see `run`)
    from bench.instruments_cmd import list_instruments

    try:
        code = list_instruments(station, scenario, out)
    except InputError as exc:
        _fail_input(exc)
        return
    raise typer.Exit(code)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except InputError as exc:  # raised outside a command (e.g. at mount time)
        err.print(f"error: {exc.format()}", markup=False)
        sys.exit(EXIT_INPUT)
    except BenchError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_ABORTED)
    except SystemExit as done:
        if _process_state["run_finished"] and (done.code is None or isinstance(done.code, int)):
            _exit_now(done.code or 0)
        raise


#: ``run_finished``: a run or resume has ended, its folder sealed, its report written and every
#: file and process of it closed: what is left for the interpreter is to free memory
_process_state = {"run_finished": False}


def _exit_now(code: int) -> None:
    """Exit at once, without the interpreter's teardown: after a calibration it frees the simulator,
    the models and the drivers object by object (~0.2 s of every ``bench run``, issue 17). The
    exit handlers still run and the terminal output is flushed; nothing else is left to do."""
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
