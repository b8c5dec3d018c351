"""The driver against the simulated adapter over a real python-can virtual bus (no mocks)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import can
import pytest

from bench.errors import ConfigError, InstrumentTimeout, NegativeResponse
from bench.sim.bms_types import DtcCode
from bench.sim.can_adapter import SimAdapter
from drivers.security import HmacSha256First4, load_seedkey
from drivers.vs02_adapter import CanConfig, Vs02Adapter
from tests.bench.sim.bms_standin import StandinBms

SIM_SECRET = b"VS02-SIM-SECRET"


@pytest.fixture
def rig(tmp_path: Path):
    """(bms, sim adapter, driver) on a fresh virtual channel; the driver captures to .blf."""
    channel = f"vs02-{uuid.uuid4().hex}"
    bms = StandinBms()
    sim_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    sim = SimAdapter(bms, sim_bus, lock=threading.RLock())
    sim.start_uds()
    driver = Vs02Adapter(
        CanConfig(interface="virtual", channel=channel),
        seedkey=HmacSha256First4(SIM_SECRET),
        log_path=tmp_path / "can.blf",
    )
    driver.open()
    yield bms, sim, driver
    driver.close()
    sim.close()
    sim_bus.shutdown()


def broadcast(sim: SimAdapter, driver: Vs02Adapter, sim_time_s: float) -> None:
    target = driver.frames_received + sim.emit_due(sim_time_s)
    assert driver.wait_frames(target, timeout_s=2.0)


def test_snapshot_matches_bms_within_dbc_resolution(rig):
    bms, sim, driver = rig
    broadcast(sim, driver, 0.0)
    snap = driver.snapshot()
    assert snap.soc_pct == pytest.approx(bms.soc_pct, abs=0.005)
    assert snap.soh_pct == round(bms.soh_pct)
    assert snap.pack_voltage_v == pytest.approx(bms.pack_voltage_v, abs=0.005)
    assert snap.current_a == pytest.approx(bms.current_a, abs=0.05)  # + = charge both sides
    assert snap.cell_voltages_v == pytest.approx(bms.cell_voltages_v, abs=0.0005)
    assert snap.temperatures_c == pytest.approx(bms.temperatures_c, abs=0.26)  # 0.5 degC cells, 0.1 enclosure
    assert snap.divergence_v == pytest.approx(bms.divergence_v, abs=0.0005)
    assert snap.divergence_condition == bms.divergence_condition
    assert snap.contactor_closed is True
    assert snap.flags == int(bms.flags)
    assert snap.limits is not None and snap.limits.charge_voltage_v == pytest.approx(28.4)
    assert snap.alarms == ["CellImbalance"]
    assert snap.warnings == ["HighVoltage", "LowTemperature"]
    assert snap.manufacturer == "VETHY"
    assert snap.cell_v_max == pytest.approx(max(bms.cell_voltages_v), abs=0.0005)
    assert snap.balancing_cells == bms.balancing_active_cells


def test_staleness_and_counter_follow_the_injected_clock(tmp_path):
    now = [100.0]
    channel = f"vs02-{uuid.uuid4().hex}"
    sim_bus = can.Bus(interface="virtual", channel=channel)
    sim = SimAdapter(StandinBms(), sim_bus, lock=threading.RLock())
    with Vs02Adapter(CanConfig("virtual", channel), clock=lambda: now[0], stale_after_s=3.0) as driver:
        assert driver.stale() == driver.broadcast.message_names  # nothing received yet
        broadcast(sim, driver, 0.0)
        first = driver.snapshot().message_counter
        assert driver.stale() == []
        now[0] += 5.0
        assert "BMS_PackStatus" in driver.stale(["BMS_PackStatus"])
        assert driver.age_s("BMS_PackStatus") == pytest.approx(5.0)
        broadcast(sim, driver, 1.0)
        snap = driver.snapshot()
        assert snap.message_counter == first + 1
        assert snap.timestamp("current_a") == pytest.approx(105.0)
        assert driver.stale() == []
    sim_bus.shutdown()


def test_emit_due_respects_period_and_silence(rig):
    _bms, sim, driver = rig
    per_cycle = sim.emit_due(0.0)
    assert per_cycle == len(driver.broadcast.message_names)
    assert sim.emit_due(0.5) == 0  # period 1 s not elapsed
    assert sim.emit_due(1.0) == per_cycle
    sim.silence(3.0)
    assert sim.emit_due(2.0) == 0 and sim.emit_due(3.0) == 0
    assert sim.emit_due(4.0) == per_cycle
    assert driver.wait_frames(sim.frames_sent)
    assert driver.frames_received == sim.frames_sent == 3 * per_cycle


def test_bus_off_reported_and_recovered(rig):
    _bms, sim, driver = rig
    broadcast(sim, driver, 0.0)
    assert driver.bus_state() == "active"
    sim.bus_off(2.0)
    deadline = time.monotonic() + 2
    while driver.bus_state() != "bus_off" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert driver.bus_state() == "bus_off"
    assert sim.emit_due(1.0) == 0
    sim.emit_due(2.5)
    deadline = time.monotonic() + 2
    while driver.bus_state() != "active" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert driver.bus_state() == "active"


def test_read_identity_and_dids(rig):
    bms, _sim, driver = rig
    identity = driver.read_identity()
    assert identity == {
        "serial": bms.serial,
        "sw_version": bms.sw_version,
        "hw_version": bms.hw_version,
        "manufacturing_date": bms.manufacturing_date,
    }
    assert driver.read_did(0xF18C) == bms.serial
    bms.serial = "VS02P-25-004711"  # 15 characters: the ECU pads the 16-byte field with a NUL
    assert driver.read_did("serial") == "VS02P-25-004711"
    names = ["soc", "cell_voltages", "temperatures", "cycle_count", "divergence", "gauge_status"]
    values = driver.read_dids(names)
    assert values["soc"] == pytest.approx(bms.soc_pct, abs=0.005)
    assert values["cell_voltages"] == pytest.approx(bms.cell_voltages_v, abs=0.0005)
    assert values["temperatures"] == pytest.approx(bms.temperatures_c, abs=0.05)
    assert values["cycle_count"] == bms.cycle_count
    assert values["divergence"] == {"divergence": pytest.approx(0.053), "condition": "end_of_cv"}
    assert values["gauge_status"] == ["full_charge", "learn_ok"]
    log = driver.read_did("balancing_log")
    assert log["entries"] == 1 and log["records"][0]["ah_bled"] == pytest.approx(0.054)


def test_wrong_key_gives_invalid_key_nrc(rig):
    _bms, _sim, driver = rig
    driver.session("extended")
    driver.seedkey = HmacSha256First4(b"not-the-secret")
    with pytest.raises(NegativeResponse) as err:
        driver.unlock()
    assert err.value.nrc == 0x35
    assert "seed-to-key" in str(err.value)


def test_routine_needs_unlock_then_long_routine_waits_out_nrc78(rig):
    bms, _sim, driver = rig
    driver.session("extended")
    with pytest.raises(NegativeResponse) as err:
        driver.routine("capacity_learning", "start")
    assert err.value.nrc == 0x33
    assert "RoutineControl start 0x0202" in str(err.value)
    driver.unlock()
    assert bms.security_unlocked
    bms.learning_delay_s = 0.4
    t0 = time.monotonic()
    result = driver.routine(0x0202, "start")
    assert time.monotonic() - t0 >= 0.4  # the final answer came after the 0x78 pending period
    assert result.status == "running"
    assert bms.started == [(0x0202, b"")]
    done = driver.routine("capacity_learning", "results")
    assert done.status == "done"
    assert done.values["learned_capacity"] == pytest.approx(bms.learned_capacity_ah)
    assert done.values["qualification"] == "learned"
    driver.routine("balancing", "start", {"target_delta": 0.02, "timeout_min": 720})
    assert bms.started[-1] == (0x0201, (20).to_bytes(2, "big") + (720).to_bytes(2, "big"))


def test_dtcs_read_with_timestamps_then_cleared(rig):
    bms, _sim, driver = rig
    dtcs = {d.code: d for d in driver.read_dtcs()}
    uv = dtcs[DtcCode.CELL_UNDERVOLTAGE]
    assert uv.name == "cell_undervoltage"
    assert "confirmed" in uv.status_bits and "test_failed" not in uv.status_bits
    assert (uv.occurrences, uv.first_epoch, uv.last_epoch) == (3, int(bms.dtcs[0].first_epoch),
                                                               int(bms.dtcs[0].last_epoch))
    assert uv.snapshot is not None and uv.snapshot["vmin"] == pytest.approx(2.49)
    assert [d.name for d in driver.read_dtcs(status_mask=0x01)] == ["charge_overtemperature"]
    driver.clear_dtcs()
    assert driver.read_dtcs() == [] and bms.dtcs == []


def test_ecu_reset_and_tester_present(rig):
    bms, _sim, driver = rig
    driver.session("extended")
    driver.tester_present()
    driver.ecu_reset("soft")
    assert bms.resets == [3] and bms.session == "default"
    with pytest.raises(ConfigError):
        driver.ecu_reset("sideways")


def test_silent_adapter_times_out(rig):
    _bms, sim, driver = rig
    driver.p2_timeout_s = 0.2
    driver._client.config["p2_timeout"] = 0.2  # the client copies its config at open
    driver._client.config["request_timeout"] = 0.5
    sim.silence(10.0)
    with pytest.raises(InstrumentTimeout):
        driver.read_did("soc")


@pytest.mark.parametrize("suffix, reader", [(".blf", can.BLFReader), (".asc", can.ASCReader)])
def test_capture_is_readable_back(tmp_path: Path, suffix, reader):
    channel = f"vs02-{uuid.uuid4().hex}"
    sim_bus = can.Bus(interface="virtual", channel=channel)
    bms = StandinBms()
    sim = SimAdapter(bms, sim_bus, lock=threading.RLock())
    sim.start_uds()
    path = tmp_path / f"capture{suffix}"
    with Vs02Adapter(CanConfig("virtual", channel), log_path=path) as driver:
        broadcast(sim, driver, 0.0)
        driver.read_did("serial")
    sim.close()
    sim_bus.shutdown()
    frames = list(reader(str(path)))
    ids = [f.arbitration_id for f in frames]
    assert {0x351, 0x356, 0x404} <= set(ids)
    assert 0x7E4 in ids and 0x7EC in ids  # the UDS exchange is in the capture too
    pack = next(f for f in frames if f.arbitration_id == 0x356)
    assert driver.broadcast.db.decode_message(0x356, pack.data)["PackCurrent"] == pytest.approx(bms.current_a)


def test_seedkey_plugin_lookup_and_secret_from_env(monkeypatch):
    monkeypatch.setenv("BENCH_SEEDKEY_SECRET", "VS02-SIM-SECRET")
    algo = load_seedkey("hmac_sha256_4")
    assert algo.key(1, b"\x01\x02\x03\x04") == HmacSha256First4(SIM_SECRET).key(1, b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match="unknown seed-to-key algorithm"):
        load_seedkey("rot13", secret="x")
    monkeypatch.delenv("BENCH_SEEDKEY_SECRET")
    with pytest.raises(ConfigError, match="BENCH_SEEDKEY_SECRET"):
        load_seedkey("hmac_sha256_4")


def test_shift_decoder_gives_what_cantools_decodes():
    """The broadcast decoder's shift-and-mask path equals cantools' ``Message.decode`` (values and
    their types, signal order) for every frame of the DBC, over payloads that set each field to its
    extremes (all-zero, all-one, the sign bits) and a deterministic spread; a payload of the wrong
    length still goes to cantools, which refuses it."""
    import random

    import cantools

    from drivers.vs02_broadcast import _FrameDecoder
    from drivers.vs02_dbc import load_dbc

    rng = random.Random(17)
    db = load_dbc()
    for message in db.messages:
        decoder = _FrameDecoder(message)
        assert decoder.fields is not None, message.name  # every VS02 frame takes the fast path
        payloads = [bytes(message.length), b"\xff" * message.length, b"\x80" * message.length,
                    b"\x7f" * message.length] + [rng.randbytes(message.length) for _ in range(300)]
        for payload in payloads:
            expected = message.decode(payload, decode_choices=False)
            got = decoder(payload)
            assert list(got.items()) == list(expected.items()), (message.name, payload.hex())
            assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
        with pytest.raises(cantools.database.DecodeError):
            decoder(bytes(message.length - 1))


@pytest.mark.parametrize("batch", [1, 11, 4000, 9000])
def test_fast_blf_capture_writes_the_stock_writers_bytes(tmp_path: Path, batch: int):
    """The capture's one-pack BLF writer produces byte for byte the file python-can's BLFWriter
    writes for the same frames (received, transmitted, extended, remote, an error frame and enough
    frames to fill several compressed containers), fed a frame at a time or in batches (a polled
    step's cycle; batches that fill more than one container, with the error frame inside one),
    at the capture's compression level, and python-can reads it back."""
    from drivers.vs02_adapter import BLF_COMPRESSION_LEVEL, _FastBlfWriter

    frames = []
    for k in range(9000):
        frames.append(can.Message(timestamp=1_700_000_000.123456 + k * 0.0913, arbitration_id=0x351 + k % 11,
                                  data=bytes((k + j) % 256 for j in range(8 - k % 3)), is_extended_id=k % 7 == 0,
                                  is_remote_frame=k % 13 == 0 and k % 7 != 0, is_rx=k % 5 != 0, check=False))
    frames[100] = can.Message(timestamp=frames[100].timestamp, arbitration_id=0x040, is_error_frame=True,
                              data=bytes(8))
    stock_path, fast_path = tmp_path / "stock.blf", tmp_path / "fast.blf"
    stock = can.BLFWriter(stock_path, compression_level=BLF_COMPRESSION_LEVEL)
    fast = _FastBlfWriter(fast_path, compression_level=BLF_COMPRESSION_LEVEL)
    assert fast._fast  # this python-can's writer has what the fast path uses
    for frame in frames:
        stock.on_message_received(frame)
    for start in range(0, len(frames), batch):
        if batch == 1:
            fast.on_message_received(frames[start])
        else:
            fast.on_frames(frames[start:start + batch])
    stock.stop()
    fast.stop()
    assert fast_path.read_bytes() == stock_path.read_bytes()
    back = list(can.BLFReader(str(fast_path)))
    assert len(back) == len(frames) and back[1].arbitration_id == frames[1].arbitration_id


def test_batch_decode_equals_frame_by_frame():
    """BroadcastState.update_frames (a polled step's batch) leaves the state update() leaves
    frame by frame: the same snapshot, count and per-message time stamps; error, remote,
    extended and unknown frames are skipped."""
    from bench.sim.can_adapter import BroadcastEncoder, broadcast_rows
    from drivers.vs02_broadcast import BroadcastState

    bms = StandinBms()
    encoder = BroadcastEncoder()
    now = [0.0]
    by_frame, by_batch = BroadcastState(lambda: now[0]), BroadcastState(lambda: now[0])
    for step in range(5):
        now[0] = float(step)
        bms.soc_pct -= 0.37
        bms.cell_voltages_v = [v - 0.0013 * (i + 1) for i, v in enumerate(bms.cell_voltages_v)]
        cycle = encoder.encode_rows(broadcast_rows(bms, step, step))
        cycle += [can.Message(arbitration_id=0x040, is_error_frame=True, data=bytes(8)),
                  can.Message(arbitration_id=0x351, is_remote_frame=True, is_extended_id=False),
                  can.Message(arbitration_id=0x351, data=bytes(8), is_extended_id=True),
                  can.Message(arbitration_id=0x123, data=bytes(8), is_extended_id=False)]
        decoded = [by_frame.update(m.arbitration_id, m.data, m.is_extended_id) for m in cycle
                   if not (m.is_error_frame or m.is_remote_frame)]
        assert by_batch.update_frames(cycle) == sum(decoded) == 11
    first, second = by_frame.snapshot(), by_batch.snapshot()
    assert first == second and first.message_counter == 4 and first.soc_pct == pytest.approx(bms.soc_pct, abs=0.005)
    assert by_frame.frames_received == by_batch.frames_received == 55


def test_the_iso_tp_stack_stops_without_waiting_out_its_relay_read():
    """Closing the adapter waited up to 50 ms for the ISO-TP relay thread's read to time out
    (issue 17); it is woken now: every stop is quick and leaves no thread behind."""
    import isotp

    from drivers.vs02_adapter import ResponseOnlyIsoTpStack

    channel = f"vs02-{uuid.uuid4().hex}"
    bus = can.Bus(interface="virtual", channel=channel)
    notifier = can.Notifier([], [])  # polled, as on the embedded bench: no reader thread
    took = []
    try:
        for _ in range(5):
            stack = ResponseOnlyIsoTpStack(bus, notifier, rx_id=0x7E8, address=isotp.Address(
                isotp.AddressingMode.Normal_11bits, rxid=0x7E8, txid=0x7E0))
            stack.start()
            time.sleep(0.01)  # the relay thread is inside its 50 ms read
            relay = stack.relay_thread
            start = time.perf_counter()
            stack.stop()
            took.append(time.perf_counter() - start)
            assert relay is not None and not relay.is_alive()
    finally:
        notifier.stop()
        bus.shutdown()
    assert max(took) < 0.02, took  # the read's own time-out is 50 ms


def test_snapshot_derived_again_only_from_changed_messages_equals_a_fresh_one():
    """A long-lived BroadcastState re-derives only the messages whose payload changed; its
    snapshot equals, field for field, the snapshot of a fresh state fed the same cycle (which
    derives everything), as changes move from message to message; it is the object the
    dataclass's constructor builds (same equality and repr); a caller changing a snapshot's
    lists does not change the next snapshot."""
    import dataclasses

    from bench.sim.can_adapter import BroadcastEncoder, broadcast_rows
    from drivers.vs02_broadcast import BmsSnapshot, BroadcastState

    bms = StandinBms()
    encoder = BroadcastEncoder()
    now = [0.0]
    kept = BroadcastState(lambda: now[0])
    changes = [
        lambda: None,
        lambda: setattr(bms, "soc_pct", bms.soc_pct - 1.3),
        lambda: setattr(bms, "cell_voltages_v", [v + 0.011 for v in bms.cell_voltages_v]),
        lambda: setattr(bms, "temperatures_c", [t + 1.5 for t in bms.temperatures_c]),
        lambda: setattr(bms, "alarm_bits", 0),
        lambda: setattr(bms, "charge_current_limit_a", 20.0),
        lambda: setattr(bms, "cycle_count", bms.cycle_count + 1),
        lambda: setattr(bms, "divergence_condition", "under_load"),
    ]
    for step, change in enumerate(changes * 2):
        change()
        now[0] = float(step)
        cycle = encoder.encode_rows(broadcast_rows(bms, step, step))
        fresh = BroadcastState(lambda: now[0])
        kept.update_frames(cycle)
        fresh.update_frames(cycle)
        got, expected = kept.snapshot(), fresh.snapshot()
        assert got == expected and repr(got) == repr(expected), step
        assert got == dataclasses.replace(got) and isinstance(got, BmsSnapshot)
        assert (got.alarms == []) == (step >= 4)  # the alarm cleared at step 4 is seen cleared
        got.cell_voltages_v.append(0.0)
        got.alarms.append("x")
        assert kept.snapshot().cell_voltages_v == expected.cell_voltages_v
        assert "x" not in kept.snapshot().alarms


def test_snapshot_fields_stay_none_until_their_messages_arrive():
    """A field two messages carry (cell voltages, temperatures) appears once both arrived."""
    from bench.sim.can_adapter import BroadcastEncoder, broadcast_rows
    from drivers.vs02_broadcast import BroadcastState

    frames = {f.arbitration_id: f for f in BroadcastEncoder().encode_rows(broadcast_rows(StandinBms(), 1, 1.0))}
    state = BroadcastState(lambda: 0.0)
    assert state.snapshot().cell_voltages_v is None and state.snapshot().soc_pct is None
    state.update_frames([frames[0x400]])  # BMS_CellVoltages1 alone
    assert state.snapshot().cell_voltages_v is None
    state.update_frames([frames[0x401], frames[0x402]])  # + BMS_CellVoltages2, BMS_CellTemperatures
    snap = state.snapshot()
    assert snap.cell_voltages_v == pytest.approx(StandinBms().cell_voltages_v, abs=0.0005)
    assert snap.temperatures_c is None  # its enclosure comes with BMS_Status


def test_fast_blf_capture_of_rows_writes_the_stock_writers_bytes(tmp_path: Path):
    """FrameRows batches written as rows (headers packed once per batch) give byte for byte the
    file python-can's BLFWriter writes for the same frames as messages: received and
    transmitted batches, messages between them, enough to fill several containers, and a
    batch with an over-long payload, which takes the message path."""
    from drivers.can_inprocess import FrameRows
    from drivers.vs02_adapter import BLF_COMPRESSION_LEVEL, _FastBlfWriter

    batches: list[FrameRows | can.Message] = []
    for k in range(3000):
        rows = tuple((0x351 + j, bytes((k * j + i) % 256 for i in range(8 - (k + j) % 4))) for j in range(11))
        batches.append(FrameRows(1_700_000_000.5 + k * 1.0003, k % 9 != 0, rows))
        if k % 50 == 0:
            batches.append(can.Message(timestamp=1_700_000_000.7 + k, arbitration_id=0x7EC, data=b"\x02\x7e\x00"))
    batches.insert(7, FrameRows(1_700_000_007.9, True, ((0x351, bytes(9)), (0x355, bytes(6)))))
    stock_path, fast_path = tmp_path / "stock.blf", tmp_path / "fast.blf"
    stock = can.BLFWriter(stock_path, compression_level=BLF_COMPRESSION_LEVEL)
    fast = _FastBlfWriter(fast_path, compression_level=BLF_COMPRESSION_LEVEL)
    for item in batches:
        for msg in item.messages() if isinstance(item, FrameRows) else [item]:
            stock.on_message_received(msg)
        if isinstance(item, FrameRows):
            fast.on_rows(item)
        else:
            fast.on_frames([item])
    stock.stop()
    fast.stop()
    assert fast_path.read_bytes() == stock_path.read_bytes()
    assert len(list(can.BLFReader(str(fast_path)))) == 3000 * 11 + 60 + 2


def test_broadcast_states_of_one_database_share_its_decoders_and_keep_their_own_signals() -> None:
    """The generated decoders are built once per DBC (an adapter reconnect does not pay again);
    what each state has received stays its own."""
    from drivers.vs02_broadcast import BroadcastState

    first, second = BroadcastState(time.monotonic), BroadcastState(time.monotonic)
    assert first._frames is second._frames
    frame_id = next(iter(first._frames))
    message = first.db.get_message_by_frame_id(frame_id)
    payload = bytes(message.length)
    assert first.update(frame_id, payload)
    assert first._latest[message.name] == message.decode(payload, decode_choices=False)
    assert message.name not in second._latest
