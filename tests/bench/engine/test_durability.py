"""How often a run writes durably: real hardware against power loss, a simulated run against a
killed controller only (tests/bench/engine/test_resume.py proves a resume after SIGKILL)."""

from __future__ import annotations

import os

from bench.engine.checkpoint import CheckpointWriter, checkpoint_policy
from tests.bench.engine.conftest import PROCEDURES

SHORT = PROCEDURES / "short_cycle.yaml"


def test_real_hardware_keeps_30_s_checkpoints_and_fsyncs_samples_every_5_s():
    policy = checkpoint_policy(simulated=False)
    assert (policy.every_s, policy.sample_sync_every_s, policy.fsync) == (30.0, 5.0, True)
    assert checkpoint_policy(simulated=False, every_s=10.0).every_s == 10.0


def test_simulated_run_checkpoints_every_600_s_and_step_end_and_never_fsyncs(run_procedure, monkeypatch):
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    written: list[float] = []
    write = CheckpointWriter.write

    def recording_write(self: CheckpointWriter, state, t_s: float, sim_state) -> None:  # type: ignore[no-untyped-def]
        written.append(t_s)
        write(self, state, t_s, sim_state)

    monkeypatch.setattr(CheckpointWriter, "write", recording_write)
    record = run_procedure(SHORT)
    assert record.verdict == "pass"
    assert fsyncs == []
    ends = {round(s.end_s or 0.0, 6) for s in record.steps}
    periodic = [t for t in written if round(t, 6) not in ends]
    # 35 min of bench time: a handful of checkpoints, not one every 30 s (70 of them)
    assert len(written) <= len(record.steps) + 35 * 60 / 600 + 1
    assert periodic and all(b - a >= 600.0 - 1e-6 for a, b in zip(written, written[1:], strict=False)
                            if round(b, 6) not in ends)
