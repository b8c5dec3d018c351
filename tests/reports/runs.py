"""Synthetic run folders shared by the report tests (built once per test module)."""

from __future__ import annotations

from pathlib import Path

from tests.synthetic import make_run_folder

ABORT_AT_S = 2500.0  # during the CC-CV charge of a 3-hour run


def complete_run(root: Path) -> Path:
    return make_run_folder(root, run_id="run-complete", hours=3.0)


def aborted_run(root: Path) -> Path:
    return make_run_folder(root, run_id="run-aborted", hours=3.0, abort_at_s=ABORT_AT_S)
