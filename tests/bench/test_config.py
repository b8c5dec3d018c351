"""Station files: the embedded simulator station, the example, ranges, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import (
    SIM_STATION,
    InstrumentRanges,
    ScpiInstrumentConfig,
    derated_ranges,
    instrument_ranges,
    load_station,
)
from bench.errors import InputErrors

REPO = Path(__file__).parents[2]


def test_default_station_is_the_embedded_simulator() -> None:
    station = load_station(None)
    assert station.simulated and station.simulator is not None and station.simulator.mode == "in_process"
    assert station.supply.simulated and station.load.simulated
    assert station.adapter.channel == "sim:can" and station.adapter.request_id == 0x7E4
    assert station.pack.pack_v_max == pytest.approx(29.2)  # 8 x 3.65 V
    assert station.pack.pack_v_min == pytest.approx(20.0)  # 8 x 2.50 V


def test_top_level_sim_station_is_the_packaged_one() -> None:
    top = REPO / "stations" / "sim.yaml"
    assert top.read_bytes() == SIM_STATION.read_bytes()


def test_example_real_station_loads_as_real_hardware() -> None:
    station = load_station(REPO / "stations" / "example_itech_bk.yaml")
    assert not station.simulated
    assert station.supply.calibration_due is not None and not station.supply.simulated
    assert station.adapter.seedkey.secret is None  # secrets come from the environment


def test_station_ranges_override_wins() -> None:
    cfg = ScpiInstrumentConfig(family="keysight_n8700", model="N8735A", resource="sim:supply",
                               ranges=InstrumentRanges(voltage_max_v=30, current_max_a=10, power_max_w=300))
    assert instrument_ranges(cfg) == InstrumentRanges(voltage_max_v=30, current_max_a=10, power_max_w=300)


def test_station_ranges_derate_the_model_and_never_widen_it() -> None:
    """Issue 16 point 2: one rule for validation and the bench; each maximum is the smaller one."""
    pytest.importorskip("drivers.registry")
    from drivers.power import Ranges

    # N8735A: 31.5 V / 115.5 A / 3.3 kW
    cfg = ScpiInstrumentConfig(family="keysight_n8700", model="N8735A", resource="sim:supply",
                               ranges=InstrumentRanges(voltage_max_v=40, current_max_a=60, power_max_w=5000))
    expected = InstrumentRanges(voltage_max_v=31.5, current_max_a=60, power_max_w=3300)
    assert instrument_ranges(cfg) == expected
    assert derated_ranges(cfg, Ranges(31.5, 115.5, 3300.0)) == expected  # what the connected bench uses
    plain = cfg.model_copy(update={"ranges": None})
    assert instrument_ranges(plain) == InstrumentRanges(voltage_max_v=31.5, current_max_a=115.5, power_max_w=3300)
    # an unknown model: the station's ranges alone
    unknown = cfg.model_copy(update={"family": "no_such_family"})
    assert instrument_ranges(unknown) == cfg.ranges


def test_ranges_from_the_driver_registry() -> None:
    pytest.importorskip("drivers.registry")
    station = load_station(None)
    supply = instrument_ranges(station.supply)
    load = instrument_ranges(station.load)
    assert supply is not None and load is not None
    # the supply must reach the pack's absolute max voltage at its max charge current (battery.md §2.2)
    assert supply.voltage_max_v >= station.pack.pack_v_max
    assert supply.current_max_a >= station.pack.max_charge_current_a
    unknown = ScpiInstrumentConfig(family="no_such_family", resource="TCPIP::1.2.3.4::5025::SOCKET")
    assert instrument_ranges(unknown) is None


@pytest.mark.parametrize(("text", "where", "message"), [
    ("name: s\nsupply: {family: x, resource: r, volts: 3}\nload: {family: y, resource: r}\n"
     "adapter: {interface: virtual, channel: c}\n", "2:41", "unknown key 'volts'"),
    ("name: s\nsupply: {family: x, resource: r, timeout_s: -1}\nload: {family: y, resource: r}\n"
     "adapter: {interface: virtual, channel: c}\n", "2:45", "greater than 0"),
    ("name: s\nsupply: {family: x, resource: r}\nload: {family: y, resource: r}\n"
     "adapter: {interface: virtual, channel: c}\nsimulator: {mode: remote}\n", "5:19", "in_process"),
    ("name: s\nsupply: {family: x, resource: r}\n"
     "adapter: {interface: virtual, channel: c}\n", "1:1", "missing required key 'load'"),
])
def test_bad_station_files_are_located(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = tmp_path / "station.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputErrors) as info:
        load_station(path)
    formatted = [e.format() for e in info.value.errors]
    assert any(f.startswith(f"{path}:{where}: ") and message in f for f in formatted), formatted
