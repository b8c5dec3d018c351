"""Ground truth of a standalone simulator (``bench sim serve``) for tests and audits.

A TCP server speaking JSON lines: each request line is ``{"cmd": "truth"}`` (or just
``truth``) and the answer is one line, the world's :meth:`SimulatedBench.truth` (simulated
time, cell voltages, contactor, each instrument's output state and every output transition
with the simulated time it took effect). ``bench sim serve --json`` prints its port as
``control.port``. Controller code never uses it: it is how a test sees what really happened
when the controller process was killed.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any


class ControlPort:
    def __init__(self, world: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = world
        self._server = socket.create_server((host, port))
        self.port = int(self._server.getsockname()[1])
        threading.Thread(target=self._accept, name="sim-control", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for raw in stream:
                text = raw.decode(errors="replace").strip()
                try:
                    cmd = json.loads(text).get("cmd") if text.startswith("{") else text
                    answer: dict[str, Any]
                    if cmd == "truth":
                        answer = self.world.truth()
                    elif cmd == "controller_faults":
                        # fault injection for the controller side (bench.fault_injection): each
                        # controller/watchdog death is handed out once
                        with self.world.lock:
                            faults, self.world.controller_faults[:] = list(self.world.controller_faults), []
                        answer = {"faults": faults}
                    else:
                        raise ValueError(f"unknown request {text!r}; known: truth, controller_faults")
                except ValueError as exc:
                    answer = {"error": str(exc)}
                stream.write((json.dumps(answer, default=str) + "\n").encode())
                stream.flush()

    def close(self) -> None:
        self._server.close()


def query_controller_faults(host: str, port: int, timeout_s: float = 2.0) -> list[str]:
    """Controller-side faults due in the simulator (each returned once)."""
    with socket.create_connection((host, port), timeout=timeout_s) as conn, conn.makefile("rwb") as stream:
        stream.write(b'{"cmd": "controller_faults"}\n')
        stream.flush()
        return [str(f) for f in json.loads(stream.readline()).get("faults", [])]


def query_truth(host: str, port: int, timeout_s: float = 5.0) -> dict[str, Any]:
    """One ``truth`` request (a test helper; opens and closes its own connection)."""
    with socket.create_connection((host, port), timeout=timeout_s) as conn, conn.makefile("rwb") as stream:
        stream.write(b'{"cmd": "truth"}\n')
        stream.flush()
        return dict(json.loads(stream.readline()))
