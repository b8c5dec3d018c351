"""The charge control law (bench.engine.charge_control) against the simulator's pack model as the
plant: one cell ahead, a BMS CCL that derates, a one-interval measurement delay as on the CAN bus."""

from __future__ import annotations

import random

import pytest

from bench.engine.charge_control import ChargeController, ChargeFeedback, ChargeRequest
from bench.sim.pack import Pack, PackParams


def _pack_one_cell_ahead(soc: float, ahead_ah: float) -> Pack:
    params = PackParams.uniform(soc=soc, capacity_ah=190.0)
    params.cells[2].initial_soc = soc + ahead_ah / 190.0
    return Pack(params)


def _ccl_derating(vmax: float) -> float:
    """A BMS CCL like the simulated one: 100 A up to 3.45 V, 0 A at 3.60 V."""
    if vmax >= 3.60:
        return 0.0
    return round(min(100.0, 100.0 * (3.60 - vmax) / 0.15), 1)


def _run(pack: Pack, controller: ChargeController, seconds: int, *, ccl: bool = True,
         delay: int = 1) -> tuple[list[float], list[float], list[float | None]]:
    """Close the loop at 1 s; the controller sees the cell voltages ``delay`` intervals late, with the
    BMS's 1 mV noise and 1 mV resolution (battery.md §8)."""
    rng = random.Random(7)
    current = 0.0
    seen: list[list[float]] = [pack.cell_voltages(0.0)] * (delay + 1)
    vmax_trace: list[float] = []
    current_trace: list[float] = []
    ccl_trace: list[float | None] = []
    for _ in range(seconds):
        cells = seen[0]
        vmax = max(cells)
        ccl_given = _ccl_derating(vmax) if ccl else None
        setpoint = controller.update(ChargeFeedback(
            current_a=current, pack_v=sum(cells), cell_v_max=vmax, ccl_a=ccl_given, cvl_v=28.4))
        current = setpoint.current_a if setpoint.output_on else 0.0
        pack.advance(1.0, current)
        measured = [round(v + rng.gauss(0.0, 0.001), 3) for v in pack.cell_voltages(current)]
        seen = [*seen[1:], measured]
        vmax_trace.append(max(pack.cell_voltages(current)))
        current_trace.append(current)
        ccl_trace.append(ccl_given)
    return vmax_trace, current_trace, ccl_trace


def test_highest_cell_held_at_its_limit_without_overshoot_or_oscillation() -> None:
    pack = _pack_one_cell_ahead(0.96, 1.0)
    controller = ChargeController(ChargeRequest(voltage_v=28.4, current_a=100.0, cell_limit_v=3.55))
    vmax, current, _ = _run(pack, controller, 3 * 3600, ccl=False)
    assert max(vmax) <= 3.555, f"highest cell reached {max(vmax):.4f} V"
    # once the cell limit binds, the current tapers: no swing beyond the noise (2 % of the request,
    # 1 mV of BMS noise x the loop gain) changes direction
    first_cv = next(i for i, v in enumerate(vmax) if v >= 3.545)
    steps = [b - a for a, b in zip(current[first_cv:], current[first_cv + 1:], strict=False) if abs(b - a) > 2.0]
    reversals = sum(1 for x, y in zip(steps, steps[1:], strict=False) if x * y < 0)
    assert reversals == 0, f"the current hunts: {reversals} reversals after the cell limit engaged"
    assert current[-1] < 4.0, f"no taper: still {current[-1]:.1f} A after 3 h"


def test_obeys_a_derating_ccl_and_stays_under_the_bms_warning() -> None:
    pack = _pack_one_cell_ahead(0.95, 3.0)
    controller = ChargeController(ChargeRequest(voltage_v=28.4, current_a=100.0, cell_limit_v=3.55))
    vmax, current, ccl = _run(pack, controller, 3 * 3600, ccl=True)
    assert max(vmax) < 3.60
    over = [(i, limit) for i, limit in zip(current, ccl, strict=True) if limit is not None and i > limit + 1e-9]
    assert not over, f"commanded more than the CCL it was given: {over[:3]}"
    assert any(limit is not None and limit < 100.0 for limit in ccl), "the CCL never derated: test is void"


def test_reacts_within_one_interval() -> None:
    controller = ChargeController(ChargeRequest(voltage_v=28.4, current_a=100.0, cell_limit_v=3.55), slew_a=100.0)
    steady = controller.update(ChargeFeedback(100.0, 27.0, 3.40, ccl_a=100.0, cvl_v=28.4))
    assert steady.current_a == pytest.approx(100.0)
    over = controller.update(ChargeFeedback(100.0, 27.5, 3.57, ccl_a=100.0, cvl_v=28.4))
    # 20 mV over the limit, 170 mV of rise since the last interval ahead of it: a deep cut at once
    assert over.current_a < 100.0 - 500.0 * 0.02
    assert over.limited_by == "cell_cv" and over.cv_phase


def test_never_more_than_ccl_and_pause_at_zero_then_resume() -> None:
    controller = ChargeController(ChargeRequest(voltage_v=28.4, current_a=100.0, cell_limit_v=3.55), slew_a=100.0)
    assert controller.update(ChargeFeedback(0.0, 26.0, 3.30, ccl_a=40.0, cvl_v=28.4)).current_a == 40.0
    paused = controller.update(ChargeFeedback(40.0, 26.0, 3.30, ccl_a=0.0, cvl_v=28.4))
    assert not paused.output_on and paused.limited_by == "paused"
    # a trickle of CCL is not enough to restart (hysteresis): no on/off chatter
    assert not controller.update(ChargeFeedback(0.0, 26.0, 3.30, ccl_a=0.5, cvl_v=28.4)).output_on
    resumed = controller.update(ChargeFeedback(0.0, 26.0, 3.30, ccl_a=20.0, cvl_v=28.4))
    assert resumed.output_on and resumed.current_a == 20.0


def test_cvl_caps_the_pack_voltage() -> None:
    controller = ChargeController(ChargeRequest(voltage_v=28.8, current_a=50.0))
    assert controller.update(ChargeFeedback(0.0, 26.0, 3.3, ccl_a=100.0, cvl_v=28.4)).voltage_v == 28.4


def test_soft_start_limits_the_rise() -> None:
    controller = ChargeController(ChargeRequest(voltage_v=28.4, current_a=100.0))
    first = controller.update(ChargeFeedback(0.0, 26.0, 3.3, ccl_a=100.0, cvl_v=28.4))
    assert first.current_a == pytest.approx(5.0)
