"""Two-level limits (warning and trip) judged on every sample.

A limit names a quantity and thresholds; a breach must persist for ``hold_s`` before it
counts (like a BMS's protection delay), which keeps single noisy samples from aborting a
20-hour run while still acting within the sample that completes the hold time. Warnings are
reported once per excursion; trips are returned every sample they hold, and the engine acts
on the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bench.engine.values import EnvView, Functions, to_float
from bench.procedure.expr import Expr
from bench.procedure.model import Limit

Level = Literal["warning", "trip"]


@dataclass(frozen=True)
class Breach:
    limit: Limit
    level: Level
    value: float
    threshold: float
    direction: Literal["above", "below"]

    @property
    def message(self) -> str:
        custom = getattr(self.limit, "message", "") or ""
        sign = ">" if self.direction == "above" else "<"
        base = (f"{self.limit.id}: {self.limit.quantity} = {self.value:.4g} {sign} "
                f"{self.threshold:.4g} ({self.level})")
        return f"{base}: {custom}" if custom else base


class LimitMonitor:
    def __init__(self, limits: Iterable[Limit]) -> None:
        self.limits = list(limits)
        self._since: dict[tuple[str, Level], float] = {}
        self._warned: set[str] = set()

    def evaluate(self, env: EnvView, t_s: float, functions: Functions) -> tuple[list[Breach], list[Breach]]:
        """Return (new warnings, trips) for this sample."""
        warnings: list[Breach] = []
        trips: list[Breach] = []
        for limit in self.limits:
            raw = env.get(limit.quantity)
            when = limit.when
            if raw is None or (when is not None and not _holds(when, env, functions)):
                self._held(limit, "trip", t_s, False)
                self._held(limit, "warning", t_s, False)
                continue
            value = to_float(raw)
            trip = self._check(limit, "trip", value, env, functions)
            if trip is not None and self._held(limit, "trip", t_s, True):
                trips.append(trip)
                continue
            if trip is None:
                self._held(limit, "trip", t_s, False)
            warn = self._check(limit, "warning", value, env, functions)
            held = self._held(limit, "warning", t_s, warn is not None)
            if warn is not None and held and limit.id not in self._warned:
                self._warned.add(limit.id)
                warnings.append(warn)
            elif warn is None:
                self._warned.discard(limit.id)
        return warnings, trips

    def _held(self, limit: Limit, level: Level, t_s: float, active: bool) -> bool:
        key = (limit.id, level)
        if not active:
            self._since.pop(key, None)
            return False
        start = self._since.setdefault(key, t_s)
        return t_s - start >= float(getattr(limit, "hold_s", 0.0) or 0.0) - 1e-9

    @staticmethod
    def _check(limit: Limit, level: Level, value: float, env: EnvView, functions: Functions) -> Breach | None:
        prefix = "trip" if level == "trip" else "warn"
        above = getattr(limit, f"{prefix}_above", None)
        below = getattr(limit, f"{prefix}_below", None)
        if above is not None:
            threshold = float(above.evaluate(env, functions))
            if value > threshold:
                return Breach(limit, level, value, threshold, "above")
        if below is not None:
            threshold = float(below.evaluate(env, functions))
            if value < threshold:
                return Breach(limit, level, value, threshold, "below")
        return None


def _holds(condition: Expr, env: EnvView, functions: Functions) -> bool:
    """A limit's ``when``: false while a quantity it reads has no value yet (the limit is not
    judged then); any other failure is an error of the procedure and propagates."""
    if condition.lacks_value(env):
        return False
    return bool(condition.evaluate(env, functions))
