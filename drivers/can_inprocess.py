"""python-can buses joined inside one process, for a simulator that runs in the controller's process.

Like python-can's ``virtual`` interface, every bus of an :class:`InProcessCanChannel` receives
the frames the others send (a bus does not hear itself unless ``receive_own_messages``). What
differs is the cost per frame, which matters in lockstep where the simulator emits a dozen
frames per simulated second and the controller reads them straight after: ``send`` appends to
each receiver's deque (no lock, no wake-up unless a receiver is blocked in ``recv``), and the
one receiver of a frame gets the sent object itself instead of a deep copy (a sender hands the
frame over; it never changes it afterwards). ``recv`` with a time-out blocks as usual, so a
``can.Notifier`` or an ISO-TP stack can still read such a bus on its own thread.

Calls beyond python-can's bus API serve a lockstep simulator: :meth:`InProcessCanBus.send_all`
hands a whole broadcast cycle over at once, and :meth:`InProcessCanBus.drain` returns everything
queued in one call (no ``recv`` per frame through the time-out and filter machinery). A driver
uses them when the bus has them and python-can's ``send``/``recv`` otherwise.
:meth:`InProcessCanBus.send_rows` sends classic data frames as (arbitration ID, payload) rows,
queued as one :class:`FrameRows`: a ``can.Message`` is built from them only for a reader that
asks for messages (``recv``, ``drain``); :meth:`InProcessCanBus.drain_batches` hands the rows
over as they are, to a reader whose listeners take rows (the lockstep adapter's capture and
decoder): the same frames, without a message object per frame at either end.

Frames keep the python-can semantics of the virtual interface for ``timestamp`` (the send time,
``time.time()``) and ``is_rx``; ``channel`` stays as the sender left it (None: a bus capture
then needs no copy to drop a channel name it cannot store).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import can


class FrameRows:
    """Classic data frames with standard IDs sent together (:meth:`InProcessCanBus.send_rows`):
    one time stamp, and per frame its (arbitration ID, payload) row. Never changed once queued
    (a tuple of rows of an int and bytes): every receiver may share it."""

    __slots__ = ("is_rx", "rows", "timestamp")

    def __init__(self, timestamp: float, is_rx: bool, rows: tuple[tuple[int, bytes], ...]) -> None:
        self.timestamp = timestamp
        self.is_rx = is_rx
        self.rows = rows

    def messages(self) -> list[can.Message]:
        """The frames as python-can messages (channel None, as the sender's frames)."""
        timestamp, is_rx = self.timestamp, self.is_rx
        return [can.Message(timestamp=timestamp, arbitration_id=arbitration_id, is_extended_id=False,
                            data=data, is_rx=is_rx, check=False)
                for arbitration_id, data in self.rows]


def _messages(items: list[can.Message | FrameRows]) -> list[can.Message]:
    """``items`` with each FrameRows replaced by its frames, in order."""
    frames: list[can.Message] = []
    for item in items:
        if isinstance(item, FrameRows):
            frames.extend(item.messages())
        else:
            frames.append(item)
    return frames


class InProcessCanChannel:
    """The buses that see each other's frames."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._buses: tuple[InProcessCanBus, ...] = ()
        #: per sender, who receives its frames (rebuilt when a bus joins or leaves, not per frame)
        self._routes: dict[InProcessCanBus, tuple[InProcessCanBus, ...]] = {}
        self._lock = threading.Lock()

    def bus(self, *, receive_own_messages: bool = False, **kwargs: Any) -> InProcessCanBus:
        """A new bus on this channel (``kwargs``: python-can's, e.g. ``can_filters``)."""
        return InProcessCanBus(self, receive_own_messages=receive_own_messages, **kwargs)

    def _join(self, bus: InProcessCanBus) -> None:
        with self._lock:
            self._reroute((*self._buses, bus))

    def _leave(self, bus: InProcessCanBus) -> None:
        with self._lock:
            self._reroute(tuple(b for b in self._buses if b is not bus))

    def _reroute(self, buses: tuple[InProcessCanBus, ...]) -> None:
        self._buses = buses
        self._routes = {sender: tuple(b for b in buses if b is not sender or sender.receive_own_messages)
                        for sender in buses}

    def _deliver(self, sender: InProcessCanBus, msgs: Sequence[can.Message]) -> None:
        """Hand ``msgs`` (sent together: one time stamp) to every receiver of ``sender``."""
        receivers = self._routes.get(sender, ())
        timestamp = time.time()
        last = len(receivers) - 1
        for index, receiver in enumerate(receivers):
            frames = msgs if index == last else [copy.copy(msg) for msg in msgs]
            is_rx = receiver is not sender
            for frame in frames:
                frame.timestamp = timestamp
                frame.is_rx = is_rx
            receiver._put(frames)

    def _deliver_rows(self, sender: InProcessCanBus, rows: tuple[tuple[int, bytes], ...]) -> None:
        """Hand ``rows`` (sent together: one time stamp) to every receiver of ``sender``."""
        timestamp = time.time()
        for receiver in self._routes.get(sender, ()):
            receiver._put((FrameRows(timestamp, receiver is not sender, rows),))


class InProcessCanBus(can.BusABC):
    """One bus of an :class:`InProcessCanChannel`."""

    def __init__(self, channel: InProcessCanChannel, *, receive_own_messages: bool = False,
                 **kwargs: Any) -> None:
        self.channel_info = f"in-process CAN channel {channel.name!r}"
        self.receive_own_messages = receive_own_messages
        self._channel = channel
        #: frames queued for this bus; a FrameRows stands for its frames, in order
        self._queue: deque[can.Message | FrameRows] = deque()
        self._arrived = threading.Event()
        self._waiting = False
        super().__init__(channel=channel.name, **kwargs)
        channel._join(self)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        self.send_all((msg,))

    def send_all(self, msgs: Sequence[can.Message]) -> None:
        """Send ``msgs`` in order as one hand-over (one time stamp), e.g. a broadcast cycle."""
        if self._is_shutdown:
            raise can.CanOperationError("the bus is shut down")
        self._channel._deliver(self, msgs)

    def send_rows(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Send classic data frames with standard IDs, given as (arbitration ID, payload) rows
        (payloads of at most 8 bytes), in order as one hand-over (one time stamp): a lockstep
        simulator's broadcast cycle, with no ``can.Message`` built per frame. A reader gets them
        as messages from ``recv``/``drain``, or as the rows from ``drain_batches``."""
        if self._is_shutdown:
            raise can.CanOperationError("the bus is shut down")
        if rows:
            self._channel._deliver_rows(self, tuple(rows))

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """python-can's ``recv``; a frame already queued on a bus without filters is returned
        straight away. The generic path (time-out loop, filter test, a debug log call per frame)
        costs more than the frame itself when a lockstep poll drains ~11 frames per step."""
        if self._filters is None and self._queue and not self._is_shutdown:
            # try/except, not contextlib.suppress: that builds a context manager per frame
            # (~0.25 us, 11 frames per lockstep step)
            try:
                item = self._queue.popleft()
            except IndexError:  # another reader of this bus may have taken it meanwhile
                pass
            else:
                return self._first_of(item) if isinstance(item, FrameRows) else item
        return super().recv(timeout)

    def _first_of(self, batch: FrameRows) -> can.Message:
        """The first frame of a dequeued ``batch``; the others go back to the front of the queue."""
        frames = batch.messages()
        self._queue.extendleft(reversed(frames[1:]))
        return frames[0]

    def drain(self, timeout: float | None = 0.0) -> list[can.Message]:
        """Every frame queued, oldest first, in one call (waiting up to ``timeout`` for the first;
        None: forever). Filters apply as in ``recv``. A lockstep reader drains ~11 frames per
        step: one call instead of a ``recv`` per frame, and one list its listeners can take whole."""
        frames = _messages(self._drain_items(timeout))
        if self._filters is not None:
            frames = [frame for frame in frames if self._matches_filters(frame)]
        return frames

    def drain_batches(self, timeout: float | None = 0.0) -> list[can.Message | FrameRows]:
        """``drain``, with the frames sent by ``send_rows`` left as their FrameRows: a reader whose
        listeners take rows builds no message per frame. A bus with filters returns messages
        only (the filters judge messages)."""
        if self._filters is not None:
            return list(self.drain(timeout))
        return self._drain_items(timeout)

    def _drain_items(self, timeout: float | None) -> list[can.Message | FrameRows]:
        if self._is_shutdown:
            raise can.CanOperationError("the bus is shut down")
        queue = self._queue
        items: list[can.Message | FrameRows] = []
        if not queue and timeout != 0:
            first = self.recv(timeout)
            if first is None:
                return items
            items.append(first)
        # one popleft per item queued now: each is atomic, so a frame a sender on another
        # thread appends meanwhile is either taken here or left for the next call, never lost
        popleft, append = queue.popleft, items.append
        try:
            for _ in range(len(queue)):
                append(popleft())
        except IndexError:  # another reader of this bus took the rest
            pass
        return items

    def _put(self, msgs: Sequence[can.Message | FrameRows]) -> None:
        self._queue.extend(msgs)
        if self._waiting:  # only a receiver blocked in recv needs waking
            self._arrived.set()

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        if self._is_shutdown:
            raise can.CanOperationError("the bus is shut down")
        queue = self._queue
        if not queue and timeout != 0:
            # flag first, then look again: a frame put in between either is seen here or wakes us
            self._arrived.clear()
            self._waiting = True
            try:
                if not queue:
                    self._arrived.wait(timeout)
            finally:
                self._waiting = False
        try:
            item = queue.popleft()
        except IndexError:  # time-out (or another reader of this bus was first)
            return None, False
        return (self._first_of(item) if isinstance(item, FrameRows) else item), False

    def shutdown(self) -> None:
        self._channel._leave(self)
        super().shutdown()
