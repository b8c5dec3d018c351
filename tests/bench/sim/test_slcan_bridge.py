"""python-can's real ``slcan`` interface against the bridge, on a pty and on a TCP socket."""

from __future__ import annotations

import threading
import time
import uuid

import can
import pytest
import udsoncan
from isotp import Address, AddressingMode, NotifierBasedCanStack
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpConnection

from bench.sim.can_adapter import SimAdapter
from bench.sim.slcan_bridge import SlcanBridge, ascii_to_frame, frame_to_ascii
from drivers.uds_map import default_uds_map
from drivers.vs02_adapter import CanConfig, Vs02Adapter
from drivers.vs02_dbc import load_dbc
from tests.bench.sim.bms_standin import StandinBms


@pytest.fixture
def world():
    channel = f"slcan-{uuid.uuid4().hex}"
    bms = StandinBms()
    sim_bus = can.Bus(interface="virtual", channel=channel)
    sim = SimAdapter(bms, sim_bus, lock=threading.RLock())
    sim.start_uds()
    bridge = SlcanBridge(channel)
    yield bms, sim, bridge
    bridge.close()
    sim.close()
    sim_bus.shutdown()


def open_slcan(channel: str) -> can.BusABC:
    return can.Bus(interface="slcan", channel=channel, bitrate=500000, sleep_after_open=0)


def receive_broadcast(bus: can.BusABC, sim: SimAdapter) -> dict[int, can.Message]:
    """Emit broadcast cycles until one complete cycle arrives through the slcan link."""
    frames: dict[int, can.Message] = {}
    for cycle in range(20):
        sim.emit_due(float(cycle))
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and len(frames) < 11:
            msg = bus.recv(timeout=0.05)
            if msg is not None:
                frames[msg.arbitration_id] = msg
        if len(frames) >= 11:
            break
    return frames


def test_frame_ascii_round_trip():
    msg = can.Message(arbitration_id=0x356, data=bytes.fromhex("500A0CFEFA00"), is_extended_id=False)
    line = frame_to_ascii(msg)
    assert line == b"t3566500A0CFEFA00\r"
    back = ascii_to_frame(line[:-1].decode())
    assert (back.arbitration_id, bytes(back.data)) == (0x356, bytes(msg.data))
    ext = ascii_to_frame("T1ABCDEF12" + "0102")
    assert ext.is_extended_id and ext.arbitration_id == 0x1ABCDEF1 and bytes(ext.data) == b"\x01\x02"
    with pytest.raises(ValueError):
        ascii_to_frame("t8002")  # 11-bit id out of range


@pytest.mark.parametrize("endpoint", ["pty", "tcp"])
def test_broadcast_decodes_through_slcan(world, endpoint):
    bms, sim, bridge = world
    channel = bridge.start_pty() if endpoint == "pty" else f"socket://127.0.0.1:{bridge.start_tcp()}"
    bus = open_slcan(channel)
    try:
        assert bus.get_version(1.0) == (10, 13)
        assert bus.get_serial_number(1.0) == "VS02"
        frames = receive_broadcast(bus, sim)
    finally:
        bus.shutdown()
    db = load_dbc()
    assert {m.frame_id for m in db.messages} <= set(frames)
    pack = db.decode_message(0x356, frames[0x356].data)
    assert pack["PackVoltage"] == pytest.approx(bms.pack_voltage_v, abs=0.005)
    assert pack["PackCurrent"] == pytest.approx(bms.current_a, abs=0.05)
    cells = db.decode_message(0x401, frames[0x401].data)
    assert cells["Cell7Voltage"] == pytest.approx(bms.cell_voltages_v[6], abs=0.0005)


@pytest.mark.parametrize("endpoint", ["pty", "tcp"])
def test_udsoncan_reads_serial_through_slcan(world, endpoint):
    bms, _sim, bridge = world
    channel = bridge.start_pty() if endpoint == "pty" else f"socket://127.0.0.1:{bridge.start_tcp()}"
    bus = open_slcan(channel)
    notifier = can.Notifier(bus, [], timeout=0.05)
    address = Address(AddressingMode.Normal_11bits, txid=0x7E4, rxid=0x7EC)
    stack = NotifierBasedCanStack(bus, notifier, address=address, params=default_uds_map().isotp_params())
    codec_spec = default_uds_map().did("serial")

    class SerialCodec(udsoncan.DidCodec):
        def decode(self, data):
            return codec_spec.decode(bytes(data))

        def __len__(self):
            return codec_spec.size

    config = dict(udsoncan.configs.default_client_config)
    config["data_identifiers"] = {0xF18C: SerialCodec()}
    try:
        with Client(PythonIsoTpConnection(stack), config=config) as client:
            response = client.read_data_by_identifier(0xF18C)
    finally:
        notifier.stop()
        bus.shutdown()
    assert response.service_data.values[0xF18C] == bms.serial
    assert bridge.frames_from_peers >= 1  # the request really crossed the serial link


def test_driver_over_slcan_socket(world):
    bms, sim, bridge = world
    bridge.start_tcp()
    url = bridge.tcp_url
    config = CanConfig(interface="slcan", channel=url, extra={"sleep_after_open": 0})
    with Vs02Adapter(config) as driver:
        assert driver.read_identity()["serial"] == bms.serial
        for cycle in range(20):
            sim.emit_due(100.0 + cycle)
            if driver.wait_frames(11, timeout_s=0.5):
                break
        assert driver.snapshot().soc_pct == pytest.approx(bms.soc_pct, abs=0.005)


def test_protocol_errors_answered_with_bell(world):
    _bms, _sim, bridge = world
    from bench.sim.slcan_bridge import _Peer

    sent: list[bytes] = []
    peer = _Peer(sent.append, "test")
    assert bridge.execute("t1232AABB", peer) == b"\a"  # channel not open
    assert bridge.execute("S6", peer) == b"\r"
    assert bridge.execute("O", peer) == b"\r"
    assert bridge.execute("S4", peer) == b"\a"  # bitrate only while closed
    assert bridge.execute("t12", peer) == b"\a"  # malformed
    assert bridge.execute("X", peer) == b"\a"
    assert bridge.execute("t1232AABB", peer) == b"z\r"
    assert bridge.execute("C", peer) == b"\r"
    assert bridge.execute("L", peer) == b"\r"
    assert bridge.execute("t1232AABB", peer) == b"\a"  # listen-only
