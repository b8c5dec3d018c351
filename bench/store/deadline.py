"""Bound the wall time of a records-store call for callers that must stay responsive.

A database driver can block in a socket read for as long as the server stays silent. The
operator station must answer within seconds whatever the database does (issue 18 item 2), so it
runs store calls in a daemon thread and gives up waiting after a deadline. The thread finishes on
its own (the store's connect/statement timeouts end it); being a daemon, it never holds up the
process's exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from bench.errors import StoreError

T = TypeVar("T")


def call_with_deadline(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """``fn()``'s result, or StoreError when it has not answered within ``timeout_s``."""
    result: list[T] = []
    error: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name=f"store-deadline: {what}", daemon=True).start()
    if not done.wait(timeout_s):
        raise StoreError(f"{what}: no answer within {timeout_s:g} s")
    if error:
        raise error[0]
    return result[0]
