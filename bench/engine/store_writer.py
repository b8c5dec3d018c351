"""The engine's copy of a run into the records store, off the engine's thread.

The run folder is the record of truth; the store is a copy (docs/records.md). A database that
hangs -- a PostgreSQL port that accepts and never answers, a lock held elsewhere -- must never stall
the control loop: while the engine waits on a socket, no sample is taken and no limit is judged. So
every store call goes through one writer thread, in order; the engine only queues. Failures are
collected here and reported by the engine on its own thread (the record is not thread-safe).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()


class StoreWriter:
    """One thread that applies ``store.<method>(*args)`` calls in the order they were queued."""

    def __init__(self, store: object) -> None:
        # any records store (bench.store.RunStore): called by method name, on this thread only
        self.store = store
        self._calls: queue.Queue[Any] = queue.Queue()
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="records-store-writer", daemon=True)
        self._thread.start()

    def submit(self, method: str, *args: object) -> None:
        """Queue one call; arguments must not be changed by the caller afterwards (pass copies)."""
        self._calls.put((method, args))

    def failures(self) -> list[str]:
        """Failures since the last call (``"<method>: <error>"``), for the engine to record."""
        with self._lock:
            failures, self._failures = self._failures, []
        return failures

    def close(self, timeout_s: float) -> bool:
        """Let the queued calls finish for at most ``timeout_s`` of wall time; False if they did not
        (the thread is a daemon: a hung database does not keep the process alive)."""
        self._calls.put(_STOP)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _work(self) -> None:
        call: Callable[..., Any]
        while True:
            item = self._calls.get()
            if item is _STOP:
                return
            method, args = item
            try:
                call = getattr(self.store, method)
                call(*args)
            except Exception as exc:  # the store is a copy: a failure is recorded, not fatal
                log.warning("records store %s failed: %s", method, exc)
                with self._lock:
                    self._failures.append(f"{method} failed: {exc}")
