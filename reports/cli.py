"""``bench report`` and ``bench export``: the outputs of one run folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bench.errors import InputError
from reports.export import FORMATS, export_samples
from reports.html import REPORT_FILE, write_report
from reports.junit import write_junit
from reports.pdf import html_to_pdf
from reports.rundir import RECORD_FILE, load_record

app = typer.Typer(help="Run reports and data exports.", no_args_is_help=True, add_completion=False)
REPORT_FORMATS = ("html", "pdf", "json", "junit")
_DEFAULT_NAMES = {"html": REPORT_FILE, "pdf": "report.pdf", "junit": "junit.xml"}

RunArg = Annotated[str, typer.Argument(help="Run folder, or a run id under --runs-dir.")]
RunsDirOpt = Annotated[Path, typer.Option("--runs-dir", help="Where run folders live.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Output file (default: inside the run folder).")]


def resolve_run_dir(run: str, runs_dir: Path) -> Path:
    """``run`` as a folder holding record.json, else as a run id under ``runs_dir``."""
    for candidate in (Path(run), runs_dir / run):
        if (candidate / RECORD_FILE).is_file():
            return candidate
    raise InputError(f"no run folder with {RECORD_FILE} at {run!r} or {runs_dir / run}", field="RUN")


@app.command("report")
def report_command(
    run: RunArg,
    fmt: Annotated[str, typer.Option("--format", help="html | pdf | json | junit")] = "html",
    out: OutOpt = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also print the HTML report to PDF.")] = False,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Write a run's report: HTML (default), PDF (headless Chromium), record JSON or JUnit XML."""
    if fmt not in REPORT_FORMATS:
        raise InputError(f"unknown report format {fmt!r}; choose one of {', '.join(REPORT_FORMATS)}",
                         field="--format")
    run_dir = resolve_run_dir(run, runs_dir)
    if fmt == "json":
        text = (run_dir / RECORD_FILE).read_text(encoding="utf-8")
        load_record(run_dir)  # validate before handing it on
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
            typer.echo(out)
        return
    target = out or run_dir / _DEFAULT_NAMES[fmt]
    if fmt == "junit":
        typer.echo(write_junit(load_record(run_dir), target))
        return
    html = write_report(run_dir, target if fmt == "html" else run_dir / REPORT_FILE)
    if fmt == "html":
        typer.echo(html)
    if fmt == "pdf" or pdf:
        pdf_target = target if fmt == "pdf" else html.with_suffix(".pdf")
        typer.echo(html_to_pdf(html, pdf_target))


@app.command("export")
def export_command(
    run: RunArg,
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "parquet",
    out: OutOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Export a run's samples as CSV or Parquet."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}",
                         field="--format")
    typer.echo(export_samples(resolve_run_dir(run, runs_dir), fmt, out))
