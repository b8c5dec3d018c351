"""The VS02 broadcast DBC (``drivers/data/vs02.dbc``): the one definition both ends use.

Also holds the few conventions that sit beside the DBC: the order of the 2-bit alarm fields in
0x35A (bit i of the BMS's alarm/warning bitmaps <-> the i-th name here) and the divergence
condition codes of 0x404 (taken from the DBC's value table).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cantools

DBC_PATH = Path(__file__).parent / "data" / "vs02.dbc"

# battery.md §6.1, 0x35A: byte0 general, high-V, low-V, high-T; byte1 low-T, charge high-T,
# charge low-T, discharge OC; byte2 charge OC, contactor, short circuit, BMS internal; byte3 imbalance.
ALARM_SIGNALS = (
    "General", "HighVoltage", "LowVoltage", "HighTemperature",
    "LowTemperature", "ChargeHighTemperature", "ChargeLowTemperature", "DischargeOverCurrent",
    "ChargeOverCurrent", "Contactor", "ShortCircuit", "BmsInternal",
    "CellImbalance",
)
ALARM_ACTIVE = 1  # battery.md §6.1: bit pair "01" = active, "10" = cleared/OK

MANUFACTURER = b"VETHY   "  # 0x35E: 8 ASCII characters


@cache
def load_dbc(path: Path = DBC_PATH) -> cantools.database.can.Database:
    db = cantools.database.load_file(str(path))
    assert isinstance(db, cantools.database.can.Database)
    return db


def _condition_codes() -> dict[str, int]:
    signal = load_dbc().get_message_by_name("BMS_Status").get_signal_by_name("DivergenceCondition")
    assert signal.choices is not None
    return {str(name): int(code) for code, name in signal.choices.items()}


CONDITION_CODES: dict[str, int] = _condition_codes()
CONDITION_NAMES: dict[int, str] = {code: name for name, code in CONDITION_CODES.items()}


def frame_table_markdown(db: cantools.database.can.Database | None = None) -> str:
    """The broadcast frame table of ``docs/can_uds.md`` (a test keeps the doc equal to this)."""
    db = db or load_dbc()
    rows = [
        "| ID | Message | DLC | Signals (start bit \\| length, s = signed \\| factor \\| unit) |",
        "|---|---|---|---|",
    ]
    for m in sorted(db.messages, key=lambda m: m.frame_id):
        signals = "; ".join(
            f"{s.name} {s.start}\\|{s.length}{'s' if s.is_signed else ''}\\|{s.scale:g}"
            f"{f'{s.offset:+g}' if s.offset else ''}\\|{s.unit or '-'}"
            for s in m.signals
        )
        rows.append(f"| 0x{m.frame_id:03X} | {m.name} | {m.length} | {signals} |")
    return "\n".join(rows)
