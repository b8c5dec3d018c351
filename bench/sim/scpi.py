"""A generic SCPI (IEEE 488.2 / SCPI-1999) command parser and dispatcher for simulated instruments.

What it does the way real instruments do it:

* headers in short or long form, case-insensitive (``VOLT`` / ``VOLTage`` / ``volt``); only the two
  exact forms are accepted (``VOLTA`` is -113), as SCPI-1999 vol. 1 §6.2.1 requires;
* optional nodes written in brackets in the tree (``[SOURce:]VOLTage[:LEVel][:IMMediate]``);
* program messages with several commands separated by ``;``: a command not starting with ``:``
  is relative to the path of the previous one (``MEAS:VOLT?;CURR?`` is ``MEAS:CURR?``), ``;:``
  goes back to the root, ``*`` common commands do not change the path (SCPI-1999 §6.2.4);
* numeric parameters with SI multipliers and units (``2.5``, ``250mV``, ``3 A``, ``MIN``, ``MAX``,
  ``DEF``), booleans ``ON``/``OFF``/``1``/``0``;
* an error queue (20 entries, the last replaced by -350 on overflow), the standard event status
  register and status byte, and the IEEE 488.2 common commands.

The family differences live in tables: a device registers ``(pattern, handler)`` pairs and this
module does the rest. Parsed headers are cached, so a repeated query costs one dict lookup.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# SCPI-1999 vol. 2 §21.8 standard error numbers and texts used by the simulator.
NO_ERROR = (0, "No error")
COMMAND_ERROR = (-100, "Command error")
SYNTAX_ERROR = (-102, "Syntax error")
PARAMETER_NOT_ALLOWED = (-108, "Parameter not allowed")
MISSING_PARAMETER = (-109, "Missing parameter")
UNDEFINED_HEADER = (-113, "Undefined header")
EXECUTION_ERROR = (-200, "Execution error")
SETTINGS_CONFLICT = (-221, "Settings conflict")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_PARAMETER_VALUE = (-224, "Illegal parameter value")
QUEUE_OVERFLOW = (-350, "Queue overflow")
QUERY_INTERRUPTED = (-410, "Query INTERRUPTED")

ERROR_QUEUE_LENGTH = 20

# IEEE 488.2 §11.5.1 standard event status register bits.
ESR_OPC = 1
ESR_QUERY_ERROR = 4
ESR_DEVICE_ERROR = 8
ESR_EXECUTION_ERROR = 16
ESR_COMMAND_ERROR = 32
# IEEE 488.2 §11.2 status byte bits (SCPI adds QUES = 8 and OPER = 128).
STB_ERROR_QUEUE = 4
STB_QUESTIONABLE = 8
STB_MAV = 16
STB_ESB = 32
STB_OPERATION = 128


class ScpiError(Exception):
    """Raised by a handler (or the parser) to put an error in the queue."""

    def __init__(self, error: tuple[int, str], detail: str = "") -> None:
        self.code, self.text = error
        self.detail = detail
        super().__init__(f"{self.code},{self.text}")

    def message(self) -> str:
        detail = f"; {self.detail}" if self.detail else ""
        return f'{self.code},"{self.text}{detail}"'


# --- parameters -----------------------------------------------------------------------------

_MULTIPLIERS = {"": 1.0, "U": 1e-6, "M": 1e-3, "K": 1e3, "MA": 1e6}  # SCPI: M = milli, MA = mega
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")
_UNITS = ("OHM", "V", "A", "W", "S", "HZ")


def parse_number(
    text: str,
    unit: str,
    low: float,
    high: float,
    default: float | None = None,
) -> float:
    """Parse ``<NRf+>`` with an optional multiplier+unit suffix; MIN/MAX/DEF map to the range.

    Raises -224 for a wrong unit or a non-number and -222 outside ``[low, high]``.
    """
    word = text.strip().upper()
    if word in ("MIN", "MINIMUM"):
        return low
    if word in ("MAX", "MAXIMUM"):
        return high
    if word in ("DEF", "DEFAULT"):
        return low if default is None else default
    match = _NUMBER.match(text)
    if match is None:
        raise ScpiError(ILLEGAL_PARAMETER_VALUE, text.strip())
    value = float(match.group(1))
    suffix = match.group(2).upper()
    if suffix:
        scale = _unit_scale(suffix, unit)
        if scale is None:
            raise ScpiError(ILLEGAL_PARAMETER_VALUE, f"unit {match.group(2)}")
        value *= scale
    # Tolerance: a value typed with the display resolution must not fail on a float rounding.
    span = max(abs(high), abs(low), 1.0) * 1e-9
    if value < low - span or value > high + span:
        raise ScpiError(DATA_OUT_OF_RANGE, f"{value:g} not in [{low:g}, {high:g}]")
    return min(max(value, low), high)


def _unit_scale(suffix: str, unit: str) -> float | None:
    unit = unit.upper()
    if unit == "S" and suffix in ("S", "MS", "US"):  # seconds: MS is milliseconds, not mega-siemens
        return {"S": 1.0, "MS": 1e-3, "US": 1e-6}[suffix]
    for candidate in _UNITS:
        if suffix.endswith(candidate) and candidate == unit:
            multiplier = suffix[: -len(candidate)]
            if multiplier in _MULTIPLIERS:
                return _MULTIPLIERS[multiplier]
    return None


def parse_bool(text: str) -> bool:
    word = text.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(ILLEGAL_PARAMETER_VALUE, text.strip())


def parse_choice(text: str, choices: dict[str, str]) -> str:
    """Match a character parameter in short or long form: ``choices`` maps long form -> value."""
    word = text.strip().upper()
    for long_form, value in choices.items():
        if word in (long_form.upper(), _short_form(long_form)):
            return value
    raise ScpiError(ILLEGAL_PARAMETER_VALUE, text.strip())


def format_number(value: float) -> str:
    """Reply format <NR3>-compatible but short: integers and decimals as the display shows them."""
    return f"{value:.6g}" if value != 0 else "0"


def format_bool(value: bool) -> str:
    return "1" if value else "0"


# --- the command tree ------------------------------------------------------------------------

Handler = Callable[[list[str]], str | None]


def _short_form(mnemonic: str) -> str:
    """The short form is the upper-case part of the manual's mixed-case mnemonic (``VOLTage``)."""
    short = "".join(c for c in mnemonic if c.isupper() or c.isdigit())
    return short or mnemonic.upper()


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    command: Handler | None = None
    query: Handler | None = None


