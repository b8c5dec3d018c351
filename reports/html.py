"""The HTML run report (one self-contained file, plots inline) and the pack history page."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import BytecodeCache, Environment, FileSystemBytecodeCache, FileSystemLoader, select_autoescape
from jinja2.bccache import Bucket
from markupsafe import Markup

from bench.record import (
    CheckRecord,
    EventRecord,
    InstrumentIdentity,
    PackVisit,
    RunRecord,
    StepRecord,
    unconfirmed_outputs_warning,
)
from reports.charts import CHART_COLUMNS, end_of_charge_divergence, run_charts
from reports.plots import Chart, HLine, Series, render_svg
from reports.rundir import RunData, load_run

TEMPLATES = Path(__file__).parent / "templates"
REPORT_FILE = "report.html"
#: Event kinds listed under "Deviations, warnings and aborts".
DEVIATION_KINDS = ("warning", "trip", "pause", "resume", "abort", "operator", "watchdog", "resume_run")
log = logging.getLogger(__name__)
_REPORT_NAMESPACE = uuid.UUID("6f1c2a4e-93b1-4d43-9a43-56d3c0a1b002")


class TemplateCache(FileSystemBytecodeCache):
    """Jinja's cache of compiled templates, keyed by each template's source (a private folder in
    the temporary directory by default): compiling the report template cost every run ~25 ms
    (issue 17). A cache that cannot be written is no error: the template is compiled as without one."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:  # e.g. the folder removed by a temporary-files cleaner
            log.debug("template cache not written: %s", exc)


def _template_cache() -> BytecodeCache | None:
    try:
        return TemplateCache()
    except (OSError, RuntimeError):  # no private folder can be made: compile every time
        return None


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True, lstrip_blocks=True, bytecode_cache=_template_cache(),
)


@dataclass
class InstrumentRow:
    identity: InstrumentIdentity
    overdue: bool


@dataclass
class ResultRow:
    check: CheckRecord
    value: str
    limits: str

    @property
    def detail(self) -> str:
        """The engine's judgement without the "id: description: " it starts with (both are
        printed just above it)."""
        message = self.check.message or ""
        for prefix in (f"{self.check.id}: {self.check.description}: ", f"{self.check.id}: "):
            if message.startswith(prefix):
                return message[len(prefix):]
        return message


@dataclass
class StepRow:
    step: StepRecord
    duration: str


def report_id(record: RunRecord) -> str:
    """A stable UUID for the run's report (same run → same id, so re-rendering does not fork it)."""
    return str(uuid.uuid5(_REPORT_NAMESPACE, f"{record.run_id}/{record.started_at.isoformat()}"))


def run_duration(bench_s: float | None, wall_s: float | None) -> str:
    """The run's length. On a simulated bench the bench hours and the wall seconds differ by the
    simulator's speed-up: show the bench time the samples span, and the wall time beside it."""
    if bench_s is None or wall_s is None:
        return format_duration(wall_s if bench_s is None else bench_s)
    if abs(bench_s - wall_s) <= max(2.0, 0.05 * bench_s):
        return format_duration(wall_s)
    return f"{format_duration(bench_s)} bench time ({format_duration(wall_s)} wall)"


def fixed(value: float, digits: int) -> str:
    """``value`` to ``digits`` decimals, without the "-0.00" a tiny negative rounds to (a rest
    step's -0.0001 Ah of self-discharge read as a discharge)."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 3600:d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def format_value(value: float | str | bool | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_limits(check: CheckRecord) -> str:
    if check.reference is not None and check.tolerance is not None:
        unit = "%" if check.tolerance_kind == "pct" else f" {check.unit}".rstrip()
        return f"{check.reference:g} ± {check.tolerance:g}{unit}"
    if check.low is not None and check.high is not None:
        return f"{check.low:g} … {check.high:g}"
    if check.low is not None:
        return f"≥ {check.low:g}"
    if check.high is not None:
        return f"≤ {check.high:g}"
    return "—"


def _instrument_overdue(instrument: InstrumentIdentity, on: date) -> bool:
    return instrument.calibration_overdue or (
        instrument.calibration_due is not None and instrument.calibration_due < on
    )


def report_context(run: RunData, generated_at: datetime | None = None) -> dict[str, Any]:
    record = run.record
    on = record.started_at.date()
    instruments = [InstrumentRow(i, _instrument_overdue(i, on)) for i in record.instruments]
    deviations = [e for e in record.events if e.kind in DEVIATION_KINDS]
    deviations += [  # an overdue instrument is a deviation even if the engine logged nothing
        _overdue_note(row.identity) for row in instruments
        if row.overdue and not any(row.identity.name in e.message for e in deviations)
    ]
    samples = run.samples
    t_end = float(samples["t_s"][-1]) if len(samples) else None
    return {
        "record": record,
        "outputs_warning": unconfirmed_outputs_warning(record.outputs_not_confirmed_off),
        "report_id": report_id(record),
        "generated_at": (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "instruments": instruments,
        "steps": [StepRow(s, format_duration(None if s.end_s is None else s.end_s - s.start_s))
                  for s in record.steps],
        "results": [ResultRow(c, format_value(c.value), format_limits(c)) for c in record.checks],
        "failed": len(record.failed_checks),
        "deviations": sorted(deviations, key=lambda e: e.t_s),
        "charts": [Markup(render_svg(c)) for c in run_charts(record, samples)] if len(samples) else [],
        "divergence_at_end_of_charge": end_of_charge_divergence(record, samples),
        "files": run.files,
        "sample_count": len(samples),
        "data_until": format_duration(t_end),
        "duration": run_duration(
            t_end, (record.ended_at - record.started_at).total_seconds() if record.ended_at else None),
        "fmt_duration": format_duration,
        "fixed": fixed,
    }


def _overdue_note(instrument: InstrumentIdentity) -> EventRecord:
    due = instrument.calibration_due.isoformat() if instrument.calibration_due else "unknown"
    return EventRecord(t_s=0.0, kind="warning",
                       message=f"instrument {instrument.name}: calibration overdue (due {due})")


def render_report(run: RunData, generated_at: datetime | None = None) -> str:
    return _environment.get_template("report.html.j2").render(**report_context(run, generated_at))


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Render ``run_dir``'s report to ``out`` (default ``run_dir/report.html``); return the path."""
    target = out or run_dir / REPORT_FILE
    target.write_text(render_report(load_run(run_dir, CHART_COLUMNS)), encoding="utf-8")
    return target


def render_pack_history(serial: str, visits: Sequence[PackVisit]) -> str:
    """A pack's visits as a table with a SOH / capacity trend chart."""
    chart_svg = ""
    if visits:
        first = visits[0].started_at
        days = np.array([(v.started_at - first).total_seconds() / 86400.0 for v in visits])

        def column(values: list[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=float)

        chart = Chart(f"Pack {serial}: state of health per visit", "days since first visit", "%", [
            Series("SOH (measured)", days, column([v.soh_pct for v in visits]), "#2b8a3e", 2.0, points=True),
            Series("SOH (BMS, as received)", days, column([v.as_received_soh_pct for v in visits]),
                   "#7b2cbf", 1.4, "5 3", points=True),
        ], hlines=[HLine(85.0, "85 % healthy"), HLine(70.0, "70 % replace")])  # battery.md §8 soh thresholds
        chart_svg = Markup(render_svg(chart))
    return _environment.get_template("pack.html.j2").render(
        serial=serial, visits=visits, chart=chart_svg, fmt=format_value,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
