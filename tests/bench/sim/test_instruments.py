"""Simulated supplies and loads: physics the world model relies on, protections, faults."""

from __future__ import annotations

import itertools
import random

import pytest

from bench.sim.instruments import (
    SIM_LOAD_FAMILIES,
    SIM_SUPPLY_FAMILIES,
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
