"""The simulated VS02-CAL-24 calibration adapter: the BMS's CAN broadcast and its UDS server.

Broadcast frames are encoded with cantools from the repository DBC (``drivers/data/vs02.dbc``),
the interface contract both ends share, loaded here directly (not through the driver's helpers).
UDS answers are encoded by the firmware's own table (:mod:`bench.sim.uds_codec`), written from
the specification in docs/can_uds.md independently of the driver's map, so an encoding error on
either side shows as a disagreement (golden vectors in ``tests/data/vs02_golden.yaml``).

Time: broadcasting follows simulated time (:meth:`SimAdapter.emit_due`, called by the world after
each advance); the UDS server answers in wall-clock time on its own thread, the way a tester
sees a real ECU. Faults (:meth:`silence`, :meth:`bus_off`) last a span of simulated time.
"""

from __future__ import annotations

import importlib.resources
import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, cast

import can
import cantools
import isotp
from cantools.database.conversion import IdentityConversion, LinearConversion

from bench.sim.uds_codec import (
    DIDS,
    EXTENDED_DATA_RECORD,
    ISOTP_PARAMS,
    REQUEST_ID,
    RESPONSE_ID,
    ROUTINE_IDS,
    SNAPSHOT_DID,
    SNAPSHOT_RECORD,
    encode_did,
    encode_extended_data,
)

log = logging.getLogger(__name__)

# SocketCAN error-frame classes (linux/can/error.h), used to announce bus-off and recovery on the bus
CAN_ERR_BUSOFF = 0x040
CAN_ERR_RESTARTED = 0x100

# battery.md §6.2: P2server 50 ms, P2*server 5000 ms (sent in 10 ms units in the 0x10 response)
P2_MS = 50
P2_STAR_MS = 5000

SESSIONS = {0x01: "default", 0x02: "programming", 0x03: "extended"}
MANUFACTURER = b"VETHY   "  # 0x35E: 8 ASCII characters (DBC comment: first character in byte 0)


@cache
def load_broadcast_dbc() -> cantools.database.can.Database:
    """The broadcast DBC, the interface contract (``drivers/data/vs02.dbc``), read with cantools."""
    with importlib.resources.as_file(importlib.resources.files("drivers") / "data" / "vs02.dbc") as path:
        db = cantools.database.load_file(str(path))
    assert isinstance(db, cantools.database.can.Database)
    return db


def _alarm_fields(db: cantools.database.can.Database, prefix: str) -> list[str]:
    """0x35A signal names in field order (field i = bit i of the firmware's BmsAlarm bitmap)."""
    signals = db.get_message_by_name("BMS_AlarmsWarnings").signals
    return [s.name for s in sorted(signals, key=lambda s: s.start) if s.name.startswith(prefix)]


def _condition_codes(db: cantools.database.can.Database) -> dict[str, int]:
    signal = db.get_message_by_name("BMS_Status").get_signal_by_name("DivergenceCondition")
    return {str(name): int(code) for code, name in (signal.choices or {}).items()}


_DBC = load_broadcast_dbc()
ALARM_FIELDS = _alarm_fields(_DBC, "Alarm")
WARNING_FIELDS = _alarm_fields(_DBC, "Warning")
CONDITION_CODES = _condition_codes(_DBC)
SUPPRESS_POSITIVE = 0x80
DTC_FORMAT_ISO14229_1 = 0x01
DTC_AVAILABILITY_MASK = 0xFF

