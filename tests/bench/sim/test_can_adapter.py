"""The simulated adapter: DBC broadcast encoding and the UDS server, seen from a raw ISO-TP tester."""

from __future__ import annotations

import threading
import time
import uuid

import can
import pytest
from isotp import Address, AddressingMode, NotifierBasedCanStack

from bench.sim.can_adapter import CAN_ERR_BUSOFF, SimAdapter
from drivers.uds_map import default_uds_map
from drivers.vs02_dbc import load_dbc
from tests.bench.sim.bms_standin import StandinBms


class UdsTester:
    """Raw UDS requests over ISO-TP on its own virtual-bus node."""

    def __init__(self, channel: str) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.frames = can.BufferedReader()
        self.notifier = can.Notifier(self.bus, [self.frames], timeout=0.05)
        address = Address(AddressingMode.Normal_11bits, txid=0x7E4, rxid=0x7EC)
        self.stack = NotifierBasedCanStack(self.bus, self.notifier, address=address,
                                           params=default_uds_map().isotp_params())
        self.stack.start()

    def request(self, payload: bytes, timeout: float = 1.0) -> bytes | None:
        self.stack.send(payload)
        answer = self.stack.recv(block=True, timeout=timeout)
        return None if answer is None else bytes(answer)

    def close(self) -> None:
        self.stack.stop()
        self.notifier.stop()
        self.bus.shutdown()


@pytest.fixture
def rig():
    channel = f"sim-{uuid.uuid4().hex}"
    bms = StandinBms()
    bus = can.Bus(interface="virtual", channel=channel)
    sim = SimAdapter(bms, bus, lock=threading.RLock())
    tester = UdsTester(channel)
    sim.start_uds()
    yield bms, sim, tester
    tester.close()
    sim.close()
    bus.shutdown()


def drain(reader: can.BufferedReader, wait_s: float = 0.3) -> list[can.Message]:
    out, deadline = [], time.monotonic() + wait_s
    while time.monotonic() < deadline:
        msg = reader.get_message(timeout=0.02)
        if msg is not None:
            out.append(msg)
    return out


def test_dbc_pack_status_example_from_battery_md():
    # battery.md §6.1: 26.40 V, -50.0 A, 25.0 degC -> 2640, -500, 250 little-endian
    db = load_dbc()
    decoded = db.decode_message(0x356, bytes.fromhex("500A0CFEFA00"))
    assert decoded == {"PackVoltage": pytest.approx(26.40), "PackCurrent": pytest.approx(-50.0),
                       "PackTemperature": pytest.approx(25.0)}
    limits = db.decode_message(0x351, bytes.fromhex("1C01E803D007E000"))  # §6.1 example payloads
    assert limits["ChargeVoltageLimit"] == pytest.approx(28.4)
    assert limits["DischargeCurrentLimit"] == pytest.approx(200.0)


def test_broadcast_frames_encode_the_bms_state(rig):
    bms, sim, tester = rig
    assert sim.emit_due(0.0) == 11
    frames = {m.arbitration_id: m for m in drain(tester.frames)}
    db = load_dbc()
    pack = db.decode_message(0x356, frames[0x356].data)
    assert pack["PackVoltage"] == pytest.approx(bms.pack_voltage_v, abs=0.005)
    assert pack["PackTemperature"] == pytest.approx(max(bms.temperatures_c[:8]), abs=0.05)
    limits = db.decode_message(0x351, frames[0x351].data)
    assert bytes(frames[0x351].data) == bytes.fromhex("1C01E803D007E000")  # §6.1 worked example
    assert limits["ChargeCurrentLimit"] == pytest.approx(100.0)
    stats = db.decode_message(0x403, frames[0x403].data)
    assert stats["CellMaxIndex"] == 7 and stats["CellVoltageMax"] == pytest.approx(3.351)
    alarms = db.decode_message(0x35A, frames[0x35A].data)
    assert alarms["AlarmCellImbalance"] == 1 and alarms["AlarmGeneral"] == 2  # 01 active, 10 OK
    assert bytes(frames[0x35E].data) == b"VETHY   "


def test_out_of_range_values_saturate_instead_of_failing(rig):
    bms, sim, tester = rig
    bms.temperatures_c = [-60.0] * 8 + [200.0]
    assert sim.emit_due(0.0) == 11
    frames = {m.arbitration_id: m for m in drain(tester.frames)}
    temps = load_dbc().decode_message(0x402, frames[0x402].data)
    assert temps["Cell1Temperature"] == pytest.approx(-40.0)


