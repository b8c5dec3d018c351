"""The HTML report: every section, self-contained, rendered by a real browser."""

from __future__ import annotations

import hashlib
import re
from html import escape

import numpy as np
import pytest

from bench.record import RunRecord
from reports import charts
from reports.html import fixed, format_duration, format_limits, report_id, run_duration, write_report
from reports.pdf import find_browser, html_to_pdf, screenshot
from reports.plots import decimate_minmax
from tests.reports.png import color_pixels, read_png
from tests.reports.runs import ABORT_AT_S, aborted_run, complete_run

needs_browser = pytest.mark.skipif(find_browser() is None,
                                   reason="no Chromium on PATH (apt-get install chromium)")


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    run_dir = complete_run(tmp_path_factory.mktemp("runs"))
    html = write_report(run_dir)
    return run_dir, RunRecord.model_validate_json((run_dir / "record.json").read_text()), html


@pytest.fixture(scope="module")
def aborted(tmp_path_factory):
    run_dir = aborted_run(tmp_path_factory.mktemp("runs"))
    record = RunRecord.model_validate_json((run_dir / "record.json").read_text())
    return run_dir, record, write_report(run_dir)


def test_report_holds_every_section(complete):
    run_dir, record, html_path = complete
    html = html_path.read_text()
    for section in ("header", "uut", "instruments", "steps", "results", "deviations", "plots", "files"):
        assert f'id="{section}"' in html
    expected = [
        report_id(record), record.station.name, record.station.location, record.procedure.name,
        record.procedure.version, record.procedure.sha256, f"bench {record.software_version}", "SIMULATED",
        record.pack.serial, record.pack.bms_sw_version, record.pack.bms_serial, "P0A7F-00", "312",
        record.operator, "2025-01-31 — OVERDUE", *(i.serial for i in record.instruments if i.serial),
        *(s.end_reason for s in record.steps), *(format_limits(c) for c in record.checks),
        record.checks[0].decision_rule, "calibration overdue",
    ]
    missing = [text for text in expected if escape(text, quote=False) not in html]
    assert not missing
    failed = [c for c in record.checks if not c.passed]
    assert failed, "the synthetic run is built with one failing check"
    assert html.count('class="fail">FAIL') == len(failed)
    assert html.count('class="pass">PASS') == len(record.checks) - len(failed)
    for name in ("samples.csv", "can.blf", "events.jsonl", "record.json"):
        assert hashlib.sha256((run_dir / name).read_bytes()).hexdigest() in html
    assert html.count("<svg") == 6
    assert not re.search(r'(src|href)="(https?:)?//', html), "report must not load anything from elsewhere"
    assert html_path.stat().st_size < 5_000_000


def test_aborted_run_reports_reason_and_data_up_to_abort(aborted):
    _, record, html_path = aborted
    html = html_path.read_text()
    assert 'id="abort"' in html
    assert record.abort_reason and record.abort_reason in html
    assert "t = 0:41:40" in html  # 2500 s: the last sample
    assert html.count("<svg") == 6
    assert ">abort</text>" in html  # the abort marker on the charts
    assert "run aborted before its checks" in html
    assert [s.id for s in record.steps] == ["rest_initial", "charge_full"]
    assert "aborted: safety trip" in html
    assert record.steps[-1].end_s == ABORT_AT_S


def test_minmax_decimation_keeps_spikes_and_order():
    x = np.arange(86_400, dtype=float)
    y = np.sin(x / 5000.0)
    y[12_345] = 9.0
    y[54_321] = -9.0
    dx, dy = decimate_minmax(x, y, 2000)
    assert len(dx) <= 2100
    assert dy.max() == 9.0 and dy.min() == -9.0
    assert np.all(np.diff(dx) > 0)


@needs_browser
def test_browser_renders_plots_and_results(complete, tmp_path):
    _, record, html_path = complete
    image = read_png(screenshot(html_path, tmp_path / "report.png"))
    assert (image < 250).any(axis=2).mean() > 0.05, "screenshot is (nearly) blank"
    # lines of 2 px keep their exact colour; a legend swatch alone is 56 px
    for color in (charts.PACK_V_COLOR, charts.PACK_I_COLOR, charts.TEMP_MAX_COLOR, charts.BMS_SOC_COLOR,
                  charts.DIVERGENCE_COLOR):
        assert color_pixels(image, color) > 300, color
    cells = [color_pixels(image, color) for color in charts.CELL_COLORS]
    assert sum(count > 56 for count in cells) >= 6, cells  # cells overlap on the plateau
    # results table: the PASS and FAIL cells are solid green / red boxes
    assert color_pixels(image, "#2f9e44") > 2000 * (len(record.checks) - len(record.failed_checks)) / 2
    assert color_pixels(image, "#e03131") > 1000


@needs_browser
def test_pdf_has_pages(complete, tmp_path):
    _, _, html_path = complete
    pdf = html_to_pdf(html_path, tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 3


def test_duration_shows_bench_time_when_the_simulator_ran_faster_than_the_wall():
    # a 55 min 50 s simulated charge that took 1 s of wall time: the bench time is what matters
    assert run_duration(3350.0, 1.2) == "0:55:50 bench time (0:00:01 wall)"
    # real hardware: bench and wall time agree, one figure
    assert run_duration(3350.0, 3351.0) == format_duration(3351.0)
    assert run_duration(None, 10.0) == format_duration(10.0)



def test_a_tiny_negative_step_total_reads_zero_not_minus_zero():
    assert fixed(-0.0001, 2) == "0.00" and fixed(-0.004, 1) == "0.0"
    assert fixed(-183.594, 2) == "-183.59" and fixed(-0.006, 2) == "-0.01" and fixed(0.0, 2) == "0.00"


def test_the_same_run_renders_the_same_page_byte_for_byte(complete):
    """In another process too (an id taken from object addresses differs there)."""
    import subprocess
    import sys
    from datetime import UTC, datetime

    from reports.html import render_report
    from reports.rundir import load_run

    run_dir = complete[0]
    issued = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    here = render_report(load_run(run_dir), issued)
    assert "clip-path" in here
    script = ("import sys; from datetime import UTC, datetime; from pathlib import Path; "
              "from reports.html import render_report; from reports.rundir import load_run; "
              "sys.stdout.write(render_report(load_run(Path(sys.argv[1])), "
              "datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))")
    there = subprocess.run([sys.executable, "-c", script, str(run_dir)], capture_output=True,
                           text=True, check=True).stdout
    assert there == here


def test_the_compiled_template_is_cached_and_an_unwritable_cache_is_no_error(complete, tmp_path):
    """The template cache (issue 17: ~25 ms of every run) renders the same page from a compiled
    template it stored, and a cache folder that has gone away only means compiling again."""
    from datetime import UTC, datetime

    from jinja2 import Environment, FileSystemLoader

    from reports import html
    from reports.rundir import load_run

    issued = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    expected = html.render_report(load_run(complete[0]), issued)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()

    def environment(directory):
        return Environment(loader=FileSystemLoader(html.TEMPLATES), autoescape=html._environment.autoescape,
                           trim_blocks=True, lstrip_blocks=True, bytecode_cache=html.TemplateCache(str(directory)))

    def render(env):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(html, "_environment", env)
            return html.render_report(load_run(complete[0]), issued)

    assert render(environment(cache_dir)) == expected
    stored = list(cache_dir.iterdir())
    assert stored and all(path.stat().st_size > 0 for path in stored)  # the page and what it includes
    assert render(environment(cache_dir)) == expected  # from the stored code this time
    assert render(environment(tmp_path / "gone")) == expected