# DID name (bench.sim.uds_codec) -> how to read it from the BMS model (the BMS API names the quantities).
_DID_READERS: dict[str, Callable[[Any], Any]] = {
    "serial": lambda b: b.serial,
    "sw_version": lambda b: b.sw_version,
    "hw_version": lambda b: b.hw_version,
    "manufacturing_date": lambda b: b.manufacturing_date,
    "install_date": lambda b: b.install_date.isoformat(),
    "cell_voltages": lambda b: list(b.cell_voltages_v),
    "pack_voltage": lambda b: b.pack_voltage_v,
    "pack_current": lambda b: b.current_a,
    "soc": lambda b: b.soc_pct,
    "soh": lambda b: b.soh_pct,
    "learned_capacity": lambda b: b.learned_capacity_ah,
    "design_capacity": lambda b: b.design_capacity_ah,
    "cycle_count": lambda b: b.cycle_count,
    "temperatures": lambda b: list(b.temperatures_c),
    "divergence": lambda b: {"divergence": b.divergence_v, "condition": b.divergence_condition},
    "balancing": lambda b: {
        "active_cells": b.balancing_active_cells,
        "active_time": round(sum(e.end_epoch - e.start_epoch for e in b.balancing_log)),
    },
    "gauge_status": lambda b: int(b.flags),
    "current_offset": lambda b: getattr(b, "current_offset_calibration_a", 0.0),
    "balancing_log": lambda b: {
        "entries": min(len(b.balancing_log), 8),
        "records": [
            {"start_epoch": int(e.start_epoch), "end_epoch": int(e.end_epoch),
             "cells": e.cells_bitmap, "ah_bled": e.ah_bled}
            for e in b.balancing_log[-8:]
        ],
    },
}

# Writable DIDs -> BMS attribute (a `write_<did name>` method on the BMS wins when present).
_DID_WRITE_ATTRIBUTES = {
    "design_capacity": "design_capacity_ah",
    "current_offset": "current_offset_calibration_a",
}


class UdsNegative(Exception):
    """Internal: answer the current request with a negative response."""

    def __init__(self, nrc: int) -> None:
        super().__init__(f"NRC 0x{nrc:02X}")
        self.nrc = nrc


def _dtc_records(dtcs: list[Any]) -> bytes:
    return b"".join(d.code.to_bytes(3, "big") + bytes([d.status & 0xFF]) for d in dtcs)


#: per broadcast message, its signal names in DBC order: the order of its row in broadcast_rows
BROADCAST_SIGNALS: dict[str, tuple[str, ...]] = {m.name: tuple(s.name for s in m.signals) for m in _DBC.messages}
_ALARM_SIGNAL_ORDER = tuple(ALARM_FIELDS + WARNING_FIELDS)
assert BROADCAST_SIGNALS["BMS_AlarmsWarnings"] == _ALARM_SIGNAL_ORDER, "0x35A: alarm fields, then warnings"
_MANUFACTURER_ROW = (int.from_bytes(MANUFACTURER, "little"),)


@cache
def _alarm_row(alarm_bits: int, warning_bits: int) -> tuple[int, ...]:
    """0x35A's 2-bit fields: 1 active, 2 inactive (battery.md §6.1). The bitmaps rarely change,
    so the 26 fields are built once per pair of bitmaps (and the same tuple compares equal fast)."""
    return (*(1 if alarm_bits >> i & 1 else 2 for i in range(len(ALARM_FIELDS))),
            *(1 if warning_bits >> i & 1 else 2 for i in range(len(WARNING_FIELDS))))


@cache
def _version_fields(sw_version: str, hw_version: str) -> tuple[int, int, int]:
    """(hardware version, software major, software minor) as 0x35F carries them; parsed once per
    version strings rather than every broadcast cycle."""
    version = [int(p) if p.isdigit() else 0 for p in sw_version.lstrip("vV").split(".")] + [0, 0]
    hw = "".join(ch for ch in hw_version if ch.isdigit())
    return int(hw[:3] or 0) % 256, version[0] % 256, version[1] % 256