def _sweep_values(signal, k: int) -> float | int:
    """The k-th test value of a DBC signal: its limits, just outside them, values between that
    round half-way between two raw steps, and a deterministic spread over the whole range."""
    scale, offset = signal.conversion.scale, signal.conversion.offset
    low = signal.minimum if signal.minimum is not None else offset
    high = signal.maximum if signal.maximum is not None and signal.maximum > low else low + scale * 255
    span = high - low
    picks = [low, high, low - scale, high + 10 * scale, low + scale / 2, high - scale / 2,
             low + 0.5 * span, low + span / 3, low + scale * 1.5, low + scale * 2.5]
    # beyond the picks, a spread that also lands between raw steps (sevenths of a step)
    value = picks[k] if k < len(picks) else low + span * ((k * 0.6180339887) % 1.0) + scale * (k % 7) / 7
    if signal.minimum is None or signal.maximum is None:  # no range to clamp to: stay in the field
        value = min(max(value, low), high)
    is_integer = isinstance(scale, int) and isinstance(offset, int)
    return round(value) if is_integer else value


def _field_top(signal) -> float | int:
    """The physical value of the largest raw value ``signal``'s field holds (within its range,
    if it has one): a 64-bit field's top is where float arithmetic would lose digits."""
    raw = (1 << (signal.length - (1 if signal.is_signed else 0))) - 1
    value = raw * signal.conversion.scale + signal.conversion.offset
    if signal.minimum is not None and signal.maximum is not None and signal.maximum > signal.minimum:
        value = min(max(value, signal.minimum), signal.maximum)
    return value


def test_packed_frames_are_the_bytes_cantools_encodes():
    """The encoder's shift-and-mask packing gives exactly cantools' bytes for every frame, over
    each signal's range, its limits, values beyond them (clamped, as the encoder does before
    cantools too), values half-way between raw steps (the same rounding) and the top of each
    field (an 8-byte identity field such as 0x35E's name keeps every digit)."""
    from bench.sim.can_adapter import BroadcastEncoder, _clamp, _FramePacker, _signal_range

    encoder = BroadcastEncoder()
    for message in encoder.db.messages:
        packer = _FramePacker.for_message(message)
        assert packer is not None, message.name  # every frame of the VS02 DBC takes the packed path
        rows = [tuple(_sweep_values(s, (k + 3 * i) % 400) for i, s in enumerate(message.signals))
                for k in range(400)]  # each signal takes a different pick of the sweep in the same frame
        rows.append(tuple(_field_top(s) for s in message.signals))
        for row in rows:
            clamped = {s.name: _clamp(v, *_signal_range(s)) for s, v in zip(message.signals, row, strict=True)}
            assert packer.pack(row) == message.encode(clamped, scaling=True, strict=False), (message.name, row)


def test_packer_gives_cantools_bytes_row_after_row_as_values_change_one_at_a_time():
    """One packer fed rows that change one signal at a time, repeat a row, or come back to an
    earlier one gives, for each row, the bytes cantools encodes and a fresh packer gives (a
    packer keeps nothing from one row to the next that changes the bytes); a row of another
    shape is refused."""
    from bench.sim.can_adapter import BroadcastEncoder, _clamp, _FramePacker, _signal_range

    for message in BroadcastEncoder().db.messages:
        packer = _FramePacker.for_message(message)
        assert packer is not None
        row = [_sweep_values(s, 5) for s in message.signals]
        rows = [tuple(row)]
        for k in range(60):
            i = k % len(row)
            row[i] = _sweep_values(message.signals[i], (7 * k + 11) % 400)
            rows += [tuple(row), tuple(row)]  # each change, then the same row again
        rows.append(rows[0])
        for row_k in rows:
            clamped = {s.name: _clamp(v, *_signal_range(s)) for s, v in zip(message.signals, row_k, strict=True)}
            expected = message.encode(clamped, scaling=True, strict=False)
            assert packer.pack(row_k) == expected == _FramePacker.for_message(message).pack(row_k), \
                (message.name, row_k)
        with pytest.raises(ValueError):
            packer.pack(rows[0][:-1])


