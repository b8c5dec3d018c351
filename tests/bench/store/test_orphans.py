"""Runs left 'running' by a process that is gone are found and recorded as aborted (issue 18 item 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.record import RunRecord
from bench.store import RunStore
from bench.store.cli import app as db_app
from bench.store.liveness import RunLock, mark_orphan_runs, run_is_alive
from tests.synthetic import make_run_folder


def _running_run(runs_dir: Path, store: RunStore, run_id: str) -> Path:
    """A run folder and database row as a process leaves them when it dies mid-run."""
    source = make_run_folder(runs_dir / "src", hours=0.05)
    record = RunRecord.model_validate_json((source / "record.json").read_text())
    record = record.model_copy(update={"run_id": run_id, "verdict": "running", "ended_at": None,
                                       "abort_reason": None})
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "record.json").write_text(record.model_dump_json(indent=2))
    store.start_run(record)
    return run_dir


@pytest.fixture
def store(tmp_path: Path):
    run_store = RunStore(f"sqlite:///{tmp_path / 'runs' / 'bench.db'}")
    run_store.migrate()
    yield run_store
    run_store.close()


def test_lock_tells_a_live_run_from_a_dead_one(tmp_path: Path) -> None:
    run_dir = tmp_path / "20260101-000000-abcdef"
    run_dir.mkdir()
    assert run_is_alive(tmp_path / "elsewhere") is None   # not on this machine: cannot tell
    assert run_is_alive(run_dir) is False                  # nobody ever held it
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from bench.store.liveness import RunLock; "
        f"RunLock(Path({str(run_dir)!r})).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert run_is_alive(run_dir) is True
        with pytest.raises(OSError):
            RunLock(run_dir).acquire()  # a second engine cannot take a folder in use
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the kernel drops the lock
        holder.wait(10)
    assert run_is_alive(run_dir) is False


def test_orphans_marked_aborted_live_and_foreign_runs_left(tmp_path: Path, store: RunStore) -> None:
    runs = tmp_path / "runs"
    orphan = _running_run(runs, store, "20260101-000000-000001")
    live = _running_run(runs, store, "20260101-000000-000002")
    foreign = _running_run(runs, store, "20260101-000000-000003")
    for path in foreign.iterdir():
        path.unlink()
    foreign.rmdir()  # its folder is on another machine
    with RunLock(live):
        marked = mark_orphan_runs(store, runs, reason="orphaned: test")
    assert marked == [orphan.name]
    verdicts = {r.run_id: (r.verdict, r.abort_reason) for r in store.runs()}
    assert verdicts[orphan.name] == ("aborted", "orphaned: test")
    assert verdicts[live.name][0] == "running" and verdicts[foreign.name][0] == "running"
    on_disk = json.loads((orphan / "record.json").read_text())
    assert on_disk["verdict"] == "aborted" and on_disk["ended_at"]
    assert on_disk["events"][-1]["kind"] == "abort"


def test_bench_db_runs_never_lists_a_dead_running_run(tmp_path: Path, store: RunStore) -> None:
    runs = tmp_path / "runs"
    orphan = _running_run(runs, store, "20260101-000000-000004")
    result = CliRunner().invoke(db_app, ["runs", "--runs-dir", str(runs), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["run_id"], r["verdict"]) for r in rows] == [(orphan.name, "aborted")]
    assert "orphaned" in rows[0]["abort_reason"]


def test_concurrent_migrations_of_a_fresh_sqlite_file(tmp_path: Path) -> None:
    """Two benches of one station server starting at once both migrate the same new file."""
    import threading

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def migrate() -> None:
        store = RunStore(url)
        barrier.wait()
        try:
            store.migrate()
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