def broadcast_rows(bms: Any, counter: int, uptime_s: float) -> dict[str, Sequence[Any]]:
    """Physical values of every broadcast message, by DBC message name, each a row in the DBC's
    signal order (:data:`BROADCAST_SIGNALS`).

    Rows (tuples, or lists sliced from the BMS's), not dicts: the simulator builds all 11 every
    simulated second and the encoder compares each with the last one sent; a row is built and
    compared several times faster than a dict of the same values."""
    cells = bms.cell_voltages_v
    temps = bms.temperatures_c
    vmin, vmax = min(cells), max(cells)
    hw_version, sw_major, sw_minor = _version_fields(str(bms.sw_version), str(bms.hw_version))
    soc = bms.soc_pct
    return {
        "BMS_Limits": (bms.charge_voltage_limit_v, bms.charge_current_limit_a,
                       bms.discharge_current_limit_a, bms.discharge_voltage_limit_v),
        # StateOfCharge, StateOfHealth, StateOfChargeHiRes
        "BMS_SocSoh": (round(soc), round(bms.soh_pct), soc),
        # PackVoltage, PackCurrent (+ = charge on both sides: no conversion), PackTemperature
        "BMS_PackStatus": (bms.pack_voltage_v, bms.current_a, max(temps[:8])),
        # alarm_bits/warning_bits are computed properties: read once
        "BMS_AlarmsWarnings": _alarm_row(bms.alarm_bits, bms.warning_bits),
        "BMS_Manufacturer": _MANUFACTURER_ROW,
        # ChemistryCode, HardwareVersion, SoftwareVersionMajor/Minor, InstalledCapacity, CycleCount
        "BMS_BatteryInfo": (1, hw_version, sw_major, sw_minor, bms.learned_capacity_ah, bms.cycle_count),
        "BMS_CellVoltages1": cells[:4],
        "BMS_CellVoltages2": cells[4:8],
        "BMS_CellTemperatures": temps[:8],
        # CellVoltageMin/Max, CellDivergence, CellMinIndex/MaxIndex, BalancingCells
        "BMS_CellStats": (vmin, vmax, bms.divergence_v, cells.index(vmin) + 1, cells.index(vmax) + 1,
                          bms.balancing_active_cells),
        # ContactorClosed, DivergenceCondition, GaugeFlags, EnclosureTemperature, MessageCounter,
        # UptimeSeconds
        "BMS_Status": (int(bool(bms.contactor_closed)), CONDITION_CODES.get(bms.divergence_condition, 7),
                       bms.flag_bits, temps[8] if len(temps) > 8 else temps[-1], counter % 256,
                       int(uptime_s) % 65536),
    }


def broadcast_values(bms: Any, counter: int, uptime_s: float) -> dict[str, dict[str, Any]]:
    """Physical values of every broadcast message, by DBC message name and signal name."""
    return {name: dict(zip(BROADCAST_SIGNALS[name], row, strict=True))
            for name, row in broadcast_rows(bms, counter, uptime_s).items()}


class BroadcastFrame(can.Message):
    """A broadcast frame as the simulator sends it.

    python-can's virtual bus deep-copies every frame for every receiver; ``Message.__deepcopy__``
    deep-copies the payload through the generic ``copy`` machinery, which is most of the cost of a
    send. A frame's fields are immutable scalars plus the payload bytes, so a field-by-field copy
    with a fresh ``bytearray`` is the same deep copy, several times cheaper.

    The simulator builds 11 of them every simulated second: the constructor sets the fields
    of a classic data frame directly, half the cost of ``Message.__init__``'s keyword handling.
    """

    __slots__ = ()

    def __init__(self, arbitration_id: int, data: bytes) -> None:
        self.timestamp = 0.0
        self.arbitration_id = arbitration_id
        self.is_extended_id = False
        self.is_remote_frame = False
        self.is_error_frame = False
        self.channel = None
        self.dlc = len(data)
        self.data = bytearray(data)
        self.is_fd = False
        self.is_rx = True
        self.bitrate_switch = False
        self.error_state_indicator = False

    def __deepcopy__(self, memo: dict[int, Any] | None) -> can.Message:
        return can.Message(
            timestamp=self.timestamp, arbitration_id=self.arbitration_id,
            is_extended_id=self.is_extended_id, is_remote_frame=self.is_remote_frame,
            is_error_frame=self.is_error_frame, channel=self.channel, dlc=self.dlc,
            data=bytearray(self.data), is_fd=self.is_fd, is_rx=self.is_rx,
            bitrate_switch=self.bitrate_switch, error_state_indicator=self.error_state_indicator,
            check=False,
        )


