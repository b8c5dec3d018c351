"""Driver for the VS02-CAL-24 calibration adapter: the BMS broadcast and its UDS service channel.

Works on any python-can interface (virtual, slcan, socketcan, pcan, kvaser, ...): ``CanConfig``
names the interface, channel, bitrate and extra keyword arguments, passed to ``can.Bus`` as is.
One python-can ``Notifier`` feeds three listeners: the broadcast decoder (latest-state snapshot),
the ISO-TP stack under the udsoncan client, and optionally a bus capture (``.blf``/``.asc``).

``polled=True`` (a lockstep simulated bench) reads the same bus with no listener thread: the
caller delivers what arrived with :meth:`Vs02Adapter.poll` (after each advance of the simulator,
so the controller has seen every frame of that step when it looks), and a UDS exchange pumps
the bus on a helper thread only while it waits for the answer. Same frames, same listeners.

Imports nothing from ``bench`` but its error hierarchy, so it can run on a bare bench PC.
"""

from __future__ import annotations

import copy
import operator
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import can
import isotp
import udsoncan
from udsoncan import exceptions as uds_exc
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpConnection

from bench.errors import (
    ConfigError,
    ConnectionLost,
    InstrumentError,
    InstrumentTimeout,
    NegativeResponse,
    ProtocolError,
)
from drivers.can_inprocess import FrameRows
from drivers.security import SeedKeyAlgorithm
from drivers.uds_map import DidSpec, UdsMap, decode_fields, default_uds_map, fields_size
from drivers.vs02_broadcast import BmsSnapshot, BroadcastState

# SocketCAN error-frame classes (linux/can/error.h)
_CAN_ERR_CRTL = 0x004
_CAN_ERR_BUSOFF = 0x040
_CAN_ERR_RESTARTED = 0x100
_CAN_ERR_CRTL_PASSIVE = 0x10 | 0x20  # RX / TX passive, in data[1]

_ARBITRATION_ID, _IS_ERROR_FRAME = operator.attrgetter("arbitration_id"), operator.attrgetter("is_error_frame")
_ROW_ID = operator.itemgetter(0)  # of a FrameRows row: (arbitration ID, payload)
_BUS_STATES = {can.BusState.ACTIVE: "active", can.BusState.PASSIVE: "passive", can.BusState.ERROR: "bus_off"}
SESSION_CODES = {"default": 0x01, "programming": 0x02, "extended": 0x03}
RESET_CODES = {"hard": 0x01, "key_off_on": 0x02, "soft": 0x03}
ROUTINE_ACTIONS = {"start": 0x01, "stop": 0x02, "results": 0x03}
NRC_HINTS = {
    0x35: "invalid key: the seed-to-key algorithm or its secret does not match this BMS",
    0x33: "security access denied: unlock() first",
    0x36: "too many failed key attempts: wait for the BMS's lock-out delay",
    0x7F: "service not supported in the active session: enter the extended session first",
    0x22: "conditions not correct for this request (BMS state)",
    0x24: "request sequence error",
}


@dataclass
class CanConfig:
    """How to reach the adapter; ``extra`` goes to ``can.Bus`` as keyword arguments."""

    interface: str
    channel: str
    bitrate: int = 500000  # battery.md §6.1
    request_id: int = 0x7E4  # battery.md §6.2 (simulated BMS map)
    response_id: int = 0x7EC
    extra: dict[str, Any] = field(default_factory=dict)


#: ISO 14229-1 DTC status bit 0, testFailed: the fault is present now
DTC_STATUS_TEST_FAILED = 0x01


@dataclass(frozen=True)
class DtcRecord:
    code: int
    name: str
    status: int
    status_bits: list[str]
    occurrences: int | None = None
    first_epoch: int | None = None
    last_epoch: int | None = None
    snapshot: dict[str, Any] | None = None

    @property
    def code_hex(self) -> str:
        return f"0x{self.code:06X}"

    @property
    def active(self) -> bool:
        """The fault is present now (ISO 14229-1 DTC status bit 0, testFailed)."""
        return bool(self.status & DTC_STATUS_TEST_FAILED)


@dataclass(frozen=True)
class RoutineResult:
    routine: str
    routine_id: int
    action: str
    status: str | None  # from the status byte (running/done/failed); None if the BMS sent none
    values: dict[str, Any]
    raw: bytes