_PATTERN_PART = re.compile(r"\[:?([A-Za-z0-9]+):?\]|:?([A-Za-z0-9]+)")


def _expand(pattern: str) -> list[list[str]]:
    """``[SOURce:]VOLTage[:LEVel]`` -> every concrete path of mixed-case mnemonics."""
    paths: list[list[str]] = [[]]
    for match in _PATTERN_PART.finditer(pattern):
        optional, required = match.group(1), match.group(2)
        grown = [[*p, optional or required] for p in paths]
        paths = [*paths, *grown] if optional else grown
    return paths


@dataclass(frozen=True)
class _Resolved:
    handler: Handler
    path: tuple[str, ...]  # the header as typed, minus its leaf: the path for the next command


class CommandTree:
    """SCPI tree built from manual-style patterns; resolves typed headers (with caching)."""

    def __init__(self) -> None:
        self._root = _Node()
        self._cache: dict[tuple[tuple[str, ...], str], _Resolved | None] = {}

    def add(self, pattern: str, *, command: Handler | None = None, query: Handler | None = None) -> None:
        """Register ``pattern`` (manual syntax, no ``?``) with its setter and/or query handler."""
        for path in _expand(pattern):
            node = self._root
            for mnemonic in path:
                short, long = _short_form(mnemonic), mnemonic.upper()
                child = node.children.get(long) or node.children.get(short) or _Node()
                node.children[long] = child
                node.children[short] = child
                node = child
            if command is not None:
                node.command = command
            if query is not None:
                node.query = query
        self._cache.clear()

    def resolve(self, path: tuple[str, ...], header: str) -> _Resolved | None:
        key = (path, header)
        if key in self._cache:
            return self._cache[key]
        resolved = self._resolve(path, header)
        self._cache[key] = resolved
        return resolved

    def _resolve(self, path: tuple[str, ...], header: str) -> _Resolved | None:
        is_query = header.endswith("?")
        body = header[:-1] if is_query else header
        absolute = body.startswith(":")
        tokens = tuple(body.lstrip(":").upper().split(":"))
        if any(not t for t in tokens):
            return None
        full = tokens if absolute else (*path, *tokens)
        node = self._root
        for token in full:
            child = node.children.get(token)
            if child is None:
                return None
            node = child
        handler = node.query if is_query else node.command
        return None if handler is None else _Resolved(handler, full[:-1])