class BroadcastEncoder:
    """Encodes :func:`broadcast_rows` (or :func:`broadcast_values`) with the DBC; values outside
    a signal's range are clamped (a real BMS saturates its fields rather than refusing to transmit).

    Hot path: the simulator encodes ~6 changed frames every simulated second. cantools' generic
    ``Message.encode`` checks each value's type, builds a dict of raw values and packs it twice
    with bitstruct (big- and little-endian layouts) to OR the halves together. For the plain
    frames of this DBC (little-endian integer signals, no multiplexing) the layout is known when
    the DBC is loaded, so each frame is packed here with one shift per signal, using each
    signal's own cantools conversion for physical -> raw (the same rounding). The bytes are the
    DBC's: ``tests/bench/sim/test_can_adapter.py`` compares them with ``Message.encode`` over a
    sweep of values. Other frames (big-endian, float, multiplexed) go through cantools.
    """

    def __init__(self, db: cantools.database.can.Database | None = None) -> None:
        self.db = db or load_broadcast_dbc()
        #: per message, in frame-ID order: name, ID, and the function packing its row (signals in
        #: DBC order) -- a _FramePacker's, or cantools' encoder with the DBC's ranges applied
        self._plan: list[tuple[str, int, Callable[[Sequence[Any]], bytes]]] = [
            (m.name, m.frame_id, _packer(m)) for m in sorted(self.db.messages, key=lambda m: m.frame_id)
        ]
        self._signals = {m.name: tuple(s.name for s in m.signals) for m in self.db.messages}
        # most frames repeat their last payload (identity, limits, slowly moving values): reuse
        # the encoded bytes when the row of values is unchanged
        self._last: dict[int, tuple[Sequence[Any], tuple[int, bytes]]] = {}

    def encode(self, values: dict[str, dict[str, Any]]) -> list[can.Message]:
        """Frames of :func:`broadcast_values`-style values (by message, then signal name)."""
        return self.encode_rows({name: tuple(values[name][signal] for signal in signals)
                                 for name, signals in self._signals.items()})

    def encode_rows(self, rows: dict[str, Sequence[Any]]) -> list[can.Message]:
        """Frames of :func:`broadcast_rows`: one per message, in frame-ID order."""
        return [BroadcastFrame(frame_id, payload) for frame_id, payload in self.encode_payloads(rows)]

    def encode_payloads(self, rows: dict[str, Sequence[Any]]) -> list[tuple[int, bytes]]:
        """(frame ID, payload) of each message of :func:`broadcast_rows`, in frame-ID order. A
        frame whose row is unchanged gives the same tuple object as last time (nothing built)."""
        payloads: list[tuple[int, bytes]] = []
        last = self._last
        for name, frame_id, pack in self._plan:
            row = rows[name]
            cached = last.get(frame_id)
            if cached is None or cached[0] != row:
                cached = last[frame_id] = (row, (frame_id, pack(row)))
            payloads.append(cached[1])
        return payloads


def _packer(message: Any) -> Callable[[Sequence[Any]], bytes]:
    """How to encode a row of ``message``: by shifts where the layout allows, else by cantools
    with each signal's DBC range applied first (looked up once here, not per frame)."""
    packer = _FramePacker.for_message(message)
    if packer is not None:
        return packer.pack
    names = [s.name for s in message.signals]
    limits = [_signal_range(s) for s in message.signals]
    encode = message.encode

    def pack(row: Sequence[Any]) -> bytes:
        clamped = {name: _clamp(value, *limit) for name, value, limit in zip(names, row, limits, strict=True)}
        return bytes(encode(clamped, scaling=True, strict=False))

    return pack


def _signal_range(signal: Any) -> tuple[Any, Any]:
    """(min, max) of a DBC signal; None = unbounded, and a max not above the min is no range."""
    high = signal.maximum if signal.minimum is None or signal.maximum is None or signal.maximum > signal.minimum \
        else None
    return signal.minimum, high


class _FramePacker:
    """One plain DBC frame packed by shifts: each signal's raw value (its cantools conversion of
    the clamped physical value) masked to its width (two's complement for signed signals) and
    shifted to its start bit of the little-endian payload."""

    def __init__(self, length: int, fields: list[tuple[Any, Any, Callable[[Any], Any] | None, float, float, int, int]]
                 ) -> None:
        self.length = length
        #: per signal, in DBC order: low, high (None: unbounded), then either cantools'
        #: physical -> raw function, or None and the (offset, scale) of the linear conversion
        #: inlined in pack, then mask and start bit
        self.fields = fields
        #: the packing of a row: generated from ``fields`` (see _compile_packer)
        self.pack: Callable[[Sequence[Any]], bytes] = _compile_packer(length, fields)

    @classmethod
    def for_message(cls, message: Any) -> _FramePacker | None:
        """The packer of ``message``, or None where cantools must encode it."""
        if message.is_multiplexed() or message.is_container:
            return None
        fields: list[tuple[Any, Any, Callable[[Any], Any] | None, float, float, int, int]] = []
        for s in message.signals:
            conversion = s.conversion
            if s.byte_order != "little_endian" or conversion.is_float or s.start + s.length > 8 * message.length:
                return None
            # cantools' LinearConversion is round((value - offset) / scale), inlined in pack, and
            # its (integer) identity is round(value), the builtin: a Python method call per
            # signal was most of a frame's packing. Other conversions keep their own function.
            to_raw: Callable[[Any], Any] | None = conversion.numeric_scaled_to_raw
            offset: float = 0
            scale: float = 1
            if type(conversion) is LinearConversion:
                to_raw, offset, scale = None, conversion.offset, conversion.scale
            elif type(conversion) is IdentityConversion:
                to_raw = round
            fields.append((*_signal_range(s), to_raw, offset, scale, (1 << s.length) - 1, s.start))
        return cls(message.length, fields)


