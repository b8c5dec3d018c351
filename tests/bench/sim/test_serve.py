"""``bench sim serve`` from another process, through the third-party tools a bench PC would use:
pyvisa (pyvisa-py) on the SCPI sockets, python-can's ``slcan`` interface on the printed
``socket://`` URL and on the pseudo-terminal, cantools with the repo DBC, udsoncan over can-isotp.
No project driver is involved here (see tests/drivers/test_against_sim_serve.py for those)."""

from __future__ import annotations

import itertools
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import can
import cantools
import isotp
import pytest
import pyvisa
import udsoncan
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpConnection

from bench.sim.scenario import load_scenario
from tests.simserve import REPO, ServedBench, served_bench

SPEED = 20.0
DBC = cantools.database.load_file(str(REPO / "drivers" / "data" / "vs02.dbc"))
BROADCAST = {m.name for m in DBC.messages}


@pytest.fixture(scope="module")
def served() -> Iterator[ServedBench]:
    with served_bench("--speed", f"{SPEED:g}", "--scenario", "healthy") as s:
        yield s


@pytest.fixture(scope="module")
def visa() -> Iterator[pyvisa.ResourceManager]:
    # pyvisa gives every caller the same manager per backend: closing it would close every
    # other session in this process too, so the tests close their own resources only
    yield pyvisa.ResourceManager("@py")


def _open(rm: pyvisa.ResourceManager, resource: str) -> pyvisa.resources.MessageBasedResource:
    inst = rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=3000)
    assert isinstance(inst, pyvisa.resources.MessageBasedResource)
    return inst


def _slcan(channel: str) -> can.BusABC:
    return can.Bus(interface="slcan", channel=channel, bitrate=500000)


def _collect(bus: can.BusABC, wall_s: float) -> list[can.Message]:
    frames: list[can.Message] = []
    deadline = time.monotonic() + wall_s
    while time.monotonic() < deadline:
        msg = bus.recv(timeout=0.1)
        if msg is not None:
            frames.append(msg)
    return frames


def _latest(frames: list[can.Message]) -> dict[str, dict[str, float]]:
    """The last decoded value of every broadcast message seen."""
    decoded: dict[str, dict[str, float]] = {}
    for msg in frames:
        try:
            message = DBC.get_message_by_frame_id(msg.arbitration_id)
        except KeyError:
            continue
        decoded[message.name] = dict(message.decode(bytes(msg.data), decode_choices=False))
    return decoded


def test_endpoints_json_names_every_instrument(served: ServedBench) -> None:
    info = served.info
    assert info["speed"] == SPEED and info["scenario"] == "healthy"
    assert info["supply"]["resource"].startswith("TCPIP::127.0.0.1::")
    assert info["supply"]["resource"].endswith("::SOCKET")
    assert info["load"]["resource"].endswith("::SOCKET")
    assert info["adapter"]["interface"] == "slcan" and info["adapter"]["bitrate"] == 500000
    assert info["adapter"]["channel"].startswith("socket://127.0.0.1:")
    assert Path(info["adapter"]["pty"]).exists()


def test_pyvisa_reads_identity_measurements_and_error_queue(served: ServedBench,
                                                             visa: pyvisa.ResourceManager) -> None:
    supply, load = _open(visa, served.supply), _open(visa, served.load)
    try:
        make, model, serial, firmware = (f.strip() for f in supply.query("*IDN?").split(","))
        assert "Keysight" in make or "Agilent" in make
        assert model.startswith("N87") and serial and firmware
        make, model, _, _ = (f.strip() for f in load.query("*IDN?").split(","))
        assert make == "B&K Precision" and model.startswith("86")

        # Output off: both instruments see the resting pack (healthy: 8 cells at 60 % SOC,
        # §1.4 plateau 3.28-3.33 V/cell).
        v_supply = float(supply.query("MEAS:VOLT?"))
        v_load, i_load = (float(x) for x in load.query("MEAS:VOLT?;CURR?").split(";"))
        assert 25.6 < v_supply < 27.0 and abs(v_load - v_supply) < 0.1
        assert abs(i_load) < 0.1

        # Sink 50 A: the load reads it back and the pack sags by its resistance.
        load.write("FUNC CURR;:CURR 50;:INP ON")
        time.sleep(0.5)
        v_on, i_on = (float(x) for x in load.query("MEAS:VOLT?;CURR?").split(";"))
        load.write("INP OFF")
        assert i_on == pytest.approx(50.0, abs=0.2)
        assert 0.02 < v_load - v_on < 0.5  # a few mΩ of pack resistance (§1.5, §8)

        # SCPI error queue as real instruments keep it.
        supply.write("VOLT:BOGUS 3")
        code, _ = supply.query("SYST:ERR?").split(",", 1)
        assert int(code) == -113
        assert int(supply.query("SYST:ERR?").split(",")[0]) == 0
    finally:
        supply.close()
        load.close()


