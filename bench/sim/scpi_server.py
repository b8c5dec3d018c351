"""Serve a simulated instrument over raw TCP (a LAN instrument's SCPI socket, as VISA
``TCPIP::host::port::SOCKET``): newline-terminated messages in, newline-terminated replies out.

One accept thread plus one thread per session, so a watchdog process can hold a second session
next to the bench's. The instrument is shared with the world model: every ``handle`` call runs
under the caller's lock. ``disconnect(duration)`` imitates a dropped LAN link: open sessions are
reset and new connections refused until the duration has passed, on the clock the server is
given: the simulated world's own time, so a 120 s drop lasts 120 s of bench time however fast the
simulation runs. The world re-opens the port as its time passes the end of the drop
(:meth:`ScpiServer.relisten_if_due` from ``SimulatedBench.advance``), so a lockstep controller
sees the link back exactly on time, not when a thread gets round to it.

The same server also takes sessions from inside its process with no socket and no thread
(:meth:`ScpiServer.connect`: the endpoint the embedded bench registers with the ``@inprocess``
VISA backend under the socket's own resource name, drivers.visa_inprocess): a written message
is executed at once, in the writer's thread, by the same code that serves the socket; a
disconnect drops those sessions too, and new ones are refused while the port is closed.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable

from bench.sim.instruments import SimInstrument

_RECV_BYTES = 65536


class ScpiServer:
    def __init__(
        self,
        instrument: SimInstrument,
        lock: threading.RLock,
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instrument = instrument
        self._now = now
        self.lock = lock
        self.host = host
        self.port = port
        self._listener: socket.socket | None = None
        self._sessions: set[socket.socket] = set()
        self._sessions_lock = threading.Lock()
        self._listen_lock = threading.Lock()
        self._refuse_until = 0.0
        self._closed = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._local_sessions: set[InProcessSession] = set()

    @property
    def resource(self) -> str:
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    def start(self) -> int:
        """Bind, start accepting; returns the bound port (ephemeral when ``port`` was 0)."""
        self._listen()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"scpi-{self.instrument.family}-{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self.port

    def connect(self) -> InProcessSession:
        """A session from inside this process (the ``@inprocess`` VISA backend's endpoint); refused,
        like a TCP connect, while the port is closed (a drop, or after :meth:`close`)."""
        if self._closed.is_set() or self._listener is None:
            raise ConnectionRefusedError(f"{self.resource} refuses connections")
        session = InProcessSession(self)
        with self._sessions_lock:
            self._local_sessions.add(session)
        return session

    def execute(self, pending: bytes, chunk: bytes) -> tuple[str, bytes]:
        """Run every complete line of ``pending + chunk``; return the replies (each LF-terminated)
        and the incomplete rest. One program message per line; queries answer in order."""
        pending += chunk
        if b"\n" not in pending:
            return "", pending
        *lines, pending = pending.split(b"\n")
        replies = []
        handle = self.instrument.handle
        for raw in lines:
            message = raw.decode("ascii", "replace").strip()
            if not message:
                continue
            with self.lock:
                reply = handle(message)
            if reply is not None:
                replies.append(reply + "\n")
        return "".join(replies), pending

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(8)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def relisten_if_due(self) -> None:
        """Re-open the port once the drop is over (called as time passes; idempotent)."""
        with self._listen_lock:
            if self._listener is None and not self._closed.is_set() and self._now() >= self._refuse_until:
                with contextlib.suppress(OSError):
                    self._listen()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            listener = self._listener
            if listener is None:  # disconnected: the port is closed, connections are refused
                self.relisten_if_due()
                time.sleep(0.01)
                continue
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(None)
            with self._sessions_lock:
                self._sessions.add(conn)
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        pending = b""
        try:
            while True:
                chunk = conn.recv(_RECV_BYTES)
                if not chunk:
                    return
                replies, pending = self.execute(pending, chunk)
                if replies:
                    conn.sendall(replies.encode("ascii"))
        except OSError:
            return
        finally:
            with self._sessions_lock:
                self._sessions.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def disconnect(self, duration_s: float | None) -> None:
        """Drop every session and refuse connections for ``duration_s`` (None: until :meth:`close`)."""
        with self._listen_lock:
            self._refuse_until = float("inf") if duration_s is None else self._now() + duration_s
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.close()
        self._drop_sessions()

    def _drop_sessions(self) -> None:
        with self._sessions_lock:
            sessions = list(self._sessions)
            local, self._local_sessions = self._local_sessions, set()
        for session in local:
            session.dropped = True
        for conn in sessions:
            with contextlib.suppress(OSError):
                # RST rather than FIN: the client sees a reset, as with a pulled cable + timeout.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        """Refuse new connections and drop the open ones; the accept thread ends at its next
        50 ms poll (:meth:`close` waits for it). Several servers stopped first and joined after
        wait out their polls together instead of one after the other."""
        self._closed.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.close()
        self._drop_sessions()

    def close(self) -> None:
        self.stop()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=1.0)


class InProcessSession:
    """A session of :meth:`ScpiServer.connect`: the socket session's loop, run by the writer."""

    def __init__(self, server: ScpiServer) -> None:
        self.server = server
        self.dropped = False
        self._pending = b""

    def exchange(self, data: bytes) -> bytes:
        if self.dropped:
            raise ConnectionResetError(f"{self.server.resource}: connection reset")
        if not data:
            return b""
        replies, self._pending = self.server.execute(self._pending, data)
        return replies.encode("ascii")

    def close(self) -> None:
        with self.server._sessions_lock:
            self.server._local_sessions.discard(self)
