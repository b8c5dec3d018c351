"""The real drivers over pyvisa-py (TCPIP SOCKET) against the simulated families on ScpiServer."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from bench.errors import ConnectionLost, InstrumentError, InstrumentTimeout
from bench.sim.instruments import SIM_LOAD_FAMILIES, SIM_SUPPLY_FAMILIES, SimInstrument, make_instrument
from bench.sim.scpi_server import ScpiServer
from drivers.power import ElectronicLoad, PowerSupply, ProtectionSettings, program_and_verify
from drivers.registry import open_instrument
from drivers.scpi import ReconnectPolicy, ScpiInstrument
from drivers.visa import open_resource

PACK_OCV = 26.4  # V, a 50 % SOC 8S LFP pack (battery.md §1.4: ~3.3 V/cell mid-plateau)
PACK_R = 0.02  # ohm, pack internal resistance class (battery.md §8)


class Served:
    def __init__(self, family: str, seed: int = 3) -> None:
        self.lock = threading.RLock()
        self.instrument: SimInstrument = make_instrument(family, random.Random(seed))
        self.server = ScpiServer(self.instrument, self.lock)
        self.port = self.server.start()
        self.resource = f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def settle(self, ocv: float = PACK_OCV, steps: int = 3, dt_s: float = 0.1) -> float:
        """Solve the pack node (bisection, as the world model does) and let the instrument observe."""
        v = ocv
        for _ in range(steps):
            with self.lock:
                lo, hi = 0.0, 60.0
                for _ in range(60):
                    mid = (lo + hi) / 2
                    into_node = self.instrument.node_current(mid) + (ocv - mid) / PACK_R
                    lo, hi = (mid, hi) if into_node > 0 else (lo, mid)
                v = (lo + hi) / 2
                current = abs(self.instrument.node_current(v))
                self.instrument.observe(v, current, dt_s)
        return v


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    s = Served(request.param)
    yield s
    s.server.close()


def charge_in_cc_then_trip_ovp(psu: PowerSupply, served: Served) -> None:
    """40 A CC into the simulated pack through the driver, then the pack side driven above the
    30 V OVP: the driver reads the trip back. Shared by every transport's test."""
    psu.set_voltage(29.2)
    psu.set_current(40.0)
    program_and_verify(psu, ProtectionSettings(ovp=30.0))
    psu.output(True)
    v = served.settle()
    volts, amps = psu.measure()  # one compound query, answered in one reply
    # CC into the pack: 40 A raises the terminal by 40 A * 20 mOhm = 0.8 V.
    assert v == pytest.approx(PACK_OCV + 40.0 * PACK_R, abs=1e-3)
    assert volts == pytest.approx(v, abs=0.05) and amps == pytest.approx(40.0, abs=0.5)
    assert psu.protection_tripped() == []
    served.settle(ocv=31.0)  # the pack side is driven above the OVP level
    assert psu.protection_tripped() == ["ovp"]


@pytest.mark.parametrize("served", SIM_SUPPLY_FAMILIES, indirect=True)
def test_supply_charges_in_cc_and_ovp_trips_and_latches(served: Served) -> None:
    psu = open_instrument(served.instrument.family, served.resource, name="psu", timeout_s=1.0)
    assert isinstance(psu, PowerSupply)
    assert psu.identify().model == served.instrument.model
    charge_in_cc_then_trip_ovp(psu, served)
    assert served.instrument.output_on is False
    served.settle(ocv=PACK_OCV)  # the cause has gone, but the trip is latched
    assert served.instrument.output_on is False and psu.protection_tripped() == ["ovp"]
    psu.clear_protection()
    assert served.instrument.output_on is True
    assert psu.safe_state() == []
    truth = served.instrument.safe_state_truth()
    assert truth["output_on"] is False and truth["setpoints"]["voltage"] == 0.0
    psu.close()


@pytest.mark.parametrize("served", SIM_LOAD_FAMILIES, indirect=True)
def test_load_discharges_and_uvp_cut_off_stops_sinking(served: Served) -> None:
    load = open_instrument(served.instrument.family, served.resource, name="load", timeout_s=1.0)
    assert isinstance(load, ElectronicLoad)
    load.set_mode("CC")
    load.set_current(40.0)
    program_and_verify(load, ProtectionSettings(uvp=24.0, opp=1150.0))
    load.input(True)
    v = served.settle()
    volts, amps = load.measure()
    assert v == pytest.approx(PACK_OCV - 40.0 * PACK_R, abs=1e-3)
    assert amps == pytest.approx(40.0, abs=0.5) and volts == pytest.approx(v, abs=0.05)
    v_low = served.settle(ocv=23.5)  # the pack sags below the cut-off
    volts, amps = load.measure()
    assert abs(amps) < 0.5, "the load kept sinking below its under-voltage cut-off"
    assert v_low == pytest.approx(23.5, abs=1e-3)
    assert load.safe_state() == []
    assert served.instrument.output_on is False


@pytest.mark.parametrize("served", ["bk_8600"], indirect=True)
def test_load_power_protection_trips(served: Served) -> None:
    load = open_instrument("bk_8600", served.resource, name="load", timeout_s=1.0)
    assert isinstance(load, ElectronicLoad)
    load.set_mode("CP")
    load.set_power(1100.0)
    program_and_verify(load, ProtectionSettings(opp=1000.0))
    load.input(True)
    served.settle(steps=4)
    assert load.protection_tripped() == ["opp"]
    assert served.instrument.output_on is False


