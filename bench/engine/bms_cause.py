"""Why the BMS opened its contactor, in words: its alarms (0x35A) and its active DTCs (UDS 0x19).

An open contactor is the consequence; the operator needs the cause ("cell 3 over-voltage
3.80 V"). The engine reads both in the control interval that saw the contactor open, after
the outputs are off, and names them with the measured value that goes with each alarm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.engine.port import BmsAdapter

if TYPE_CHECKING:
    from drivers.vs02_broadcast import BmsSnapshot

#: 0x35A alarm bits (drivers.vs02_dbc.ALARM_SIGNALS, battery.md §6.1) in an operator's words
ALARM_WORDS: dict[str, str] = {
    "HighVoltage": "over-voltage",
    "LowVoltage": "under-voltage",
    "HighTemperature": "over-temperature",
    "LowTemperature": "under-temperature",
    "ChargeHighTemperature": "charge over-temperature",
    "ChargeLowTemperature": "charge under-temperature",
    "DischargeOverCurrent": "discharge over-current",
    "ChargeOverCurrent": "charge over-current",
    "Contactor": "contactor fault",
    "ShortCircuit": "short circuit",
    "BmsInternal": "BMS internal fault",
    "CellImbalance": "cell imbalance",
    "General": "general alarm",
}


def _extreme(values: list[float] | None, highest: bool) -> tuple[int, float] | None:
    if not values:
        return None
    index = max(range(len(values)), key=lambda i: values[i] if highest else -values[i])
    return index, float(values[index])


def describe_alarm(name: str, snap: BmsSnapshot) -> str:
    """One alarm with the reading that goes with it, e.g. ``cell 3 over-voltage 3.80 V``."""
    words = ALARM_WORDS.get(name, name)
    if name in ("HighVoltage", "LowVoltage"):
        found = _extreme(getattr(snap, "cell_voltages_v", None), name == "HighVoltage")
        if found is not None:
            return f"cell {found[0] + 1} {words} {found[1]:.2f} V"
    elif "Temperature" in name:
        temps = list(getattr(snap, "temperatures_c", None) or [])[:8]  # 8 cells (+ enclosure)
        found = _extreme(temps, "High" in name)
        if found is not None:
            return f"cell {found[0] + 1} {words} {found[1]:.1f} °C"
    elif "OverCurrent" in name and snap.current_a is not None:
        return f"{words} {abs(float(snap.current_a)):.1f} A"
    return words


def contactor_cause(adapter: BmsAdapter) -> str:
    """The BMS's own account of why it opened: alarms with readings, then active DTCs.
    Never raises; says what it could not read."""
    parts: list[str] = []
    try:
        snap = adapter.snapshot()
        alarms = [a for a in (snap.alarms or []) if a != "General"] or list(snap.alarms or [])
        # the charge-specific temperature alarm says more than the general one set with it
        alarms = [a for a in alarms if f"Charge{a}" not in alarms]
        parts.extend(describe_alarm(a, snap) for a in alarms)
    except Exception as exc:  # a cause we cannot read must not hide the stop itself
        parts.append(f"BMS alarms unreadable ({exc})")
    try:
        active = adapter.active_dtcs()
        if active:
            parts.append("active DTC " + ", ".join(f"{d.code_hex} {d.name}" for d in active))
    except Exception as exc:
        parts.append(f"BMS DTCs unreadable ({exc})")
    return "; ".join(parts) if parts else "the BMS reports no alarm and no active DTC"
