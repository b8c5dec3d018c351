"""Simulated bench supplies and electronic loads that speak their family's SCPI.

The world model calls, each step: :meth:`SimInstrument.node_current` (while solving the pack
terminal node by bisection: continuous and non-increasing in the terminal voltage), then
:meth:`SimInstrument.observe` with the solution (readings, protections, timers). A driver talks
to the same object through :class:`bench.sim.scpi_server.ScpiServer` via :meth:`handle`.

Physics is ideal regulation with steep but finite slopes (``CV_SLOPE_OHM``) so the node function
stays continuous. Measurements carry a per-instance gain/offset error drawn inside the family's
datasheet accuracy and are quantised to its display resolution.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any

from bench.sim.instrument_families import SIM_FAMILIES, Accuracy, SimFamily
from bench.sim.scpi import (
    ScpiDevice,
    ScpiError,
    format_bool,
    format_number,
    no_args,
    one_arg,
    parse_bool,
    parse_choice,
    parse_number,
)

CV_SLOPE_OHM = 1e-4  # regulation slope: 10 kA/V, stiff against a ~20 mΩ pack, still continuous
VON_RAMP_V = 0.01  # the load's Von gate opens over 10 mV so node_current stays continuous
SENSE_LEAD_OFF_GAIN = 0.95  # remote sense open: the meter reads 5 % low (local terminals, lead drop)
MIN_LAST_V = 1.0  # CP/power-limit use the last observed voltage, floored so start-up stays finite
ACCURACY_USE = 0.8  # per-instance error drawn within 80 % of the datasheet figure

SIM_SUPPLY_FAMILIES: list[str] = [f.name for f in SIM_FAMILIES.values() if f.kind == "supply"]
SIM_LOAD_FAMILIES: list[str] = [f.name for f in SIM_FAMILIES.values() if f.kind == "load"]


class _Meter:
    """One readback channel: fixed gain/offset error within the datasheet, display quantisation."""

    def __init__(self, accuracy: Accuracy, rng: random.Random) -> None:
        self.accuracy = accuracy
        self.gain = 1.0 + rng.uniform(-1.0, 1.0) * accuracy.gain_fraction * ACCURACY_USE
        self.offset = rng.uniform(-1.0, 1.0) * accuracy.offset * ACCURACY_USE
        self.extra_gain = 1.0  # a fault: shunt_gain_error

    def read(self, true_value: float) -> float:
        value = true_value * self.gain * self.extra_gain + self.offset
        step = self.accuracy.resolution
        return round(value / step) * step


class SimInstrument(ScpiDevice):
    """Base of :class:`SimSupply` and :class:`SimLoad`: settings table, SCPI tree, faults."""

    def __init__(self, spec: SimFamily, rng: random.Random, serial: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.family = spec.name
        self.model = spec.model
        self.serial = serial or f"{spec.serial_prefix}{rng.randrange(10**5):05d}"
        self.settings: dict[str, Any] = {}
        self.tripped: set[str] = set()
        self.v_meter = _Meter(spec.voltage_accuracy, rng)
        self.i_meter = _Meter(spec.current_accuracy, rng)
        self.true_v = 0.0
        self.true_i = 0.0
        self._frozen: dict[str, Any] | None = None  # ignore_setpoints: the settings physics keeps
        self._sense_lead_off = False
        self._hold_s: dict[str, float] = {}  # protection -> time its condition has held
        self.reset()
        self._build_tree()

    # --- the SCPI tree from the family table ---
    def _build_tree(self) -> None:
        for command in self.spec.commands:
            key = command.key
            if command.kind == "number":
                self.add(command.pattern, command=self._number_setter(key), query=self._number_query(key))
            elif command.kind == "bool":
                self.add(command.pattern, command=self._bool_setter(key), query=self._bool_query(key))
            elif command.kind == "choice":
                self.add(command.pattern, command=self._choice_setter(key), query=self._choice_query(key))
            elif command.kind == "action":
                self.add(command.pattern, command=self._action(key))
            else:
                self.add(command.pattern, query=self._reading(key))

    def _number_setter(self, key: str) -> Any:
        setting = self.spec.numbers[key]

        def handler(args: list[str]) -> None:
            self.settings[key] = parse_number(one_arg(args), setting.unit, setting.low, setting.high,
                                              setting.reset)

        return handler

    def _number_query(self, key: str) -> Any:
        setting = self.spec.numbers[key]

        def handler(args: list[str]) -> str:
            if args:  # VOLT? MAX reports the limit
                return format_number(parse_number(one_arg(args), setting.unit, setting.low, setting.high,
                                                  setting.reset))
            return format_number(self.settings[key])

        return handler

    def _bool_setter(self, key: str) -> Any:
        def handler(args: list[str]) -> None:
            self.settings[key] = parse_bool(one_arg(args))
            self.setting_changed(key)

        return handler

    def _bool_query(self, key: str) -> Any:
        def handler(args: list[str]) -> str:
            no_args(args)
            return format_bool(self.settings[key])

        return handler

    def _choice_setter(self, key: str) -> Any:
        choices = self.spec.choices[key]

        def handler(args: list[str]) -> None:
            self.settings[key] = parse_choice(one_arg(args), choices)

        return handler

    def _choice_query(self, key: str) -> Any:
        by_value = {value: long.upper() for long, value in self.spec.choices[key].items()}

        def handler(args: list[str]) -> str:
            no_args(args)
            return by_value[self.settings[key]]

        return handler

    def _action(self, key: str) -> Any:
        def handler(args: list[str]) -> None:
            no_args(args)
            _, _, which = key.partition(":")
            self.clear_protection(which or None)

        return handler

    def _reading(self, key: str) -> Any:
        # one handler per reading, each reading only its own meter: MEAS:VOLT?;CURR? is two of
        # these every control interval
        if key == "measure_voltage":
            def voltage(args: list[str]) -> str:
                no_args(args)
                return format_number(self.voltage_reading())

            return voltage
        if key == "measure_current":
            def current(args: list[str]) -> str:
                no_args(args)
                return format_number(self.current_reading())

            return current

        def handler(args: list[str]) -> str:
            no_args(args)
            if key.startswith("tripped:"):
                return format_bool(key.partition(":")[2] in self.tripped)
            voltage, current = self.readings()
            return format_number({"measure_power": voltage * current}[key])

        return handler

    # --- IEEE 488.2 ---
    def idn(self) -> str:
        return f"{self.spec.make},{self.spec.model},{self.serial},{self.spec.firmware}"

    def reset(self) -> None:
        self.settings = {key: setting.reset for key, setting in self.spec.numbers.items()}
        self.settings.update(self.spec.bools)
        for key, choices in self.spec.choices.items():
            self.settings[key] = next(iter(choices.values()))
        self._hold_s.clear()

    def questionable_condition(self) -> int:
        return sum(bit for name, bit in self.spec.questionable_bits.items() if name in self.tripped)

    # --- state the physics uses ---
    @property
    def active(self) -> dict[str, Any]:
        """The settings the hardware acts on (frozen while ignoring setpoints)."""
        return self._frozen if self._frozen is not None else self.settings

    @property
    def output_on(self) -> bool:
        # self.active inlined: read ~10 times per simulated step
        active = self._frozen if self._frozen is not None else self.settings
        return bool(active[self._enable_key]) and not self.tripped

    _enable_key = "output"

    def setting_changed(self, key: str) -> None:
        """Hook after a boolean changes (loads restart their timer when the input turns on)."""

    def clear_protection(self, which: str | None) -> None:
        """The family's clear command: releases the latch; the output returns to its programmed state."""
        if which is None:
            self.tripped.clear()
        else:
            self.tripped.discard(which)
        self._hold_s.clear()

    def _trip(self, name: str) -> None:
        self.tripped.add(name)

    def _held(self, name: str, condition: bool, dt_s: float, delay_s: float) -> bool:
        """True when ``condition`` has held for ``delay_s`` (protection delay timers)."""
        held = self._hold_s.get(name, 0.0) + dt_s if condition else 0.0
        self._hold_s[name] = held
        return condition and held >= delay_s

    def readings(self) -> tuple[float, float]:
        return self.voltage_reading(), self.current_reading()

    def voltage_reading(self) -> float:
        return self.v_meter.read(self.true_v * (SENSE_LEAD_OFF_GAIN if self._sense_lead_off else 1.0))

    def current_reading(self) -> float:
        return self.i_meter.read(self.true_i)

    # --- faults the world can trigger ---
    def shunt_gain_error(self, gain: float) -> None:
        """Current readback multiplied by ``gain`` (the output itself is unaffected)."""
        self.i_meter.extra_gain = gain

    def sense_lead_off(self, off: bool = True) -> None:
        """Remote sense lead open: the voltage reading is wrong (low)."""
        self._sense_lead_off = off

    def ignore_setpoints(self, ignore: bool) -> None:
        """Accept commands but keep the output as it is (a hung regulation loop / firmware)."""
        self._frozen = dict(self.settings) if ignore else None

    # --- electrical interface ---
    def node_current(self, terminal_v: float) -> float:
        """Current into the pack node at ``terminal_v`` with the present settings."""
        return self.node_current_curve()(terminal_v)

    def node_current_curve(self) -> Callable[[float], float]:
        """:meth:`node_current` as a function of the terminal voltage alone, for the present
        settings. The world's node solve evaluates it ~10 times per step while nothing else
        changes, so the output state and the setpoints are read once here (``output_on`` was
        ~20 evaluations per step) rather than at each evaluation. Same arithmetic either way."""
        raise NotImplementedError

    def observe(self, terminal_v: float, current_a: float, dt_s: float) -> None:
        self.true_v = terminal_v
        self.true_i = current_a if self.output_on else 0.0
        self._check_protections(terminal_v, self.true_i, dt_s)

    def _check_protections(self, terminal_v: float, current_a: float, dt_s: float) -> None:
        raise NotImplementedError

    def _limit_trip(self, name: str, measured: float, dt_s: float) -> None:
        """Level protections common to families: ``<name>_enabled``, ``_level``, ``_delay``."""
        active = self.active
        enabled, level, delay = _limit_keys(name)
        if not active.get(enabled, False):
            return
        over = measured > active[level]
        if self._held(name, over, dt_s, active.get(delay, 0.0)):
            self._trip(name)

    def safe_state_truth(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "model": self.model,
            "output_on": self.output_on,
            "setpoints": dict(self.active),
            "programmed": dict(self.settings),
            "tripped": sorted(self.tripped),
        }