@pytest.mark.parametrize("served", ["keysight_n8700"], indirect=True)
def test_instrument_error_text_is_reported(served: Served) -> None:
    psu = open_instrument("keysight_n8700", served.resource, name="psu", timeout_s=1.0)
    assert isinstance(psu, PowerSupply)
    with pytest.raises(InstrumentError, match=r"-222,Data out of range"):
        psu.set_limit("ovp", 37.0)  # inside the driver's generic bound, above the N8735A's 36 V


@pytest.mark.parametrize("served", ["keysight_n8700"], indirect=True)
def test_dropped_connection_raises_within_timeout_then_reconnects(served: Served) -> None:
    plain = ScpiInstrument(open_resource(served.resource, 0.5), "psu-plain")
    resilient = ScpiInstrument(
        open_resource(served.resource, 0.5), "psu",
        reopen=lambda: open_resource(served.resource, 0.5),
        reconnect=ReconnectPolicy(attempts=20, delay_s=0.1),
    )
    assert plain.identify().model == "N8735A"
    assert resilient.identify().model == "N8735A"
    served.server.disconnect(0.6)
    started = time.monotonic()
    with pytest.raises((ConnectionLost, InstrumentTimeout)) as caught:
        plain.query("*IDN?")
    assert time.monotonic() - started < 1.0
    assert caught.value.instrument == "psu-plain" and caught.value.operation == "*IDN?"
    # With a policy the driver re-opens once the server accepts again and carries on.
    assert resilient.query_float("VOLT?") == 0.0
    assert resilient.identify().serial == served.instrument.serial
    plain.close()
    resilient.close()


@pytest.mark.parametrize("served", ["itech_it6500c"], indirect=True)
def test_second_session_sees_the_same_instrument(served: Served) -> None:
    bench = ScpiInstrument(open_resource(served.resource, 1.0), "bench")
    watchdog = ScpiInstrument(open_resource(served.resource, 1.0), "watchdog")
    bench.configure("VOLT 12.5")
    assert watchdog.query_float("VOLT?") == 12.5
    watchdog.configure("OUTP OFF")
    assert bench.query_bool("OUTP?") is False
    bench.close()
    watchdog.close()


@pytest.mark.parametrize("served", SIM_SUPPLY_FAMILIES + SIM_LOAD_FAMILIES, indirect=True)
def test_output_is_on_reads_the_instrument_state_back(served: Served) -> None:
    """``output_is_on()`` asks the instrument (the family table's query), so it follows a switch
    made by this driver, and one made behind its back (front panel, another session)."""
    driver = open_instrument(served.instrument.family, served.resource, name="dut", timeout_s=1.0)
    switch = driver.output if isinstance(driver, PowerSupply) else driver.input  # type: ignore[attr-defined]
    assert driver.output_is_on() is False
    switch(True)
    assert served.instrument.output_on is True
    assert driver.output_is_on() is True
    switch(False)
    assert driver.output_is_on() is False
    with served.lock:  # the front panel switches it on: no driver bookkeeping can know
        served.instrument.settings[served.instrument._enable_key] = True
    assert driver.output_is_on() is True
    with served.lock:
        served.instrument.settings[served.instrument._enable_key] = False
    assert driver.output_is_on() is False
    driver.close()


class _InterruptedBetweenWriteAndRead:
    """The real pyvisa session, with Ctrl-C landing once in a query after its write went out
    (the reply is then on its way, unread)."""

    def __init__(self, resource: object) -> None:
        self.resource = resource
        self.interrupt_next_query = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.resource, name)

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("resource", "interrupt_next_query"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.resource, name, value)

    def query(self, message: str) -> str:
        if self.interrupt_next_query:
            self.interrupt_next_query = False
            self.resource.write(message)  # type: ignore[attr-defined]
            time.sleep(0.05)  # the reply arrives while the operator's Ctrl-C unwinds the stack
            raise KeyboardInterrupt
        return self.resource.query(message)  # type: ignore[attr-defined]


@pytest.mark.parametrize("served", ["keysight_n8700"], indirect=True)
@pytest.mark.parametrize("reopen", [False, True], ids=["drain", "reopen"])
def test_a_query_interrupted_by_ctrl_c_does_not_answer_the_next_one(served: Served, reopen: bool) -> None:
    """After Ctrl-C between a query's write and its read, the safe state's read-back must read its
    own reply, not the measurement the interrupted query asked for."""
    session = _InterruptedBetweenWriteAndRead(open_resource(served.resource, 1.0))
    psu = ScpiInstrument(session, "psu", reopen=(lambda: open_resource(served.resource, 1.0)) if reopen else None,
                         reconnect=ReconnectPolicy(attempts=3, delay_s=0.05))
    psu.configure("VOLT 12.5")
    psu.configure("OUTP ON", idempotent=False)
    session.interrupt_next_query = True
    with pytest.raises(KeyboardInterrupt):
        psu.query_floats("VOLT?;CURR?")
    # the safe state's order: the off command (a write, then its error check), then the read-back
    psu.configure("OUTP OFF", idempotent=False)  # "12.5;0" as the error reply would not parse
    assert served.instrument.output_on is False
    assert psu.query_bool("OUTP?") is False
    assert psu.query_float("VOLT?") == 12.5
    psu.close()
