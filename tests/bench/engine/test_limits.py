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
