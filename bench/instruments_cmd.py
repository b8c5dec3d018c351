"""``bench instruments``: connect to every instrument of a station and report on it.

One column per instrument and one row per property, so the table stays readable at 80
columns (a pipe, a CI log) as well as on a wide terminal. Exit code 0 when every instrument
answered, 3 naming each that did not (also printed as plain ``FAILED`` lines for logs).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.config import ScpiInstrumentConfig, StationConfig, load_station
from bench.errors import BenchError, InputError
from bench.sim.serve import load_scenario_option
from bench.station import connect_bench

EXIT_INSTRUMENT_FAILED = 3
ROWS = ("family", "make / model", "serial", "firmware", "resource", "calibration due",
        "ratings", "enforceable limits", "limits set", "status")


def _due_text(due: date | None, today: date) -> str:
    if due is None:
        return "-"
    return f"[red]{due} OVERDUE[/]" if due < today else str(due)


def _power_column(drv: Any, cfg: ScpiInstrumentConfig, today: date) -> dict[str, str]:
    """Identity, ratings, instrument-side limits and status of a supply or load (raises BenchError)."""
    ident = drv.identify()
    tripped = drv.protection_tripped()
    settings = drv.protection_settings()
    ranges = drv.ranges
    return {
        "family": cfg.family,
        "make / model": f"{ident.make} {ident.model}",
        "serial": ident.serial,
        "firmware": ident.firmware,
        "resource": str(cfg.resource),
        "calibration due": _due_text(cfg.calibration_due, today),
        "ratings": f"{ranges.v_max:g} V / {ranges.i_max:g} A / {ranges.p_max:g} W",
        "enforceable limits": ", ".join(sorted(drv.capabilities.limits)) or "-",
        "limits set": ", ".join(f"{k} {v:g}" for k, v in settings.items() if v is not None) or "none",
        "status": "ok" if not tripped else "[red]tripped: " + ", ".join(tripped) + "[/]",
    }


def _adapter_column(adapter: Any, station: StationConfig) -> dict[str, str]:
    ident = adapter.read_identity()
    return {
        "family": "vs02-cal-24",
        "make / model": "Vethy VS02-CAL-24 -> BMS",
        "serial": ident.get("serial", ""),
        "firmware": ident.get("sw_version", ""),
        "resource": f"{station.adapter.interface}:{station.adapter.channel}",
        "calibration due": "-",
        "ratings": f"CAN {station.adapter.bitrate // 1000} kbit/s",
        "enforceable limits": "BMS contactor (cell OV/UV, OT, OC)",
        "limits set": "-",
        "status": f"ok, bus {adapter.bus_state()}",
    }


def _failed_column(family: str, resource: str, exc: BenchError) -> dict[str, str]:
    column = dict.fromkeys(ROWS, "-")
    column.update({"family": family, "resource": resource, "status": f"[red]FAILED: {exc}[/]"})
    return column


def list_instruments(station_path: str | None, scenario: str | None, console: Console) -> int:
    station = load_station(station_path)
    if scenario is not None and station.simulator is None:
        raise InputError("--scenario applies only to a simulated station", field="--scenario")
    if scenario is not None:
        load_scenario_option(scenario)  # a bad scenario is invalid input (exit 2), not a failed instrument
    try:
        bench = connect_bench(station, scenario=scenario)
    except InputError:
        raise
    except BenchError as exc:
        console.print(f"FAILED {exc}", markup=False)
        return EXIT_INSTRUMENT_FAILED
    columns: dict[str, dict[str, str]] = {}
    failures: list[str] = []
    today = date.today()
    with bench:
        for role, drv, cfg in (("supply", bench.supply, station.supply), ("load", bench.load, station.load)):
            try:
                columns[role] = _power_column(drv, cfg, today)
            except BenchError as exc:
                failures.append(f"{role} ({cfg.resource}): {exc}")
                columns[role] = _failed_column(cfg.family, str(cfg.resource), exc)
        try:
            columns["adapter"] = _adapter_column(bench.adapter, station)
        except BenchError as exc:
            where = f"{station.adapter.interface}:{station.adapter.channel}"
            failures.append(f"adapter ({where}): {exc}")
            columns["adapter"] = _failed_column("vs02-cal-24", where, exc)
    table = Table(title=f"station {station.name}" + (" (simulated)" if bench.simulated else ""))
    table.add_column("", no_wrap=True)
    for role in columns:
        table.add_column(role, overflow="fold")
    for row in ROWS:
        table.add_row(row, *(columns[role][row] for role in columns))
    console.print(table)
    for failure in failures:
        console.print(f"FAILED {failure}", markup=False)
    return 0 if not failures else EXIT_INSTRUMENT_FAILED
