"""``bench instruments``: connect to every instrument of a station and report on it."""

from __future__ import annotations

from datetime import date

from rich.console import Console
from rich.table import Table

from bench.config import load_station
from bench.errors import BenchError, InputError


def list_instruments(station_path: str | None, scenario: str | None, console: Console) -> int:
    from bench.station import connect_bench

    station = load_station(station_path)
    if scenario is not None and station.simulator is None:
        raise InputError("--scenario applies only to a simulated station", field="--scenario")
    try:
        bench = connect_bench(station, scenario=scenario)
    except BenchError as exc:
        console.print(f"[red]FAILED[/] {exc}")
        return 3
    failures = 0
    table = Table(title=f"station {station.name}" + (" (simulated)" if bench.simulated else ""))
    for col in ("role", "family", "make / model", "serial", "firmware", "resource",
                "calibration due", "instrument-side limits", "status"):
        table.add_column(col)
    with bench:
        today = date.today()
        for role, drv, cfg in (("supply", bench.supply, station.supply), ("load", bench.load, station.load)):
            try:
                ident = drv.identify()
                tripped = drv.protection_tripped()
                status = "ok" if not tripped else "tripped: " + ", ".join(tripped)
                due = cfg.calibration_due
                due_text = "-" if due is None else (f"[red]{due} OVERDUE[/]" if due < today else str(due))
                caps = ", ".join(sorted(drv.capabilities))
                table.add_row(role, cfg.family, f"{ident.make} {ident.model}", ident.serial, ident.firmware,
                              str(cfg.resource), due_text, caps, status)
            except BenchError as exc:
                failures += 1
                table.add_row(role, cfg.family, "-", "-", "-", str(cfg.resource), "-", "-", f"[red]{exc}[/]")
        try:
            ident = bench.adapter.read_identity()
            where = f"{station.adapter.interface}:{station.adapter.channel}"
            table.add_row("adapter", "vs02-cal-24", "Vethy VS02-CAL-24 -> BMS", ident.get("serial", ""),
                          ident.get("sw_version", ""), where,
                          "-", "BMS contactor (cell OV/UV, OT, OC)", bench.adapter.bus_state())
        except BenchError as exc:
            failures += 1
            table.add_row("adapter", "vs02-cal-24", "-", "-", "-", station.adapter.channel, "-", "-",
                          f"[red]{exc}[/]")
    console.print(table)
    return 0 if failures == 0 else 3
