"""The value types the engine hands around: what a procedure expression can read, and JSON payloads.

A sample's environment maps names (quantities, parameters, step results, BMS read-outs) to these
values; ``None`` is a quantity with no value yet (a BMS message not received). Named here, once, so
that the engine's signatures say what flows through them instead of ``Any``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

#: One value of the expression environment. Lists come from multi-value BMS read-outs (cell
#: voltages); ints stay ints (a DID's raw count renders as ``3``, not ``3.0``).
Value = bool | int | float | str | Sequence[float] | None

#: The environment of one sample: every name a procedure expression may read.
Env = dict[str, Value]

#: Read-only view of an environment (what judging code receives).
EnvView = Mapping[str, Value]

#: A JSON-ish payload: progress events, record event data.
JsonValue = bool | int | float | str | None | Sequence["JsonValue"] | Mapping[str, "JsonValue"]
JsonObject = dict[str, JsonValue]

#: Functions procedure expressions may call (bench.engine.port.BenchPort.expression_functions).
Functions = Mapping[str, Callable[[float], float]]


def as_float(value: object) -> float | None:
    """``value`` as a float, or None when it is missing or not a number (a text, a list)."""
    if value.__class__ is float:  # nearly every call (supervision, ~10 per sample): no isinstance chain
        return value
    if value is None or isinstance(value, str) or not isinstance(value, int | float):
        return None
    return float(value)


def to_float(value: Value) -> float:
    """``float(value)`` for a value that must be a number (an expression's result); a list or None
    raises the TypeError ``float()`` itself raises."""
    if value.__class__ is float:  # the common case, once per limit per sample
        return value
    if isinstance(value, bool | int | float | str):
        return float(value)
    raise TypeError(f"float() argument must be a string or a real number, not '{type(value).__name__}'")
