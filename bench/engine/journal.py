"""The run as the engine's helpers see it: the bench it drives and the record it writes.

Supervision and the link watch act on the bench and say what they did in the record; they get
this view of the run (implemented by bench.engine.runner.Engine), never the engine itself.
"""

from __future__ import annotations

from typing import Literal, Protocol

from bench.engine.events import EventKind
from bench.engine.port import BenchPort
from bench.engine.values import JsonObject

#: the kinds of a record event (bench.record.EventRecord.kind)
RecordEventKind = Literal["info", "warning", "trip", "pause", "resume", "abort", "operator", "watchdog",
                          "resume_run"]


class RunContext(Protocol):
    """The bench of a run, and its record's event log and progress events."""

    @property
    def bench(self) -> BenchPort: ...

    def event(self, kind: RecordEventKind, message: str, data: JsonObject | None = None,
              actor: str | None = None) -> None:
        """An event into the run record."""
        ...

    def publish(self, kind: EventKind, data: JsonObject) -> None:
        """A progress event for the displays."""
        ...

    def end_begins(self) -> None:
        """The run starts to end (a trip): from here on Ctrl-C and SIGTERM are noted, not raised
        (bench.engine.end_of_run), so that switching off and the record are carried through."""
        ...