@pytest.mark.parametrize("where", ["socket", "pty"])
def test_slcan_receives_broadcast_decoded_with_repo_dbc(served: ServedBench, where: str) -> None:
    channel = served.can_url if where == "socket" else served.pty
    bus = _slcan(channel)
    try:
        frames = _collect(bus, 1.5)  # 30 simulated seconds: ~30 broadcast cycles
    finally:
        bus.shutdown()
    latest = _latest(frames)
    assert set(latest) == BROADCAST, f"missing {BROADCAST - set(latest)}"
    cells = [latest["BMS_CellVoltages1"][f"Cell{i}Voltage"] for i in range(1, 5)]
    cells += [latest["BMS_CellVoltages2"][f"Cell{i}Voltage"] for i in range(5, 9)]
    assert all(3.25 < v < 3.36 for v in cells), cells  # §1.4 plateau around 60 % SOC
    pack_v = latest["BMS_PackStatus"]["PackVoltage"]
    assert pack_v == pytest.approx(sum(cells), abs=0.05)
    assert latest["BMS_SocSoh"]["StateOfCharge"] == pytest.approx(60, abs=2)
    assert latest["BMS_Limits"]["ChargeVoltageLimit"] == pytest.approx(28.4)  # §6.1 CVL
    stats = latest["BMS_CellStats"]
    assert stats["CellDivergence"] == pytest.approx(max(cells) - min(cells), abs=0.003)
    counters = [DBC.decode_message(m.arbitration_id, bytes(m.data))["MessageCounter"]
                for m in frames if m.arbitration_id == 0x404]
    assert len(counters) >= 20
    assert all((b - a) % 256 == 1 for a, b in itertools.pairwise(counters))


def test_speed_paces_simulated_time(served: ServedBench) -> None:
    bus = _slcan(served.can_url)
    try:
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            msg = bus.recv(timeout=0.2)
            if msg is not None and msg.arbitration_id == 0x404:
                uptime = DBC.decode_message(0x404, bytes(msg.data))["UptimeSeconds"]
                samples.append((time.monotonic(), int(uptime)))
    finally:
        bus.shutdown()
    (t0, u0), (t1, u1) = samples[0], samples[-1]
    rate = (u1 - u0) / (t1 - t0)
    assert rate == pytest.approx(SPEED, rel=0.1)


def test_udsoncan_reads_serial_did_over_slcan(served: ServedBench) -> None:
    expected = load_scenario("healthy").bms.serial
    bus = _slcan(served.can_url)
    notifier = can.Notifier(bus, [], timeout=0.05)
    try:
        stack = isotp.NotifierBasedCanStack(
            bus, notifier,
            address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E4, rxid=0x7EC),  # §6.2
            params={"tx_padding": 0xCC, "tx_data_min_length": 8},
        )
        config = dict(udsoncan.configs.default_client_config)
        config["data_identifiers"] = {0xF18C: udsoncan.AsciiCodec(16)}
        config["use_server_timing"] = False
        with Client(PythonIsoTpConnection(stack), config=config) as client:  # type: ignore[arg-type]
            response = client.read_data_by_identifier(0xF18C)
        serial = response.service_data.values[0xF18C].rstrip("\x00")
    finally:
        notifier.stop()
        bus.shutdown()
    assert serial == expected


def test_stops_cleanly_on_sigterm_and_releases_ports() -> None:
    """(Ctrl-C/SIGINT takes the same handler; the module fixture's teardown also checks SIGTERM.)"""
    with served_bench("--speed", "5") as s:
        port = int(s.supply.split("::")[2])
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        s.proc.send_signal(signal.SIGTERM)
        _, s.stderr = s.proc.communicate(timeout=20)
        s.exit_code = s.proc.returncode
    assert s.exit_code == 0, s.stderr
    assert "Traceback" not in s.stderr
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
