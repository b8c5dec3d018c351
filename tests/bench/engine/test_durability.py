"""How often a run writes durably: real hardware against power loss, a simulated run against a
killed controller only (tests/bench/engine/test_resume.py proves a resume after SIGKILL)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.engine.checkpoint import CheckpointWriter, EngineState, checkpoint_policy, load_checkpoint
from bench.errors import InputError
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


class _Killed(BaseException):
    """The controller dies here (SIGKILL leaves what the OS already has: the files renamed so far)."""


def _kill_at_rename(monkeypatch, target: str) -> None:
    real_replace = Path.replace

    def replace(self: Path, other):  # type: ignore[no-untyped-def]
        if Path(other).name == target:
            raise _Killed
        return real_replace(self, other)

    monkeypatch.setattr(Path, "replace", replace)


@pytest.mark.parametrize("killed_at", ["checkpoint.json", "sim_state.pkl"])
def test_a_kill_between_the_two_renames_leaves_a_matching_pair(tmp_path, monkeypatch, killed_at):
    """The engine state and the simulator state of one checkpoint are two files: a kill between
    their renames must not pair one instant's engine state with another instant's pack."""
    writer = CheckpointWriter(tmp_path, every_s=600.0, fsync=False)
    first = EngineState.new("run-1")
    first.t_s = 600.0
    writer.write(first, 600.0, b"pack at 600 s")
    second = EngineState.new("run-1")
    second.t_s = 1200.0
    _kill_at_rename(monkeypatch, killed_at)
    with pytest.raises(_Killed):
        writer.write(second, 1200.0, b"pack at 1200 s")
    monkeypatch.undo()
    state, sim = load_checkpoint(tmp_path)
    expected = {"checkpoint.json": (600.0, b"pack at 600 s"), "sim_state.pkl": (1200.0, b"pack at 1200 s")}
    assert (state.t_s, sim) == expected[killed_at]
    # and the next checkpoint goes on normally from there
    writer.write(second, 1200.0, b"pack at 1200 s")
    assert load_checkpoint(tmp_path)[1] == b"pack at 1200 s"


def test_a_simulator_state_that_matches_no_checkpoint_is_refused(tmp_path):
    writer = CheckpointWriter(tmp_path, every_s=600.0, fsync=False)
    writer.write(EngineState.new("run-1"), 600.0, b"pack at 600 s")
    (tmp_path / "sim_state.pkl").write_bytes(b"some other pack")
    with pytest.raises(InputError, match="does not match the checkpoint"):
        load_checkpoint(tmp_path)
