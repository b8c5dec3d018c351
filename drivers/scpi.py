"""The shared SCPI driver base: one instrument session over an injected transport.

The transport is anything with ``write(str)``, ``read() -> str``, ``query(str) -> str``,
``close()`` and a ``timeout`` attribute in milliseconds (a pyvisa resource, or the recorded
protocol transport of the transcript tests). Transport failures become the project's typed
errors, each naming the instrument and the operation:

* a pyvisa time-out -> :class:`InstrumentTimeout`;
* a dropped link (VisaIOError other than time-out, ConnectionResetError, BrokenPipeError, EOF)
  -> :class:`ConnectionLost`;
* a reply that does not parse -> :class:`ProtocolError`.

With a ``reopen`` callable and a :class:`ReconnectPolicy`, a lost connection is re-opened and
the operation retried once, for idempotent operations only (queries and setpoint writes):
an ``OUTP ON`` that may or may not have arrived is not repeated blindly.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bench.errors import ConnectionLost, InstrumentError, InstrumentTimeout, ProtocolError

try:  # pyvisa is a dependency, but the base must work with any transport
    from pyvisa.constants import StatusCode
    from pyvisa.errors import VisaIOError
except ImportError:  # pragma: no cover
    VisaIOError = OSError  # type: ignore[misc,assignment]
    StatusCode = None  # type: ignore[assignment,misc]

T = TypeVar("T")

_TIMEOUT_CODES = {int(StatusCode.error_timeout)} if StatusCode is not None else set()
_ERROR_REPLY = re.compile(r'^\s*([+-]?\d+)\s*,\s*"?(.*?)"?\s*$')
#: separators of a compound reply (``,`` within a query's list, ``;`` between queries)
_REPLY_SEPARATORS = re.compile(r"[,;]")
#: how long to wait for the late reply of an interrupted query before the next query (ms)
_DRAIN_TIMEOUT_MS = 500
#: what a transport raises when the link or the reply fails (mapped by ScpiInstrument._typed_error)
_TRANSPORT_ERRORS = (VisaIOError, TimeoutError, ConnectionError, EOFError, OSError, UnicodeDecodeError)


class Transport(Protocol):
    timeout: Any

    def write(self, message: str) -> Any: ...

    def read(self) -> str: ...

    def query(self, message: str) -> str: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ReconnectPolicy:
    """Reconnect ``attempts`` times, ``delay_s`` apart, after a dropped connection."""

    attempts: int = 3
    delay_s: float = 0.5


@dataclass(frozen=True)
class Identity:
    make: str
    model: str
    serial: str
    firmware: str


def parse_identity(reply: str) -> Identity:
    """``*IDN?`` -> make, model, serial, firmware (IEEE 488.2 §10.14: four comma-separated fields)."""
    fields = [f.strip() for f in reply.strip().split(",")]
    if len(fields) != 4 or not fields[0] or not fields[1]:
        raise ValueError(f"*IDN? reply is not 4 fields: {reply!r}")
    return Identity(*fields)


class ScpiInstrument:
    """One SCPI session: write/query with typed errors, error-checked configuration, reconnect."""

    def __init__(
        self,
        transport: Transport,
        name: str,
        *,
        reopen: Callable[[], Transport] | None = None,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        self.transport = transport
        self.name = name
        self._reopen = reopen
        self._policy = reconnect if reopen is not None else None
        #: a query was interrupted (Ctrl-C, SIGTERM) after its write: the instrument's reply may
        #: still arrive, and would answer the next query (the safe state's ``OUTP?`` read-back)
        self._reply_may_be_pending = False

    # --- raw operations ---
    # The transport is called directly on the success path (no closure, no extra frame: measure()
    # is the engine's per-interval call); only a failure pays for the mapping and the retry.
    def write(self, command: str, *, idempotent: bool = True) -> None:
        if self._reply_may_be_pending:  # e.g. the safe state's OUTP OFF right after a Ctrl-C
            self._discard_pending_reply()
        try:
            self.transport.write(command)
        except _TRANSPORT_ERRORS as error:
            self._recover(command, lambda: self.transport.write(command), idempotent, error)

    def query(self, command: str) -> str:
        if self._reply_may_be_pending:
            self._discard_pending_reply()
        try:
            reply = self.transport.query(command)
        except _TRANSPORT_ERRORS as error:
            reply = self._recover(command, lambda: self.transport.query(command), True, error)
        except KeyboardInterrupt:
            self._reply_may_be_pending = True
            raise
        return reply.strip()

    def query_floats(self, command: str, count: int | None = None) -> list[float]:
        """A query whose reply is numbers separated by ``,`` or ``;`` (compound queries)."""
        # The transport is called here, not through query(): one Python frame less on measure()'s
        # path. float() ignores the surrounding whitespace itself.
        if self._reply_may_be_pending:
            self._discard_pending_reply()
        try:
            reply = self.transport.query(command)
        except _TRANSPORT_ERRORS as error:
            reply = self._recover(command, lambda: self.transport.query(command), True, error)
        except KeyboardInterrupt:
            self._reply_may_be_pending = True
            raise
        # str.split when there is no comma (every compound measure reply): cheaper than the regex
        parts = _REPLY_SEPARATORS.split(reply) if "," in reply else reply.split(";")
        if count is not None and len(parts) != count:
            raise ProtocolError(self.name, command, f"expected {count} values, got {reply.strip()!r}")
        try:
            return list(map(float, parts))  # no per-call comprehension frame
        except ValueError as error:
            raise ProtocolError(self.name, command, f"not numbers: {reply.strip()!r}") from error

    def query_float(self, command: str) -> float:
        return self.query_floats(command, 1)[0]

    def query_bool(self, command: str) -> bool:
        reply = self.query(command).upper()
        if reply in ("1", "ON"):
            return True
        if reply in ("0", "OFF"):
            return False
        raise ProtocolError(self.name, command, f"not a boolean: {reply!r}")

    def query_int(self, command: str) -> int:
        reply = self.query(command)
        try:
            return int(float(reply))
        except ValueError as error:
            raise ProtocolError(self.name, command, f"not an integer: {reply!r}") from error

    # --- checked configuration ---
    def next_error(self) -> tuple[int, str]:
        reply = self.query("SYST:ERR?")
        match = _ERROR_REPLY.match(reply)
        if match is None:
            raise ProtocolError(self.name, "SYST:ERR?", f"not <code>,<text>: {reply!r}")
        return int(match.group(1)), match.group(2)

    def configure(self, command: str, *, idempotent: bool = True) -> None:
        """Write ``command`` then read the error queue: the instrument's error becomes InstrumentError."""
        self.write(command, idempotent=idempotent)
        code, text = self.next_error()
        if code != 0:
            # Drain what else the command left so the next check starts clean.
            for _ in range(20):
                if self.next_error()[0] == 0:
                    break
            raise InstrumentError(self.name, command, f"{code},{text}")

    def identify(self) -> Identity:
        reply = self.query("*IDN?")
        try:
            return parse_identity(reply)
        except ValueError as error:
            raise ProtocolError(self.name, "*IDN?", str(error)) from error

    def close(self) -> None:
        with contextlib.suppress(OSError, VisaIOError):
            self.transport.close()

    def reconnect(self) -> None:
        """One re-open attempt, now (the caller paces attempts: the engine backs off on bench time).

        Counts only once the new session answers ``*IDN?`` (a raw-socket open succeeds with no peer
        behind it); no retries here. Raises ConnectionLost or InstrumentTimeout otherwise."""
        if self._reopen is None:
            raise ConnectionLost(self.name, "reconnect", "no re-open configured for this transport")
        self.close()
        self.transport = self._mapped("reconnect", self._reopen)
        self._mapped("*IDN?", lambda: self.transport.query("*IDN?"))

    def _discard_pending_reply(self) -> None:
        """Drop the reply of an interrupted query before the next one is asked: a fresh session
        when the transport can be re-opened (nothing old can arrive on it), else read and discard
        what comes within a short time-out."""
        if self._reopen is not None:
            self.close()
            # a failed re-open raises the typed error here, before the command, and the next call
            # tries again (the closed session is never used): the caller's error handling (the
            # safe state's retries, the link supervisor) takes it from there
            self.transport = self._mapped("reconnect", self._reopen)
            self._reply_may_be_pending = False
            return
        self._reply_may_be_pending = False
        saved = self.transport.timeout
        try:
            self.transport.timeout = min(int(saved), _DRAIN_TIMEOUT_MS) if isinstance(saved, int | float) else saved
            for _ in range(8):  # a stale reply is one line; a few more would be a confused session
                self.transport.read()
        except _TRANSPORT_ERRORS:
            pass  # nothing (more) to read: the session is clean
        finally:
            self.transport.timeout = saved

    # --- error mapping and reconnection ---
    def _recover(self, operation: str, action: Callable[[], T], idempotent: bool, error: BaseException) -> T:
        """``error`` (raised by the first try of ``action``) as the typed error, or the result of
        ``action`` after a reconnect when the policy allows it."""
        typed = self._typed_error(operation, error)
        # A pulled cable often shows as a time-out rather than a reset; and after a time-out a
        # late reply could answer the next query, so a fresh session is the safe retry.
        if self._policy is None or not idempotent or not isinstance(typed, ConnectionLost | InstrumentTimeout):
            raise typed from error
        return self._retry_after_reconnect(operation, action, typed)

    def _mapped(self, operation: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except _TRANSPORT_ERRORS as error:
            raise self._typed_error(operation, error) from error

    def _typed_error(self, operation: str, error: BaseException) -> InstrumentError:
        if isinstance(error, VisaIOError):
            if getattr(error, "error_code", None) in _TIMEOUT_CODES:
                return InstrumentTimeout(self.name, operation, f"no reply within {self._timeout_s()} s")
            return ConnectionLost(self.name, operation, str(error))
        if isinstance(error, TimeoutError):
            return InstrumentTimeout(self.name, operation, f"no reply within {self._timeout_s()} s")
        if isinstance(error, UnicodeDecodeError):
            return ProtocolError(self.name, operation, f"undecodable reply: {error}")
        return ConnectionLost(self.name, operation, f"{type(error).__name__}: {error}")

    def _timeout_s(self) -> float:
        timeout = getattr(self.transport, "timeout", None)
        return float(timeout) / 1000 if isinstance(timeout, int | float) else float("nan")

    def _retry_after_reconnect(self, operation: str, action: Callable[[], T], lost: InstrumentError) -> T:
        """Re-open and retry per the policy; a re-open only counts once the retried operation works
        (a raw-socket open can succeed before the peer accepts sessions again)."""
        assert self._policy is not None and self._reopen is not None
        last: Exception = lost
        for _ in range(self._policy.attempts):
            time.sleep(self._policy.delay_s)
            self.close()
            try:
                self.transport = self._reopen()
                return self._mapped(operation, action)
            except (ConnectionLost, OSError, VisaIOError) as error:
                last = error
            except InstrumentError as error:  # e.g. open_resource refused: try again
                last = error
        raise ConnectionLost(
            self.name, operation, f"reconnect failed after {self._policy.attempts} attempts: {last}"
        ) from last
