"""Units allowed after a number in a procedure expression.

Every quantity is carried in one base unit per dimension (V, A, W, s, Ah, Wh, %, degC), so a
literal is scaled once at parse time and the engine never converts. The C-rate (``0.5C``) is
special: it means "times the pack's nominal capacity, in A" and is resolved when the capacity
is known (see :meth:`bench.procedure.expr.Expr.bind_units`).
"""

from __future__ import annotations

from typing import NamedTuple


class Unit(NamedTuple):
    dimension: str  # base unit name, also used as the dimension label in error messages
    factor: float   # multiply the literal by this to get the base unit


#: Literal suffix -> (dimension, factor to the base unit). Case-sensitive on purpose: mA vs MA.
UNITS: dict[str, Unit] = {
    "V": Unit("V", 1.0),
    "mV": Unit("V", 1e-3),
    "A": Unit("A", 1.0),
    "mA": Unit("A", 1e-3),
    "W": Unit("W", 1.0),
    "kW": Unit("W", 1e3),
    "s": Unit("s", 1.0),
    "ms": Unit("s", 1e-3),
    "min": Unit("s", 60.0),
    "h": Unit("s", 3600.0),
    "Ah": Unit("Ah", 1.0),
    "mAh": Unit("Ah", 1e-3),
    "Wh": Unit("Wh", 1.0),
    "kWh": Unit("Wh", 1e3),
    "%": Unit("%", 1.0),          # percent is the base unit of SOC/SOH: 3% == 3
    "degC": Unit("degC", 1.0),
    "C": Unit("A", 1.0),          # C-rate: x nominal capacity (Ah) -> A, resolved at bind time
}

C_RATE = "C"

#: Human names of the dimensions, for messages ("expected a voltage (V)").
DIMENSION_NAMES: dict[str, str] = {
    "V": "a voltage (V)",
    "A": "a current (A)",
    "W": "a power (W)",
    "s": "a duration (s)",
    "Ah": "a charge (Ah)",
    "Wh": "an energy (Wh)",
    "%": "a percentage (%)",
    "degC": "a temperature (degC)",
}


def describe(dimension: str) -> str:
    return DIMENSION_NAMES.get(dimension, dimension)


def parse_unit_name(unit: str) -> str | None:
    """The dimension of a unit written in a parameter's ``unit:`` field, or None if not a unit."""
    found = UNITS.get(unit.strip())
    return found.dimension if found else None
