"""A records store that hangs never stalls the control loop (issue 18 point 2, the engine's side):
the run samples, judges and ends on time; the record says the store's copy is incomplete."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import bench.engine.runner as runner
import bench.run as run_module
from bench.run import RunRequest, execute_run
from bench.store.writer import StoreWriter
from tests.bench.engine.conftest import PROCEDURES
from tests.bench.store.test_writer import _silent_server


def test_a_hung_records_store_does_not_stall_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, accepted = _silent_server()  # a PostgreSQL port that accepts and never answers
    url = f"postgresql+psycopg://bench@127.0.0.1:{server.getsockname()[1]}/bench"
    writers: list[StoreWriter] = []

    def open_store(*args: object) -> StoreWriter:  # the run's own writer, without the migration
        writers.append(StoreWriter(url, timeout_s=60.0, migrate=False))
        return writers[-1]

    monkeypatch.setattr(run_module, "open_store", open_store)
    monkeypatch.setattr(runner, "STORE_DRAIN_TIMEOUT_S", 1.0)
    started = time.monotonic()
    try:
        record = execute_run(RunRequest(procedure=PROCEDURES / "short_cycle.yaml", out_dir=tmp_path / "run",
                                        yes=True, watchdog=False), console=None)
    finally:
        server.close()
    assert record.verdict == "pass"
    assert record.sample_count > 2000  # every control interval of the 35 bench minutes was sampled
    assert accepted  # the writer was stuck connecting all along
    assert any(e.message.startswith("records store did not answer") for e in record.events)
    assert writers[0]._process.poll() is not None  # killed at the end, not left behind
    assert time.monotonic() - started < 120.0


def test_a_run_that_fails_before_its_record_leaves_no_writer_behind(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    writers: list[StoreWriter] = []
    open_store = run_module.open_store

    def recorded(*args: object) -> StoreWriter:
        writers.append(open_store(*args))
        return writers[-1]

    def broken_hook(engine: object) -> None:
        raise RuntimeError("the caller's hook failed")

    monkeypatch.setattr(run_module, "open_store", recorded)
    with pytest.raises(RuntimeError, match="hook failed"):
        execute_run(RunRequest(procedure=PROCEDURES / "short_cycle.yaml", out_dir=tmp_path / "run", yes=True,
                               watchdog=False, db=f"sqlite:///{tmp_path / 'bench.db'}", on_engine=broken_hook),
                    console=None)
    assert len(writers) == 1
    assert writers[0]._process.poll() == 0  # closed and ended, not left waiting on its stdin
    assert not writers[0]._feeder.is_alive()
