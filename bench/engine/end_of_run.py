"""Ctrl-C and SIGTERM while a run ends: noted, not raised.

Once a run starts to end (a trip, an abort, its verdict, a first Ctrl-C), what is left is to switch
the outputs off, confirm it and seal the record. An interrupt raised in the middle of that (a
second Ctrl-C, or a SIGTERM arriving just as an abort begins, seen in CI) escaped the engine: the
record stayed 'running', an off command could be cut short, the CLI exited 130 without a word.
From :meth:`EndOfRun.begin` on, the process's SIGINT and SIGTERM handlers only note the request:
the engine stops retrying what it cannot confirm off and hands that to the watchdog
(``bench.engine.links.confirm_outputs_off``), and finishes the record; :meth:`EndOfRun.close`
puts the handlers back once the run is sealed. An instrument query is then never cut in half
either: a handler that returns lets the interrupted system call resume (PEP 475).

An operator who insists is not held: the second request noted puts the handlers back, so a third
acts at once as it would have. A signal the process ignores (SIG_IGN: started in the background
by a script) stays ignored. Only the main thread receives signals, and only it may set their
handlers: an engine run in another thread (the operator station's) needs no shield and gets none.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: requests noted before the handlers are put back (the next one acts as it would have)
_NOTED_BEFORE_GIVING_WAY = 2


class EndOfRun:
    """The end of one run: ``begin()`` (idempotent) when it starts, ``close()`` once it is sealed."""

    def __init__(self) -> None:
        self._requests = 0
        self._saved: dict[int, object] | None = None

    @property
    def exit_requested(self) -> bool:
        """Ctrl-C or SIGTERM arrived while the run was ending."""
        return self._requests > 0

    def begin(self) -> None:
        if self._saved is not None or threading.current_thread() is not threading.main_thread():
            return
        # both handlers swapped as one: a SIGTERM between the two would still raise
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            self._saved = {sig: signal.getsignal(sig) for sig in _SIGNALS}
            for sig, handler in self._saved.items():
                if handler is not signal.SIG_IGN:
                    signal.signal(sig, self._note)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def close(self) -> None:
        saved, self._saved = self._saved, None
        for sig, handler in (saved or {}).items():
            # None: a handler not set from Python; the default is the closest we can restore
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)  # type: ignore[arg-type]

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self._requests += 1
        if self._requests >= _NOTED_BEFORE_GIVING_WAY:
            self.close()
