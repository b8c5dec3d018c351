"""A records store that hangs never stalls the control loop (issue 18 point 2, the engine's side):
the run samples, judges and ends on time; the record says the store's copy is incomplete."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import bench.engine.runner as runner
import bench.run as run_module
from bench.run import RunRequest, execute_run
from tests.bench.engine.conftest import PROCEDURES


class _HangingStore:
    """Stands in for a PostgreSQL whose port accepts and never answers: every call blocks."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []

    def __getattr__(self, method: str):
        def hang(*args: object) -> None:
            self.calls.append(method)
            self.release.wait()
        return hang


def test_a_hung_records_store_does_not_stall_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _HangingStore()
    monkeypatch.setattr(run_module, "_open_store", lambda *args: store)
    monkeypatch.setattr(runner, "STORE_DRAIN_TIMEOUT_S", 1.0)
    started = time.monotonic()
    try:
        record = execute_run(RunRequest(procedure=PROCEDURES / "short_cycle.yaml", out_dir=tmp_path / "run",
                                        yes=True, watchdog=False), console=None)
    finally:
        store.release.set()
    assert record.verdict == "pass"
    assert record.sample_count > 2000  # every control interval of the 35 bench minutes was sampled
    assert store.calls == ["start_run"]  # the writer was stuck on the first call all along
    assert any(e.message.startswith("records store did not answer") for e in record.events)
    assert time.monotonic() - started < 120.0
