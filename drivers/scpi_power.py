"""Table-driven SCPI supplies and loads: a family module is a :class:`PowerFamily` table plus a
two-line subclass of :class:`ScpiPowerSupply` or :class:`ScpiElectronicLoad`.

Command templates use ``{value}`` for a number (formatted to the family's resolution) and
``{state}`` for ``ON``/``OFF``. Several queries that belong together are sent as ONE compound
program message (``A?;:B?``), answered in one reply separated by ``;`` (SCPI-1999 §6.2.4), so
``measure()`` and the protection read-backs cost one round trip each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.errors import BenchError, InstrumentError, ProtocolError
from drivers.power import (
    Capabilities,
    ElectronicLoad,
    LoadMode,
    PowerInstrument,
    PowerSupply,
    ProtectionSettings,
    Ranges,
    Resolution,
)
from drivers.scpi import Identity, ReconnectPolicy, ScpiInstrument, Transport
from drivers.visa import open_resource


@dataclass(frozen=True)
class LimitCommands:
    """How one instrument-side limit is programmed, enabled, read back and reported."""

    set: str  # "VOLT:PROT {value}"
    query: str  # "VOLT:PROT?"
    enable: str | None = None  # "VOLT:PROT:STAT ON" (None: always active)
    enabled_query: str | None = None  # "VOLT:PROT:STAT?"
    tripped_query: str | None = None  # "VOLT:PROT:TRIG?" when the family reports per protection


@dataclass(frozen=True)
class PowerFamily:
    name: str
    kind: str  # "supply" | "load"
    manual: str
    make_pattern: str  # regex on the *IDN? make field
    models: dict[str, Ranges]
    resolution: Resolution
    commands: dict[str, str]  # operation -> template (see the family modules)
    limits: dict[str, LimitCommands]
    clear: tuple[str, ...]
    tripped_register: str | None = None  # "STAT:QUES:COND?"
    tripped_bits: dict[str, int] = field(default_factory=dict)
    init: tuple[str, ...] = ()  # sent once after connecting (e.g. SYST:REM)
    mode_names: dict[str, str] = field(default_factory=dict)  # load: "CC" -> "CURR"
    ocp_is_cc_trip: bool = False
    notes: str = ""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(frozenset(self.limits), self.ocp_is_cc_trip, self.notes)

    def model_ranges(self, model: str) -> Ranges:
        ranges = self.models.get(model)
        if ranges is None:
            raise InstrumentError(self.name, "identify", f"model {model!r} not in {sorted(self.models)}")
        return ranges

    def matches(self, identity: Identity) -> bool:
        make_ok = re.search(self.make_pattern, identity.make, re.IGNORECASE) is not None
        return make_ok and identity.model in self.models


def format_value(value: float, step: float) -> str:
    """``value`` rounded to the programming resolution, without trailing zeros (``29.2``, ``0``)."""
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    text = f"{round(value / step) * step:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class ScpiPowerBase(PowerInstrument):
    family: ClassVar[PowerFamily]

    def __init__(self, scpi: ScpiInstrument, model: str | None = None) -> None:
        self.scpi = scpi
        self.name = scpi.name
        if model is None:
            identity = scpi.identify()
            if not self.family.matches(identity):
                raise InstrumentError(
                    scpi.name, "identify",
                    f"{identity.make} {identity.model} is not a {self.family.name} model",
                )
            model = identity.model
        self.model = model
        self.ranges = self.family.model_ranges(model)
        self.resolution = self.family.resolution
        self.capabilities = self.family.capabilities
        # looked up once: measure() is the engine's per-interval call (None: the family has none)
        self._measure_command = self.family.commands.get("measure")
        for command in self.family.init:
            self.scpi.write(command)

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        name: str | None = None,
        timeout_s: float = 2.0,
        backend: str = "@py",
        reconnect: ReconnectPolicy | None = None,
        model: str | None = None,
    ) -> ScpiPowerBase:
        """Open ``resource`` through VISA (``drivers.visa``) and bind it to this family."""
        def reopen() -> Transport:
            transport: Transport = open_resource(resource, timeout_s, backend)
            return transport

        scpi = ScpiInstrument(reopen(), name or resource, reopen=reopen, reconnect=reconnect)
        return cls(scpi, model)

    # --- helpers ---
    def _template(self, operation: str) -> str:
        template = self.family.commands.get(operation)
        if template is None:
            raise InstrumentError(self.name, operation, f"the {self.family.name} family has no {operation}")
        return template

    def _send_value(self, operation: str, value: float, step: float) -> None:
        self._send_value_template(self._template(operation), value, step)

    def _send_state(self, operation: str, on: bool) -> None:
        # Switching on is not idempotent from the safety point of view: never retried blindly.
        self.scpi.configure(self._template(operation).format(state="ON" if on else "OFF"), idempotent=not on)

    def _compound(self, queries: list[str]) -> list[str]:
        reply = self.scpi.query(";:".join(queries))
        parts = [p.strip() for p in reply.split(";")]
        if len(parts) != len(queries):
            raise ProtocolError(self.name, ";:".join(queries), f"expected {len(queries)} replies: {reply!r}")
        return parts

    def _limit_step(self, limit: str) -> float:
        return {"ovp": self.resolution.voltage, "uvp": self.resolution.voltage,
                "ocp": self.resolution.current, "opp": self.resolution.power,
                "timer": self.resolution.time}[limit]

    # --- PowerInstrument ---
    def identify(self) -> Identity:
        return self.scpi.identify()

    def measure(self) -> tuple[float, float]:
        command = self._measure_command or self._template("measure")
        volts, amps = self.scpi.query_floats(command, 2)
        return volts, amps

    def set_limit(self, limit: str, value: float) -> None:
        self.check_limit(limit, value)
        commands = self.family.limits[limit]
        self._send_value_template(commands.set, value, self._limit_step(limit))
        if commands.enable is not None:
            self.scpi.configure(commands.enable)

    def _send_value_template(self, template: str, value: float, step: float) -> None:
        self.scpi.configure(template.format(value=format_value(value, step)))

    def protection_settings(self) -> ProtectionSettings:
        queries: list[str] = []
        for commands in self.family.limits.values():
            queries.append(commands.query)
            if commands.enabled_query is not None:
                queries.append(commands.enabled_query)
        replies = iter(self._compound(queries))
        values: dict[str, float | None] = {}
        try:
            for limit, commands in self.family.limits.items():
                level = float(next(replies))
                enabled = True if commands.enabled_query is None else next(replies).upper() in ("1", "ON")
                values[limit] = level if enabled and not self._disabled_by_level(limit, level) else None
        except ValueError as error:
            raise ProtocolError(self.name, ";:".join(queries), str(error)) from error
        return ProtectionSettings(**values)

    def _disabled_by_level(self, limit: str, level: float) -> bool:
        return limit in ("uvp", "timer") and level == 0.0  # Von 0 / timer 0: no cut-off

    def protection_tripped(self) -> list[str]:
        if self.family.tripped_register is not None:
            bits = self.scpi.query_int(self.family.tripped_register)
            return [name for name, bit in self.family.tripped_bits.items() if bits & bit]
        per_limit = [(name, c.tripped_query) for name, c in self.family.limits.items() if c.tripped_query]
        replies = self._compound([query for _, query in per_limit if query])
        return [name for (name, _), reply in zip(per_limit, replies, strict=True) if reply in ("1", "ON")]

    def clear_protection(self) -> None:
        for command in self.family.clear:
            self.scpi.configure(command)

    def close(self) -> None:
        self.scpi.close()

    def reconnect(self) -> None:
        """A fresh session now, one attempt (after a dropped link); raises ConnectionLost."""
        self.scpi.reconnect()

    def output_is_on(self) -> bool:
        """Read back the output (supply) / input (load) state with the family's own query, the
        table's ``output_state`` entry (``OUTP?`` / ``INP?``, SCPI-1999 vol. 2 OUTPut[:STATe])."""
        return self.scpi.query_bool(self._template("output_state"))

    def _attempt(self, problems: list[str], what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except (BenchError, OSError) as error:
            problems.append(f"{what}: {error}")


class ScpiPowerSupply(ScpiPowerBase, PowerSupply):
    def set_voltage(self, volts: float) -> None:
        self.check("voltage", volts, 0.0, self.ranges.v_max, "V")
        self._send_value("set_voltage", volts, self.resolution.voltage)

    def set_current(self, amps: float) -> None:
        self.check("current", amps, 0.0, self.ranges.i_max, "A")
        self._send_value("set_current", amps, self.resolution.current)

    def output(self, on: bool) -> None:
        self._send_state("output", on)

    def safe_state(self) -> list[str]:
        problems: list[str] = []
        self._attempt(problems, "output off", lambda: self.output(False))
        self._attempt(problems, "voltage 0", lambda: self.set_voltage(0.0))
        self._attempt(problems, "current 0", lambda: self.set_current(0.0))
        return problems


class ScpiElectronicLoad(ScpiPowerBase, ElectronicLoad):
    def set_mode(self, mode: LoadMode) -> None:
        name = self.family.mode_names.get(mode)
        if name is None:
            known = sorted(self.family.mode_names)
            raise InstrumentError(self.name, f"set mode {mode}", f"modes are {known}")
        self.scpi.configure(self._template("set_mode").format(mode=name))

    def set_current(self, amps: float) -> None:
        self.check("current", amps, 0.0, self.ranges.i_max, "A")
        self._send_value("set_current", amps, self.resolution.current)

    def set_voltage(self, volts: float) -> None:
        self.check("voltage", volts, 0.0, self.ranges.v_max, "V")
        self._send_value("set_voltage", volts, self.resolution.voltage)

    def set_resistance(self, ohms: float) -> None:
        self.check("resistance", ohms, self.ranges.r_min, self.ranges.r_max, "ohm")
        self._send_value("set_resistance", ohms, self.resolution.resistance)

    def set_power(self, watts: float) -> None:
        self.check("power", watts, 0.0, self.ranges.p_max, "W")
        self._send_value("set_power", watts, self.resolution.power)

    def input(self, on: bool) -> None:
        self._send_state("input", on)

    def safe_state(self) -> list[str]:
        problems: list[str] = []
        self._attempt(problems, "input off", lambda: self.input(False))
        self._attempt(problems, "mode CC", lambda: self.set_mode("CC"))
        self._attempt(problems, "current 0", lambda: self.set_current(0.0))
        return problems