def _data(response: Any) -> Any:
    """The interpreted service data of a udsoncan response (None only when no response was expected)."""
    if response is None:
        raise ProtocolError("adapter", "UDS", "no response data")
    return response.service_data


class _MapCodec(udsoncan.DidCodec):
    """udsoncan codec backed by a UDS-map DID."""

    def __init__(self, spec: DidSpec) -> None:
        self.spec = spec

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return self.spec.encode(args[0])

    def decode(self, string_bin: bytes) -> Any:
        return self.spec.decode(bytes(string_bin))

    def __len__(self) -> int:
        return self.spec.size


class ResponseOnlyIsoTpStack(isotp.NotifierBasedCanStack):
    """ISO-TP stack that is handed only the frames of its own receive ID.

    The stock stack queues every frame on the bus and hands each to its relay thread and then its
    main thread, which drop all but the one ID: with the BMS broadcasting ~11 frames a second that is
    two thread wake-ups per frame for nothing. Dropping them here, in the notifier's thread, is the
    acceptance filter a CAN controller applies in hardware.
    """

    def __init__(self, bus: can.BusABC, notifier: can.Notifier, *, rx_id: int, **kwargs: Any) -> None:
        super().__init__(bus, notifier, **kwargs)
        self._rx_id = rx_id  # 11-bit normal addressing (the only mode this adapter uses)

    def _on_message_received(self, msg: can.Message) -> None:
        if msg.arbitration_id == self._rx_id and not msg.is_extended_id:
            super()._on_message_received(msg)

    def stop(self) -> None:
        """Stop, without waiting out the relay thread's 50 ms read: it is asked to stop first and
        then woken with an empty read (no frame), so it ends at once (~25 ms of every run's
        teardown; issue 17). The stock stop then joins it and the main thread as before."""
        self.events.stop_requested.set()
        reader = self.buffered_reader
        if reader is not None:
            reader.buffer.put(None)  # type: ignore[arg-type]  # read as "no frame" (None)
        super().stop()

    def on_frames(self, msgs: Sequence[can.Message]) -> None:
        """A polled batch: only the frames of the receive ID go on to the stack (most batches
        are a broadcast cycle without one: looked for in C first)."""
        rx_id = self._rx_id
        if rx_id in map(_ARBITRATION_ID, msgs):
            for msg in msgs:
                if msg.arbitration_id == rx_id and not msg.is_extended_id:
                    super()._on_message_received(msg)

    def on_rows(self, batch: FrameRows) -> None:
        """A polled FrameRows: made into messages only when it holds a frame of the receive ID
        (a broadcast cycle never does)."""
        if self._rx_id in map(_ROW_ID, batch.rows):
            self.on_frames(batch.messages())