@functools.cache
def _limit_keys(name: str) -> tuple[str, str, str]:
    """The settings keys of level protection ``name`` (built once: checked at every step)."""
    return f"{name}_enabled", f"{name}_level", f"{name}_delay"


class SimSupply(SimInstrument):
    """A unidirectional DC supply: CV/CC crossover, power limit, OVP/OCP/OPP with latch."""

    def node_current_curve(self) -> Callable[[float], float]:
        if not self.output_on:
            return _no_current
        active = self.active
        voltage, current, p_max = active["voltage"], active["current"], self.spec.p_max

        def node_current(terminal_v: float) -> float:
            # max(0.0, min(cv_current, current, p_max / max(terminal_v, 1e-3))) with the builtins'
            # comparisons spelled out (same result; ~8 evaluations per step, the calls cost more)
            cv_current = (voltage - terminal_v) / CV_SLOPE_OHM
            power_limit = p_max / (1e-3 if terminal_v < 1e-3 else terminal_v)
            limit = current if current < cv_current else cv_current
            limit = power_limit if power_limit < limit else limit
            return limit if limit > 0.0 else 0.0  # never sinks

        return node_current

    def regulation_mode(self) -> str:
        if not self.output_on:
            return "OFF"
        return "CC" if self.true_i >= self.active["current"] * 0.999 - 1e-9 else "CV"

    def operation_condition(self) -> int:
        return self.spec.operation_bits.get(self.regulation_mode(), 0)

    def _check_protections(self, terminal_v: float, current_a: float, dt_s: float) -> None:
        active = self.active
        if active.get("ovp_enabled", False) and terminal_v > active["ovp_level"]:
            self._trip("ovp")  # OVP acts on the terminals even with the output off
        if not self.output_on:
            return
        if self.spec.ocp_trips_on_cc:
            if active["ocp_enabled"] and self.regulation_mode() == "CC" and active["current"] > 0:
                self._trip("ocp")
        else:
            self._limit_trip("ocp", current_a, dt_s)
        self._limit_trip("opp", terminal_v * current_a, dt_s)


