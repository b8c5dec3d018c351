"""Checkpoints: everything needed to continue a run killed at any point.

``checkpoint.json`` holds the engine state (position in the procedure, integrators, reference
SOC, variables, timers); with the embedded simulator, ``sim_state.pkl`` holds the simulated
hardware's state taken at the same instant, so a resumed run continues on the same pack.
Both are written to a temporary file, fsynced and renamed, so a kill mid-write leaves the
previous checkpoint intact. Two files cannot be renamed at once, so the pair is made consistent
by the JSON: it names the SHA-256 of its simulator state, which is written first beside the
current one (``sim_state.new.pkl``) and moved over it only after the JSON is in place. A kill
between any two of these renames leaves a JSON whose own simulator state is on disk
(:func:`load_checkpoint` picks it by hash), never an engine state paired with another instant's
pack.

Cadence (:func:`checkpoint_policy`). On real hardware every 30 s of bench time, each file
fsynced: a power cut of the bench PC must not lose more. On a simulated (lockstep) run the
only event to survive is the controller's death (SIGKILL, crash): the OS keeps what was
written, so files are flushed and renamed but not fsynced, and a checkpoint every 600 s of
bench time bounds what a resume recomputes (deterministically) to a fraction of a second.
Step ends always checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bench.engine.throughput import ReferenceSoc, Throughput
from bench.engine.values import Env
from bench.errors import InputError


@dataclass
class EngineState:
    run_id: str
    step_pos: int | None = None
    step_started_at: float | None = None
    t_s: float = 0.0
    next_tick: float = 0.0
    throughput: Throughput = field(default_factory=Throughput)
    step_throughput: Throughput = field(default_factory=Throughput)
    reference: ReferenceSoc = field(default_factory=lambda: ReferenceSoc(capacity_ah=200.0))
    vars: Env = field(default_factory=dict)
    repeat_counts: dict[str, int] = field(default_factory=dict)
    compare_marks: dict[str, float] = field(default_factory=dict)
    hold_since: dict[str, float] = field(default_factory=dict)
    finished: bool = False
    #: the last sample (t_s, current, pack_v), so Ah/Wh stay continuous across a resume
    last_sample: list[float] | None = None
    #: UNIX time of the checkpoint, to know how long a real pack was left alone
    written_at: float = 0.0
    #: SHA-256 of the simulator state taken at the same instant (None: no simulator, or a
    #: checkpoint written before this field existed)
    sim_state_sha256: str | None = None

    @classmethod
    def new(cls, run_id: str) -> EngineState:
        return cls(run_id=run_id)

    def to_json(self) -> str:
        # the JSON of asdict(self), without asdict's deep copy of every variable and timer on the
        # way (~0.4 ms a checkpoint): json.dumps only reads; the three dataclasses become dicts
        data = {name: getattr(self, name) for name in _STATE_FIELDS}
        for name in _NESTED_FIELDS:
            data[name] = asdict(data[name])
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> EngineState:
        data = json.loads(text)
        data["throughput"] = Throughput(**data["throughput"])
        data["step_throughput"] = Throughput(**data["step_throughput"])
        data["reference"] = ReferenceSoc(**data["reference"])
        return cls(**data)


#: EngineState's fields in declaration order (asdict's key order), and the dataclass-valued ones
_STATE_FIELDS = tuple(f.name for f in fields(EngineState))
_NESTED_FIELDS = ("throughput", "step_throughput", "reference")

SIM_STATE = "sim_state.pkl"
#: the next simulator state, until the checkpoint naming it is in place
SIM_STATE_NEW = "sim_state.new.pkl"

#: real hardware: bench seconds between checkpoints, and samples.csv fsynced every 5 s
REAL_CHECKPOINT_EVERY_S = 30.0
REAL_SAMPLE_SYNC_EVERY_S = 5.0
#: simulated (lockstep) runs: at ~0.5 ms per 1 s interval, 600 s of bench time is ~0.3 s of wall
#: time to redo after a kill; samples reach the file at each checkpoint (what a resume keeps)
SIM_CHECKPOINT_EVERY_S = 600.0


@dataclass(frozen=True)
class CheckpointPolicy:
    every_s: float
    #: bench seconds between sample-log syncs (inf: only at checkpoints)
    sample_sync_every_s: float
    #: fsync what is written (needed against power loss, not against a killed process)
    fsync: bool


def checkpoint_policy(simulated: bool, every_s: float | None = None) -> CheckpointPolicy:
    """The cadence a run needs: see the module docstring. ``every_s`` overrides the period."""
    if simulated:
        return CheckpointPolicy(every_s or SIM_CHECKPOINT_EVERY_S, float("inf"), fsync=False)
    return CheckpointPolicy(every_s or REAL_CHECKPOINT_EVERY_S, REAL_SAMPLE_SYNC_EVERY_S, fsync=True)


class CheckpointWriter:
    def __init__(self, run_dir: Path, every_s: float, *, fsync: bool = True) -> None:
        self.run_dir = run_dir
        self.every_s = every_s
        self.fsync = fsync
        self._last: float = float("-inf")

    def due(self, t_s: float) -> bool:
        return t_s - self._last >= self.every_s

    def write(self, state: EngineState, t_s: float, sim_state: bytes | None) -> None:
        """The simulator state beside the current one, then the JSON naming it, then the new
        simulator state over the old (see the module docstring for why in this order)."""
        self._last = t_s
        state.written_at = time.time()
        if sim_state is not None:
            state.sim_state_sha256 = hashlib.sha256(sim_state).hexdigest()
            atomic_write(self.run_dir / SIM_STATE_NEW, sim_state, fsync=self.fsync)
        atomic_write(self.run_dir / "checkpoint.json", state.to_json().encode(), fsync=self.fsync)
        if sim_state is not None:
            (self.run_dir / SIM_STATE_NEW).replace(self.run_dir / SIM_STATE)

    def mark_finished(self) -> None:
        path = self.run_dir / "checkpoint.json"
        if path.exists():
            state = EngineState.from_json(path.read_text(encoding="utf-8"))
            state.finished = True
            atomic_write(path, state.to_json().encode(), fsync=self.fsync)


def load_checkpoint(run_dir: Path) -> tuple[EngineState, bytes | None]:
    path = run_dir / "checkpoint.json"
    if not path.exists():
        raise InputError("no checkpoint in this run folder (was it started by bench run?)",
                         file=str(run_dir))
    try:
        state = EngineState.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"checkpoint is unreadable: {exc}", file=str(path)) from None
    if state.finished:
        raise InputError("this run already ended; nothing to resume", file=str(run_dir))
    return state, _sim_state_of(state, run_dir)


def _sim_state_of(state: EngineState, run_dir: Path) -> bytes | None:
    """The simulator state the checkpoint names: the current file, or the one a kill left beside
    it between the JSON's rename and its own."""
    candidates = [run_dir / SIM_STATE, run_dir / SIM_STATE_NEW]
    present = [path.read_bytes() for path in candidates if path.exists()]
    if state.sim_state_sha256 is None:  # no simulator, or a checkpoint from before the hash
        return present[0] if present else None
    for data in present:
        if hashlib.sha256(data).hexdigest() == state.sim_state_sha256:
            return data
    raise InputError("the simulator state does not match the checkpoint (sha256 "
                     f"{state.sim_state_sha256[:12]}...): the run cannot be resumed on the same "
                     "simulated pack", file=str(run_dir / SIM_STATE))


def atomic_write(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` through a temporary file and a rename: a kill mid-write
    leaves the old file; ``fsync`` also makes it survive a power cut."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    tmp.replace(path)
