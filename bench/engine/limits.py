"""Two-level limits (warning and trip) judged on every sample.

A limit names a quantity and thresholds; a breach must persist for ``hold_s`` before it
counts (like a BMS's protection delay), which keeps single noisy samples from aborting a
20-hour run while still acting within the sample that completes the hold time. Warnings are
reported once per excursion; trips are returned every sample they hold, and the engine acts
on the first.
"""

from __future__ import annotations

import math
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


@dataclass(frozen=True)
class _Threshold:
    """One side of one level of a limit: its expression, and its value when it reads no name."""

    expr: Expr
    direction: Literal["above", "below"]
    constant: float | None

    @classmethod
    def of(cls, expr: Expr | None, direction: Literal["above", "below"]) -> _Threshold | None:
        if expr is None:
            return None
        constant: float | None = None
        if expr.is_constant():  # its compiled form ignores the environment and the functions
            try:
                constant = float(expr.evaluate({}))
            except Exception:  # fails the same way every sample: evaluate it there, to report it
                constant = None
        return cls(expr, direction, constant)

    def value(self, env: EnvView, functions: Functions) -> float:
        constant = self.constant
        return constant if constant is not None else float(self.expr.evaluate(env, functions))


@dataclass(frozen=True)
class _Judged:
    """A limit as judged every sample: what its model holds, read once (issue 17)."""

    limit: Limit
    quantity: str
    when: Expr | None
    hold_s: float
    #: per level, the thresholds in the order they are judged: above, then below
    trip: tuple[_Threshold, ...]
    warn: tuple[_Threshold, ...]
    #: when every threshold is a constant: the band each level allows (-inf, inf where a side is
    #: not set), so that a value inside both is judged with four comparisons (issue 17)
    band: tuple[float, float, float, float] | None

    @classmethod
    def of(cls, limit: Limit) -> _Judged:
        when = limit.when
        trip = _thresholds(limit.trip_above, limit.trip_below)
        warn = _thresholds(limit.warn_above, limit.warn_below)
        return cls(limit, limit.quantity, when, float(getattr(limit, "hold_s", 0.0) or 0.0), trip, warn,
                   _band(trip, warn))


def _band(trip: tuple[_Threshold, ...], warn: tuple[_Threshold, ...]) -> tuple[float, float, float, float] | None:
    """(trip below, trip above, warn below, warn above) of constant thresholds; None otherwise."""
    if any(t.constant is None for t in (*trip, *warn)):
        return None

    def side(thresholds: tuple[_Threshold, ...], direction: str, unset: float) -> float:
        return next((float(t.constant) for t in thresholds if t.direction == direction and t.constant is not None),
                    unset)

    inf = math.inf
    return side(trip, "below", -inf), side(trip, "above", inf), side(warn, "below", -inf), side(warn, "above", inf)


def _thresholds(above: Expr | None, below: Expr | None) -> tuple[_Threshold, ...]:
    return tuple(t for t in (_Threshold.of(above, "above"), _Threshold.of(below, "below")) if t is not None)


class LimitMonitor:
    def __init__(self, limits: Iterable[Limit]) -> None:
        self.limits = list(limits)
        self._judged = [_Judged.of(limit) for limit in self.limits]
        # bench time each limit's breach started, per level (limit id -> t_s)
        self._trip_since: dict[str, float] = {}
        self._warn_since: dict[str, float] = {}
        self._warned: set[str] = set()

    def evaluate(self, env: EnvView, t_s: float, functions: Functions) -> tuple[list[Breach], list[Breach]]:
        """Return (new warnings, trips) for this sample."""
        warnings: list[Breach] = []
        trips: list[Breach] = []
        trip_since, warn_since, warned = self._trip_since, self._warn_since, self._warned
        for judged in self._judged:
            limit = judged.limit
            key = limit.id
            raw = env.get(judged.quantity)
            if raw is None or (judged.when is not None and not _holds(judged, env, functions)):
                trip_since.pop(key, None)
                warn_since.pop(key, None)
                continue
            value = to_float(raw)
            band = judged.band
            if band is not None and band[0] <= value <= band[1] and band[2] <= value <= band[3]:
                # inside every constant threshold: what _check finds at both levels, without it
                if trip_since or warn_since or warned:  # nearly every sample: no breach pending anywhere
                    trip_since.pop(key, None)
                    warn_since.pop(key, None)
                    warned.discard(key)
                continue
            trip = _check(judged, "trip", judged.trip, value, env, functions)
            if trip is not None and _held(trip_since, key, t_s, judged.hold_s):
                trips.append(trip)
                continue
            if trip is None:
                trip_since.pop(key, None)
            warn = _check(judged, "warning", judged.warn, value, env, functions)
            if warn is None:
                warn_since.pop(key, None)
                warned.discard(key)
            elif _held(warn_since, key, t_s, judged.hold_s) and key not in warned:
                warned.add(key)
                warnings.append(warn)
        return warnings, trips


def _held(since: dict[str, float], key: str, t_s: float, hold_s: float) -> bool:
    """A breach seen at ``t_s``: whether it has lasted ``hold_s`` (its start noted on the first)."""
    return t_s - since.setdefault(key, t_s) >= hold_s - 1e-9


def _check(judged: _Judged, level: Level, thresholds: tuple[_Threshold, ...], value: float, env: EnvView,
           functions: Functions) -> Breach | None:
    for threshold in thresholds:
        limit_value = threshold.value(env, functions)
        if value > limit_value if threshold.direction == "above" else value < limit_value:
            return Breach(judged.limit, level, value, limit_value, threshold.direction)
    return None


def _holds(judged: _Judged, env: EnvView, functions: Functions) -> bool:
    """A limit's ``when``: false while a quantity it reads has no value yet (the limit is not
    judged then); any other failure is an error of the procedure and propagates."""
    when = judged.when
    assert when is not None
    return not when.lacks_value(env) and bool(when.evaluate(env, functions))
