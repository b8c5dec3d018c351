"""python-can buses joined inside one process, for a simulator that runs in the controller's process.

Like python-can's ``virtual`` interface, every bus of an :class:`InProcessCanChannel` receives
the frames the others send (a bus does not hear itself unless ``receive_own_messages``). What
differs is the cost per frame, which matters in lockstep where the simulator emits a dozen
frames per simulated second and the controller reads them straight after: ``send`` appends to
each receiver's deque (no lock, no wake-up unless a receiver is blocked in ``recv``), and the
one receiver of a frame gets the sent object itself instead of a deep copy (a sender hands the
frame over; it never changes it afterwards). ``recv`` with a time-out blocks as usual, so a
``can.Notifier`` or an ISO-TP stack can still read such a bus on its own thread.

Two calls beyond python-can's bus API serve a lockstep simulator: :meth:`InProcessCanBus.send_all`
hands a whole broadcast cycle over at once, and :meth:`InProcessCanBus.drain` returns everything
queued in one call (no ``recv`` per frame through the time-out and filter machinery). A driver
uses them when the bus has them and python-can's ``send``/``recv`` otherwise.

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


class InProcessCanBus(can.BusABC):
    """One bus of an :class:`InProcessCanChannel`."""

    def __init__(self, channel: InProcessCanChannel, *, receive_own_messages: bool = False,
                 **kwargs: Any) -> None:
        self.channel_info = f"in-process CAN channel {channel.name!r}"
        self.receive_own_messages = receive_own_messages
        self._channel = channel
        self._queue: deque[can.Message] = deque()
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

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """python-can's ``recv``; a frame already queued on a bus without filters is returned
        straight away. The generic path (time-out loop, filter test, a debug log call per frame)
        costs more than the frame itself when a lockstep poll drains ~11 frames per step."""
        if self._filters is None and self._queue and not self._is_shutdown:
            # try/except, not contextlib.suppress: that builds a context manager per frame
            # (~0.25 us, 11 frames per lockstep step)
            try:
                return self._queue.popleft()
            except IndexError:  # another reader of this bus may have taken it meanwhile
                pass
        return super().recv(timeout)

    def drain(self, timeout: float | None = 0.0) -> list[can.Message]:
        """Every frame queued, oldest first, in one call (waiting up to ``timeout`` for the first;
        None: forever). Filters apply as in ``recv``. A lockstep reader drains ~11 frames per
        step: one call instead of a ``recv`` per frame, and one list its listeners can take whole."""
        if self._is_shutdown:
            raise can.CanOperationError("the bus is shut down")
        queue = self._queue
        frames: list[can.Message] = []
        if not queue and timeout != 0:
            first = self.recv(timeout)
            if first is None:
                return frames
            frames.append(first)
        # one popleft per frame queued now: each is atomic, so a frame a sender on another
        # thread appends meanwhile is either taken here or left for the next call, never lost
        popleft, append = queue.popleft, frames.append
        try:
            for _ in range(len(queue)):
                append(popleft())
        except IndexError:  # another reader of this bus took the rest
            pass
        if self._filters is not None:
            frames = [frame for frame in frames if self._matches_filters(frame)]
        return frames

    def _put(self, msgs: Sequence[can.Message]) -> None:
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
            return queue.popleft(), False
        except IndexError:  # time-out (or another reader of this bus was first)
            return None, False

    def shutdown(self) -> None:
        self._channel._leave(self)
        super().shutdown()
