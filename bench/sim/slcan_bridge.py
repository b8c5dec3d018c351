"""An SLCAN (Lawicel ASCII) adapter in front of the simulator's CAN bus.

Serves the serial-line protocol USB-CAN dongles speak (CANable, CANUSB, ...) on a pseudo-terminal
(``/dev/pts/N``) and on TCP (``socket://127.0.0.1:PORT`` for pyserial's ``serial_for_url``), so a
bench PC talks to the simulator through python-can's real ``slcan`` interface exactly as it would
to the calibration adapter. Frames from the simulator's internal python-can bus go to every peer
that opened the channel (``O``); frames a peer sends (``t``/``T``/``r``/``R``) go onto the bus.

Commands: ``S0``-``S8`` bitrate (only while closed), ``O`` open, ``L`` listen-only, ``C`` close,
``V`` version, ``N`` serial number, ``F`` status flags, ``Z0``/``Z1`` time stamps (accepted, not
sent), ``t iii l dd..``, ``T iiiiiiii l dd..``, ``r iii l``, ``R iiiiiiii l``. Every command is
answered ``\\r`` (frames: ``z\\r``/``Z\\r``), errors with ``\\a`` (BEL).
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import socket
import threading
import tty
from collections.abc import Callable

import can

BITRATE_CODES = {"S0": 10_000, "S1": 20_000, "S2": 50_000, "S3": 100_000, "S4": 125_000,
                 "S5": 250_000, "S6": 500_000, "S7": 750_000, "S8": 1_000_000}
OK = b"\r"
ERROR = b"\a"


class _Peer:
    """One serial peer (the pty or a TCP connection) and its channel state."""

    def __init__(self, write: Callable[[bytes], None], name: str) -> None:
        self._write = write
        self._lock = threading.Lock()
        self.name = name
        self.open = False
        self.listen_only = False
        self.bitrate = 500_000  # battery.md §6.1
        self.alive = True

    def write(self, data: bytes) -> None:
        with self._lock:
            if not self.alive:
                return
            try:
                self._write(data)
            except OSError:
                self.alive = False


def frame_to_ascii(msg: can.Message) -> bytes:
    """Lawicel encoding of a classic CAN frame (no time stamp)."""
    kind = "r" if msg.is_remote_frame else "t"
    ident = f"{msg.arbitration_id:08X}" if msg.is_extended_id else f"{msg.arbitration_id:03X}"
    head = f"{kind.upper() if msg.is_extended_id else kind}{ident}{msg.dlc}"
    data = b"" if msg.is_remote_frame else bytes(msg.data).hex().upper().encode()
    return head.encode() + data + OK


def ascii_to_frame(line: str) -> can.Message:
    """Parse ``t``/``T``/``r``/``R`` lines; ValueError when malformed."""
    kind = line[0]
    extended = kind in "TR"
    id_len = 8 if extended else 3
    arbitration_id = int(line[1 : 1 + id_len], 16)
    dlc = int(line[1 + id_len])
    if dlc > 8 or arbitration_id > (0x1FFFFFFF if extended else 0x7FF):
        raise ValueError(line)
    remote = kind in "rR"
    data = b"" if remote else bytes.fromhex(line[2 + id_len : 2 + id_len + 2 * dlc])
    if not remote and len(data) != dlc:
        raise ValueError(line)
    return can.Message(arbitration_id=arbitration_id, is_extended_id=extended, is_remote_frame=remote,
                       dlc=dlc, data=data)


class SlcanBridge:
    """SLCAN device on a pty and/or TCP, bridged to python-can bus ``channel`` (``interface``)."""

    def __init__(
        self,
        channel: str,
        *,
        interface: str = "virtual",
        version: str = "1013",
        serial_number: str = "VS02",
    ) -> None:
        self.bus = can.Bus(interface=interface, channel=channel)
        self.version = version
        self.serial_number = serial_number
        self.frames_to_peers = 0
        self.frames_from_peers = 0
        self._peers: list[_Peer] = []
        self._peers_lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._threads: list[threading.Thread] = []
        self._pty_fds: tuple[int, int] | None = None
        self._server: socket.socket | None = None
        self.pty_path: str | None = None
        self.tcp_port: int | None = None
        self.tcp_url: str | None = None
        self._spawn(self._forward_bus_to_peers, "slcan-bus-reader")

    # --- endpoints -------------------------------------------------------------------------
    def start_pty(self) -> str:
        """Open a pseudo-terminal; returns the path a serial client opens (``/dev/pts/N``)."""
        master, slave = os.openpty()
        tty.setraw(slave)  # no CR->NL translation or echo: the protocol is CR-terminated binary-safe ASCII
        self._pty_fds = (master, slave)
        self.pty_path = os.ttyname(slave)
        peer = self._add_peer(lambda data: _write_all(master, data), self.pty_path)
        self._spawn(lambda: self._serve_fd(master, peer), "slcan-pty")
        return self.pty_path

    def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on TCP (``port`` 0 = any free port); returns the port. :attr:`tcp_url` is the
        ``socket://host:port`` channel for python-can's slcan interface."""
        server = socket.create_server((host, port))
        server.settimeout(0.1)
        self._server = server
        self.tcp_port = int(server.getsockname()[1])
        self.tcp_url = f"socket://{host}:{self.tcp_port}"
        self._spawn(self._accept, "slcan-tcp-accept")
        return self.tcp_port

    def close(self) -> None:
        self._running.clear()
        if self._server is not None:
            self._server.close()
        for thread in self._threads:
            thread.join(timeout=2)
        with self._peers_lock:
            for peer in self._peers:
                peer.alive = False
        if self._pty_fds is not None:
            for fd in self._pty_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pty_fds = None
        self.bus.shutdown()

    def __enter__(self) -> SlcanBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------
    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _add_peer(self, write: Callable[[bytes], None], name: str) -> _Peer:
        peer = _Peer(write, name)
        with self._peers_lock:
            self._peers.append(peer)
        return peer

    def _forward_bus_to_peers(self) -> None:
        while self._running.is_set():
            msg = self.bus.recv(timeout=0.05)
            if msg is None or msg.is_error_frame or msg.is_fd:
                continue
            line = frame_to_ascii(msg)
            with self._peers_lock:
                peers = [p for p in self._peers if p.open and p.alive]
            for peer in peers:
                peer.write(line)
                self.frames_to_peers += 1

    def _accept(self) -> None:
        assert self._server is not None
        while self._running.is_set():
            try:
                conn, addr = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.1)
            peer = self._add_peer(conn.sendall, f"tcp:{addr[0]}:{addr[1]}")
            self._spawn(functools.partial(self._serve_socket, conn, peer), "slcan-tcp-peer")

    def _serve_socket(self, conn: socket.socket, peer: _Peer) -> None:
        with conn:
            buffer = b""
            while self._running.is_set() and peer.alive:
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                buffer = self._handle_bytes(buffer + chunk, peer)
        peer.alive = False

    def _serve_fd(self, fd: int, peer: _Peer) -> None:
        buffer = b""
        while self._running.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # no client has the slave open: keep waiting for one
                continue
            buffer = self._handle_bytes(buffer + chunk, peer)

    def _handle_bytes(self, buffer: bytes, peer: _Peer) -> bytes:
        """Execute every complete command in ``buffer``; returns the unfinished rest."""
        while b"\r" in buffer:
            line, buffer = buffer.split(b"\r", 1)
            peer.write(self.execute(line.decode("ascii", "replace").strip("\n"), peer))
        return buffer

    def execute(self, line: str, peer: _Peer) -> bytes:
        """Answer one Lawicel command line (without its ``\\r``)."""
        if not line:
            return OK
        command = line[0]
        if line in BITRATE_CODES:
            if peer.open:
                return ERROR
            peer.bitrate = BITRATE_CODES[line]
            return OK
        if command in "OL" and len(line) == 1:
            if peer.open:
                return ERROR
            peer.open, peer.listen_only = True, command == "L"
            return OK
        if line == "C":
            peer.open = False
            return OK
        if line == "V":
            return f"V{self.version}".encode() + OK
        if line == "N":
            return f"N{self.serial_number}".encode() + OK
        if line == "F":
            return b"F00" + OK
        if command == "Z" and line[1:] in ("0", "1"):
            return OK
        if command in "tTrR":
            if not peer.open or peer.listen_only:
                return ERROR
            try:
                msg = ascii_to_frame(line)
            except (ValueError, IndexError):
                return ERROR
            self.bus.send(msg)
            self.frames_from_peers += 1
            return (b"Z" if msg.is_extended_id else b"z") + OK
        return ERROR


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
