"""The station's uvicorn server: listens on sockets bound beforehand, shuts down safely.

On SIGTERM or Ctrl-C (issue 18 item 3) the station, before the process goes:
1. refuses new starts and asks every running bench to stop: the engine takes its safe state
   (outputs off) and records the run as aborted, "station shut down by SIGTERM";
2. ends the live streams, so uvicorn's graceful shutdown is not held open by browsers;
3. waits, bounded by ``RUN_STOP_TIMEOUT_S``, for every run to be recorded, then exits.
A second Ctrl-C makes uvicorn stop waiting for connections; the runs are still waited for.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn

from bench.ui.app import Station, create_app

log = logging.getLogger(__name__)

#: the longest the station waits for its runs to reach the safe state and be recorded. The
#: engine checks for a stop every control interval and its safe state has per-instrument
#: timeouts, so a healthy bench takes a few seconds; this bounds a wedged one.
RUN_STOP_TIMEOUT_S = 30.0
#: how long uvicorn lets open responses finish once the streams have been told to end
GRACEFUL_S = 3.0


class StationServer(uvicorn.Server):
    def __init__(self, station: Station, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.station = station
        self.unstopped: list[str] = []

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.station.closing:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            self.station.begin_shutdown(f"station shut down by {name}")
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if not self.station.closing:  # e.g. should_exit set by an embedding program
            self.station.begin_shutdown("station shut down")
        await super().shutdown(sockets)
        self.unstopped = await asyncio.to_thread(self.station.wait_stopped, RUN_STOP_TIMEOUT_S)
        for slot_id in self.unstopped:
            log.error("bench %s: the run did not stop within %.0f s of shutdown; its record may "
                      "still say 'running' (it is marked orphaned at the next start)",
                      slot_id, RUN_STOP_TIMEOUT_S)


def make_server(station: Station, *, log_level: str = "warning") -> StationServer:
    config = uvicorn.Config(create_app(station), log_level=log_level,
                            timeout_graceful_shutdown=int(GRACEFUL_S))
    return StationServer(station, config)