def test_encoded_payloads_are_the_frames_and_repeat_the_same_object_for_an_unchanged_row():
    """encode_payloads gives each frame's (ID, payload) as encode_rows' frames carry them; a
    frame whose row did not change is the same tuple as last cycle (what the in-process channel
    then carries), a changed one a new one."""
    from bench.sim.can_adapter import BroadcastEncoder, broadcast_rows

    bms = StandinBms()
    encoder = BroadcastEncoder()
    first = encoder.encode_payloads(broadcast_rows(bms, 1, 1.0))
    frames = BroadcastEncoder().encode_rows(broadcast_rows(bms, 1, 1.0))
    assert first == [(f.arbitration_id, bytes(f.data)) for f in frames]
    bms.soc_pct -= 1.0
    second = encoder.encode_payloads(broadcast_rows(bms, 2, 2.0))
    renewed = {now[0] for now, before in zip(second, first, strict=True) if now is not before}
    assert renewed == {0x355, 0x404}  # BMS_SocSoh and BMS_Status (counter, uptime)
    assert all(isinstance(payload, bytes) for _, payload in second)


def test_broadcast_frame_is_a_plain_classic_data_frame():
    """The simulator's frame, built without Message.__init__, has every field python-can's
    constructor gives the same classic data frame, and deep-copies (the virtual bus) to an equal
    frame with its own payload."""
    import copy

    from bench.sim.can_adapter import BroadcastFrame

    frame = BroadcastFrame(0x355, b"\x3d\x00\x64\x00\xd3\x17")
    expected = can.Message(arbitration_id=0x355, data=b"\x3d\x00\x64\x00\xd3\x17", is_extended_id=False)
    fields = [name for name in can.Message.__slots__ if name != "__weakref__"]
    assert {n: getattr(frame, n) for n in fields} == {n: getattr(expected, n) for n in fields}
    assert isinstance(frame.data, bytearray)
    copied = copy.deepcopy(frame)
    assert {n: getattr(copied, n) for n in fields} == {n: getattr(expected, n) for n in fields}
    assert copied.data is not frame.data


def test_broadcast_rows_are_broadcast_values_in_dbc_order():
    """The encoder's rows and the named values are the same numbers, in the DBC's signal order."""
    from bench.sim.can_adapter import BROADCAST_SIGNALS, broadcast_rows, broadcast_values

    bms = StandinBms()
    rows, values = broadcast_rows(bms, 7, 12.5), broadcast_values(bms, 7, 12.5)
    assert list(rows) == list(values)
    for message in load_dbc().messages:
        assert BROADCAST_SIGNALS[message.name] == tuple(s.name for s in message.signals)
        assert list(values[message.name]) == list(BROADCAST_SIGNALS[message.name])
        assert tuple(values[message.name].values()) == tuple(rows[message.name])


def test_read_multiple_dids_in_one_request(rig):
    bms, _sim, tester = rig
    answer = tester.request(bytes.fromhex("22F18C0112"))
    uds = default_uds_map()
    assert answer[:3] == bytes.fromhex("62F18C")
    serial = uds.did("serial")
    assert serial.decode(answer[3 : 3 + serial.size]) == bms.serial
    rest = answer[3 + serial.size :]
    assert rest[:2] == bytes.fromhex("0112") and uds.did("soc").decode(rest[2:]) == pytest.approx(63.27)


@pytest.mark.parametrize(
    "request_hex, nrc",
    [
        ("22F1", 0x13),  # incomplete DID
        ("221234", 0x31),  # unknown DID
        ("1004", 0x12),  # unknown session
        ("3101FFFF", 0x31),  # unknown routine
        ("2E011600C8", 0x31),  # cycle count is not writable
        ("2E0115000186A0", 0x7F),  # write needs the extended session
        ("85", 0x11),  # service not supported
        ("1909", 0x12),  # sub-function not supported
        ("1906123456 01".replace(" ", ""), 0x31),  # unknown DTC
        ("2702AABBCCDD", 0x24),  # key without a seed
    ],
)
def test_negative_responses(rig, request_hex, nrc):
    _bms, _sim, tester = rig
    request = bytes.fromhex(request_hex)
    assert tester.request(request) == bytes([0x7F, request[0], nrc])


def test_security_then_write_and_long_routine(rig):
    bms, _sim, tester = rig
    from bench.sim.bms_security import key_for_seed

    assert tester.request(bytes.fromhex("1003"))[:2] == bytes.fromhex("5003")
    seed = tester.request(bytes.fromhex("2701"))[2:]
    assert tester.request(bytes.fromhex("2702") + key_for_seed(b"VS02-SIM-SECRET", seed)) == b"\x67\x02"
    assert tester.request(bytes.fromhex("2E0115") + (150_000).to_bytes(4, "big")) == bytes.fromhex("6E0115")
    assert bms.design_capacity_ah == pytest.approx(150.0)
    tester.stack.send(bytes.fromhex("31010202"))
    assert bytes(tester.stack.recv(block=True, timeout=1.0)) == bytes.fromhex("7F3178")  # pending first
    final = tester.stack.recv(block=True, timeout=2.0)
    assert bytes(final) == bytes.fromhex("7101020200")