# --- the device --------------------------------------------------------------------------------


class ScpiDevice:
    """An IEEE 488.2 device: error queue, status registers, common commands and a SCPI tree.

    Subclasses register their tree in ``__init__`` with :meth:`add` and implement
    :meth:`idn`, :meth:`reset`, :meth:`questionable_condition`, :meth:`operation_condition`.
    """

    def __init__(self) -> None:
        self.tree = CommandTree()
        self._plans: dict[str, list[tuple[Handler, list[str]]]] = {}
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self.remote = False
        self._common: dict[str, Handler] = {
            "*IDN?": lambda _a: self.idn(),
            "*RST": self._rst,
            "*CLS": self._cls,
            "*OPC?": lambda _a: "1",
            "*OPC": self._opc,
            "*WAI": lambda _a: None,
            "*ESR?": self._esr_query,
            "*ESE": self._ese_set,
            "*ESE?": lambda _a: str(self.ese),
            "*SRE": self._sre_set,
            "*SRE?": lambda _a: str(self.sre),
            "*STB?": lambda _a: str(self.status_byte()),
            "*TST?": lambda _a: "0",
        }
        self.add("SYSTem:ERRor[:NEXT]", query=self._next_error)
        self.add("SYSTem:VERSion", query=lambda _a: "1999.0")
        self.add("SYSTem:REMote", command=self._set_remote(True))
        self.add("SYSTem:LOCal", command=self._set_remote(False))
        self.add("STATus:QUEStionable:CONDition", query=lambda _a: str(self.questionable_condition()))
        self.add("STATus:OPERation:CONDition", query=lambda _a: str(self.operation_condition()))

    # subclass hooks
    def idn(self) -> str:
        raise NotImplementedError

    def reset(self) -> None:
        """*RST: the family's reset state (IEEE 488.2 §10.32)."""

    def questionable_condition(self) -> int:
        return 0

    def operation_condition(self) -> int:
        return 0

    def add(self, pattern: str, *, command: Handler | None = None, query: Handler | None = None) -> None:
        self.tree.add(pattern, command=command, query=query)
        self._plans.clear()

    # error queue
    def push_error(self, error: tuple[int, str], detail: str = "") -> None:
        code = error[0]
        if -199 <= code <= -100:
            self.esr |= ESR_COMMAND_ERROR
        elif -299 <= code <= -200:
            self.esr |= ESR_EXECUTION_ERROR
        elif -399 <= code <= -300:
            self.esr |= ESR_DEVICE_ERROR
        elif -499 <= code <= -400:
            self.esr |= ESR_QUERY_ERROR
        if len(self.errors) >= ERROR_QUEUE_LENGTH:
            self.errors[-1] = QUEUE_OVERFLOW  # SCPI-1999 §21.8.3: the newest error is lost
            return
        text = f"{error[1]}; {detail}" if detail else error[1]
        self.errors.append((code, text))

    def _next_error(self, _args: list[str]) -> str:
        code, text = self.errors.popleft() if self.errors else NO_ERROR
        return f'{code},"{text}"'

    def status_byte(self) -> int:
        stb = 0
        if self.errors:
            stb |= STB_ERROR_QUEUE
        if self.questionable_condition():
            stb |= STB_QUESTIONABLE
        if self.esr & self.ese:
            stb |= STB_ESB
        if self.operation_condition():
            stb |= STB_OPERATION
        return stb

    def _rst(self, _args: list[str]) -> None:
        self.reset()

    def _cls(self, _args: list[str]) -> None:
        self.errors.clear()
        self.esr = 0

    def _opc(self, _args: list[str]) -> None:
        self.esr |= ESR_OPC

    def _esr_query(self, _args: list[str]) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    def _ese_set(self, args: list[str]) -> None:
        self.ese = int(parse_number(_one(args), "", 0, 255))

    def _sre_set(self, args: list[str]) -> None:
        self.sre = int(parse_number(_one(args), "", 0, 255))

    def _set_remote(self, remote: bool) -> Handler:
        def handler(_args: list[str]) -> None:
            self.remote = remote

        return handler

    # the program message
    def handle(self, message: str) -> str | None:
        """Execute one program message; return the response message or None when nothing is queried."""
        plan = self._plans.get(message)
        if plan is None:
            plan = self._plan(message)
            if plan is None:  # a unit that does not parse or resolve: its error, in order
                return self._handle_units(_parse_units(message))
            if len(self._plans) < _PLAN_CACHE_SIZE:
                self._plans[message] = plan
        replies: list[str] = []
        for handler, args in plan:
            try:
                reply = handler(args)
            except ScpiError as error:
                self.push_error((error.code, error.text), error.detail)
                if -199 <= error.code <= -100:  # SCPI-1999 §6.2.5, as in _handle_units
                    break
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _plan(self, message: str) -> list[tuple[Handler, list[str]]] | None:
        """The handlers ``message`` runs, with their arguments, when every unit parses and resolves
        (None otherwise). A message's units resolve the same way each time (the path restarts at
        the root with every message), so the plan is kept: a driver sends a handful of messages
        over and over (MEAS:VOLT?;CURR? every control interval)."""
        plan: list[tuple[Handler, list[str]]] = []
        path: tuple[str, ...] = ()
        for header, args in _parse_units(message):
            if isinstance(args, ScpiError):
                return None
            if header.startswith("*"):
                handler = self._common.get(header.upper())
            else:
                resolved = self.tree.resolve(path, header)
                handler, path = (None, path) if resolved is None else (resolved.handler, resolved.path)
            if handler is None:
                return None
            plan.append((handler, args))
        return plan

    def _handle_units(self, units: list[tuple[str, list[str] | ScpiError]]) -> str | None:
        """Execute parsed units one by one, resolving each header as execution reaches it."""
        replies: list[str] = []
        path: tuple[str, ...] = ()
        for header, args in units:
            try:
                if isinstance(args, ScpiError):
                    raise args
                if header.startswith("*"):
                    handler = self._common.get(header.upper())
                    if handler is None:
                        raise ScpiError(UNDEFINED_HEADER, header)
                else:
                    resolved = self.tree.resolve(path, header)
                    if resolved is None:
                        raise ScpiError(UNDEFINED_HEADER, header)
                    handler, path = resolved.handler, resolved.path
                reply = handler(args)
            except ScpiError as error:
                self.push_error((error.code, error.text), error.detail)
                # SCPI-1999 §6.2.5: after a command error the rest of the message is not executed.
                if -199 <= error.code <= -100:
                    break
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None


