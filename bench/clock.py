"""Bench time.

The engine never calls :func:`time.sleep` or :func:`time.monotonic` directly: it asks a
:class:`Clock`. On real hardware that is :class:`WallClock`; with the in-process simulator it is
:class:`LockstepClock`, where waiting *is* advancing the simulated world, so a 20-hour
calibration runs in seconds and is exactly repeatable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Bench seconds since the clock was created."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def sleep_until(self, bench_time: float) -> None: ...

    @property
    def simulated(self) -> bool: ...


class WallClock:
    """Real time (monotonic), optionally scaled for a standalone simulator at ``speed`` x real time.

    With ``speed`` > 1 the bench time reported and slept is simulator time: a station file that
    points at ``bench sim serve --speed 100`` sets the same speed here.
    """

    simulated = False

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def sleep_until(self, bench_time: float) -> None:
        self.sleep(bench_time - self.now())

    def resume_at(self, bench_time: float) -> None:
        """Continue a resumed run's timeline: ``now()`` reads ``bench_time`` from here on."""
        self._t0 = time.monotonic() - bench_time / self.speed


class LockstepClock:
    """Simulated time that advances only when the controller waits.

    ``advance`` is the simulator's step function; ``settle`` hooks run after each advance so
    consumers of asynchronous transports (the CAN listener) have seen everything the
    simulator emitted before the controller looks.
    """

    simulated = True

    def __init__(self, advance: Callable[[float], None], start: float = 0.0) -> None:
        self._advance = advance
        self._now = start
        self._settle: list[Callable[[], None]] = []

    def add_settle_hook(self, hook: Callable[[], None]) -> None:
        self._settle.append(hook)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._advance(seconds)
        self._now += seconds
        for hook in self._settle:
            hook()

    def sleep_until(self, bench_time: float) -> None:
        self.sleep(bench_time - self._now)
