"""The terminal's progress lines (bench.progress)."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from bench.engine.events import ProgressEvent
from bench.progress import ProgressPrinter


def test_a_rest_steps_tiny_negative_total_prints_as_zero():
    out = StringIO()
    printer = ProgressPrinter(Console(file=out, width=200), procedure=None, clock=None)
    printer(ProgressEvent("step_ended", "run-1", 3600.0,
                          {"reason": "duration", "ah": -0.0001, "wh": -0.004, "duration_s": 3600.0}))
    printer(ProgressEvent("step_ended", "run-1", 7200.0,
                          {"reason": "low knee", "ah": -183.594, "wh": -4798.61, "duration_s": 3600.0}))
    lines = out.getvalue().splitlines()
    assert "+0.00 Ah  +0.0 Wh" in lines[0], lines[0]
    assert "-183.59 Ah  -4798.6 Wh" in lines[1], lines[1]
