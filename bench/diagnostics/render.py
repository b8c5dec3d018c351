"""Terminal rendering of a :class:`DiagReport` with rich (tables, a cell-voltage bar chart)."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bench.diagnostics.model import DiagReport, PackReading
from bench.diagnostics.rules import CELL_BAND_V

BAR_WIDTH = 40
CLASS_TEXT = {
    "normal": "normal (< 0.05 V): no action required",
    "balancing": "0.05-0.10 V: BMS balancing range",
    "extended_balancing": "0.10-0.15 V: beyond the BMS's balancing, extended balancing",
    "replacement": "> 0.15 V: cells degrading beyond balance, replacement flag",
}


def _when(stamp: datetime | None) -> str:
    return stamp.strftime("%Y-%m-%d %H:%M UTC") if stamp is not None else "-"


def cell_chart(reading: PackReading) -> Table:
    """One bar per cell on a scale zoomed to the spread, with the deviation from the mean in mV."""
    cells = reading.cell_voltages_v
    mean = sum(cells) / len(cells)
    low = min(*cells, mean - CELL_BAND_V) - 0.005
    high = max(*cells, mean + CELL_BAND_V) + 0.005
    table = Table(title=f"cell voltages (mean {mean:.3f} V; scale {low:.3f}-{high:.3f} V)", show_edge=False)
    for name, justify in (("cell", "right"), ("V", "right"), ("", "left"), ("Δ mean", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, v in enumerate(cells, start=1):
        n = round((v - low) / (high - low) * BAR_WIDTH)
        style = "red" if v == max(cells) else "cyan" if v == min(cells) else "green"
        if abs(v - mean) > CELL_BAND_V:
            style = "bold " + style
        table.add_row(str(i), f"{v:.3f}", Text("█" * n, style=style), f"{(v - mean) * 1000:+.0f} mV")
    return table


def render(report: DiagReport, console: Console) -> None:
    r, a, ident = report.measured, report.assessment, report.identity
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    install = f"{ident.install_date} ({ident.install_date_source})" if ident.install_date else "unknown"
    rows = [
        ("pack", f"{ident.serial}  BMS sw {ident.sw_version}  made {ident.manufacturing_date}  installed {install}"),
        ("read at", f"{_when(r.taken_at)}; divergence condition: {r.divergence_condition}"
                    + ("  (after a CC-CV charge to 28.4 V)" if report.brought_to_full else "")),
        ("SOC", f"{report.as_received.soc_pct:.1f} % as received"
                + (f", {r.soc_pct:.1f} % at the end of CV" if report.brought_to_full else "")
                + {True: "  consistent", False: "  NOT consistent", None: "  not judged"}[a.soc_consistent]
                + (f" (rested OCV allows {a.soc_window_pct[0]:.0f}-{a.soc_window_pct[1]:.0f} %)"
                   if a.soc_window_pct and not report.brought_to_full else "")),
        ("SOH", f"{r.soh_pct:.1f} %"),
        ("cycles", str(r.cycle_count)),
        ("pack", f"{r.pack_voltage_v:.2f} V, {r.current_a:+.2f} A"),
        ("temperatures", "cells " + " ".join(f"{t:.1f}" for t in r.temperatures_c[:8])
                         + f" °C; enclosure {r.temperatures_c[8]:.1f} °C" if len(r.temperatures_c) > 8 else ""),
        ("divergence", f"{a.divergence_v:.3f} V: {CLASS_TEXT[a.divergence_class]}"
                       + ("" if a.divergence_at_defined_condition else " (lower bound: not at the end of CV)")),
        ("balancing", f"active cells {r.balancing_active_cells or 'none'}, {r.balancing_time_s:.0f} s logged"
                      + {True: "; engaging", False: "; NOT engaging", None: ""}[a.balancing_engaging]),
        ("warranty", f"{a.warranty}" + (f" (until {a.warranty_until})" if a.warranty_until else "")),
    ]
    for key, value in rows:
        head.add_row(key, value)
    dtc_table = Table(title="fault codes (last 90 days)", show_edge=False)
    for col in ("code", "name", "status", "count", "first", "last", "freeze frame"):
        dtc_table.add_column(col)
    for d in r.dtcs:
        frame = ", ".join(f"{k} {v:g}" for k, v in (d.snapshot or {}).items())
        dtc_table.add_row(d.code, d.name, "active" if d.active else "stored", str(d.occurrences or "-"),
                          _when(d.first_seen), _when(d.last_seen), frame)
    log_table = Table(title="balancing activity log", show_edge=False)
    for col in ("start", "end", "cells", "Ah bled"):
        log_table.add_column(col)
    for e in r.balancing_log:
        log_table.add_row(_when(e.start), _when(e.end), " ".join(map(str, e.cells)), f"{e.ah_bled:.3f}")
    parts: list[Table | Text] = [head, cell_chart(r)]
    parts.append(dtc_table if r.dtcs else Text("fault codes (last 90 days): none"))
    parts.append(log_table if r.balancing_log else Text("balancing activity log: empty"))
    console.print(Panel(Group(*parts), title="VS02 PRO pack health"))
    verdict = Text("HEALTHY" if a.healthy else "NOT HEALTHY", style="bold green" if a.healthy else "bold yellow")
    console.print(Text("verdict: ") + verdict + Text(f"   divergence class: {a.divergence_class}"))
    for finding in a.findings:
        console.print(f"  note: {finding}", markup=False)
    if not a.actions:
        console.print("  action: none", markup=False)
    for action in a.actions:
        where = f"  [{action.procedure}]" if action.procedure else ""
        console.print(f"  action: {action.id}: {action.text}{where}", markup=False)
        console.print(f"          because {action.reason}", markup=False)
