"""Typed, family-independent APIs for bench power instruments: :class:`PowerSupply` and
:class:`ElectronicLoad`, their ranges and capabilities, and :func:`program_and_verify`.

Every setpoint is checked against the model's range before anything is sent
(:class:`SetpointOutOfRange`). ``safe_state()`` never raises: it tries every step (output off,
setpoints to zero) and returns the problems it met, so an emergency stop always runs to the end.

Instrument-side limits ("defence in depth", the instrument's own protection should the bench
software die) use one vocabulary across families and one road: :func:`program_and_verify`
(which ``bench.station.Bench`` calls before any output turns on) programs each through
:meth:`PowerInstrument.set_limit` and reads them all back; there are no per-limit setters.

======== =================================================================
``ovp``  supply over-voltage protection: output off above the level (latched)
``ocp``  over-current protection (supply) / current limit trip (load)
``opp``  over-power protection / power limit trip
``uvp``  load under-voltage cut-off: the load stops sinking below the level (Von)
``timer`` load input timer: the input turns off after the time
======== =================================================================
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Literal

from bench.errors import ConnectionLost, InstrumentError, SetpointOutOfRange
from drivers.scpi import Identity

LoadMode = Literal["CC", "CV", "CR", "CP"]
LIMIT_NAMES = ("ovp", "ocp", "opp", "uvp", "timer")


@dataclass(frozen=True)
class Ranges:
    """A model's programmable maxima (and the load's resistance span)."""

    v_max: float
    i_max: float
    p_max: float
    r_min: float = 0.0
    r_max: float = math.inf


@dataclass(frozen=True)
class Resolution:
    """Programming resolution: what a read-back may differ by from the requested value."""

    voltage: float
    current: float
    power: float = 0.1
    resistance: float = 0.001
    time: float = 0.001


@dataclass(frozen=True)
class Capabilities:
    """Which instrument-side limits the family can enforce, and how."""

    limits: frozenset[str]
    ocp_is_cc_trip: bool = False  # True: OCP trips when the output enters CC (level = current setpoint)
    notes: str = ""

    def can(self, limit: str) -> bool:
        return limit in self.limits


@dataclass(frozen=True)
class ProtectionSettings:
    """Instrument-side limits; ``None`` = not requested (program) / disabled or absent (read-back)."""

    ovp: float | None = None  # V
    ocp: float | None = None  # A
    opp: float | None = None  # W
    uvp: float | None = None  # V
    timer: float | None = None  # s

    def items(self) -> list[tuple[str, float | None]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


_LIMIT_UNITS = {"ovp": "V", "ocp": "A", "opp": "W", "uvp": "V", "timer": "s"}


class PowerInstrument(ABC):
    """What supplies and loads share: identity, measurement, limits, safe state.

    Implementations set ``name``, ``model``, ``ranges``, ``resolution`` and ``capabilities``.
    """

    name: str
    model: str
    ranges: Ranges
    resolution: Resolution
    capabilities: Capabilities

    @abstractmethod
    def identify(self) -> Identity: ...

    @abstractmethod
    def measure(self) -> tuple[float, float]:
        """(volts, amps) at the terminals, in one round trip where the family allows."""

    @abstractmethod
    def set_limit(self, limit: str, value: float) -> None:
        """Program and enable one instrument-side limit (see the module table)."""

    @abstractmethod
    def protection_settings(self) -> ProtectionSettings: ...

    @abstractmethod
    def protection_tripped(self) -> list[str]:
        """Names of the latched protections (``ovp``, ``ocp``, ``opp``, ``otp``…); empty when none."""

    @abstractmethod
    def clear_protection(self) -> None: ...

    @abstractmethod
    def safe_state(self) -> list[str]:
        """Output/input off, setpoints zero. Never raises; returns the problems met (empty = all done)."""

    @abstractmethod
    def close(self) -> None: ...

    def reconnect(self) -> None:
        """One attempt at a fresh session after a dropped link; raises ConnectionLost."""
        raise ConnectionLost(self.name, "reconnect", "this driver cannot re-open its session")

    def output_is_on(self) -> bool:
        """Read the output (supply) / input (load) state back from the instrument."""
        raise InstrumentError(self.name, "read back output state", "this driver cannot read it back")

    # --- range checks, before anything is sent ---
    def check(self, what: str, value: float, low: float, high: float, unit: str) -> float:
        if not math.isfinite(value) or value < low or value > high:
            raise SetpointOutOfRange(
                self.name, f"set {what} {value:g} {unit}",
                f"outside the {self.model} range {low:g}..{high:g} {unit}",
            )
        return value

    def check_limit(self, limit: str, value: float) -> float:
        if not self.capabilities.can(limit):
            raise InstrumentError(self.name, f"set {limit}", f"the {self.model} cannot enforce {limit}")
        high = {
            "ovp": self.ranges.v_max * 1.2,  # OVP may sit above the setpoint range (N8700: 36 V on 30 V)
            "uvp": self.ranges.v_max,
            "ocp": self.ranges.i_max * 1.1,
            "opp": self.ranges.p_max * 1.1,
            "timer": 99999.0,
        }[limit]
        return self.check(limit, value, 0.0, high, _LIMIT_UNITS[limit])

    def limit_tolerance(self, limit: str) -> float:
        step = {"ovp": self.resolution.voltage, "uvp": self.resolution.voltage,
                "ocp": self.resolution.current, "opp": self.resolution.power,
                "timer": self.resolution.time}[limit]
        return step * 1.01


class PowerSupply(PowerInstrument):
    @abstractmethod
    def set_voltage(self, volts: float) -> None: ...

    @abstractmethod
    def set_current(self, amps: float) -> None: ...

    @abstractmethod
    def output(self, on: bool) -> None: ...


class ElectronicLoad(PowerInstrument):
    @abstractmethod
    def set_mode(self, mode: LoadMode) -> None: ...

    @abstractmethod
    def set_current(self, amps: float) -> None: ...

    @abstractmethod
    def set_voltage(self, volts: float) -> None: ...

    @abstractmethod
    def set_resistance(self, ohms: float) -> None: ...

    @abstractmethod
    def set_power(self, watts: float) -> None: ...

    @abstractmethod
    def input(self, on: bool) -> None: ...


def program_and_verify(instrument: PowerInstrument, requested: ProtectionSettings) -> ProtectionSettings:
    """Program every requested limit, read all back, and raise InstrumentError on any mismatch.

    A mismatch is a read-back differing from the request by more than the family's resolution,
    or a limit that reads back disabled. Returns the read-back settings (for the run record).
    """
    wanted = [(name, value) for name, value in requested.items() if value is not None]
    for name, value in wanted:
        instrument.check_limit(name, value)  # all range errors before the first command
    for name, value in wanted:
        instrument.set_limit(name, value)
    actual = instrument.protection_settings()
    for name, value in wanted:
        got = getattr(actual, name)
        if got is None or abs(got - value) > instrument.limit_tolerance(name):
            raise InstrumentError(
                instrument.name, f"verify {name}",
                f"requested {value:g} {_LIMIT_UNITS[name]}, read back "
                f"{'disabled' if got is None else f'{got:g}'}",
            )
    return actual
