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
runs). The child loads its modules at once but opens (and migrates) the database only at the
first call, which :meth:`StoreWriter.wait_ready` sends: a run refused before it starts creates
nothing. It answers with JSON lines on its stdout (``ready`` or ``refused`` first, then one per
failed call), read on the engine's thread; its own stray output goes to stderr. Its arguments
travel in its environment, not on its command line (a database URL may hold a password). It runs
in a session of its own (Ctrl-C or a hang-up reaching the engine's process group does not stop
it: the engine decides how the run ends and still needs its copy), applies every call it
received, and ends when its stdin closes: at :meth:`StoreWriter.close`, or when the engine
process dies (SIGKILL included).
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
from pathlib import Path
from typing import Any, BinaryIO

from bench.errors import BenchError, InputError, StoreError
from bench.store.url import check_db_url, resolve_db_url

#: the call that only opens the database (:meth:`StoreWriter.wait_ready`)
_OPEN = "open"
#: the child's settings (JSON): in its environment, which only its user can read, not on its
#: command line, which every user can (``ps``): a database URL may hold a password
_SETTINGS_ENV = "BENCH_STORE_WRITER"
#: how long a writer whose engine died may go on applying what it received (a hung database
#: must not keep it alive for ever, nor let it write a stale record after a resume took over)
ORPHAN_GRACE_S = 60.0


class StoreWriter:
    """Applies ``RunStore(url).<method>(*args)`` calls in the order they were submitted, in a
    child process (see the module's docstring)."""

    def __init__(self, url: str, *, timeout_s: float | None = None, migrate: bool = True,
                 orphan_grace_s: float = ORPHAN_GRACE_S) -> None:
        """``url`` and ``timeout_s``: as for :class:`bench.store.RunStore`, which the child opens at
        the first call and, with ``migrate``, brings to the current schema (:meth:`wait_ready`
        tells how that went); ``orphan_grace_s``: how long it may go on once this process is gone."""
        settings = {"url": url, "timeout_s": timeout_s, "engine": os.getpid(),
                    "orphan_grace_s": orphan_grace_s, "migrate": migrate}
        # the child imports this very package, whatever put it on this process's path
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, _SETTINGS_ENV: json.dumps(settings),
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, start_new_session=True, env=env)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._replies = self._process.stdout
        os.set_blocking(self._replies.fileno(), False)  # failures() never waits
        self._unread = b""
        self._answer: dict[str, Any] | None = None  # the child's first line: ready, or refused
        self._opening = False  # the open call was sent (open, wait_ready)
        self._refusal_told = False  # a refusal nobody waited for went out through failures()
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # None: the end
        self._closed: bool | None = None  # close()'s answer, once given
        self._lock = threading.Lock()
        self._failures: list[str] = []  # not yet handed out: the child's, and the engine side's
        self._feeder = threading.Thread(target=self._feed, args=(self._process.stdin,),
                                        name="records-store-feeder", daemon=True)
        self._feeder.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def submit(self, method: str, *args: object) -> None:
        """Queue one call; its arguments are copied now (pickled), never waited on. Dropped once
        the child is gone (the failure is reported once): nothing would carry it any more."""
        if not self._feeder.is_alive():
            return
        try:
            call = pickle.dumps((method, args), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # the store is a copy: a call that cannot travel is a failure
            self._fail(f"{method} failed: its arguments cannot be handed over: {exc}")
            return
        self._queue.put(call)

    def open(self) -> None:
        """Let the child open (and migrate) the database now, without waiting: until a first call
        it only loads its modules. Once is enough."""
        if not self._opening:
            self._opening = True
            self.submit(_OPEN)

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the child has opened the database (and migrated it); raise what it met there:
        :class:`InputError` for a URL it cannot use, :class:`StoreError` otherwise."""
        deadline = time.monotonic() + timeout_s
        self.open()
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
        self._read_replies()
        with self._lock:
            found, self._failures = self._failures, []
        refused = (self._answer or {}).get("refused")
        if refused is not None and not self._opening and not self._refusal_told:
            self._refusal_told = True  # calls sent without open/wait_ready: say why they all failed
            found.append(f"open failed: {refused['message']}")
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
            try:
                reply = json.loads(line)
            except ValueError:  # not the protocol's: the child's stray output, kept as a failure
                reply = {"failed": line.decode(errors="replace")}
            if "failed" in reply:
                self._fail(reply["failed"])
            else:
                self._answer = reply
        return self._replies.closed

    def close(self, timeout_s: float) -> bool:
        """Let the queued calls finish for at most ``timeout_s`` of wall time; False if they did not
        (the child is then killed: a hung database does not outlive the run). A child that ended
        on an error is a failure (:meth:`failures`). Closing again answers at once, the same. A
        child interrupted while opening the database, or a close interrupted itself (Ctrl-C,
        SIGTERM), ends the child at once: nothing of the run waits on it any more."""
        if self._closed is not None:
            return self._closed
        if self._opening and self._answer is None:  # the run stopped before the database answered
            self._kill()
            return True
        deadline = time.monotonic() + timeout_s
        self._queue.put(None)
        try:
            while not self._read_replies():  # read while it drains: a full pipe would stop it
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill()
                    return False
                select.select([self._replies], [], [], left)
            code = self._process.wait()
        except BaseException:
            self._kill()
            raise
        self._feeder.join(1.0)
        if code != 0:
            self._fail(f"writer process ended with exit code {code}: what it had not stored is "
                       "missing from the database")
        self._closed = True
        return True

    def _kill(self) -> None:
        self._closed = False
        self._process.kill()
        self._process.wait()

    def _fail(self, message: str) -> None:
        with self._lock:
            self._failures.append(message)

    def _feed(self, calls: BinaryIO) -> None:
        try:
            while (call := self._queue.get()) is not None:
                calls.write(call)
                calls.flush()
        except OSError as exc:  # the child died (out of memory, by hand): nothing more reaches the store
            if self._closed is None:  # not killed by close() (which says so itself)
                self._fail(f"writer process ended: {exc}")
        finally:
            with contextlib.suppress(OSError):  # its buffer could not be flushed to a dead child
                calls.close()


def open_run_store(db: str | None, station_database_url: str | None, runs_dir: Path) -> StoreWriter:
    """The run's writer: ``db``, else the station's database, else SQLite in its runs folder. A
    URL that cannot be a SQLite or PostgreSQL one is refused here, before a process starts."""
    url = resolve_db_url(db, station_database_url, runs_dir)
    check_db_url(url)
    return StoreWriter(url)


def _serve(url: str, timeout_s: float | None, engine: int, orphan_grace_s: float, migrate: bool,
           calls: BinaryIO, replies: BinaryIO) -> None:
    """The child: at the first call, open (and migrate) the store and say so; then apply each
    call until ``calls`` ends. One JSON line per answer: ``{"ready": true}`` or
    ``{"refused": ...}`` first, then ``{"failed": "<method> failed: <error>"}`` per failed call."""

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
    settings = json.loads(os.environ.pop(_SETTINGS_ENV))
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the protocol has stdout's pipe to itself: anything else printed goes to stderr
    _serve(settings["url"], settings["timeout_s"], settings["engine"], settings["orphan_grace_s"],
           settings["migrate"], sys.stdin.buffer, replies)
    replies.close()
    sys.stderr.flush()
    # every call is applied and the database closed: skip the interpreter's teardown (~0.1 s with
    # SQLAlchemy loaded), which the engine's close() -- the end of every run -- would wait out
    os._exit(0)
