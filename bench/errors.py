"""One exception hierarchy for the whole project, rooted in :class:`BenchError`.

Every error names the thing that failed, the operation and the cause, so a message
printed on its own (CLI, report, operator screen) is enough to act on.
"""

from __future__ import annotations


class BenchError(Exception):
    """Root of every error raised by this project."""


class InputError(BenchError):
    """Bad user input (YAML file, configuration, CLI argument): exit code 2, no traceback.

    ``file``, ``line`` and ``column`` (1-based) locate the problem when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class InputErrors(InputError):
    """Several input errors found at once (validation reports all of them)."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.format() for e in errors))

    def format(self) -> str:
        return "\n".join(e.format() for e in self.errors) if hasattr(self, "errors") else self.message


class ConfigError(InputError):
    """A station, scenario or procedure file that does not validate."""


class InstrumentError(BenchError):
    """An instrument refused or failed an operation.

    Carries the instrument's name, the operation (usually the command sent) and the
    instrument's own error text where it gave one.
    """

    def __init__(self, instrument: str, operation: str, detail: str) -> None:
        self.instrument = instrument
        self.operation = operation
        self.detail = detail
        super().__init__(f"{instrument}: {operation}: {detail}")


class InstrumentTimeout(InstrumentError, TimeoutError):
    """No reply within the configured time-out."""


class ConnectionLost(InstrumentError, ConnectionError):
    """The transport to an instrument dropped."""


class ProtocolError(InstrumentError):
    """A reply that does not parse as the protocol says it must."""


class SetpointOutOfRange(InstrumentError, ValueError):
    """A setpoint outside the instrument model's range; raised before anything is sent."""


class NegativeResponse(InstrumentError):
    """A UDS negative response (0x7F); ``nrc`` is the negative response code."""

    def __init__(self, instrument: str, operation: str, nrc: int, name: str) -> None:
        self.nrc = nrc
        super().__init__(instrument, operation, f"negative response 0x{nrc:02X} ({name})")


class ProcedureError(BenchError):
    """A procedure failed while running (not a verdict: something that stops the run)."""


class SafetyTrip(ProcedureError):
    """A safety limit was breached; the run is stopped with outputs off."""


class RunAborted(ProcedureError):
    """The run was aborted (operator stop, signal, limit action ``abort``)."""


class StoreError(BenchError):
    """The records store is unreachable or refused a write."""
