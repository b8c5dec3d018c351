"""The bench layer: instrument-side limits programmed and read back before an output turns on."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bench.config import InstrumentRanges, load_station
from bench.errors import InputErrors, SetpointOutOfRange
from bench.procedure import load
from bench.station import connect_bench


@pytest.fixture
def bk_bench():
    station = load_station(None)
    station = station.model_copy(update={
        "simulator": station.simulator.model_copy(update={"load_family": "bk_8600"}),
        "load": station.load.model_copy(update={"family": "bk_8600", "model": "8614"}),
    })
    with connect_bench(station) as bench:
        yield bench


def test_discharge_programs_cut_off_and_timer_then_the_timer_ends_it(bk_bench):
    bench = bk_bench
    assert bench.discharge_timer_s(40.0) == pytest.approx(5 * 3600 * 1.25 + 600)  # 200 Ah / 40 A = 5 h
    bench.discharge_cc(2.0, bench.default_cutoff_v())
    read_back = bench.protections["load"]
    assert read_back.uvp == pytest.approx(22.4, abs=0.01)  # 2.8 V/cell (battery.md §2.2)
    assert read_back.timer == pytest.approx(99999, abs=1)   # 100 h at 2 A, capped at the family maximum
    assert bench.sim.truth()["load_input_on"]
    # abandon it: nobody turns it off; the load's own timer does, with charge still in the pack
    bench.clock.sleep(read_back.timer - 60)
    assert bench.sim.truth()["load_input_on"]
    bench.clock.sleep(65)
    truth = bench.sim.truth()
    assert not truth["load_input_on"]
    assert truth["soc_pct"] > 20.0


def _notifier_threads() -> int:
    return sum(t.name.startswith("Notifier for bus") for t in threading.enumerate())


def test_embedded_bench_reaches_its_instruments_without_sockets_or_listener_threads():
    from drivers.visa_inprocess import InProcessVisaLibrary

    before = _notifier_threads()
    with connect_bench(load_station(None)) as bench:
        for driver in (bench.supply, bench.load):
            assert isinstance(driver.scpi.transport.visalib, InProcessVisaLibrary)
        assert bench.adapter.polled
        # only the simulated BMS's UDS server reads its bus on a thread; the controller polls
        assert _notifier_threads() - before == 1
        bench.charge(28.4, 50.0)
        bench.clock.sleep(5.0)
        # the lockstep step has been decoded by the time sleep returns: the BMS sees the charge
        assert bench.adapter.frames_received == bench.sim.adapter.frames_sent
        assert bench.adapter.snapshot().current_a == pytest.approx(50.0, abs=0.5)
        volts, amps = bench.supply.measure()
        assert amps == pytest.approx(50.0, abs=0.5) and volts == pytest.approx(bench.sim.terminal_v, abs=0.05)
        assert bench.adapter.read_identity()["serial"] == bench.sim.bms.serial


def test_embedded_bench_over_sockets_when_the_station_asks():
    station = load_station(None)
    station = station.model_copy(update={"simulator": station.simulator.model_copy(update={"transport": "sockets"})})
    before = _notifier_threads()
    with connect_bench(station) as bench:
        assert type(bench.supply.scpi.transport.visalib).__module__.startswith("pyvisa_py")
        assert not bench.adapter.polled and _notifier_threads() - before == 2
        bench.charge(28.4, 50.0)
        bench.clock.sleep(5.0)
        assert bench.adapter.snapshot().current_a == pytest.approx(50.0, abs=0.5)
        assert bench.supply.measure()[1] == pytest.approx(50.0, abs=0.5)


# -- one range source (issue 16 point 2) -------------------------------------------------------
SOC_CALIBRATION = Path(__file__).parents[2] / "procedures" / "soc_calibration.yaml"


def _derated_load_station(current_max_a: float):
    """The embedded station with its 240 A / 1.2 kW load derated (say, by its cabling)."""
    station = load_station(None)
    ranges = InstrumentRanges(voltage_max_v=120.0, current_max_a=current_max_a, power_max_w=1200.0)
    return station.model_copy(update={"load": station.load.model_copy(update={"ranges": ranges})})


def test_a_derated_load_limits_validation_and_the_bench_alike():
    station = _derated_load_station(30.0)
    # validation: 40 A is fine for the IT8514C+ (240 A; 40 A x 29.2 V < 1.2 kW), not for the derated load
    assert load(SOC_CALIBRATION, load_station(None), {"discharge_current_a": "40A"})
    with pytest.raises(InputErrors) as info:
        load(SOC_CALIBRATION, station, {"discharge_current_a": "40A"})
    assert [e.message for e in info.value.errors] == [
        "discharge current 40 A exceeds the load's current range: at most 30 A"]
    procedure = load(SOC_CALIBRATION, station)  # the default min(0.2C, load.current_max, ...) fits
    with connect_bench(station) as bench:
        # the run: the same 30 A for the procedure's expressions...
        assert bench.range_variables()["load.current_max"] == 30.0
        default = procedure.parameters["discharge_current_a"].default
        assert default.evaluate({"capacity_nominal": 200.0, **bench.range_variables()}) == 30.0
        # ...for the over-current trip it programs (28 A x 1.1 + 1 A = 31.8 A, above the derating)...
        bench.discharge_cc(28.0, bench.default_cutoff_v())
        assert bench.protections["load"].ocp == pytest.approx(30.0, abs=0.01)
        bench.outputs_off()
        # ...and for the setpoints it accepts: 40 A is refused before anything is sent
        with pytest.raises(SetpointOutOfRange, match=r"outside the station's load range 0\.\.30 A"):
            bench.discharge_cc(40.0, bench.default_cutoff_v())
        assert not bench.sim.truth()["load_input_on"] and bench.commanded.kind == "off"


def test_a_derated_supply_refuses_a_charge_beyond_it():
    station = load_station(None)
    ranges = InstrumentRanges(voltage_max_v=31.5, current_max_a=50.0, power_max_w=3300.0)
    station = station.model_copy(update={"supply": station.supply.model_copy(update={"ranges": ranges})})
    with connect_bench(station) as bench:
        with pytest.raises(SetpointOutOfRange, match=r"outside the station's supply range 0\.\.50 A"):
            bench.charge(28.4, 60.0)
        assert not bench.sim.truth()["supply_output_on"]
        bench.charge(28.4, 50.0)
        assert bench.sim.truth()["supply_output_on"]


def test_the_supply_over_current_trip_is_set_for_the_charges_top_not_its_soft_start():
    # the ITECH IT6500C has a separate OCP trip level: set from the 25 A soft start it would trip
    # at 28.5 A while the charge control ramps to the step's 100 A
    station = load_station(None)
    station = station.model_copy(update={
        "supply": station.supply.model_copy(update={"family": "itech_it6500c", "model": "IT6512C"}),
        "simulator": station.simulator.model_copy(update={"supply_family": "itech_it6500c"})})
    with connect_bench(station) as bench:
        bench.charge(28.4, 25.0, up_to_a=100.0)
        supply = bench.sim.truth()["supply"]["programmed"]  # what the instrument itself holds
        assert supply["ocp_level"] == pytest.approx(100.0 * 1.1 + 1.0) and supply["current"] == 25.0
        bench.adjust_charge(28.4, 100.0, up_to_a=100.0)
        assert bench.sim.truth()["supply"]["programmed"]["current"] == pytest.approx(100.0)
        with pytest.raises(SetpointOutOfRange):
            bench.adjust_charge(28.4, 200.0, up_to_a=100.0)  # never beyond the station's range