class _BusErrorWatch(can.Listener):
    """Records a failing bus (the Notifier reports reader-thread exceptions to on_error)."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def on_message_received(self, msg: can.Message) -> None:
        pass

    def on_error(self, exc: Exception) -> None:
        self.error = exc


#: one BLF object holding a classic CAN frame: object header (base + V1) and CAN_MESSAGE body,
#: python-can's three structs (can/io/blf.py) packed as one; 48 bytes, no padding needed
_BLF_CAN_OBJECT = struct.Struct("<4sHHLL" + "LHHQ" + "HBBL8s")
#: the same object in two parts: headers (up to the time stamp), then the CAN_MESSAGE body
_BLF_OBJECT_HEAD, _BLF_CAN_BODY = struct.Struct("<4sHHLL" + "LHHQ"), struct.Struct("<HBBL8s")
_BLF_HEADER_SIZE = 16 + 16
_BLF_CAN_MESSAGE, _BLF_TIME_ONE_NANS, _BLF_DIR, _BLF_REMOTE = 1, 0x00000002, 0x1, 0x80


class _FastBlfWriter(can.BLFWriter):
    """python-can's BLF writer with one pack per classic CAN frame.

    The stock writer packs the body, then two headers, and appends three pieces to its buffer
    for every frame: with the BMS broadcasting 11 frames per simulated second that is a visible
    share of a lockstep step. The bytes are the same (``tests/drivers/test_vs02_adapter.py``
    compares the files). Error frames, CAN FD frames, frames with a channel name and any
    python-can whose writer no longer has the fields used here take the stock path.
    """

    def __init__(self, path: Path, compression_level: int = -1) -> None:
        super().__init__(path, compression_level=compression_level)
        self._fast = all(hasattr(self, name) for name in
                         ("_buffer", "_buffer_size", "max_container_size", "_flush", "object_count",
                          "start_timestamp", "stop_timestamp", "channel"))

    def on_message_received(self, msg: can.Message) -> None:
        self.on_frames((msg,))

    def on_frames(self, msgs: Sequence[can.Message]) -> None:
        """Write ``msgs`` in order. A polled batch is packed in one loop; the container is
        flushed after the batch, not per frame: the stock writer cuts containers at exactly
        ``max_container_size`` bytes and carries the rest over, so the file is the same."""
        if not self._fast:
            for msg in msgs:
                super().on_message_received(msg)
            return
        pack, size, channel = _BLF_CAN_OBJECT.pack, _BLF_CAN_OBJECT.size, self.channel
        start = self.start_timestamp
        packed: list[bytes] = []  # the classic frames since the last stock-path one
        for msg in msgs:
            if msg.is_error_frame or msg.is_fd or msg.channel is not None or msg.dlc > 8:
                self._append(packed)
                packed = []
                super().on_message_received(msg)  # keeps the header fields and may flush itself
                start = self.start_timestamp
                continue
            timestamp = msg.timestamp
            if start is None:  # truncated to ms as the stock writer does
                start = self.start_timestamp = int(timestamp * 1000) / 1000
            offset_ns = int((timestamp - start) * 1e9)
            flags = (_BLF_REMOTE if msg.is_remote_frame else 0) | (0 if msg.is_rx else _BLF_DIR)
            packed.append(pack(
                b"LOBJ", _BLF_HEADER_SIZE, 1, size, _BLF_CAN_MESSAGE, _BLF_TIME_ONE_NANS, 0, 0,
                offset_ns if offset_ns > 0 else 0, channel, flags, msg.dlc,
                msg.arbitration_id | (0x80000000 if msg.is_extended_id else 0), msg.data))
            self.stop_timestamp = timestamp
        self._append(packed)
        while self._buffer_size >= self.max_container_size:  # stop() flushes only once
            self._flush()

    def on_rows(self, batch: FrameRows) -> None:
        """Write a FrameRows (classic data frames with standard IDs, one time stamp): the headers
        are packed once for the batch (they differ only by the time stamp), then each frame's
        body; the bytes on_frames writes for the same frames."""
        timestamp = batch.timestamp
        if not self._fast:
            self.on_frames(batch.messages())
            return
        start = self.start_timestamp
        if start is None:  # truncated to ms as the stock writer does
            start = self.start_timestamp = int(timestamp * 1000) / 1000
        offset_ns = int((timestamp - start) * 1e9)
        head = _BLF_OBJECT_HEAD.pack(b"LOBJ", _BLF_HEADER_SIZE, 1, _BLF_CAN_OBJECT.size, _BLF_CAN_MESSAGE,
                                     _BLF_TIME_ONE_NANS, 0, 0, offset_ns if offset_ns > 0 else 0)
        pack_body, channel, flags = _BLF_CAN_BODY.pack, self.channel, 0 if batch.is_rx else _BLF_DIR
        packed: list[bytes] = []
        for arbitration_id, data in batch.rows:
            dlc = len(data)
            if dlc > 8:  # not a classic frame (send_rows does not carry one): the message path judges
                self.on_frames(batch.messages())
                return
            packed.append(head + pack_body(channel, flags, dlc, arbitration_id, data))
        self.stop_timestamp = timestamp
        self._append(packed)
        while self._buffer_size >= self.max_container_size:  # stop() flushes only once
            self._flush()

    def _append(self, packed: list[bytes]) -> None:
        """Add packed CAN objects to the container being filled (the counts as the stock writer)."""
        self._buffer.extend(packed)  # self._buffer, not a kept reference: _flush replaces the list
        self._buffer_size += _BLF_CAN_OBJECT.size * len(packed)
        self.object_count += len(packed)


#: zlib level of the BLF capture's containers: 1 (fastest) compresses this bus's frames ~4x faster
#: than zlib's default 6 for a ~4 % larger file; a lockstep calibration captures ~400,000 frames
#: and compresses them on the engine's thread
BLF_COMPRESSION_LEVEL = 1


def _capture_writer(path: Path) -> can.Listener:
    """The bus capture's writer: BLF through the one-pack writer, other formats python-can's."""
    if path.suffix.lower() == ".blf":
        return _FastBlfWriter(path, compression_level=BLF_COMPRESSION_LEVEL)
    return can.Logger(path)


class _Capture(can.Listener):
    """Bus capture shared by the listener thread (received) and the UDS thread (transmitted).

    Frames are written on one channel: python-can's writers parse a channel *number* out of the
    interface's channel name ("vs02-3f..." would overflow BLF's 16-bit field).
    """

    def __init__(self, writer: can.Listener) -> None:
        self._writer = writer
        self._lock = threading.Lock()

    @staticmethod
    def _without_channel(msg: can.Message) -> can.Message:
        """A copy with no channel name (the writer may keep the frame it gets as is)."""
        recorded = copy.copy(msg)
        recorded.channel = None
        return recorded

    def record(self, msg: can.Message, *, transmitted: bool = False) -> None:
        recorded = msg
        if transmitted or msg.channel is not None:
            recorded = self._without_channel(msg)
        if transmitted:
            recorded.is_rx = False
            recorded.timestamp = recorded.timestamp or time.time()
        with self._lock:
            self._writer.on_message_received(recorded)

    def on_message_received(self, msg: can.Message) -> None:
        if msg.channel is None:  # received, nothing to drop: straight to the writer (per frame)
            with self._lock:
                self._writer.on_message_received(msg)
        else:
            self.record(msg)

    def on_frames(self, msgs: Sequence[can.Message]) -> None:
        """A polled batch of received frames, under one lock (the BLF writer takes it whole)."""
        recorded = [msg if msg.channel is None else self._without_channel(msg) for msg in msgs]
        write_all = getattr(self._writer, "on_frames", None)
        with self._lock:
            if write_all is not None:
                write_all(recorded)
            else:
                for msg in recorded:
                    self._writer.on_message_received(msg)

    def on_rows(self, batch: FrameRows) -> None:
        """A polled FrameRows (received, no channel name): to a writer that takes rows whole."""
        write_rows = getattr(self._writer, "on_rows", None)
        if write_rows is None:
            self.on_frames(batch.messages())
            return
        with self._lock:
            write_rows(batch)

    def stop(self) -> None:
        with self._lock:
            self._writer.stop()


class Vs02Adapter:
    """BMS broadcast snapshot + UDS client over one CAN bus."""

    def __init__(
        self,
        config: CanConfig,
        *,
        name: str = "adapter",
        seedkey: SeedKeyAlgorithm | None = None,
        log_path: Path | None = None,
        stale_after_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        uds_map: UdsMap | None = None,
        p2_timeout_s: float = 1.0,
        p2_star_timeout_s: float = 5.0,  # battery.md §6.2: P2* 5000 ms
        polled: bool = False,
        bus: can.BusABC | None = None,
    ) -> None:
        if log_path is not None and Path(log_path).suffix.lower() not in (".blf", ".asc"):
            raise ConfigError(f"bus capture {log_path}: use a .blf or .asc file", field="log_path")
        self.config = config
        self.name = name
        self.seedkey = seedkey
        self.log_path = Path(log_path) if log_path is not None else None
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.uds_map = uds_map or default_uds_map()
        self.p2_timeout_s = p2_timeout_s
        self.p2_star_timeout_s = p2_star_timeout_s
        self.broadcast = BroadcastState(clock)
        self._bus: can.BusABC | None = None
        self._notifier: can.Notifier | None = None
        self._capture: _Capture | None = None
        self._stack: ResponseOnlyIsoTpStack | None = None
        self._client: Client | None = None
        self._errors = _BusErrorWatch()
        self._error_state: str | None = None
        self._uds_lock = threading.Lock()
        self.polled = polled
        #: an open bus to use instead of opening ``config``'s (shut down by close() all the same)
        self._given_bus = bus
        self._poll_lock = threading.Lock()
        #: poll's batch handlers and the notifier listeners they were built from
        self._handlers_of: list[Any] = []
        self._handlers: list[Callable[[Sequence[can.Message]], None]] = []
        self._row_handlers: list[Callable[[FrameRows], None]] = []

    # --- life cycle --------------------------------------------------------------------------
    def open(self) -> None:
        cfg = self.config
        try:
            self._bus = self._given_bus or can.Bus(
                interface=cfg.interface, channel=cfg.channel, bitrate=cfg.bitrate, **cfg.extra
            )
        except (can.CanError, OSError, ValueError) as exc:
            raise InstrumentError(self.name, f"open {cfg.interface}:{cfg.channel}", str(exc)) from exc
        listeners: list[can.Listener] = [self._errors]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._capture = _Capture(_capture_writer(self.log_path))
            listeners.append(self._capture)
            if not cfg.extra.get("receive_own_messages"):
                self._capture_transmitted(self._bus, self._capture)
        # polled: a Notifier with no bus starts no reader thread; poll() hands it the frames
        self._notifier = can.Notifier([] if self.polled else self._bus, [*listeners, self._on_frame],
                                      timeout=0.05)
        address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=cfg.request_id, rxid=cfg.response_id)
        self._stack = ResponseOnlyIsoTpStack(
            self._bus, self._notifier, rx_id=cfg.response_id, address=address,
            params=self.uds_map.isotp_params()
        )
        connection = PythonIsoTpConnection(self._stack)
        client_config = dict(udsoncan.configs.default_client_config)
        client_config.update(
            {
                "data_identifiers": {d.id: _MapCodec(d) for d in self.uds_map.dids},
                "p2_timeout": self.p2_timeout_s,
                "p2_star_timeout": self.p2_star_timeout_s,
                "request_timeout": 2 * self.p2_star_timeout_s,
                # the server's 0x10 timing (P2 50 ms) is too tight for a shared test PC
                "use_server_timing": False,
                "extended_data_size": fields_size(self.uds_map.dtc_extended_data.fields),
            }
        )
        self._client = Client(connection, config=cast(Any, client_config))
        self._client.open()

    @staticmethod
    def _capture_transmitted(bus: can.BusABC, capture: _Capture) -> None:
        """Record our own transmissions (UDS requests) too: most interfaces do not echo them back,
        and a capture without the requests cannot be replayed or audited."""
        send = bus.send

        def send_and_record(msg: can.Message, timeout: float | None = None) -> None:
            send(msg, timeout)
            capture.record(msg, transmitted=True)

        bus.send = send_and_record  # type: ignore[method-assign]

    def close(self) -> None:
        """Stop the listener and the UDS client; flush the bus capture. Never raises."""
        if self._client is not None:
            with suppress(Exception):
                self._client.close()
            self._client = None
        if self._notifier is not None:
            self._notifier.stop(timeout=1)  # also stops (flushes, closes) the capture listener
            self._notifier = None
        self._capture = None
        if self._bus is not None:
            self._bus.shutdown()
            self._bus = None

    def __enter__(self) -> Vs02Adapter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- broadcast -----------------------------------------------------------------------------
    def _on_frame(self, msg: can.Message) -> None:
        if msg.is_error_frame:
            self._track_error_frame(msg)
        elif not msg.is_remote_frame:
            self.broadcast.update(msg.arbitration_id, msg.data, msg.is_extended_id)

    def _on_frames(self, msgs: Sequence[can.Message]) -> None:
        """A polled batch: decoded in one call; error frames (rare: looked for in C) tracked in order."""
        self.broadcast.update_frames(msgs)
        if any(map(_IS_ERROR_FRAME, msgs)):
            for msg in msgs:
                if msg.is_error_frame:
                    self._track_error_frame(msg)

    def _on_rows(self, batch: FrameRows) -> None:
        """A polled FrameRows: data frames only (no error frame to track)."""
        self.broadcast.update_rows(batch.rows)

    def _track_error_frame(self, msg: can.Message) -> None:
        error_class = msg.arbitration_id
        if error_class & _CAN_ERR_BUSOFF:
            self._error_state = "bus_off"
        elif error_class & _CAN_ERR_RESTARTED:
            self._error_state = "active"
        elif error_class & _CAN_ERR_CRTL and len(msg.data) > 1 and msg.data[1] & _CAN_ERR_CRTL_PASSIVE:
            self._error_state = "passive"

    @property
    def frames_received(self) -> int:
        """Broadcast frames decoded so far (frames not in the DBC are not counted)."""
        return self.broadcast.frames_received

    def wait_frames(self, count: int, timeout_s: float = 1.0) -> bool:
        """Block until ``frames_received >= count`` (lockstep helper); False on time-out (wall clock).
        Polled: deliver what has arrived, then answer at once (nothing arrives while we wait)."""
        if self.polled:
            self.poll()
            return self.broadcast.frames_received >= count
        return self.broadcast.wait_frames(count, timeout_s)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Polled mode: hand every frame received so far to the listeners, in this thread
        (waiting up to ``timeout_s`` for the first); returns how many. A failing bus is reported
        to the listeners' ``on_error`` as the Notifier's reader thread would.

        The frames go to each listener as one batch: the in-process channel's bus hands them
        over in one ``drain_batches`` call, a broadcast cycle as its FrameRows, which the
        capture, the decoder and the ISO-TP stack take as rows (no message object per frame);
        any other bus is read a ``recv`` at a time, any other listener is called per frame."""
        bus, notifier = self._bus, self._notifier
        if bus is None or notifier is None:
            return 0
        items: list[can.Message | FrameRows] = []
        count = 0
        with self._poll_lock:
            try:
                drain_batches = getattr(bus, "drain_batches", None)
                if drain_batches is not None:
                    items = drain_batches(timeout_s)
                else:
                    msg = bus.recv(timeout_s)
                    while msg is not None:
                        items.append(msg)
                        msg = bus.recv(0.0)
            except (can.CanError, OSError, ValueError) as exc:
                self._errors.on_error(exc)  # the frames read before the failure still go out
            try:
                if items:
                    count = self._dispatch(items, notifier.listeners)
            except (can.CanError, OSError, ValueError) as exc:
                self._errors.on_error(exc)
        return count

    def _dispatch(self, items: list[can.Message | FrameRows], listeners: list[Any]) -> int:
        """Hand ``items`` to every listener in order: each run of messages as one batch, each
        FrameRows to the listeners' row handlers. Returns how many frames."""
        handlers, row_handlers = self._batch_handlers(listeners)
        count = 0
        run: list[can.Message] = []
        for item in [*items, None]:  # None: the end, which hands over the last run
            if isinstance(item, can.Message):
                run.append(item)
                continue
            if run:
                for handle in handlers:
                    handle(run)
                count += len(run)
                run = []
            if item is not None:
                for handle_rows in row_handlers:
                    handle_rows(item)
                count += len(item.rows)
        return count

    def _batch_handlers(self, listeners: list[Any]) -> tuple[list[Callable[[Sequence[can.Message]], None]],
                                                            list[Callable[[FrameRows], None]]]:
        """The notifier's listeners as handlers of a batch of frames and of a FrameRows (rebuilt
        only when the listeners change: the ISO-TP stack joins at open). The error watch only
        wants on_error, which poll calls itself."""
        if self._handlers_of != listeners:
            self._handlers_of = list(listeners)
            pairs = [self._handlers_for(listener) for listener in listeners if listener is not self._errors]
            self._handlers = [batch for batch, _ in pairs]
            self._row_handlers = [rows for _, rows in pairs]
        return self._handlers, self._row_handlers

    def _handlers_for(self, listener: Any) -> tuple[Callable[[Sequence[can.Message]], None],
                                                    Callable[[FrameRows], None]]:
        """How ``listener`` takes a batch of frames, and a FrameRows: as rows where it can, else
        as its frames made messages."""
        # bound methods compare equal when they are the same object's same method
        if listener == self._on_frame:
            return self._on_frames, self._on_rows
        if self._stack is not None and listener == self._stack._on_message_received:
            return self._stack.on_frames, self._stack.on_rows
        if isinstance(listener, _Capture):
            return listener.on_frames, listener.on_rows
        handle = listener.on_message_received if isinstance(listener, can.Listener) else listener

        def each(msgs: Sequence[can.Message]) -> None:
            for msg in msgs:
                handle(msg)

        return each, lambda batch: each(batch.messages())

    @contextmanager
    def _pumping(self) -> Iterator[None]:
        """Polled mode: receive on a helper thread while a UDS exchange waits for its answer."""
        if not self.polled:
            yield
            return
        done = threading.Event()

        def pump() -> None:
            while not done.is_set() and self._errors.error is None:
                self.poll(0.005)

        thread = threading.Thread(target=pump, name=f"{self.name}-uds-pump", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def snapshot(self) -> BmsSnapshot:
        return self.broadcast.snapshot()

    def age_s(self, message: str) -> float:
        """Seconds (of ``clock``) since ``message`` (DBC name) was last received; inf if never."""
        return self.broadcast.age_s(message)

    def stale(self, messages: Iterable[str] | None = None) -> list[str]:
        """Messages older than ``stale_after_s`` (all DBC messages when ``messages`` is None)."""
        return self.broadcast.stale(messages, self.stale_after_s)

    def bus_state(self) -> str:
        """"active" | "passive" | "bus_off" | "unknown".

        Error frames (SocketCAN encoding) win; then the interface's own ``state`` where it overrides
        python-can's default; otherwise "active" while broadcast frames keep arriving.
        """
        if self._errors.error is not None:
            return "bus_off"
        if self._error_state is not None:
            return self._error_state
        bus = self._bus
        if bus is not None and type(bus).state is not can.BusABC.state:
            try:
                state = bus.state
            except (NotImplementedError, can.CanError):
                state = None
            if state is not None:
                return _BUS_STATES[state]
        if bus is not None and self.broadcast.newest_age_s() <= self.stale_after_s:  # some message is fresh
            return "active"
        return "unknown"

    # --- UDS ---------------------------------------------------------------------------------------
    @contextmanager
    def _uds(self, operation: str) -> Iterator[Client]:
        if self._client is None:
            raise InstrumentError(self.name, operation, "adapter is not open")
        if self._errors.error is not None:
            raise ConnectionLost(self.name, operation, f"CAN bus failed: {self._errors.error}")
        with self._uds_lock, self._pumping():
            try:
                yield self._client
            except uds_exc.NegativeResponseException as exc:
                code = int(exc.response.code or 0)
                hint = NRC_HINTS.get(code, "")
                name = exc.response.code_name + (f": {hint}" if hint else "")
                raise NegativeResponse(self.name, operation, code, name) from exc
            except uds_exc.TimeoutException as exc:
                raise InstrumentTimeout(self.name, operation, f"no UDS response ({exc})") from exc
            except (uds_exc.InvalidResponseException, uds_exc.UnexpectedResponseException, ValueError) as exc:
                raise ProtocolError(self.name, operation, str(exc)) from exc
            except (can.CanError, OSError) as exc:
                raise ConnectionLost(self.name, operation, str(exc)) from exc

    def session(self, kind: Literal["default", "extended", "programming"] | str) -> None:
        if kind not in SESSION_CODES:
            raise ConfigError(f"unknown session {kind!r}; use one of {sorted(SESSION_CODES)}")
        with self._uds(f"DiagnosticSessionControl {kind}") as client:
            client.change_session(SESSION_CODES[kind])

    def unlock(self, level: int = 1) -> None:
        """SecurityAccess: request the seed at odd ``level``, send the key at ``level + 1``."""
        if self.seedkey is None:
            raise ConfigError("no seed-to-key algorithm configured (adapter.seedkey)")
        with self._uds(f"SecurityAccess requestSeed 0x{level:02X}") as client:
            seed = bytes(_data(client.request_seed(level)).seed)
        if not any(seed):
            return  # all-zero seed: already unlocked (ISO 14229-1)
        key = self.seedkey.key(level, seed)
        with self._uds(f"SecurityAccess sendKey 0x{level + 1:02X}") as client:
            client.send_key(level + 1, key)

    def tester_present(self) -> None:
        with self._uds("TesterPresent") as client:
            client.tester_present()

    def read_did(self, name_or_id: str | int) -> Any:
        spec = self._did(name_or_id)
        return self.read_dids([spec.id])[spec.name]

    def read_dids(self, names: Iterable[str | int]) -> dict[str, Any]:
        """Read several DIDs in ONE request; returns {map name: decoded value}."""
        specs = [self._did(n) for n in names]
        ids = ", ".join(f"0x{s.id:04X}" for s in specs)
        with self._uds(f"ReadDataByIdentifier {ids}") as client:
            response = client.read_data_by_identifier([s.id for s in specs])
        values = _data(response).values
        return {s.name: values[s.id] for s in specs}

    def write_did(self, name_or_id: str | int, value: Any) -> None:
        spec = self._did(name_or_id)
        with self._uds(f"WriteDataByIdentifier 0x{spec.id:04X}") as client:
            client.write_data_by_identifier(spec.id, value)

    def read_identity(self) -> dict[str, str]:
        """Serial 0xF18C, SW 0xF195, HW 0xF193, manufacturing date 0xF18B (battery.md §6.2)."""
        values = self.read_dids(["serial", "sw_version", "hw_version", "manufacturing_date"])
        return {k: str(v) for k, v in values.items()}

    def active_dtcs(self) -> list[DtcRecord]:
        """The DTCs whose fault is present now (status testFailed), with their data."""
        return [d for d in self.read_dtcs(DTC_STATUS_TEST_FAILED) if d.active]

    def read_dtcs(self, status_mask: int = 0xFF) -> list[DtcRecord]:
        """DTCs matching ``status_mask`` with their extended data (count, first/last time) and snapshot."""
        with self._uds(f"ReadDTCInformation reportDTCByStatusMask 0x{status_mask:02X}") as client:
            found = _data(client.get_dtc_by_status_mask(status_mask)).dtcs
        records = []
        ext_spec = self.uds_map.dtc_extended_data
        snap_spec = self.uds_map.dtc_snapshot
        for dtc in found:
            status = dtc.status.get_byte_as_int()
            with self._uds(f"ReadDTCInformation extended data 0x{dtc.id:06X}") as client:
                ext = _data(client.get_dtc_extended_data_by_dtc_number(dtc.id, ext_spec.record)).dtcs[0]
            with self._uds(f"ReadDTCInformation snapshot 0x{dtc.id:06X}") as client:
                snap = _data(client.get_dtc_snapshot_by_dtc_number(dtc.id, snap_spec.record)).dtcs[0]
            extended: dict[str, Any] = {}
            if ext.extended_data:
                extended = decode_fields(ext_spec.fields, bytes(ext.extended_data[0].raw_data))
            snapshot = snap.snapshots[0].data if snap.snapshots else None
            records.append(
                DtcRecord(
                    code=dtc.id,
                    name=self.uds_map.dtc_name(dtc.id),
                    status=status,
                    status_bits=self.uds_map.status_names(status),
                    occurrences=extended.get("occurrences"),
                    first_epoch=extended.get("first_epoch"),
                    last_epoch=extended.get("last_epoch"),
                    snapshot=snapshot,
                )
            )
        return records

    def clear_dtcs(self, group: int = 0xFFFFFF) -> None:
        with self._uds(f"ClearDiagnosticInformation 0x{group:06X}") as client:
            client.clear_dtc(group)

    def ecu_reset(self, kind: Literal["hard", "key_off_on", "soft"] | str = "hard") -> None:
        if kind not in RESET_CODES:
            raise ConfigError(f"unknown reset {kind!r}; use one of {sorted(RESET_CODES)}")
        with self._uds(f"ECUReset {kind}") as client:
            client.ecu_reset(RESET_CODES[kind])

    def routine(
        self,
        name_or_id: str | int,
        action: Literal["start", "stop", "results"] | str,
        option: bytes | Mapping[str, Any] = b"",
    ) -> RoutineResult:
        """RoutineControl; NRC 0x78 (response pending) is waited out up to P2* (battery.md §6.2).

        ``option`` is raw bytes or a mapping encoded with the routine's option fields from the map.
        """
        try:
            spec = self.uds_map.routine(name_or_id)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
        if action not in ROUTINE_ACTIONS:
            raise ConfigError(f"unknown routine action {action!r}; use one of {sorted(ROUTINE_ACTIONS)}")
        if isinstance(option, Mapping):
            option = b"".join(f.encode(option[f.name]) for f in spec.option)
        with self._uds(f"RoutineControl {action} 0x{spec.id:04X}") as client:
            response = client.routine_control(spec.id, ROUTINE_ACTIONS[action], bytes(option) or None)
        raw = bytes(_data(response).routine_status_record or b"")
        status = self.uds_map.routine_status.get(raw[0], f"0x{raw[0]:02X}") if raw else None
        payload = raw[1:]
        values: dict[str, Any] = {}
        if spec.results and len(payload) == fields_size(spec.results):
            values = decode_fields(spec.results, payload)
        return RoutineResult(spec.name, spec.id, action, status, values, raw)

    def _did(self, name_or_id: str | int) -> DidSpec:
        try:
            return self.uds_map.did(name_or_id)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
