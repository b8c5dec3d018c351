"""python-can buses joined inside one process, for a simulator that runs in the controller's process.

Like python-can's ``virtual`` interface, every bus of an :class:`InProcessCanChannel` receives
the frames the others send (a bus does not hear itself unless ``receive_own_messages``). What
differs is the cost per frame, which matters in lockstep where the simulator emits a dozen
frames per simulated second and the controller reads them straight after: ``send`` appends to
each receiver's deque (no lock, no wake-up unless a receiver is blocked in ``recv``), and the
one receiver of a frame gets the sent object itself instead of a deep copy (a sender hands the
frame over; it never changes it afterwards). ``recv`` with a time-out blocks as usual, so a
``can.Notifier`` or an ISO-TP stack can still read such a bus on its own thread.

Frames keep the python-can semantics of the virtual interface for ``timestamp`` (the send time,
``time.time()``) and ``is_rx``; ``channel`` stays as the sender left it (None: a bus capture
then needs no copy to drop a channel name it cannot store).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
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

    def _deliver(self, sender: InProcessCanBus, msg: can.Message) -> None:
        receivers = self._routes.get(sender, ())
        timestamp = time.time()
        for index, receiver in enumerate(receivers):
            frame = msg if index == len(receivers) - 1 else copy.copy(msg)
            frame.timestamp = timestamp
            frame.is_rx = receiver is not sender
            receiver._put(frame)


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
        if self._is_shutdown:
            raise can.CanOperationError("the bus is shut down")
        self._channel._deliver(self, msg)

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

    def _put(self, msg: can.Message) -> None:
        self._queue.append(msg)
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
