"""A self-contained HTML page for a :class:`~bench.fleet.analyze.FleetReport` (inline CSS, no scripts)."""

from __future__ import annotations

from html import escape
from typing import Any

from bench.fleet.analyze import Flag, FleetReport
from bench.fleet.rules import RULES

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f0f0f0}.rule{font-weight:600}.muted{color:#777}
"""


def format_evidence(evidence: dict[str, Any]) -> str:
    """``key=value`` pairs in the evidence's own order; the text used in terminal and HTML output."""
    return ", ".join(f"{key}={value}" for key, value in evidence.items() if value is not None)


def held_text(flag: Flag) -> str:
    """``2025-03-04 .. 2025-05-01`` or ``2025-03-04 .. now (active)``."""
    return f"{flag.first_held} .. {flag.last_held}" + (" (active)" if flag.active else "")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: FleetReport, title: str = "Fleet battery service report") -> str:
    sources = _table(["file", "rows", "rows skipped"],
                     [[escape(s.file), str(s.rows), str(s.rows_skipped)] for s in report.sources])
    flags = _table(["vehicle", "rule", "held", "evidence (last day held)", "action"], [
        [escape(f.vehicle_id), f'<span class="rule">{escape(f.rule)}</span><br>{escape(f.title)}',
         escape(held_text(f)), escape(format_evidence(f.evidence)), escape(f.action)] for f in report.flags])
    rules = _table(["rule", "meaning"], [[escape(r.name), escape(r.title)] for r in RULES])
    errors = ""
    if report.row_errors_total:
        listed = _table(["file:line", "problem"],
                        [[escape(f"{e.file}:{e.line}"), escape(e.message)] for e in report.row_errors])
        more = report.row_errors_total - len(report.row_errors)
        errors = (f"<h2>Skipped rows ({report.row_errors_total})</h2>{listed}"
                  + (f'<p class="muted">… and {more} more</p>' if more > 0 else ""))
    flagged = len({f.vehicle_id for f in report.flags})
    active = sum(f.active for f in report.flags)
    return (
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<p>{report.vehicles} vehicles, {report.rows_used} rows from {escape(str(report.period_start))} "
        f"to {escape(str(report.period_end))}; <strong>{flagged} vehicles with alerts</strong>, "
        f"{len(report.flags)} alerts ({active} active at the end).</p>"
        f"<h2>Alerts</h2>{flags if report.flags else '<p>No alert.</p>'}"
        f"<h2>Sources</h2>{sources}{errors}<h2>Rules</h2>{rules}</body></html>\n"
    )