#: execution plans kept per device (:meth:`ScpiDevice._plan`); a bound keeps odd traffic from
#: growing the cache
_PLAN_CACHE_SIZE = 256


def _parse_units(message: str) -> list[tuple[str, list[str] | ScpiError]]:
    """(header, arguments) of each non-empty program message unit; a unit whose arguments do not
    parse carries its error, raised when execution reaches it (the units before it still run)."""
    units: list[tuple[str, list[str] | ScpiError]] = []
    for raw_unit in _split_units(message):
        unit = raw_unit.strip()
        if not unit:
            continue
        header, _, rest = unit.partition(" ")
        try:
            units.append((header, _split_args(rest)))
        except ScpiError as error:
            units.append((header, error))
    return units


def _split_units(message: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    if '"' not in message and "'" not in message:
        return message.split(";")
    units: list[str] = []
    current: list[str] = []
    quote = ""
    for char in message:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ";":
            units.append("".join(current))
            current = []
            continue
        current.append(char)
    units.append("".join(current))
    return units


def _split_args(rest: str) -> list[str]:
    rest = rest.strip()
    if not rest:
        return []
    args = [a.strip() for a in rest.split(",")]
    if any(not a for a in args):
        raise ScpiError(SYNTAX_ERROR, rest)
    return args


def _one(args: list[str]) -> str:
    if not args:
        raise ScpiError(MISSING_PARAMETER)
    if len(args) > 1:
        raise ScpiError(PARAMETER_NOT_ALLOWED, args[1])
    return args[0]


def one_arg(args: list[str]) -> str:
    """The single parameter of a setter: -109 when missing, -108 when there are more."""
    return _one(args)


def no_args(args: list[str]) -> None:
    """Commands and queries without parameters: -108 for any."""
    if args:
        raise ScpiError(PARAMETER_NOT_ALLOWED, args[0])
