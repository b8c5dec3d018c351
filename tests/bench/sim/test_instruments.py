"""Simulated supplies and loads: physics the world model relies on, protections, faults."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from bench.sim.instruments import (
    CV_SLOPE_OHM,
    MIN_LAST_V,
    SIM_LOAD_FAMILIES,
    SIM_SUPPLY_FAMILIES,
    VON_RAMP_V,
    SimLoad,
    SimSupply,
    make_instrument,
)


def supply(family: str = "keysight_n8700") -> SimSupply:
    instrument = make_instrument(family, random.Random(5))
    assert isinstance(instrument, SimSupply)
    return instrument


def load(family: str = "bk_8600") -> SimLoad:
    instrument = make_instrument(family, random.Random(5))
    assert isinstance(instrument, SimLoad)
    return instrument


def sweep(instrument, lo: float = 0.0, hi: float = 40.0, n: int = 4001) -> list[float]:
    return [instrument.node_current(lo + (hi - lo) * k / (n - 1)) for k in range(n)]


def test_ranges_cover_the_pack() -> None:
    # Charge to 29.2 V at 100 A; discharge 100 A at ~26 V (battery.md §2.2, task brief).
    for family in SIM_SUPPLY_FAMILIES:
        spec = supply(family).spec
        assert spec.v_max >= 29.2 and spec.i_max >= 100 and spec.p_max >= 29.2 * 60
    for family in SIM_LOAD_FAMILIES:
        spec = load(family).spec
        assert spec.v_max >= 30 and spec.i_max >= 100 and spec.p_max >= 1100


@pytest.mark.parametrize("family", SIM_SUPPLY_FAMILIES + SIM_LOAD_FAMILIES)
@pytest.mark.parametrize(
    "program",
    ["VOLT 29.2;:CURR 50;:OUTP ON", "FUNC CURR;:CURR 40;:VOLT:ON 22;:INP ON",
     "FUNC VOLT;:VOLT 25;:INP ON", "FUNC RES;:RES 0.5;:INP ON", "FUNC POW;:POW 1000;:INP ON"],
)
def test_node_current_is_continuous_and_non_increasing(family: str, program: str) -> None:
    instrument = make_instrument(family, random.Random(1))
    instrument.handle(program)
    instrument.observe(26.0, 0.0, 0.1)
    values = sweep(instrument)
    steps = [b - a for a, b in itertools.pairwise(values)]
    assert all(step <= 1e-9 for step in steps), "node current must not increase with voltage"
    # Continuity: no jump larger than the steepest slope (1e-4 ohm) times the grid step allows.
    assert max(abs(step) for step in steps) <= 0.01 / 1e-4 + 1e-6
    if isinstance(instrument, SimSupply):
        assert min(values) >= 0.0
    else:
        assert max(values) <= 0.0


def _builtin_node_current(instrument, terminal_v: float) -> float:
    """The node-current curves as first written, with the builtins min/max: the oracle for the
    curves, which spell those comparisons out (the simulator's results must stay bit-identical)."""
    if not instrument.output_on:
        return 0.0
    active, spec = instrument.active, instrument.spec
    if isinstance(instrument, SimSupply):
        cv_current = (active["voltage"] - terminal_v) / CV_SLOPE_OHM
        power_limit = spec.p_max / max(terminal_v, 1e-3)
        return max(0.0, min(cv_current, active["current"], power_limit))
    floor_v = max(instrument.last_v, MIN_LAST_V)
    mode = active["mode"]
    level = {"CC": active["current"], "CV": active["voltage"], "CR": active["resistance"]}.get(
        mode, active["power"] / floor_v if instrument.last_v >= MIN_LAST_V else 0.0)
    v = max(terminal_v, 0.0)
    target = max(0.0, (v - level) / CV_SLOPE_OHM) if mode == "CV" else v / level if mode == "CR" else level
    limit = min(spec.i_max, spec.p_max / floor_v, v / instrument.r_on)
    latched = active["von_latch"] and instrument.von_armed
    gate = 1.0 if latched else min(1.0, max(0.0, (terminal_v - active["von"]) / VON_RAMP_V + 1.0))
    return -(min(target, limit) * gate)


@pytest.mark.parametrize("family", SIM_SUPPLY_FAMILIES + SIM_LOAD_FAMILIES)
@pytest.mark.parametrize(
    "program",
    ["VOLT 29.2;:CURR 50;:OUTP ON", "FUNC CURR;:CURR 40;:VOLT:ON 22;:INP ON", "FUNC CURR;:CURR 0;:INP ON",
     "FUNC VOLT;:VOLT 25;:INP ON", "FUNC RES;:RES 0.5;:INP ON", "FUNC POW;:POW 1000;:INP ON", "*RST"],
)
def test_node_current_curves_equal_the_builtin_formulas_bit_for_bit(family: str, program: str) -> None:
    instrument = make_instrument(family, random.Random(1))
    instrument.handle(program)
    for observed in (0.5, 26.0):  # a CP load reads its setpoint from the last observed voltage
        instrument.observe(observed, 0.0, 0.1)
        curve = instrument.node_current_curve()
        volts = [-1.0, -0.0, 0.0, 1e-4, 1e-3, 0.5, 21.995, 22.0, 22.005, 24.99, 25.0, 29.2, 29.2 - 1e-9, 45.0]
        volts += [40.0 * k / 997 for k in range(998)]
        for v in volts:
            got, want = curve(v), _builtin_node_current(instrument, v)
            assert (got, math.copysign(1.0, got)) == (want, math.copysign(1.0, want)), (v, got, want)


def test_supply_cv_cc_crossover_and_power_limit() -> None:
    psu = supply("itech_it6500c")
    psu.handle("VOLT 29.2;:CURR 100;:OUTP ON")
    assert psu.node_current(26.0) == pytest.approx(1800.0 / 26.0)  # IT6512C 1.8 kW limit
    psu.handle("CURR 50")
    assert psu.node_current(26.0) == pytest.approx(50.0)  # CC
    assert psu.node_current(29.2 - 0.001) == pytest.approx(10.0)  # CV: 1 mV / 1e-4 ohm
    assert psu.node_current(29.5) == 0.0  # never sinks
    psu.observe(29.2, 10.0, 0.1)
    assert psu.regulation_mode() == "CV"
    assert int(psu.handle("STAT:OPER:COND?")) == 256


def test_keysight_ocp_trips_on_entering_cc_and_latches() -> None:
    psu = supply()
    psu.handle("VOLT 29.2;:CURR 20;:CURR:PROT:STAT ON;:OUTP ON")
    psu.observe(27.0, psu.node_current(27.0), 0.1)
    assert psu.tripped == {"ocp"} and not psu.output_on
    assert int(psu.handle("STAT:QUES:COND?")) == 2
    assert psu.node_current(20.0) == 0.0
    psu.handle("OUTP:PROT:CLE")
    assert psu.output_on


def test_itech_ovp_level_state_and_per_protection_clear() -> None:
    psu = supply("itech_it6500c")
    psu.handle("VOLT 29.2;:OUTP ON;:VOLT:PROT 30;:VOLT:PROT:STAT ON")
    psu.observe(29.9, 1.0, 0.1)
    assert psu.handle("VOLT:PROT:TRIG?") == "0"
    psu.observe(30.2, 1.0, 0.1)
    assert psu.handle("VOLT:PROT:TRIG?;:CURR:PROT:TRIG?") == "1;0"
    psu.handle("CURR:PROT:CLE")  # the wrong clear leaves the OVP latched
    assert not psu.output_on
    psu.handle("VOLT:PROT:CLE")
    assert psu.output_on


def test_load_von_cut_off_and_timer() -> None:
    el = load()
    el.handle("FUNC CURR;:CURR 40;:VOLT:ON 24;:INP ON;:INP:TIM:DEL 2;:INP:TIM ON")
    el.observe(26.0, 40.0, 0.5)
    assert el.node_current(26.0) == pytest.approx(-40.0)
    assert el.node_current(23.9) == 0.0
    el.observe(23.9, 0.0, 0.5)
    assert el.cut_off()
    el.observe(26.0, 40.0, 1.0)
    assert not el.output_on  # 2 s timer elapsed: input off, not a fault
    assert el.tripped == set() and el.handle("INP?") == "0"


def test_load_ocp_delay() -> None:
    el = load("itech_it8500plus")
    el.handle("FUNC CURR;:CURR 50;:CURR:PROT 45;:CURR:PROT:DEL 1;:CURR:PROT:STAT ON;:INP ON")
    el.observe(26.0, 50.0, 0.5)
    assert el.output_on
    el.observe(26.0, 50.0, 0.6)
    assert el.tripped == {"ocp"} and not el.output_on


def test_measurement_error_within_datasheet_and_quantised() -> None:
    for seed in range(20):
        psu = make_instrument("keysight_n8700", random.Random(seed))
        psu.handle("VOLT 29.2;:CURR 50;:OUTP ON")
        psu.observe(26.0, 50.0, 0.1)
        volts, amps = (float(x) for x in psu.handle("MEAS:VOLT?;CURR?").split(";"))
        acc_v, acc_i = psu.spec.voltage_accuracy, psu.spec.current_accuracy
        assert abs(volts - 26.0) <= 26.0 * acc_v.gain_fraction + acc_v.offset + acc_v.resolution
        assert abs(amps - 50.0) <= 50.0 * acc_i.gain_fraction + acc_i.offset + acc_i.resolution
        assert round(volts / acc_v.resolution, 6) == round(volts / acc_v.resolution)


def test_faults_shunt_gain_sense_lead_and_ignored_setpoints() -> None:
    psu = supply()
    psu.handle("VOLT 29.2;:CURR 50;:OUTP ON")
    psu.observe(26.0, 50.0, 0.1)
    _, amps = psu.readings()
    psu.shunt_gain_error(1.02)
    assert psu.readings()[1] == pytest.approx(amps * 1.02, abs=0.02)
    assert psu.node_current(26.0) == pytest.approx(50.0)  # measurement only
    psu.sense_lead_off()
    assert psu.readings()[0] < 26.0 * 0.96
    psu.ignore_setpoints(True)
    psu.handle("OUTP OFF;:CURR 10")
    assert psu.handle("CURR?") == "10"  # accepted...
    assert psu.output_on and psu.node_current(26.0) == pytest.approx(50.0)  # ...but not applied
    truth = psu.safe_state_truth()
    assert truth["output_on"] is True and truth["programmed"]["output"] is False
    psu.ignore_setpoints(False)
    assert not psu.output_on


def test_unknown_family_is_named() -> None:
    with pytest.raises(ValueError, match="keysight_n8700"):
        make_instrument("nope", random.Random(0))


def test_a_checkpoint_after_scpi_traffic_restores_an_instrument_that_still_answers() -> None:
    """The instruments keep per-message plans of bound handlers: code, not state to pickle."""
    from bench.sim.scenario import load_scenario
    from bench.sim.world import SimulatedBench

    sim = SimulatedBench(load_scenario("healthy"))
    sim.supply.handle("VOLT 28.4;CURR 20")
    assert sim.supply.handle("VOLT?;CURR?") == "28.4;20"  # plans kept for both messages
    restored = SimulatedBench(load_scenario("healthy"))
    restored.restore(sim.checkpoint())
    assert restored.supply.handle("VOLT?;CURR?") == "28.4;20"
