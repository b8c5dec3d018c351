"""Is a run still driven by a live process? A lock file held for the whole run answers it.

``bench run``/``bench resume`` and the operator station hold an exclusive ``flock`` on
``.<run id>.lock`` beside the run folder while the engine owns the run (beside, not inside: the
record lists and hashes the folder's files). The kernel drops the lock when the
process dies however it dies (SIGKILL, power loss of the machine), so a run whose records say
``running`` but whose lock anyone can take has no process behind it: an orphan (issue 18 item 3).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from bench.record import RunRecord, mark_aborted

if TYPE_CHECKING:  # SQLAlchemy loads only when a store is used: `bench run` holds the lock without it
    from bench.store.store import RunStore


def lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


class RunLock:
    """Held by the process that runs the engine, for as long as it does."""

    def __init__(self, run_dir: Path) -> None:
        self.path = lock_path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock; OSError (BlockingIOError) when another process holds it."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def run_is_alive(run_dir: Path) -> bool | None:
    """True: a process holds the run; False: nobody does; None: the folder is not on this machine."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    path = lock_path(run_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # a folder with no lock: written before locks, or the process never got that far
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def mark_orphan_runs(store: RunStore, runs_dir: Path, *, reason: str, station: str | None = None) -> list[str]:
    """Mark the orphans among runs whose folders live in ``runs_dir``: database row and record.json."""
    runs_dir = Path(runs_dir)
    marked = store.mark_orphans(lambda run_id: run_is_alive(runs_dir / run_id), reason=reason,
                                station=station)
    for run_id in marked:
        path = runs_dir / run_id / "record.json"
        try:
            record = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # the database row says it; a damaged folder is for `bench report` to show
        if record.verdict == "running":
            mark_aborted(record, reason)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
            tmp.replace(path)
    return marked