class SimLoad(SimInstrument):
    """An electronic load: CC/CV/CR/CP, Von cut-off, OCP/OPP with delay, input timer."""

    _enable_key = "input"

    def __init__(self, spec: SimFamily, rng: random.Random, serial: str | None = None) -> None:
        self.last_v = 0.0
        self.timer_elapsed_s = 0.0
        self.von_armed = False  # latch mode: once Von was reached the load keeps sinking
        super().__init__(spec, rng, serial)
        self.r_on = spec.min_operating_v_at_i_max / spec.i_max

    def setting_changed(self, key: str) -> None:
        if key == "input":
            self.timer_elapsed_s = 0.0
            self.von_armed = False

    def _von_gate(self, terminal_v: float) -> float:
        active = self.active
        if active["von_latch"] and self.von_armed:
            return 1.0
        return min(1.0, max(0.0, (terminal_v - active["von"]) / VON_RAMP_V + 1.0))

    def sink_current(self, terminal_v: float) -> float:
        """Magnitude the load draws at ``terminal_v`` (non-decreasing in the voltage)."""
        return -self.node_current(terminal_v)

    def node_current_curve(self) -> Callable[[float], float]:
        if not self.output_on:
            return _no_current
        active = self.active
        floor_v = max(self.last_v, MIN_LAST_V)
        mode = active["mode"]
        if mode == "CC":
            level = active["current"]
        elif mode == "CV":
            level = active["voltage"]
        elif mode == "CR":
            level = active["resistance"]
        else:  # CP: a current setpoint from the last observed voltage (finite loop bandwidth)
            level = active["power"] / floor_v if self.last_v >= MIN_LAST_V else 0.0
        i_max, power_limit, r_on = self.spec.i_max, self.spec.p_max / floor_v, self.r_on
        # min(i_max, power_limit, v / r_on) compares left to right: its first step is fixed here
        fixed_limit = power_limit if power_limit < i_max else i_max
        latched = active["von_latch"] and self.von_armed
        von = active["von"]
        cv_mode, cr_mode = mode == "CV", mode == "CR"

        # The builtins min/max spelled out as the comparisons they make (same results; the calls
        # cost more than the arithmetic at ~8 evaluations per step).
        def node_current(terminal_v: float) -> float:
            v = 0.0 if terminal_v < 0.0 else terminal_v  # max(terminal_v, 0.0)
            if cv_mode:
                target = (v - level) / CV_SLOPE_OHM
                if not target > 0.0:  # max(0.0, target)
                    target = 0.0
            elif cr_mode:
                target = v / level
            else:  # CC, CP: the setpoint current
                target = level
            v_limit = v / r_on
            limit = v_limit if v_limit < fixed_limit else fixed_limit
            if latched:
                gate = 1.0
            else:  # _von_gate: min(1.0, max(0.0, ramp))
                ramp = (terminal_v - von) / VON_RAMP_V + 1.0
                gate = ramp if ramp > 0.0 else 0.0
                if not gate < 1.0:
                    gate = 1.0
            return -((limit if limit < target else target) * gate)

        return node_current

    def _check_protections(self, terminal_v: float, current_a: float, dt_s: float) -> None:
        self.last_v = terminal_v
        active = self.active
        if terminal_v > self.spec.v_max * 1.05:
            self._trip("ovp")  # hardware input over-voltage
        if not self.output_on:
            return
        if terminal_v >= active["von"]:
            self.von_armed = True
        self._limit_trip("ocp", current_a, dt_s)
        self._limit_trip("opp", terminal_v * current_a, dt_s)
        if active["timer_enabled"] and active["timer_delay"] > 0:
            self.timer_elapsed_s += dt_s
            if self.timer_elapsed_s >= active["timer_delay"]:
                self.active["input"] = False  # the timer turns the input off (not a fault)

    def cut_off(self) -> bool:
        """True while the Von gate keeps the input from sinking (under-voltage cut-off)."""
        return self.output_on and self._von_gate(self.last_v) == 0.0


def _no_current(terminal_v: float) -> float:
    """The node current of an instrument whose output is off."""
    return 0.0


def make_instrument(family: str, rng: random.Random, serial: str | None = None) -> SimInstrument:
    spec = SIM_FAMILIES.get(family)
    if spec is None:
        raise ValueError(f"unknown simulated instrument family {family!r}; known: {sorted(SIM_FAMILIES)}")
    cls = SimSupply if spec.kind == "supply" else SimLoad
    return cls(spec, rng, serial)


__all__ = [
    "SIM_LOAD_FAMILIES",
    "SIM_SUPPLY_FAMILIES",
    "ScpiError",
    "SimInstrument",
    "SimLoad",
    "SimSupply",
    "make_instrument",
]
