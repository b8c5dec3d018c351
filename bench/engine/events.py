"""Progress events: what the engine tells the terminal display, the operator station and logs.

The engine publishes; subscribers must be quick and must not raise (a failing subscriber is
dropped from the bus, never allowed to stop a run that is driving a pack).
"""

from __future__ import annotations

import logging
import math
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


@dataclass(eq=False)  # removed by identity: one subscriber may subscribe twice
class _Subscription:
    subscriber: Subscriber
    #: 0: every sample event; else at most one per this many bench seconds (a status line)
    sample_every_s: float
    #: bench time from which this subscriber takes the next sample event
    next_sample_s: float = -math.inf


class EventBus:
    """Synchronous fan-out of progress events to subscribers.

    ``sample`` events come once per control interval, tens of thousands per run: the engine asks
    :meth:`wants_sample` before it builds one, so that a run nobody watches (``--json``, a
    sweep) or whose only display prints a status line every few minutes pays for the payload only
    when someone takes it (issue 17). Every other kind goes to every subscriber.
    """

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._lock = threading.Lock()
        #: earliest bench time at which any subscriber takes a sample (inf: nobody does);
        #: read without the lock by :meth:`wants_sample` (a float attribute is read atomically)
        self._next_sample_s = math.inf

    def subscribe(self, subscriber: Subscriber, *, sample_every_s: float = 0.0) -> Callable[[], None]:
        """Receive every event from now on; ``sample_every_s`` > 0: only the first ``sample``
        event at or after each multiple of that many bench seconds since the last one taken
        (the others are not delivered, and not built if nobody else wants them)."""
        subscription = _Subscription(subscriber, sample_every_s)
        with self._lock:
            self._subscriptions.append(subscription)
            self._update_next_sample()

        def unsubscribe() -> None:
            self._drop(subscription)

        return unsubscribe

    def wants_sample(self, t_s: float) -> bool:
        """Whether a ``sample`` event at bench time ``t_s`` would reach any subscriber."""
        return t_s >= self._next_sample_s

    def publish(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.kind == "sample":
                due = [s for s in self._subscriptions if event.t_s >= s.next_sample_s]
                for s in due:
                    if s.sample_every_s > 0:
                        s.next_sample_s = event.t_s + s.sample_every_s
                self._update_next_sample()
            else:
                due = list(self._subscriptions)
        for subscription in due:
            try:
                subscription.subscriber(event)
            except Exception:  # a display must never stop a run
                log.exception("progress subscriber failed; dropped")
                self._drop(subscription)

    def _drop(self, subscription: _Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            self._update_next_sample()

    def _update_next_sample(self) -> None:
        """Called with the lock held, after any change of the subscriptions or their due times."""
        self._next_sample_s = min((s.next_sample_s for s in self._subscriptions), default=math.inf)
