"""The watchdog's files in a run folder: ``watchdog.json`` (one session per watchdog process, and
what it did) and ``watchdog.log``.

Its own module because two processes meet here: the watchdog (bench.watchdog) writes them, and
the engine reads what a watchdog did while no engine ran, for the resumed run's record
(bench.engine.runner). The engine therefore needs only these file formats, not the watchdog's
instrument connections.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WATCHDOG_JSON = "watchdog.json"
WATCHDOG_LOG = "watchdog.log"


def read_sessions(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / WATCHDOG_JSON
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("sessions", []))
    except (OSError, ValueError):
        return []


def write_sessions(run_dir: Path, sessions: list[dict[str, Any]]) -> None:
    path = Path(run_dir) / WATCHDOG_JSON
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"sessions": sessions}, indent=2), encoding="utf-8")
    tmp.replace(path)


def update_session(run_dir: Path, pid: int, **changes: Any) -> None:
    sessions = read_sessions(run_dir)
    for session in sessions:
        if session.get("pid") == pid and session.get("ended_at") is None:
            session.update(changes)
            break
    else:
        sessions.append({"pid": pid, **changes})
    write_sessions(run_dir, sessions)


def log(run_dir: Path, message: str) -> None:
    with (Path(run_dir) / WATCHDOG_LOG).open("a", encoding="utf-8") as f:
        f.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} pid {os.getpid()}: {message}\n")


def trips(run_dir: Path) -> list[dict[str, Any]]:
    """The watchdog sessions of a run folder that acted (for the resumed run's record)."""
    return [s for s in read_sessions(run_dir) if s.get("action") == "safe_state"]