def _compile_packer(length: int, fields: list[tuple[Any, Any, Callable[[Any], Any] | None, float, float, int, int]]
                    ) -> Callable[[Sequence[Any]], bytes]:
    """The payload of a row (the message's signal values in DBC order) as a function generated
    from its ``fields``: per signal, the value clamped to its range, converted to raw (cantools'
    ``round((value - offset) / scale)`` inlined, or the conversion's own function), masked and
    shifted to its start bit; the fields OR-ed into a little-endian payload. The arithmetic of a
    loop over ``fields``, written out: the loop's per-signal tuple unpacking and tests were most
    of a changed frame's packing. Bit positions are written into the source as integers; ranges,
    scales, offsets and conversions are passed as variables. A row has its message's shape by
    construction (broadcast_rows, encode): one of another length raises ValueError."""
    namespace: dict[str, Any] = {"round": round}
    names = [f"v{i}" for i in range(len(fields))]
    lines = ["def pack(row):", f"    ({', '.join(names)},) = row"]
    parts = []
    for i, (low, high, to_raw, offset, scale, mask, start) in enumerate(fields):
        v = names[i]
        namespace[f"low{i}"], namespace[f"high{i}"] = low, high
        clamp = "if"
        if low is not None:
            lines += [f"    if {v} < low{i}:", f"        {v} = low{i}"]
            clamp = "elif"
        if high is not None:
            lines += [f"    {clamp} {v} > high{i}:", f"        {v} = high{i}"]
        if to_raw is None:
            namespace[f"offset{i}"], namespace[f"scale{i}"] = offset, scale
            raw = f"round(({v} - offset{i}) / scale{i})"
        else:
            namespace[f"to_raw{i}"] = to_raw
            raw = f"to_raw{i}({v})"
        parts.append(f"({raw} & {int(mask)}) << {int(start)}")
    lines.append(f"    return ({' | '.join(parts) or '0'}).to_bytes({int(length)}, 'little')")
    exec("\n".join(lines), namespace)  # the source above: DBC numbers only
    return cast(Callable[[Sequence[Any]], bytes], namespace["pack"])


def _clamp(value: Any, low: float | None, high: float | None) -> Any:
    if low is not None and value < low:
        return low
    if high is not None and value > high:
        return high
    return value