def test_dtc_services(rig):
    bms, _sim, tester = rig
    assert tester.request(bytes.fromhex("190108")) == bytes.fromhex("5901FF010002")
    listing = tester.request(bytes.fromhex("190201"))
    assert listing == bytes.fromhex("5902FF") + bytes.fromhex("91200109")
    ext = tester.request(bytes.fromhex("1906911002") + b"\x01")
    assert ext[:7] == bytes.fromhex("590691100228") + b"\x01"
    assert int.from_bytes(ext[7:9], "big") == 3  # occurrences
    assert int.from_bytes(ext[9:13], "big") == int(bms.dtcs[0].first_epoch)
    snap = tester.request(bytes.fromhex("1904911002") + b"\x01")
    values = default_uds_map().did("dtc_snapshot").decode(snap[10:])
    assert values["vmin"] == pytest.approx(2.49) and values["current"] == pytest.approx(-38.2)
    assert tester.request(bytes.fromhex("14FFFFFF")) == b"\x54"
    assert bms.dtcs == []


def test_suppressed_positive_response_and_silence(rig):
    _bms, sim, tester = rig
    assert tester.request(bytes.fromhex("3E80"), timeout=0.3) is None
    assert tester.request(bytes.fromhex("3E00")) == bytes.fromhex("7E00")
    sim.emit_due(0.0)
    sim.silence(5.0)
    assert tester.request(bytes.fromhex("3E00"), timeout=0.3) is None
    sim.emit_due(5.0)
    assert tester.request(bytes.fromhex("3E00")) == bytes.fromhex("7E00")


def test_bus_off_sends_error_frame_and_mutes(rig):
    _bms, sim, tester = rig
    sim.emit_due(0.0)
    drain(tester.frames, 0.1)
    sim.bus_off(3.0)
    errors = [m for m in drain(tester.frames, 0.2) if m.is_error_frame]
    assert errors and errors[0].arbitration_id & CAN_ERR_BUSOFF
    assert sim.emit_due(1.0) == 0 and sim.emit_due(2.0) == 0
    assert sim.emit_due(3.0) == 11


def test_real_bms_model_through_the_adapter():
    """The firmware model (bench.sim.bms) behind the adapter, read with the driver."""
    import random

    bms_module = pytest.importorskip("bench.sim.bms")
    pack_module = pytest.importorskip("bench.sim.pack")
    scenario_module = pytest.importorskip("bench.sim.scenario")
    from drivers.vs02_adapter import CanConfig, Vs02Adapter

    scenario = scenario_module.load_scenario("healthy")
    pack = pack_module.Pack(scenario.pack_params())
    bms = bms_module.BmsModel(pack, scenario.bms, random.Random(1), 1_780_000_000.0)
    bms.advance(1.0, 0.0)
    channel = f"real-{uuid.uuid4().hex}"
    bus = can.Bus(interface="virtual", channel=channel)
    sim = SimAdapter(bms, bus, lock=threading.RLock())
    sim.start_uds()
    try:
        with Vs02Adapter(CanConfig("virtual", channel)) as driver:
            assert driver.read_identity()["serial"] == bms.serial
            assert driver.wait_frames(sim.emit_due(0.0), 2.0)
            snap = driver.snapshot()
            assert snap.pack_voltage_v == pytest.approx(bms.pack_voltage_v, abs=0.005)
            assert snap.soc_pct == pytest.approx(bms.soc_pct, abs=0.005)
            assert driver.read_did("cell_voltages") == pytest.approx(bms.cell_voltages_v, abs=0.0005)
    finally:
        sim.close()
        bus.shutdown()


def test_simulated_ecu_shares_no_code_with_the_driver():
    # issue 14.3: the simulator encoded with the driver's own map and DBC helpers, so an encoding
    # error round-tripped unseen. It may read the DBC file (the contract), never import drivers.
    import ast
    from pathlib import Path

    sim_dir = Path(__file__).resolve().parents[3] / "bench" / "sim"
    for path in sorted(sim_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                       else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(m == "drivers" or m.startswith("drivers.") for m in modules), (
                f"{path.name}:{node.lineno} imports {modules}")
