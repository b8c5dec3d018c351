"""Decoding the VS02 broadcast into a typed, time-stamped snapshot.

:class:`BroadcastState` is the hot path (every frame on the bus goes through :meth:`BroadcastState.update`):
it only decodes the frame with cantools and keeps the latest signals per message with the time
they arrived. :meth:`BroadcastState.snapshot` builds the typed :class:`BmsSnapshot` on demand.

Sign convention: the DBC's ``PackCurrent`` is positive for charge (battery.md §6.1), the same as
the bench's, so no conversion is needed; a DBC with the opposite convention would be converted here.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from enum import IntFlag
from typing import Any, Protocol, cast

import cantools
from cantools.database.conversion import IdentityConversion, LinearConversion, LinearIntegerConversion

from drivers.vs02_dbc import ALARM_ACTIVE, ALARM_SIGNALS, CONDITION_NAMES, load_dbc

CURRENT_SIGN = +1  # DBC PackCurrent: + = charge (battery.md §6.1); bench: + = charge

# Snapshot field -> DBC message that carries it (for per-value timestamps).
FIELD_MESSAGE: dict[str, str] = {
    "limits": "BMS_Limits",
    "soc_pct": "BMS_SocSoh",
    "soh_pct": "BMS_SocSoh",
    "pack_voltage_v": "BMS_PackStatus",
    "current_a": "BMS_PackStatus",
    "pack_temperature_c": "BMS_PackStatus",
    "alarms": "BMS_AlarmsWarnings",
    "warnings": "BMS_AlarmsWarnings",
    "manufacturer": "BMS_Manufacturer",
    "installed_capacity_ah": "BMS_BatteryInfo",
    "cycle_count": "BMS_BatteryInfo",
    "cell_voltages_v": "BMS_CellVoltages1",  # and BMS_CellVoltages2: the older of the two is reported
    "temperatures_c": "BMS_CellTemperatures",  # enclosure from BMS_Status
    "cell_v_min": "BMS_CellStats",
    "cell_v_max": "BMS_CellStats",
    "divergence_v": "BMS_CellStats",
    "balancing_cells": "BMS_CellStats",
    "contactor_closed": "BMS_Status",
    "divergence_condition": "BMS_Status",
    "flags": "BMS_Status",
    "message_counter": "BMS_Status",
    "uptime_s": "BMS_Status",
}
_MULTI_MESSAGE_FIELDS = {
    "cell_voltages_v": ("BMS_CellVoltages1", "BMS_CellVoltages2"),
    "temperatures_c": ("BMS_CellTemperatures", "BMS_Status"),
}


class DataFrame(Protocol):
    """What :meth:`BroadcastState.update_frames` reads of a frame (a ``can.Message`` has it)."""

    @property
    def arbitration_id(self) -> int: ...
    @property
    def data(self) -> bytes | bytearray: ...
    @property
    def is_extended_id(self) -> bool: ...
    @property
    def is_error_frame(self) -> bool: ...
    @property
    def is_remote_frame(self) -> bool: ...


class GaugeStatus(IntFlag):
    """The gauge status word: UDS DID 0x011A ``gauge_status.flags`` (drivers/data/vs02_uds.yaml),
    broadcast as ``GaugeFlags`` in BMS_Status (drivers/data/vs02.dbc). Bit names follow the TI
    CEDV gauge flags (battery.md §4.3, §4.4); tests/drivers check them against the UDS map."""

    FULL_CHARGE = 0x01  # FC: set at full sync, cleared below 95 % SOC
    FULLY_DISCHARGED = 0x02  # FD: set at empty sync, cleared above 10 % SOC
    LEARNING_ARMED = 0x04  # capacity learning armed (routine 0x0202) and not finished
    DISCHARGE_QUALIFIED = 0x08  # VDQ: the armed discharge is still qualified
    EDV2_REACHED = 0x10  # empty-sync threshold reached
    LEARN_OK = 0x20  # last learning accepted
    LEARN_FAILED = 0x40  # last learning disqualified or rejected


@dataclass(frozen=True)
class Limits:
    """Inverter limits from 0x351."""

    charge_voltage_v: float
    charge_current_a: float
    discharge_current_a: float
    discharge_voltage_v: float


@dataclass(frozen=True)
class BmsSnapshot:
    """Latest broadcast values; ``None`` where the carrying message was never received.

    ``timestamps`` maps each DBC message name to the clock time it was last received;
    :meth:`timestamp` gives it per field, :meth:`age_s` per message relative to ``taken_at``.
    """

    taken_at: float
    soc_pct: float | None = None
    soh_pct: float | None = None
    pack_voltage_v: float | None = None
    current_a: float | None = None
    pack_temperature_c: float | None = None
    temperatures_c: list[float] | None = None  # 8 cells + enclosure
    cell_voltages_v: list[float] | None = None
    cell_v_min: float | None = None
    cell_v_max: float | None = None
    divergence_v: float | None = None
    divergence_condition: str | None = None
    balancing_cells: int | None = None
    contactor_closed: bool | None = None
    flags: int | None = None
    limits: Limits | None = None
    alarms: list[str] | None = None
    warnings: list[str] | None = None
    manufacturer: str | None = None
    installed_capacity_ah: float | None = None
    cycle_count: int | None = None
    message_counter: int | None = None
    uptime_s: int | None = None
    timestamps: dict[str, float] = field(default_factory=dict)

    @classmethod
    def _from_fields(cls, values: dict[str, Any]) -> BmsSnapshot:
        """A snapshot of ``values``, which holds every field: the same object ``cls(**values)``
        builds, at a fraction of the cost. A frozen dataclass's __init__ sets each of its 24
        fields through ``object.__setattr__``, a third of a snapshot's cost every control interval;
        the instance dict is taken whole instead (no __post_init__, no slots)."""
        snapshot = object.__new__(cls)
        object.__setattr__(snapshot, "__dict__", values)
        return snapshot

    @property
    def gauge_status(self) -> GaugeStatus:
        """The gauge flags, typed; empty while BMS_Status was never received."""
        return GaugeStatus(self.flags or 0)

    @property
    def full_charge(self) -> bool:
        return GaugeStatus.FULL_CHARGE in self.gauge_status

    @property
    def fully_discharged(self) -> bool:
        return GaugeStatus.FULLY_DISCHARGED in self.gauge_status

    @property
    def learning_armed(self) -> bool:
        return GaugeStatus.LEARNING_ARMED in self.gauge_status

    @property
    def learn_ok(self) -> bool:
        return GaugeStatus.LEARN_OK in self.gauge_status

    @property
    def learn_failed(self) -> bool:
        return GaugeStatus.LEARN_FAILED in self.gauge_status

    def timestamp(self, field_name: str) -> float | None:
        """When the value of ``field_name`` was received (the oldest of its messages)."""
        names = _MULTI_MESSAGE_FIELDS.get(field_name, (FIELD_MESSAGE[field_name],))
        stamps = [self.timestamps.get(n) for n in names]
        return None if any(s is None for s in stamps) else min(s for s in stamps if s is not None)

    def age_s(self, message: str) -> float:
        stamp = self.timestamps.get(message)
        return math.inf if stamp is None else self.taken_at - stamp


class BroadcastState:
    """Latest decoded signals per broadcast message, fed by a python-can listener thread."""

    def __init__(self, clock: Callable[[], float], db: cantools.database.can.Database | None = None) -> None:
        self.db = db or load_dbc()
        self._clock = clock
        #: per frame ID: (message name, decoder); cantools' ``Message.name`` is a property, and
        #: this lookup runs for every frame on the bus
        self._frames = _decoders(self.db)
        self.message_names = [m.name for m in self.db.messages]
        #: per message, the latest signals and the clock time they arrived (two dicts: a snapshot
        #: copies each whole, every control interval)
        self._latest: dict[str, dict[str, Any]] = {}
        self._stamps: dict[str, float] = {}
        #: when the most recent frame arrived (newest_age_s is asked every sample: no scan)
        self._newest: float | None = None
        #: per frame ID, the last payload and its decoded signals (never mutated once stored)
        self._decoded: dict[int, tuple[bytes, dict[str, Any]]] = {}
        #: the messages whose signals changed (a new payload) since the last snapshot, and every
        #: snapshot field as derived so far (None: never received; lists kept as tuples): a
        #: snapshot derives only those messages
        self._changed: set[str] = set()
        self._fields: dict[str, Any] = dict(_EMPTY_SNAPSHOT)
        self._lock = threading.Lock()
        self.frames_received = 0
        self.frames_received_changed = threading.Condition(self._lock)
        # wait_frames' target: the listener wakes the waiter once, when the count reaches it,
        # rather than on every frame (each wake-up is a GIL hand-off between the threads)
        self._wanted: int | None = None

    def update(self, arbitration_id: int, data: bytes | bytearray, is_extended_id: bool = False) -> bool:
        """Decode one frame; returns False for frames that are not in the DBC."""
        decoded = None if is_extended_id else self._decode(arbitration_id, data)
        if decoded is None:
            return False
        name, signals = decoded
        stamp = self._clock()
        with self._lock:
            if self._latest.get(name) is not signals:
                self._changed.add(name)
            self._latest[name] = signals
            self._stamps[name] = stamp
            self._received(1, stamp)
        return True

    def update_frames(self, frames: Iterable[DataFrame]) -> int:
        """Decode frames received together (a lockstep step's broadcast cycle): one clock read
        and one lock for the batch. Error, remote and extended frames and IDs not in the DBC
        are skipped; returns how many were decoded."""
        return self.update_rows([(frame.arbitration_id, frame.data) for frame in frames
                                 if not (frame.is_extended_id or frame.is_error_frame or frame.is_remote_frame)])

    def update_rows(self, rows: Iterable[tuple[int, bytes | bytearray]]) -> int:
        """:meth:`update_frames` for classic data frames with standard IDs given as (arbitration ID,
        payload) rows (an in-process channel's FrameRows); IDs not in the DBC are skipped."""
        batch: dict[str, dict[str, Any]] = {}  # message name -> its latest signals in the batch
        fresh: list[str] = []  # messages decoded anew: a new payload, new signals
        count = 0
        known, decoded = self._frames, self._decoded
        # _decode's steps inlined: a call and its result tuple per frame cost as much as the
        # lookups themselves for the ~6 frames per cycle that repeat their payload
        for arbitration_id, data in rows:
            message = known.get(arbitration_id)
            if message is None:
                continue
            last = decoded.get(arbitration_id)
            if last is None or last[0] != data:
                payload = bytes(data)
                last = decoded[arbitration_id] = (payload, message[1](payload))
                fresh.append(message[0])
            batch[message[0]] = last[1]
            count += 1
        if count:
            stamp = self._clock()
            with self._lock:
                self._latest.update(batch)
                self._changed.update(fresh)
                self._stamps.update(dict.fromkeys(batch, stamp))
                self._received(count, stamp)
        return count

    def _decode(self, arbitration_id: int, data: bytes | bytearray) -> tuple[str, dict[str, Any]] | None:
        """(message name, signals) of a standard-ID frame; None if its ID is not in the DBC."""
        message = self._frames.get(arbitration_id)
        if message is None:
            return None
        last = self._decoded.get(arbitration_id)
        if last is not None and last[0] == data:
            return message[0], last[1]  # a repeated payload (identity, limits, idle values): same signals
        payload = bytes(data)
        signals = message[1](payload)
        self._decoded[arbitration_id] = (payload, signals)
        return message[0], signals

    def _received(self, count: int, stamp: float) -> None:
        """Count ``count`` decoded frames, the newest at ``stamp``; wake a waiter whose target
        is reached. Called with the lock held."""
        self._newest = stamp
        self.frames_received += count
        if self._wanted is not None and self.frames_received >= self._wanted:
            self.frames_received_changed.notify_all()

    def wait_frames(self, count: int, timeout_s: float) -> bool:
        """Block until ``frames_received >= count``; False on time-out (wall clock)."""
        cond = self.frames_received_changed
        with cond:
            self._wanted = count if self._wanted is None else min(self._wanted, count)
            try:
                return cond.wait_for(lambda: self.frames_received >= count, timeout=timeout_s)
            finally:
                self._wanted = None

    def age_s(self, message: str) -> float:
        with self._lock:
            stamp = self._stamps.get(message)
        return math.inf if stamp is None else self._clock() - stamp

    def newest_age_s(self) -> float:
        """Clock seconds since the most recent frame of any DBC message; inf if none yet."""
        newest = self._newest
        return math.inf if newest is None else self._clock() - newest

    def stale(self, messages: Iterable[str] | None, stale_after_s: float) -> list[str]:
        return [m for m in (messages or self.message_names) if self.age_s(m) > stale_after_s]

    def snapshot(self) -> BmsSnapshot:
        """The latest values, typed. Taken every control interval: a message's fields are derived
        again only when its signals changed (a new payload: see _decode), into one dict of the
        latest fields kept between snapshots; most of the 11 messages repeat from cycle to cycle."""
        fields, latest = self._fields, self._latest
        # under the lock throughout: the kept fields are shared by every caller of snapshot
        with self._lock:
            stamps = dict(self._stamps)
            changed = self._changed
            if changed:
                for name in changed:
                    derive = _DERIVED.get(name)
                    if derive is not None:
                        fields.update(derive(latest[name]))
                # the fields two messages carry, once both arrived (one of each pair, BMS_Status
                # or a cell-voltage frame, changes nearly every cycle: no finer test)
                for field_name, (first, second), combine in _COMBINED:
                    a, b = latest.get(first), latest.get(second)
                    if a is not None and b is not None:
                        fields[field_name] = combine(a, b)
                changed.clear()
            values = dict(fields)
        # lists (kept as tuples here): each snapshot gets its own, so a caller changing one cannot
        # change the next snapshot
        for list_field in _LIST_FIELDS:
            kept = values[list_field]
            if kept is not None:
                values[list_field] = list(kept)
        values["timestamps"] = stamps
        values["taken_at"] = self._clock()
        return BmsSnapshot._from_fields(values)


_CELL_KEYS = tuple(f"Cell{i}Voltage" for i in range(1, 9))
_CELL_KEYS_1, _CELL_KEYS_2 = _CELL_KEYS[:4], _CELL_KEYS[4:]  # BMS_CellVoltages1, BMS_CellVoltages2
_TEMPERATURE_KEYS = tuple(f"Cell{i}Temperature" for i in range(1, 9))
_ALARM_KEYS = tuple((n, f"Alarm{n}", f"Warning{n}") for n in ALARM_SIGNALS)


def _limits(m: dict[str, Any]) -> dict[str, Any]:
    return {"limits": Limits(m["ChargeVoltageLimit"], m["ChargeCurrentLimit"], m["DischargeCurrentLimit"],
                             m["DischargeVoltageLimit"])}


def _soc_soh(m: dict[str, Any]) -> dict[str, Any]:
    return {"soc_pct": m["StateOfChargeHiRes"], "soh_pct": float(m["StateOfHealth"])}


def _pack_status(m: dict[str, Any]) -> dict[str, Any]:
    return {"pack_voltage_v": m["PackVoltage"], "current_a": CURRENT_SIGN * m["PackCurrent"],
            "pack_temperature_c": m["PackTemperature"]}


def _alarms(m: dict[str, Any]) -> dict[str, Any]:
    return {"alarms": tuple(n for n, alarm, _ in _ALARM_KEYS if m[alarm] == ALARM_ACTIVE),
            "warnings": tuple(n for n, _, warning in _ALARM_KEYS if m[warning] == ALARM_ACTIVE)}


def _identity(m: dict[str, Any]) -> dict[str, Any]:
    raw = int(m["ManufacturerName"]).to_bytes(8, "little")
    return {"manufacturer": raw.decode("ascii", "replace").rstrip(" \0")}


def _battery_info(m: dict[str, Any]) -> dict[str, Any]:
    return {"installed_capacity_ah": m["InstalledCapacity"], "cycle_count": int(m["CycleCount"])}


# map over the keys, not a generator: a generator's frame per call costs more than the lookups
def _cell_voltages(first: dict[str, Any], second: dict[str, Any]) -> tuple[float, ...]:
    return (*map(first.__getitem__, _CELL_KEYS_1), *map(second.__getitem__, _CELL_KEYS_2))


def _temperatures(cells: dict[str, Any], status: dict[str, Any]) -> tuple[float, ...]:
    return (*map(cells.__getitem__, _TEMPERATURE_KEYS), status["EnclosureTemperature"])  # 8 cells + enclosure


def _cell_stats(m: dict[str, Any]) -> dict[str, Any]:
    return {"cell_v_min": m["CellVoltageMin"], "cell_v_max": m["CellVoltageMax"],
            "divergence_v": m["CellDivergence"], "balancing_cells": int(m["BalancingCells"])}


def _status(m: dict[str, Any]) -> dict[str, Any]:
    return {"contactor_closed": bool(m["ContactorClosed"]),
            "divergence_condition": CONDITION_NAMES.get(int(m["DivergenceCondition"]), "unknown"),
            "flags": int(m["GaugeFlags"]), "message_counter": int(m["MessageCounter"]),
            "uptime_s": int(m["UptimeSeconds"])}


#: per DBC message, the snapshot fields derived from it alone; recomputed only when its payload changed
_DERIVED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "BMS_Limits": _limits,
    "BMS_SocSoh": _soc_soh,
    "BMS_PackStatus": _pack_status,
    "BMS_AlarmsWarnings": _alarms,
    "BMS_Manufacturer": _identity,
    "BMS_BatteryInfo": _battery_info,
    "BMS_CellStats": _cell_stats,
    "BMS_Status": _status,
}
#: the fields two messages carry: field, its messages, how to join their signals
_COMBINED: tuple[tuple[str, tuple[str, str], Callable[[dict[str, Any], dict[str, Any]], Any]], ...] = (
    ("cell_voltages_v", ("BMS_CellVoltages1", "BMS_CellVoltages2"), _cell_voltages),
    ("temperatures_c", ("BMS_CellTemperatures", "BMS_Status"), _temperatures),
)
#: snapshot fields that are lists (kept as tuples between snapshots)
_LIST_FIELDS = ("temperatures_c", "cell_voltages_v", "alarms", "warnings")
#: every snapshot field at None: what a snapshot holds for messages never received
_EMPTY_SNAPSHOT: dict[str, Any] = {f.name: None for f in dataclass_fields(BmsSnapshot)}


#: the decoders of each database, generated once: ~1.4 ms of code generation per BroadcastState
#: would be paid again at every adapter (re)connect; the decoders keep no state
_DECODERS: weakref.WeakKeyDictionary[Any, dict[int, tuple[str, Callable[[bytes], dict[str, Any]]]]] = (
    weakref.WeakKeyDictionary())
_DECODERS_LOCK = threading.Lock()


def _decoders(db: Any) -> dict[int, tuple[str, Callable[[bytes], dict[str, Any]]]]:
    """Per frame ID of ``db``: (message name, decoder); shared by every BroadcastState (read only)."""
    with _DECODERS_LOCK:
        found = _DECODERS.get(db)
        if found is None:
            found = _DECODERS[db] = {m.frame_id: (m.name, _FrameDecoder(m).decode) for m in db.messages}
        return found


class _FrameDecoder:
    """Decodes one DBC frame; plain frames by shifts, the reverse of the simulator's packing.

    cantools' generic decode unpacks the payload twice with bitstruct (big- and little-endian
    layouts, the second on a reversed copy) into a merged dict before scaling. For a frame of
    little-endian integer signals without multiplexing the layout is fixed by the DBC, so each
    field is taken out of the payload read as one little-endian integer, sign-extended for signed
    signals, and scaled by the signal's own cantools conversion (``raw_to_scaled``: the same
    arithmetic). ``tests/drivers/test_vs02_adapter.py`` checks the result equals
    ``Message.decode`` over a sweep of payloads. Other frames, and payloads of another length
    (truncated, padded: cantools judges and reports them), are decoded by cantools.
    """

    def __init__(self, message: Any) -> None:
        self.message = message
        self.length: int = message.length
        fields: list[tuple[str, int, int, int, Any, Any, Callable[..., Any] | None]] = []
        plain = not (message.is_multiplexed() or message.is_container)
        for s in message.signals if plain else ():
            conversion = s.conversion
            if s.byte_order != "little_endian" or conversion.is_float or s.start + s.length > 8 * message.length:
                plain = False
                break
            sign_bit = 1 << (s.length - 1) if s.is_signed else 0
            # cantools' linear conversions are raw * scale + offset, its identity raw (= raw * 1 + 0
            # for an integer): inlined, since a method call per signal is most of a frame's decoding
            if type(conversion) in (LinearConversion, LinearIntegerConversion):
                scale, offset, to_scaled = conversion.scale, conversion.offset, None
            elif type(conversion) is IdentityConversion:
                scale, offset, to_scaled = 1, 0, None
            else:
                scale, offset, to_scaled = 1, 0, conversion.raw_to_scaled
            fields.append((s.name, s.start, (1 << s.length) - 1, sign_bit, scale, offset, to_scaled))
        #: per signal: name, start bit, mask, sign bit (0: unsigned), then either scale and offset
        #: of a linear conversion (inlined) and None, or cantools' raw -> physical;
        #: None: the frame goes to cantools
        self.fields = fields if plain else None
        #: payload -> signals: the fields' function (see _compile_decoder), or cantools'
        self.decode: Callable[[bytes], dict[str, Any]] = (
            self._by_cantools if self.fields is None else _compile_decoder(self.length, self.fields, self._by_cantools))

    def _by_cantools(self, payload: bytes) -> dict[str, Any]:
        return cast(dict[str, Any], self.message.decode(payload, decode_choices=False))

    def __call__(self, payload: bytes) -> dict[str, Any]:
        return self.decode(payload)


def _compile_decoder(length: int, fields: list[tuple[str, int, int, int, Any, Any, Callable[..., Any] | None]],
                     fallback: Callable[[bytes], dict[str, Any]]) -> Callable[[bytes], dict[str, Any]]:
    """One frame's decoding as a function generated from its ``fields``: per signal, its field
    taken out of the payload read as an integer, sign-extended if signed, then scaled; the
    signals returned as one dict in DBC order. The arithmetic of a loop over ``fields``, written
    out: the loop's per-signal tuple unpacking and tests were half of a frame's decoding, and the
    decoder runs for every changed broadcast frame. Bit positions are written into the source
    as integers; names are string literals (repr); scales, offsets and conversions are passed as
    variables. A payload of another length goes to ``fallback`` (cantools judges it)."""
    namespace: dict[str, Any] = {"from_bytes": int.from_bytes, "fallback": fallback}
    lines = ["def decode(payload):",
             f"    if len(payload) != {int(length)}:",
             "        return fallback(payload)",
             "    bits = from_bytes(payload, 'little')"]
    for i, (_, start, mask, sign_bit, scale, offset, to_scaled) in enumerate(fields):
        lines.append(f"    v{i} = bits >> {int(start)} & {int(mask)}")
        if sign_bit:
            lines.append(f"    if v{i} & {int(sign_bit)}:")
            lines.append(f"        v{i} -= {int(mask) + 1}")
        if to_scaled is None:
            namespace[f"scale{i}"], namespace[f"offset{i}"] = scale, offset
            lines.append(f"    v{i} = v{i} * scale{i} + offset{i}")
        else:
            namespace[f"to_scaled{i}"] = to_scaled
            lines.append(f"    v{i} = to_scaled{i}(v{i}, False)")
    lines.append("    return {" + ", ".join(f"{name!r}: v{i}" for i, (name, *_) in enumerate(fields)) + "}")
    exec("\n".join(lines), namespace)  # the source above: DBC numbers and quoted signal names only
    return cast(Callable[[bytes], dict[str, Any]], namespace["decode"])