class SimAdapter:
    """Broadcast + UDS server of the simulated BMS on ``bus`` (a python-can bus of the simulator)."""

    def __init__(
        self,
        bms: Any,
        bus: can.BusABC,
        *,
        lock: threading.RLock,
        period_s: float = 1.0,
        request_id: int = REQUEST_ID,
        response_id: int = RESPONSE_ID,
    ) -> None:
        self.bms = bms
        self.bus = bus
        self.lock = lock
        self.period_s = period_s
        self.request_id = request_id
        self.response_id = response_id
        self.frames_sent = 0
        self._encoder = BroadcastEncoder()
        self._next_due: float | None = None
        self._counter = 0
        self._sim_time = 0.0
        self._silent_until = float("-inf")
        self._bus_off_until = float("-inf")
        self._notifier: can.Notifier | None = None
        self._stack: isotp.NotifierBasedCanStack | None = None
        self._server: threading.Thread | None = None
        self._running = threading.Event()

    # --- broadcast -------------------------------------------------------------------------
    def emit_due(self, sim_time_s: float) -> int:
        """Send the broadcast cycle if its period elapsed by ``sim_time_s``; returns frames sent.

        After a long advance one cycle is sent (the latest state), not the missed ones: only the
        latest value matters to a listener and a burst would swamp a real 500 kbit/s bus.
        """
        with self.lock:
            was_bus_off = self._is_bus_off()
            self._sim_time = sim_time_s
            if was_bus_off and not self._is_bus_off():
                self._send_error_frame(CAN_ERR_RESTARTED)
            if self._next_due is None:
                self._next_due = sim_time_s
            if sim_time_s + 1e-9 < self._next_due:
                return 0
            self._next_due += self.period_s
            if self._next_due <= sim_time_s:
                self._next_due = sim_time_s + self.period_s
            if self._muted():
                return 0
            payloads = self._encoder.encode_payloads(broadcast_rows(self.bms, self._counter, sim_time_s))
            self._counter += 1
        send_rows = getattr(self.bus, "send_rows", None)
        if send_rows is not None:  # an in-process channel takes the cycle as rows, in one call
            send_rows(payloads)
        else:
            for frame_id, payload in payloads:
                self.bus.send(BroadcastFrame(frame_id, payload))
        self.frames_sent += len(payloads)
        return len(payloads)

    def silence(self, duration_s: float) -> None:
        """Stop broadcasting and answering UDS for ``duration_s`` of simulated time."""
        with self.lock:
            self._silent_until = self._sim_time + duration_s

    def bus_off(self, duration_s: float) -> None:
        """Go bus-off for ``duration_s`` of simulated time (announced with SocketCAN error frames)."""
        with self.lock:
            self._bus_off_until = self._sim_time + duration_s
        self._send_error_frame(CAN_ERR_BUSOFF)

    def _is_bus_off(self) -> bool:
        return self._sim_time < self._bus_off_until

    def _muted(self) -> bool:
        return self._sim_time < self._silent_until or self._is_bus_off()

    def _send_error_frame(self, error_class: int) -> None:
        self.bus.send(can.Message(arbitration_id=error_class, is_error_frame=True, dlc=8, data=bytes(8)))

    # --- UDS server ------------------------------------------------------------------------
    def start_uds(self) -> None:
        """Start the UDS server thread (ISO-TP on request/response IDs, padding 0xCC)."""
        if self._server is not None:
            return
        self._notifier = can.Notifier(self.bus, [], timeout=0.05)
        address = isotp.Address(
            isotp.AddressingMode.Normal_11bits, rxid=self.request_id, txid=self.response_id
        )
        self._stack = isotp.NotifierBasedCanStack(self.bus, self._notifier, address=address,
                                                  params=dict(ISOTP_PARAMS))
        self._stack.start()
        self._running.set()
        self._server = threading.Thread(target=self._serve, name="sim-uds-server", daemon=True)
        self._server.start()

    def close(self) -> None:
        self._running.clear()
        # The notifier's reader, the UDS server thread and the ISO-TP stack's relay thread each
        # end at their next 50 ms poll: the notifier and the stack are stopped on helper threads
        # while the server is joined, so the three waits overlap instead of adding up (~100 ms of
        # every run's teardown; issue 17). The ISO-TP stack only removes its listener from the
        # notifier, which a stopping notifier allows; the server reads the stopped stack's queue
        # until it sees _running cleared.
        stops: list[tuple[str, Callable[[], None]]] = []
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            stops.append(("notifier", lambda: notifier.stop(timeout=1)))
        if self._stack is not None:
            stops.append(("isotp", self._stack.stop))
        stopping = [threading.Thread(target=stop, name=f"sim-uds-{name}-stop", daemon=True) for name, stop in stops]
        for thread in stopping:
            thread.start()
        if self._server is not None:
            self._server.join(timeout=2)
            self._server = None
        for thread in stopping:
            thread.join(timeout=2)
        self._stack = None

    def _serve(self) -> None:
        assert self._stack is not None
        while self._running.is_set():
            request = self._stack.recv(block=True, timeout=0.05)
            if not request:
                continue
            with self.lock:
                muted = self._muted()
            if muted:
                continue
            try:
                response = self.handle(bytes(request))
            except Exception:  # never let a firmware-model bug kill the server thread
                log.exception("UDS server failed on request %s", bytes(request).hex())
                response = bytes([0x7F, request[0], 0x10])  # generalReject
            if response:
                self._stack.send(response)

    def handle(self, request: bytes) -> bytes | None:
        """Answer one UDS request (None = no response, e.g. suppressPosRspMsgIndicationBit)."""
        sid = request[0]
        handler = self._handlers().get(sid)
        try:
            if handler is None:
                raise UdsNegative(0x11)  # serviceNotSupported
            return handler(request)
        except UdsNegative as exc:
            return bytes([0x7F, sid, exc.nrc])
        except Exception as exc:
            nrc = getattr(exc, "nrc", None)  # BmsRefusal from the firmware model
            if not isinstance(nrc, int):
                raise
            return bytes([0x7F, sid, nrc])

    def _handlers(self) -> dict[int, Callable[[bytes], bytes | None]]:
        return {
            0x10: self._session_control,
            0x11: self._ecu_reset,
            0x27: self._security_access,
            0x3E: self._tester_present,
            0x22: self._read_dids,
            0x2E: self._write_did,
            0x31: self._routine_control,
            0x19: self._read_dtc_information,
            0x14: self._clear_dtcs,
        }

    @staticmethod
    def _expect_length(request: bytes, length: int) -> None:
        if len(request) != length:
            raise UdsNegative(0x13)  # incorrectMessageLengthOrInvalidFormat

    @staticmethod
    def _positive(request: bytes, body: bytes) -> bytes | None:
        if request[1] & SUPPRESS_POSITIVE:
            return None
        return bytes([request[0] + 0x40]) + body

    def _session_control(self, request: bytes) -> bytes | None:
        self._expect_length(request, 2)
        kind = request[1] & 0x7F
        if kind not in SESSIONS:
            raise UdsNegative(0x12)
        with self.lock:
            self.bms.set_session(SESSIONS[kind])
        timing = P2_MS.to_bytes(2, "big") + (P2_STAR_MS // 10).to_bytes(2, "big")
        return self._positive(request, bytes([kind]) + timing)

    def _ecu_reset(self, request: bytes) -> bytes | None:
        self._expect_length(request, 2)
        kind = request[1] & 0x7F
        if kind not in (0x01, 0x02, 0x03):
            raise UdsNegative(0x12)
        with self.lock:
            self.bms.ecu_reset(kind)
        return self._positive(request, bytes([kind]))

    def _security_access(self, request: bytes) -> bytes | None:
        if len(request) < 2:
            raise UdsNegative(0x13)
        level = request[1] & 0x7F
        if level == 0 or level > 0x7E:
            raise UdsNegative(0x12)
        with self.lock:
            if level % 2:  # requestSeed
                self._expect_length(request, 2)
                seed = self.bms.security_seed(level)
                return self._positive(request, bytes([level]) + seed)
            if len(request) < 3:
                raise UdsNegative(0x13)
            self.bms.security_send_key(level - 1, bytes(request[2:]))
        return self._positive(request, bytes([level]))

    def _tester_present(self, request: bytes) -> bytes | None:
        self._expect_length(request, 2)
        if request[1] & 0x7F:
            raise UdsNegative(0x12)
        return self._positive(request, b"\x00")

    def _read_dids(self, request: bytes) -> bytes | None:
        if len(request) < 3 or len(request) % 2 == 0:
            raise UdsNegative(0x13)
        body = b""
        with self.lock:
            for i in range(1, len(request), 2):
                did_id = int.from_bytes(request[i : i + 2], "big")
                did = DIDS.get(did_id)
                reader = _DID_READERS.get(did.name) if did is not None else None
                if reader is None:
                    raise UdsNegative(0x31)  # requestOutOfRange
                body += did_id.to_bytes(2, "big") + encode_did(did_id, reader(self.bms))
        return bytes([0x62]) + body

    def _write_did(self, request: bytes) -> bytes | None:
        if len(request) < 4:
            raise UdsNegative(0x13)
        did_id = int.from_bytes(request[1:3], "big")
        did = DIDS.get(did_id)
        if did is None or did.decode is None:  # unknown or not writable
            raise UdsNegative(0x31)
        if len(request) - 3 != did.size:
            raise UdsNegative(0x13)
        value = did.decode(bytes(request[3:]))
        with self.lock:
            if self.bms.session == "default":
                raise UdsNegative(0x7F)  # serviceNotSupportedInActiveSession
            if not self.bms.security_unlocked:
                raise UdsNegative(0x33)
            writer = getattr(self.bms, f"write_{did.name}", None)
            if writer is not None:
                writer(value)
            else:
                setattr(self.bms, _DID_WRITE_ATTRIBUTES[did.name], value)
        return bytes([0x6E]) + request[1:3]

    def _routine_control(self, request: bytes) -> bytes | None:
        if len(request) < 4:
            raise UdsNegative(0x13)
        action = request[1] & 0x7F
        rid = int.from_bytes(request[2:4], "big")
        option = bytes(request[4:])
        if rid not in ROUTINE_IDS:
            raise UdsNegative(0x31)
        if action == 0x01:
            with self.lock:
                delay = self.bms.routine_start_delay_s(rid)
            if delay > 0 and self._stack is not None:
                # battery.md §6.2: NRC 0x78 responsePending, final answer within P2* (5000 ms)
                self._stack.send(bytes([0x7F, 0x31, 0x78]))
                time.sleep(delay)
            with self.lock:
                result = self.bms.routine_start(rid, option)
        elif action == 0x02:
            with self.lock:
                result = self.bms.routine_stop(rid)
        elif action == 0x03:
            with self.lock:
                result = self.bms.routine_results(rid)
        else:
            raise UdsNegative(0x12)
        return self._positive(request, bytes([action]) + request[2:4] + bytes(result))

    def _dtc_list(self) -> list[Any]:
        return list(self.bms.dtcs)

    def _find_dtc(self, request: bytes) -> Any:
        code = int.from_bytes(request[2:5], "big")
        for dtc in self._dtc_list():
            if dtc.code == code:
                return dtc
        raise UdsNegative(0x31)

    def _read_dtc_information(self, request: bytes) -> bytes | None:
        if len(request) < 2:
            raise UdsNegative(0x13)
        sub = request[1] & 0x7F
        with self.lock:
            if sub in (0x01, 0x02):
                self._expect_length(request, 3)
                mask = request[2]
                matching = [d for d in self._dtc_list() if d.status & mask]
                if sub == 0x01:
                    count = len(matching).to_bytes(2, "big")
                    return bytes([0x59, sub, DTC_AVAILABILITY_MASK, DTC_FORMAT_ISO14229_1]) + count
                return bytes([0x59, sub, DTC_AVAILABILITY_MASK]) + _dtc_records(matching)
            if sub == 0x0A:
                self._expect_length(request, 2)
                return bytes([0x59, sub, DTC_AVAILABILITY_MASK]) + _dtc_records(self._dtc_list())
            if sub in (0x04, 0x06):
                self._expect_length(request, 6)
                dtc = self._find_dtc(request)
                record = request[5]
                head = bytes([0x59, sub]) + dtc.code.to_bytes(3, "big") + bytes([dtc.status & 0xFF])
                if sub == 0x04:
                    return head + self._snapshot_record(dtc, record)
                return head + self._extended_record(dtc, record)
        raise UdsNegative(0x12)

    def _snapshot_record(self, dtc: Any, record: int) -> bytes:
        if record not in (SNAPSHOT_RECORD, 0xFF):
            raise UdsNegative(0x31)
        snap = dict(dtc.snapshot)
        values = {k: snap.get(k, 0) for k in ("soc", "vmin", "vmax", "temp", "current")}
        # record number, one identifier in the record, then DID 0x0130 with its data
        return bytes([SNAPSHOT_RECORD, 1]) + SNAPSHOT_DID.to_bytes(2, "big") + encode_did(SNAPSHOT_DID, values)

    def _extended_record(self, dtc: Any, record: int) -> bytes:
        if record not in (EXTENDED_DATA_RECORD, 0xFF):
            raise UdsNegative(0x31)
        occurrences = getattr(dtc, "occurrences", None)
        count = occurrences if occurrences is not None else dtc.count
        return bytes([EXTENDED_DATA_RECORD]) + encode_extended_data(count, dtc.first_epoch, dtc.last_epoch)

    def _clear_dtcs(self, request: bytes) -> bytes | None:
        self._expect_length(request, 4)
        with self.lock:
            self.bms.clear_dtcs(int.from_bytes(request[1:4], "big"))
        return b"\x54"
