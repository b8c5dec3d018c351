"""The project's real drivers against ``bench sim serve`` running in another process: the SCPI
supply/load drivers through pyvisa-py on TCP sockets, the VS02-CAL-24 adapter driver through
python-can's ``slcan`` interface (``socket://`` URL and pseudo-terminal) with UDS over ISO-TP.
Both sides of every check are measurements: the instruments' read-back against the BMS's own
measurement of the same current, as a bench PC would see them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bench.errors import NegativeResponse
from bench.sim.scenario import load_scenario
from drivers.registry import open_instrument
from drivers.security import HmacSha256First4
from drivers.vs02_adapter import CanConfig, Vs02Adapter
from tests.simserve import ServedBench, served_bench

SPEED = 20.0
SIM_SECRET = b"VS02-SIM-SECRET"  # the simulator's documented stand-in secret (bench/sim/bms_security.py)


@pytest.fixture(scope="module")
def served() -> Iterator[ServedBench]:
    with served_bench("--speed", f"{SPEED:g}", "--supply-family", "itech_it6500c",
                      "--load-family", "itech_it8500plus") as s:
        yield s


def _adapter(channel: str, secret: bytes = SIM_SECRET) -> Vs02Adapter:
    adapter = Vs02Adapter(CanConfig(interface="slcan", channel=channel), seedkey=HmacSha256First4(secret))
    adapter.open()
    return adapter


def _bms_current_a(adapter: Vs02Adapter, wall_s: float = 1.0) -> float:
    """The BMS's broadcast pack current after ``wall_s`` (a few broadcast cycles at SPEED)."""
    time.sleep(wall_s)
    current = adapter.snapshot().current_a
    assert current is not None
    return current


def test_supply_and_load_drivers_identify_program_and_measure(served: ServedBench) -> None:
    supply = open_instrument("itech_it6500c", served.supply, name="supply", timeout_s=2.0)
    load = open_instrument("itech_it8500plus", served.load, name="load", timeout_s=2.0)
    adapter = _adapter(served.can_url)
    try:
        assert supply.identify().make.startswith("ITECH") and load.identify().model.startswith("IT85")
        v_rest, i_rest = supply.measure()
        assert 25.6 < v_rest < 27.0 and abs(i_rest) < 0.5   # healthy pack at 60 % SOC (§1.4)

        supply.set_voltage(28.4)                             # §9.2 CV level
        supply.set_current(20.0)
        supply.output(True)
        bms_charge = _bms_current_a(adapter)
        v_chg, i_chg = supply.measure()
        supply.output(False)
        assert i_chg == pytest.approx(20.0, abs=0.3)        # CC: the pack is far below 28.4 V
        assert v_chg > v_rest
        assert bms_charge == pytest.approx(i_chg, abs=0.5)  # + = charge for both

        load.set_mode("CC")
        load.set_current(30.0)
        load.input(True)
        bms_discharge = _bms_current_a(adapter)
        v_dis, i_dis = load.measure()
        load.input(False)
        assert i_dis == pytest.approx(30.0, abs=0.3)
        assert v_dis < v_rest
        assert bms_discharge == pytest.approx(-i_dis, abs=0.5)

        assert supply.safe_state() == [] and load.safe_state() == []
        time.sleep(0.3)
        assert abs(supply.measure()[1]) < 0.2 and abs(load.measure()[1]) < 0.2
    finally:
        adapter.close()
        supply.close()
        load.close()


@pytest.mark.parametrize("where", ["socket", "pty"])
def test_adapter_driver_broadcast_and_uds_over_slcan(served: ServedBench, where: str) -> None:
    scenario = load_scenario("healthy")
    adapter = _adapter(served.can_url if where == "socket" else served.pty)
    try:
        assert adapter.wait_frames(30, timeout_s=5.0)
        snap = adapter.snapshot()
        assert snap.cell_voltages_v is not None and len(snap.cell_voltages_v) == 8
        assert snap.pack_voltage_v == pytest.approx(sum(snap.cell_voltages_v), abs=0.05)
        assert adapter.stale() == []

        identity = adapter.read_identity()
        assert identity["serial"] == scenario.bms.serial
        assert identity["sw_version"] == scenario.bms.sw_version
        dids = adapter.read_dids(["cell_voltages", "soc", "learned_capacity"])
        # UDS and the broadcast are two views of the same BMS measurement (1 mV resolution, noise).
        assert dids["cell_voltages"] == pytest.approx(snap.cell_voltages_v, abs=0.006)
        assert dids["soc"] == pytest.approx(snap.soc_pct, abs=1.0)
        assert 190 < dids["learned_capacity"] < 210

        adapter.session("extended")
        adapter.unlock(1)
    finally:
        adapter.close()


def test_adapter_driver_wrong_key_is_refused_with_nrc_0x35(served: ServedBench) -> None:
    adapter = _adapter(served.can_url, secret=b"not-the-secret")
    try:
        adapter.session("default")  # relock whatever an earlier tester left unlocked
        adapter.session("extended")
        with pytest.raises(NegativeResponse) as refused:
            adapter.unlock(1)
        assert refused.value.nrc == 0x35
    finally:
        adapter.close()
