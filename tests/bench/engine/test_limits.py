"""LimitMonitor: hold times, one warning per excursion, ``when``, thresholds read from the environment.

The monitor reads each limit's thresholds, hold time and ``when`` names once (issue 17); these
pin down that a constant threshold and one that names a quantity are judged as before.
"""

from __future__ import annotations

from bench.engine.limits import LimitMonitor
from bench.procedure.model import Limit

NO_FUNCTIONS: dict = {}


def _limit(**fields: object) -> Limit:
    return Limit.model_validate({"id": "cell_ov", "quantity": "cell_v_max", **fields})


def _run(monitor: LimitMonitor, values: list[dict], start: float = 0.0) -> list[tuple[list[str], list[str]]]:
    out = []
    for i, env in enumerate(values):
        warnings, trips = monitor.evaluate(env, start + i, NO_FUNCTIONS)
        out.append(([f"{b.level}:{b.direction}:{b.threshold:g}" for b in warnings],
                    [f"{b.level}:{b.direction}:{b.threshold:g}" for b in trips]))
    return out


def test_a_trip_counts_after_its_hold_time_and_a_warning_once_per_excursion():
    monitor = LimitMonitor([_limit(warn_above="3.60V", trip_above="3.65V", hold_s=2)])
    seen = _run(monitor, [{"cell_v_max": v} for v in (3.62, 3.62, 3.62, 3.5, 3.62, 3.62, 3.62, 3.7, 3.7, 3.7)])
    assert seen == [
        ([], []), ([], []), (["warning:above:3.6"], []),  # warned after 2 s held, once
        ([], []),                                            # back inside: excursion over
        ([], []), ([], []), (["warning:above:3.6"], []),    # a new excursion warns again
        ([], []), ([], []), ([], ["trip:above:3.65"]),       # above the trip level for 2 s
    ]


def test_a_threshold_naming_a_quantity_is_read_every_sample():
    monitor = LimitMonitor([_limit(quantity="temp_max", trip_above="temp_limit", trip_below="temp_floor")])
    seen = _run(monitor, [{"temp_max": 40.0, "temp_limit": 45.0, "temp_floor": 0.0},
                          {"temp_max": 40.0, "temp_limit": 35.0, "temp_floor": 0.0},
                          {"temp_max": -5.0, "temp_limit": 35.0, "temp_floor": -2.0}])
    assert seen == [([], []), ([], ["trip:above:35"]), ([], ["trip:below:-2"])]


def test_when_with_a_quantity_not_received_yet_is_not_judged_and_resets_the_hold():
    monitor = LimitMonitor([_limit(quantity="cell_v_min", trip_below="2.50V", hold_s=1, when="current < -0.5A")])
    low = {"cell_v_min": 2.4}
    seen = _run(monitor, [{**low, "current": -10.0}, {**low, "current": None}, {**low, "current": -10.0},
                          {**low, "current": -10.0}, {**low, "current": 5.0}, {"cell_v_min": None, "current": -10.0}])
    # the sample without a current value restarts the hold; charging (when false) is not judged
    assert seen == [([], []), ([], []), ([], []), ([], ["trip:below:2.5"]), ([], []), ([], [])]


def test_constant_thresholds_judge_as_the_general_path(monkeypatch):
    """A limit whose thresholds are constants is judged by a band check (issue 17): the same
    warnings and trips, sample by sample, as when each threshold is evaluated."""
    import math
    import random

    from bench.engine import limits

    def build() -> LimitMonitor:
        return LimitMonitor([
            _limit(warn_above="3.60V", trip_above="3.65V", warn_below="2.8V", trip_below="2.5V", hold_s=2),
            _limit(id="hot", quantity="temp_max", warn_above=45, trip_above=55, hold_s=1),
            _limit(id="low", quantity="cell_v_min", trip_below="2.5V", when="current < -0.5A")])

    fast = build()
    monkeypatch.setattr(limits, "_band", lambda trip, warn: None)
    general = build()
    assert all(j.band is not None for j in fast._judged) and all(j.band is None for j in general._judged)
    rng = random.Random(3)
    choices = [2.4, 2.5, 2.6, 2.8, 3.3, 3.6, 3.62, 3.65, 3.7, math.nan, None]
    envs = [{"cell_v_max": rng.choice(choices), "cell_v_min": rng.choice(choices),
             "temp_max": rng.choice([20.0, 45.0, 50.0, 55.0, 60.0, None, math.nan]),
             "current": rng.choice([-10.0, 0.0, None])} for _ in range(3000)]
    assert _run(fast, envs) == _run(general, envs)
