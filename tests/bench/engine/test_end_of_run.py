"""bench.engine.end_of_run: while a run ends, Ctrl-C and SIGTERM are noted, not raised, and the
process's handlers are put back afterwards (real signals to this process)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from bench.engine.end_of_run import EndOfRun


@pytest.fixture
def terminal_handlers():
    """SIGINT raises KeyboardInterrupt, SIGTERM a SystemExit (as a CLI would set it)."""
    def on_term(signum, frame):
        raise SystemExit(143)

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    yield on_term
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_interrupts_are_noted_while_the_run_ends_and_raised_again_after(terminal_handlers) -> None:
    end = EndOfRun()
    end.begin()
    end.begin()  # idempotent: a trip, then the run's end
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    assert end.exit_requested
    end.close()
    end.close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is terminal_handlers
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a call: the handler runs before it returns


def test_off_the_main_thread_it_leaves_the_handlers_alone(terminal_handlers) -> None:
    end = EndOfRun()
    thread = threading.Thread(target=end.begin)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is terminal_handlers
    end.close()
    assert signal.getsignal(signal.SIGTERM) is terminal_handlers and not end.exit_requested
