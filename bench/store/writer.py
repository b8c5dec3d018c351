"""The engine's copy of a run into the records store, in a process of its own.

The run folder is the record of truth; the store is a copy (docs/records.md). Two rules shape
this module:

* A database that hangs -- a PostgreSQL port that accepts and never answers, a lock held
  elsewhere -- must never stall the control loop: while the engine waits on a socket, no sample
  is taken and no limit is judged. The engine only queues calls; they run elsewhere, in order.
* The store's work must not slow the loop either. On a thread it shares the interpreter's lock
  with the engine: converting and binding the ~40,000 sample rows of a calibration and rewriting
  the record at every checkpoint took ~0.7 s from a 10 s simulated calibration (issue 17). So
  the calls run in a child process with its own connection to the same database URL.

A call is pickled at once on the engine's thread (a copy: the caller may go on changing its
arguments) and queued; a feeder thread writes the queue to the child's pipe, so ``submit`` never
waits on a full pipe. The child is forked from multiprocessing's fork server, which imports the
store once per engine process (a pytest session or the operator station runs many runs: a few
ms a child instead of ~0.4 s of imports); the feeder starts it, so even that first start does
not hold up the engine. The child reports failures back over a second pipe, read on the engine's
thread. It ignores SIGINT (Ctrl-C reaches the whole process group: the engine decides how the
run ends and still needs its store), applies every call it received, and ends when the engine's
end of the pipe closes: at :meth:`StoreWriter.close`, or when the engine process dies
(SIGKILL included).
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

_STOP = b""  # the end of the calls (a pickled call is never empty)


class StoreWriter:
    """Applies ``RunStore(url).<method>(*args)`` calls in the order they were submitted, in a
    child process (see the module's docstring)."""

    def __init__(self, url: str, *, timeout_s: float | None = None) -> None:
        """``url`` and ``timeout_s``: as for :class:`bench.store.RunStore`, which the child opens."""
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, "bench.store.store"])  # what every child needs
        calls_in, self._calls_out = context.Pipe(duplex=False)
        self._failures_in, failures_out = context.Pipe(duplex=False)
        self._process = context.Process(target=_serve, args=(url, timeout_s, calls_in, failures_out),
                                        name="records-store-writer", daemon=True)
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._failures: list[str] = []  # found on the feeder's side (start, a broken pipe)
        self._started = threading.Event()
        self._feeder = threading.Thread(target=self._feed, args=(calls_in, failures_out),
                                        name="records-store-feeder", daemon=True)
        self._feeder.start()

    def submit(self, method: str, *args: object) -> None:
        """Queue one call; its arguments are copied now (pickled), never waited on."""
        self._queue.put(pickle.dumps((method, args), pickle.HIGHEST_PROTOCOL))

    def failures(self) -> list[str]:
        """Failures since the last call (``"<method> failed: <error>"``), for the engine to record."""
        with self._lock:
            found, self._failures = self._failures, []
        try:
            while self._failures_in.poll():
                found.append(self._failures_in.recv())
        except (EOFError, OSError):  # the child is gone; the feeder reports why
            pass
        return found

    def close(self, timeout_s: float) -> bool:
        """Let the queued calls finish for at most ``timeout_s`` of wall time; False if they did not
        (the child is then killed: a hung database does not outlive the run)."""
        deadline = time.monotonic() + timeout_s
        self._queue.put(_STOP)
        self._feeder.join(timeout_s)
        if self._started.is_set():
            self._process.join(max(0.0, deadline - time.monotonic()))
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5.0)
                return False
        return not self._feeder.is_alive()

    def _feed(self, calls_in: Connection, failures_out: Connection) -> None:
        try:
            self._process.start()  # waits for the fork server: its first start imports the store
        except Exception as exc:  # any reason: the store is a copy, the run goes on
            self._fail(f"could not start its writer process: {exc}")
            return
        finally:
            calls_in.close()  # the child has its own ends now: its end-of-file must come from ours
            failures_out.close()
        self._started.set()
        try:
            while (call := self._queue.get()) != _STOP:
                self._calls_out.send_bytes(call)
        except OSError as exc:  # the child died (killed, out of memory): nothing more reaches the store
            self._fail(f"writer process ended (exit code {self._process.exitcode}): {exc}")
        finally:
            self._calls_out.close()

    def _fail(self, message: str) -> None:
        log.warning("records store %s", message)
        with self._lock:
            self._failures.append(message)


def _serve(url: str, timeout_s: float | None, calls: Connection, failures: Connection) -> None:
    """The child: apply each call to the store until the engine's end of ``calls`` closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from bench.store.store import RunStore  # lazy like every user of the store; preloaded here

    store: Any = None
    while True:
        try:
            method, args = pickle.loads(calls.recv_bytes())
        except EOFError:  # the engine is done, or gone
            break
        try:
            if store is None:
                store = RunStore(url, timeout_s=timeout_s)
            getattr(store, method)(*args)
        except Exception as exc:  # the store is a copy: a failure is recorded, not fatal
            log.warning("records store %s failed: %s", method, exc)
            failures.send(f"{method} failed: {exc}")
    if store is not None:
        store.close()
