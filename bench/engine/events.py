"""Progress events: what the engine tells the terminal display, the operator station and logs.

The engine publishes; subscribers must be quick and must not raise (a failing subscriber is
dropped from the bus, never allowed to stop a run that is driving a pack).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

EventKind = Literal[
    "run_started", "step_started", "sample", "step_ended", "check", "warning", "trip",
    "pause", "resume", "prompt", "prompt_answered", "run_ended", "info",
]


@dataclass(frozen=True)
class ProgressEvent:
    kind: EventKind
    run_id: str
    t_s: float
    #: per-kind payload, JSON-ready; read by key by the displays (bench.progress, bench.ui)
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[ProgressEvent], None]


class EventBus:
    """Synchronous fan-out of progress events to subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: ProgressEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # a display must never stop a run
                log.exception("progress subscriber failed; dropped")
                with self._lock:
                    if subscriber in self._subscribers:
                        self._subscribers.remove(subscriber)
