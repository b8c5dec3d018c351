"""``bench diag``: the pack-health read-out of the service procedure, over the calibration adapter.

Reads SOC, cells, divergence (and the condition it was measured in), SOH, cycles, temperatures,
fault codes of the last 90 days and the balancing log; applies the source's rules
(``bench.diagnostics.rules``) and prints the divergence class and the prescribed action.
Exit codes: 0 healthy / normal, 1 action recommended, 2 invalid input, 3 could not read.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Annotated

import typer
from rich.console import Console

from bench.config import StationConfig, load_station
from bench.diagnostics.model import Condition, DiagReport
from bench.diagnostics.readout import BmsTime, bring_to_end_of_cv, read_identity, read_pack
from bench.diagnostics.render import render
from bench.diagnostics.rules import DEFINED_CONDITION, assess
from bench.errors import BenchError, InputError

EXIT_INPUT, EXIT_UNREADABLE = 2, 3
# seconds of broadcast/BMS start-up to wait before reading (the BMS publishes at 1 Hz, battery.md §6.1)
SETTLE_S = 2.0

app = typer.Typer(add_completion=False)


def _check_inputs(station_path: str | None, scenario: str | None, condition: str,
                  install_date: str | None) -> tuple[StationConfig, Condition, date | None]:
    """Every input checked before any instrument is touched (InputError -> exit 2)."""
    if condition not in ("auto", "as_is", "full"):
        raise InputError(f"expected auto, as_is or full, got {condition!r}", field="--condition")
    install: date | None = None
    if install_date is not None:
        try:
            install = date.fromisoformat(install_date)
        except ValueError:
            raise InputError(f"expected a date YYYY-MM-DD, got {install_date!r}", field="--install-date") from None
    station = load_station(station_path)
    simulated = station.simulator is not None and station.simulator.mode == "in_process"
    if scenario is not None:
        if not simulated:
            raise InputError("--scenario applies only to a simulated station", field="--scenario")
        from bench.sim.serve import load_scenario_option  # lazy: python-can/cantools stay out of `bench --help`

        load_scenario_option(scenario)
    if condition == "full" and not simulated:
        raise InputError("--condition full charges the pack: on a real station run "
                         "`bench run procedures/pack_health.yaml` (safety limits, run record)", field="--condition")
    return station, condition, install  # type: ignore[return-value]


def diagnose(station: StationConfig, *, scenario: str | None = None, condition: Condition = "auto",
             install_date: date | None = None, progress: Console | None = None) -> DiagReport:
    """Connect, read as received, bring the pack to the end of CV if asked (``auto``: on a simulated
    station when the reading is not there already), read again and assess."""
    from bench.station import connect_bench  # lazy: pyvisa and python-can stay out of `bench --help`

    with connect_bench(station, scenario=scenario) as bench:
        bms_time = BmsTime(bench.clock)
        bench.clock.sleep(SETTLE_S)
        identity = read_identity(bench.adapter, install_date)
        as_received = read_pack(bench.adapter, bms_time.now())
        charge = condition == "full" or (
            condition == "auto" and bench.simulated and as_received.divergence_condition != DEFINED_CONDITION)
        measured, since = as_received, None
        if charge:
            since = bms_time.now()
            if progress is not None:
                progress.print("bringing the pack to the end of CV absorption (CC-CV 28.4 V to 0.05C)...")
            try:
                bring_to_end_of_cv(bench, progress=None if progress is None else progress.print)
                measured = read_pack(bench.adapter, bms_time.now())
            finally:
                bench.outputs_off()
        assessment = assess(identity, as_received, measured, brought_to_full=charge, now=bms_time.now(),
                            balancing_since=since)
    return DiagReport(identity=identity, condition=condition, brought_to_full=charge, as_received=as_received,
                      measured=measured, assessment=assessment)


StationOpt = Annotated[str | None, typer.Option("--station", help="Station file (default: the simulated bench).")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="Simulator scenario: built-in name or YAML file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the read-out and the assessment as one JSON object.")]
ConditionOpt = Annotated[str, typer.Option(
    "--condition", help="auto | as_is | full: charge to the end of CV before judging the divergence "
                        "(auto: on a simulated station when the reading is not there already).")]
InstallDateOpt = Annotated[str | None, typer.Option(
    "--install-date", help="Pack install date YYYY-MM-DD (warranty window; default: from the BMS if it has one).")]


@app.command("diag")
def diag(station: StationOpt = None, scenario: ScenarioOpt = None, as_json: JsonOpt = False,
         condition: ConditionOpt = "auto", install_date: InstallDateOpt = None) -> None:
    """Pack health: cells, divergence class, SOH, faults, balancing log and the prescribed action."""
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        station_cfg, cond, install = _check_inputs(station, scenario, condition, install_date)
    except InputError as exc:
        err.print(f"error: {exc.format()}", markup=False)
        raise typer.Exit(EXIT_INPUT) from None
    try:
        report = diagnose(station_cfg, scenario=scenario, condition=cond, install_date=install,
                          progress=None if as_json else err)
    except InputError as exc:
        err.print(f"error: {exc.format()}", markup=False)
        raise typer.Exit(EXIT_INPUT) from None
    except BenchError as exc:
        err.print(f"error: could not read the pack: {exc}", markup=False)
        raise typer.Exit(EXIT_UNREADABLE) from None
    if as_json:
        data = report.model_dump(mode="json")
        data["assessment"]["exit_code"] = report.assessment.exit_code
        data["generated_at"] = datetime.now().astimezone().isoformat()
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        render(report, out)
    raise typer.Exit(report.assessment.exit_code)
