"""The engine's copy of a run into the records store, in a process of its own.

The run folder is the record of truth; the store is a copy (docs/records.md). Two rules shape
this module:

* A database that hangs -- a PostgreSQL port that accepts and never answers, a lock held
  elsewhere -- must never stall the control loop: while the engine waits on a socket, no sample
  is taken and no limit is judged. The engine only queues calls; they run elsewhere, in order.
* The store's work must not slow the loop either. On a thread it shares the interpreter's lock
  with the engine: converting and binding the ~40,000 sample rows of a calibration and rewriting
  the record at every checkpoint took ~0.7 s from a 10 s simulated calibration (issue 17). So
  the calls run in a child process, ``python -m bench.store.writer``, with its own connection to
  the same database URL (started like the watchdog: no fork of the engine, nothing of the
  caller's ``__main__`` re-imported, no descriptor of the engine's inherited).

A call is pickled at once on the engine's thread (a copy: the caller may go on changing its
arguments) and queued; a feeder thread writes the queue to the child's stdin, so ``submit`` never
waits on a full pipe (the child starts up, ~0.4 s of imports on the other core, while the engine
runs). The child answers with one JSON line per failed call on its stdout, read on the engine's
thread. It runs in a session of its own (Ctrl-C or a hang-up reaching the engine's process group
does not stop it: the engine decides how the run ends and still needs its copy), applies every
call it received, and ends when its stdin closes: at :meth:`StoreWriter.close`, or when the
engine process dies (SIGKILL included).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import queue
import select
import subprocess
import sys
import threading
import time
from typing import Any, BinaryIO

from bench.errors import BenchError, InputError, StoreError

#: the call that only opens the database (:meth:`StoreWriter.wait_ready`)
_OPEN = "open"
#: how long a writer whose engine died may go on applying what it received (a hung database
#: must not keep it alive for ever, nor let it write a stale record after a resume took over)
ORPHAN_GRACE_S = 60.0


class StoreWriter:
    """Applies ``RunStore(url).<method>(*args)`` calls in the order they were submitted, in a
    child process (see the module's docstring)."""

    def __init__(self, url: str, *, timeout_s: float | None = None, migrate: bool = True,
                 orphan_grace_s: float = ORPHAN_GRACE_S) -> None:
        """``url`` and ``timeout_s``: as for :class:`bench.store.RunStore`, which the child opens at
        once and, with ``migrate``, brings to the current schema (:meth:`wait_ready` tells how that
        went); ``orphan_grace_s``: how long it may go on once this process is gone."""
        command = [sys.executable, "-m", __name__, url, "" if timeout_s is None else repr(timeout_s),
                   str(os.getpid()), repr(orphan_grace_s), "migrate" if migrate else ""]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         start_new_session=True)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._replies = self._process.stdout
        os.set_blocking(self._replies.fileno(), False)  # failures() never waits
        self._unread = b""
        self._answer: dict[str, Any] | None = None  # the child's first line: ready, or refused
        self._failed: list[str] = []  # the child's failure lines, read but not yet handed out
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # None: the end
        self._closed: bool | None = None  # close()'s answer, once given
        self._lock = threading.Lock()
        self._failures: list[str] = []  # found on the feeder's side (a broken pipe)
        self._feeder = threading.Thread(target=self._feed, args=(self._process.stdin,),
                                        name="records-store-feeder", daemon=True)
        self._feeder.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def submit(self, method: str, *args: object) -> None:
        """Queue one call; its arguments are copied now (pickled), never waited on. Dropped once
        the child is gone (the failure is reported once): nothing would carry it any more."""
        if self._feeder.is_alive():
            self._queue.put(pickle.dumps((method, args), pickle.HIGHEST_PROTOCOL))

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the child has opened the database (and migrated it); raise what it met there:
        :class:`InputError` for a URL it cannot use, :class:`StoreError` otherwise."""
        deadline = time.monotonic() + timeout_s
        if self._answer is None:
            self.submit(_OPEN)  # the go-ahead: until a first call the child only loads its modules
        while self._answer is None:
            ended = self._read_replies()
            if self._answer is not None:
                break
            if ended:
                raise StoreError(f"records store: the writer process ended (exit code "
                                 f"{self._process.wait()}) before it opened the database")
            if not select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))[0]:
                self._process.kill()
                raise StoreError(f"records store: the database did not answer within {timeout_s:.0f} s")
        refused = self._answer.get("refused")
        if refused is not None:
            if refused["input"]:
                raise InputError(refused["message"], field=refused["field"])
            raise StoreError(refused["message"])

    def failures(self) -> list[str]:
        """Failures since the last call (``"<method> failed: <error>"``), for the engine to record."""
        with self._lock:
            found, self._failures = self._failures, []
        self._read_replies()
        found += self._failed
        self._failed = []
        return found

    def _read_replies(self) -> bool:
        """Take in what the child has written, without waiting; True once it has ended."""
        while not self._replies.closed:
            chunk = self._replies.read()
            if chunk is None:  # nothing more for now
                break
            if not chunk:  # the child has ended: every line is in
                self._replies.close()
            self._unread += chunk
        *lines, self._unread = self._unread.split(b"\n")
        for line in lines:
            reply = json.loads(line)
            if "failed" in reply:
                self._failed.append(reply["failed"])
            else:
                self._answer = reply
        return self._replies.closed

    def close(self, timeout_s: float) -> bool:
        """Let the queued calls finish for at most ``timeout_s`` of wall time; False if they did not
        (the child is then killed: a hung database does not outlive the run). A child that ended
        on an error is a failure (:meth:`failures`). Closing again answers at once, the same."""
        if self._closed is not None:
            return self._closed
        deadline = time.monotonic() + timeout_s
        self._queue.put(None)
        self._feeder.join(timeout_s)
        try:
            code = self._process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            self._closed = False
            return False
        if code != 0:
            self._fail(f"writer process ended with exit code {code}: what it had not stored is "
                       "missing from the database")
        self._closed = True
        return True

    def _fail(self, message: str) -> None:
        with self._lock:
            self._failures.append(message)

    def _feed(self, calls: BinaryIO) -> None:
        try:
            while (call := self._queue.get()) is not None:
                calls.write(call)
                calls.flush()
        except OSError as exc:  # the child died (killed, out of memory): nothing more reaches the store
            self._fail(f"writer process ended: {exc}")
        finally:
            with contextlib.suppress(OSError):  # its buffer could not be flushed to a dead child
                calls.close()


def _serve(url: str, timeout_s: float | None, engine: int, orphan_grace_s: float, migrate: bool,
           calls: BinaryIO, replies: BinaryIO) -> None:
    """The child: at the first call, open (and migrate) the store and say so; then apply each
    call until ``calls`` ends. One JSON line per answer: ``{"ready": true}`` or ``{"refused": ...}`` first, then
    ``{"failed": "<method> failed: <error>"}`` per failed call."""

    def reply(answer: dict[str, Any]) -> None:
        try:
            replies.write(json.dumps(answer).encode() + b"\n")
            replies.flush()
        except OSError:  # the engine is gone: nobody to tell
            pass

    def end_when_orphaned() -> None:
        while os.getppid() == engine:
            time.sleep(1.0)
        time.sleep(orphan_grace_s)
        os._exit(3)  # still busy with a database that does not answer: give up

    threading.Thread(target=end_when_orphaned, name="orphan-deadline", daemon=True).start()
    from bench.store.store import RunStore  # lazy: here, not in the engine's process (~0.2 s of imports)

    try:  # the database is opened on the first call: a run refused before it starts creates nothing
        first: tuple[str, tuple[Any, ...]] = pickle.load(calls)
    except (EOFError, pickle.UnpicklingError):
        return
    try:
        store = RunStore(url, timeout_s=timeout_s)
        if migrate:
            store.migrate()
    except Exception as exc:  # told to the engine, which stops before its run starts
        message = exc.message if isinstance(exc, InputError) else str(exc)
        if not isinstance(exc, BenchError):
            message = f"records store: cannot open the database: {type(exc).__name__}: {exc}"
        reply({"refused": {"message": message, "input": isinstance(exc, InputError),
                           "field": getattr(exc, "field", None)}})
        return
    reply({"ready": True})
    method, args = first
    while True:
        try:
            if method != _OPEN:
                getattr(store, method)(*args)
        except Exception as exc:  # the store is a copy: a failure is recorded, not fatal
            reply({"failed": f"{method} failed: {exc}"})
        try:
            method, args = pickle.load(calls)
        except (EOFError, pickle.UnpicklingError):  # the engine is done, or gone (maybe mid-call)
            break
    store.close()


if __name__ == "__main__":
    _serve(sys.argv[1], float(sys.argv[2]) if sys.argv[2] else None, int(sys.argv[3]), float(sys.argv[4]),
           sys.argv[5] == "migrate", sys.stdin.buffer, sys.stdout.buffer)
    sys.stderr.flush()
    # every call is applied and the database closed: skip the interpreter's teardown (~0.1 s with
    # SQLAlchemy loaded), which the engine's close() -- the end of every run -- would wait out
    os._exit(0)
