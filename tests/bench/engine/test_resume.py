"""A run killed with SIGKILL mid-discharge and resumed ends like an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.bench.engine.conftest import PROCEDURES

SHORT = PROCEDURES / "short_cycle.yaml"


def _bench(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _in_discharge_with_checkpoint(run_dir: Path) -> bool:
    checkpoint = run_dir / "checkpoint.json"
    if not checkpoint.exists():
        return False
    try:
        state = json.loads(checkpoint.read_text())
    except ValueError:
        return False
    return state.get("step_pos") == 3 and state.get("step_started_at") is not None and \
        state["t_s"] - state["step_started_at"] > 120


def test_sigkill_mid_discharge_then_resume_matches_uninterrupted(run_procedure, tmp_path: Path):
    reference = run_procedure(SHORT, out=tmp_path / "uninterrupted")
    run_dir = tmp_path / "killed"
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    proc = _bench("run", str(SHORT), "--yes", "--out", str(run_dir), "--db", db, "--no-watchdog",
                  "--json", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not _in_discharge_with_checkpoint(run_dir):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never reached the discharge"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    record = json.loads((run_dir / "record.json").read_text())
    assert record["verdict"] == "running"  # killed: nothing had the chance to finish it
    # what the killed engine still had queued for its store writer died with it: here, all of it
    with sqlite3.connect(tmp_path / "bench.db") as connection:
        assert connection.execute("DELETE FROM samples WHERE run_id = ?", (record["run_id"],)).rowcount > 0

    resumed = _bench("resume", str(run_dir), "--yes", "--json", "--db", db, cwd=tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["verdict"] == reference.verdict == "pass"
    final = json.loads((run_dir / "record.json").read_text())
    assert any(e["kind"] == "resume_run" for e in final["events"])
    for key in ("ah_charged", "ah_discharged"):
        assert abs(final[key] - getattr(reference, key)) <= 0.001 * getattr(reference, key), key
    # one timeline in samples.csv, strictly increasing time; rows past the checkpoint kept aside
    with (run_dir / "samples.csv").open(newline="") as f:
        times = [float(r["t_s"]) for r in csv.DictReader(f)]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert abs(times[-1] - 35 * 60) <= 2
    _assert_store_holds_the_run_folder(db, run_dir)


def test_injected_controller_death_kills_the_run_and_resume_completes(run_procedure, tmp_path: Path):
    """Scenario fault ``controller_death``: the controller dies like a crash (SIGKILL, no finally)
    mid-discharge; the record is left running, and bench resume finishes it once, not again."""
    from tests.bench.engine.conftest import scenario_file

    scenario = scenario_file(tmp_path, "healthy", "faults:\n  - {at_s: 1500, kind: controller_death}\n")
    run_dir = tmp_path / "crashed"
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    proc = _bench("run", str(SHORT), "--yes", "--out", str(run_dir), "--db", db, "--scenario", scenario,
                  "--json", cwd=tmp_path)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((run_dir / "record.json").read_text())["verdict"] == "running"
    assert json.loads((run_dir / "fault-injection.json").read_text()) == ["controller_death"]

    resumed = _bench("resume", str(run_dir), "--yes", "--json", "--db", db, cwd=tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["verdict"] == "pass"
    final = json.loads((run_dir / "record.json").read_text())
    assert abs(final["ah_discharged"] - 10.0) < 0.05
    _assert_store_holds_the_run_folder(db, run_dir)


def _assert_store_holds_the_run_folder(db: str, run_dir: Path) -> None:
    """The database's copy ends complete: what the killed engine still had queued for its writer
    died with it, and the resumed run hands the whole samples.csv over again."""
    from bench.store import RunStore

    final = json.loads((run_dir / "record.json").read_text())
    with (run_dir / "samples.csv").open(newline="") as f:
        times = [float(r["t_s"]) for r in csv.DictReader(f)]
    store = RunStore(db)
    try:
        stored = store.get_record(final["run_id"])
        assert stored is not None and stored.verdict == final["verdict"]
        assert [row[0] for row in store.sample_rows(final["run_id"])] == times
    finally:
        store.close()
