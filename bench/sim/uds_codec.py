"""The simulated ECU's own UDS data encoding, written from the DID table of docs/can_uds.md.

Deliberately independent of the driver's map (``drivers/uds_map.py`` and its YAML): a real BMS's
firmware and a tester are written by different people from one specification, and a scaling or
layout error on either side must show up as a disagreement, not round-trip unseen. The golden
byte vectors in ``tests/data/vs02_golden.yaml`` hold both sides to the specification.

Conventions (docs/can_uds.md "UDS"): payloads are big-endian (ISO 14229 convention); a scaled
field carries ``round(value / scale)`` raw counts; a value outside its field's range is saturated
(a firmware clamps a field rather than refusing to answer); identification strings are ASCII in a
fixed-length field, padded with NUL (0x00) bytes after the text.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.sim.bms_types import RoutineId

# docs/can_uds.md: addressing 0x7E4 / 0x7EC, ISO-TP frames padded to 8 bytes with 0xCC
REQUEST_ID = 0x7E4
RESPONSE_ID = 0x7EC
ISOTP_PADDING = 0xCC
ISOTP_PARAMS: dict[str, Any] = {"tx_padding": ISOTP_PADDING, "tx_data_min_length": 8, "stmin": 0, "blocksize": 0}

# struct code -> (min, max) raw value
_RANGES = {"B": (0, 0xFF), "H": (0, 0xFFFF), "I": (0, 0xFFFF_FFFF),
           "b": (-0x80, 0x7F), "h": (-0x8000, 0x7FFF), "i": (-0x8000_0000, 0x7FFF_FFFF)}

# docs/can_uds.md 0x0118: condition u8
DIVERGENCE_CONDITIONS = {"full_rest": 0, "end_of_cv": 1, "mid_plateau": 2, "low_soc": 3, "under_load": 4}
BALANCING_LOG_ROWS = 8  # docs/can_uds.md 0x011C: 8 records
SNAPSHOT_DID = 0x0130  # docs/can_uds.md: the freeze frame is DID 0x0130, record 0x01
SNAPSHOT_RECORD = 0x01
EXTENDED_DATA_RECORD = 0x01


def _raw(code: str, value: float, scale: float = 1.0) -> int:
    low, high = _RANGES[code]
    return min(high, max(low, round(float(value) / scale)))


def _pack(fmt: str, values: Sequence[float], scale: float = 1.0) -> bytes:
    """Big-endian ``fmt`` (one struct code per value) with each value scaled and saturated."""
    return struct.pack(">" + fmt, *(_raw(code, v, scale) for code, v in zip(fmt, values, strict=True)))


def _ascii(length: int) -> Callable[[Any], bytes]:
    def encode(text: Any) -> bytes:
        data = str(text).encode("ascii", "replace")[:length]
        return data + b"\x00" * (length - len(data))
    return encode


def _one(code: str, scale: float = 1.0) -> Callable[[Any], bytes]:
    return lambda value: _pack(code, [value], scale)


def _many(code: str, count: int, scale: float) -> Callable[[Any], bytes]:
    def encode(values: Any) -> bytes:
        values = list(values)
        if len(values) != count:
            raise ValueError(f"expected {count} values, got {len(values)}")
        return _pack(code * count, values, scale)
    return encode


def _divergence(value: Mapping[str, Any]) -> bytes:
    return _pack("H", [value["divergence"]], 0.001) + bytes([DIVERGENCE_CONDITIONS[value["condition"]]])


def _balancing(value: Mapping[str, Any]) -> bytes:
    return _pack("BI", [value["active_cells"], value["active_time"]])


def _log_row(row: Mapping[str, Any]) -> bytes:
    return _pack("IIB", [row["start_epoch"], row["end_epoch"], row["cells"]]) + _pack("H", [row["ah_bled"]], 0.001)


def _balancing_log(value: Mapping[str, Any]) -> bytes:
    rows = list(value["records"])[-BALANCING_LOG_ROWS:]
    empty = {"start_epoch": 0, "end_epoch": 0, "cells": 0, "ah_bled": 0.0}
    rows += [empty] * (BALANCING_LOG_ROWS - len(rows))
    return bytes([min(int(value["entries"]), BALANCING_LOG_ROWS)]) + b"".join(_log_row(r) for r in rows)


def _snapshot(value: Mapping[str, Any]) -> bytes:
    return b"".join((
        _pack("H", [value["soc"]], 0.01),
        _pack("HH", [value["vmin"], value["vmax"]], 0.001),
        _pack("h", [value["temp"]], 0.1),
        _pack("i", [value["current"]], 0.001),
    ))


@dataclass(frozen=True)
class SimDid:
    """One data identifier as the simulated firmware serves it."""

    id: int
    name: str
    size: int
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any] | None = None  # writable DIDs only: raw payload -> value


def _u32_milli(data: bytes) -> float:
    return struct.unpack(">I", data)[0] * 0.001


def _s16_milli(data: bytes) -> float:
    return struct.unpack(">h", data)[0] * 0.001


# docs/can_uds.md "DIDs, routines, DTCs": id, name, bytes, layout. Values are physical units
# (V, A, %, Ah, °C, s); lists for the per-cell DIDs; dicts by field name for multi-field DIDs;
# gauge_status is the flag word as an int.
DIDS: dict[int, SimDid] = {d.id: d for d in (
    SimDid(0xF18C, "serial", 16, _ascii(16)),
    SimDid(0xF195, "sw_version", 16, _ascii(16)),
    SimDid(0xF193, "hw_version", 16, _ascii(16)),
    SimDid(0xF18B, "manufacturing_date", 10, _ascii(10)),
    SimDid(0xF19D, "install_date", 10, _ascii(10)),
    SimDid(0x0100, "cell_voltages", 16, _many("H", 8, 0.001)),
    SimDid(0x0110, "pack_voltage", 2, _one("H", 0.01)),
    SimDid(0x0111, "pack_current", 4, _one("i", 0.001)),
    SimDid(0x0112, "soc", 2, _one("H", 0.01)),
    SimDid(0x0113, "soh", 2, _one("H", 0.01)),
    SimDid(0x0114, "learned_capacity", 4, _one("I", 0.001)),
    SimDid(0x0115, "design_capacity", 4, _one("I", 0.001), _u32_milli),
    SimDid(0x0116, "cycle_count", 2, _one("H")),
    SimDid(0x0117, "temperatures", 18, _many("h", 9, 0.1)),
    SimDid(0x0118, "divergence", 3, _divergence),
    SimDid(0x0119, "balancing", 5, _balancing),
    SimDid(0x011A, "gauge_status", 2, _one("H")),
    SimDid(0x011B, "current_offset", 2, _one("h", 0.001), _s16_milli),
    SimDid(0x011C, "balancing_log", 89, _balancing_log),
    SimDid(SNAPSHOT_DID, "dtc_snapshot", 12, _snapshot),
)}

ROUTINE_IDS = frozenset(int(r) for r in RoutineId)


def encode_did(did_id: int, value: Any) -> bytes:
    """The payload the firmware sends for ``did_id`` (after the 2-byte identifier)."""
    did = DIDS[did_id]
    data = did.encode(value)
    if len(data) != did.size:  # a layout slip in this table must not reach the bus
        raise AssertionError(f"DID 0x{did_id:04X} encoded to {len(data)} bytes, spec says {did.size}")
    return data


def encode_extended_data(occurrences: int, first_epoch: float, last_epoch: float) -> bytes:
    """DTC extended data record 0x01: occurrences u16, first and last occurrence u32 UNIX s."""
    return _pack("HII", [occurrences, int(first_epoch), int(last_epoch)])
