"""From the engine thread to the browsers: change notification with coalescing.

The engine publishes hundreds of samples per second of wall time on the in-process simulator.
Each browser stream owns a :class:`Listener`; :meth:`Feed.notify` (engine thread) wakes every
listener at most once until it has sent, and the stream sends the bench's newest state then
waits ``min_interval_s`` — so a browser gets at most ~20 updates/s, never a backlog, and a
sample reaches it within one interval (well under the 200 ms of issue 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Listener:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.changed = asyncio.Event()
        self._pending = False
        self._lock = threading.Lock()

    def wake(self) -> None:
        with self._lock:
            if self._pending:
                return
            self._pending = True
        with contextlib.suppress(RuntimeError):  # loop closed: the browser has gone
            self.loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        with self._lock:
            self._pending = False
        self.changed.set()


class Feed:
    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._lock = threading.Lock()

    def listen(self, loop: asyncio.AbstractEventLoop) -> Listener:
        listener = Listener(loop)
        with self._lock:
            self._listeners.add(listener)
        return listener

    def drop(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    def notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.wake()

    @property
    def listener_count(self) -> int:
        with self._lock:
            return len(self._listeners)
