"""The in-process transports of the embedded bench: the real drivers through pyvisa with the
``@inprocess`` backend (drivers.visa_inprocess) and through python-can on an in-process channel
(drivers.can_inprocess), against the simulated instruments and adapter. No socket, no mocks:
the same SCPI server code and the same DBC/UDS map as over TCP and the virtual bus."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import can
import pytest
import pyvisa

from bench.errors import ConnectionLost
from bench.sim.can_adapter import SimAdapter
from drivers.can_inprocess import InProcessCanChannel
from drivers.power import PowerSupply
from drivers.registry import open_instrument
from drivers.scpi import ReconnectPolicy, ScpiInstrument
from drivers.security import HmacSha256First4
from drivers.visa import open_resource, resource_manager
from drivers.visa_inprocess import BACKEND, InProcessVisaLibrary, register
from drivers.vs02_adapter import CanConfig, Vs02Adapter
from tests.bench.sim.bms_standin import StandinBms
from tests.drivers.test_integration import Served, charge_in_cc_then_trip_ovp


def _served(family: str) -> Served:
    """A simulated instrument on ScpiServer, registered with the in-process backend (as the
    embedded bench does in bench.station.connect_bench)."""
    served = Served(family)
    register(served.resource, served.server)
    return served


@pytest.fixture
def psu_served():
    served = _served("keysight_n8700")
    yield served
    served.server.close()


def test_driver_through_the_inprocess_backend_charges_and_trips_like_over_tcp(psu_served: Served) -> None:
    psu = open_instrument("keysight_n8700", psu_served.resource, name="psu", timeout_s=1.0, backend=BACKEND)
    assert isinstance(psu, PowerSupply)
    assert isinstance(psu.scpi.transport.visalib, InProcessVisaLibrary)  # not pyvisa-py: no socket
    assert psu.identify().serial == psu_served.instrument.serial
    charge_in_cc_then_trip_ovp(psu, psu_served)
    assert psu.safe_state() == []
    assert psu_served.instrument.output_on is False
    psu.close()


def test_inprocess_and_tcp_sessions_share_one_instrument(psu_served: Served) -> None:
    local = ScpiInstrument(open_resource(psu_served.resource, 1.0, BACKEND), "bench")
    remote = ScpiInstrument(open_resource(psu_served.resource, 1.0), "watchdog")  # pyvisa-py, TCP
    local.configure("VOLT 12.5")
    assert remote.query_float("VOLT?") == 12.5
    remote.configure("OUTP OFF")
    assert local.query_bool("OUTP?") is False
    local.close()
    remote.close()


def test_read_with_nothing_queued_is_a_visa_timeout_at_once(psu_served: Served) -> None:
    session = ScpiInstrument(open_resource(psu_served.resource, 5.0, BACKEND), "psu")
    session.write("VOLT 3")  # a command: no reply queued
    started = time.monotonic()
    with pytest.raises(pyvisa.errors.VisaIOError) as caught:
        session.transport.read()
    assert caught.value.error_code == pyvisa.constants.StatusCode.error_timeout  # the driver's InstrumentTimeout
    assert time.monotonic() - started < 0.5  # nothing in the process can still answer: no 5 s wait
    assert session.query_float("VOLT?") == 3.0  # the session goes on
    session.close()


def test_disconnect_drops_inprocess_sessions_and_refuses_until_it_ends(psu_served: Served) -> None:
    plain = ScpiInstrument(open_resource(psu_served.resource, 0.5, BACKEND), "psu-plain")
    resilient = ScpiInstrument(
        open_resource(psu_served.resource, 0.5, BACKEND), "psu",
        reopen=lambda: open_resource(psu_served.resource, 0.5, BACKEND),
        reconnect=ReconnectPolicy(attempts=20, delay_s=0.1),
    )
    assert plain.identify().model == resilient.identify().model == "N8735A"
    psu_served.server.disconnect(0.6)
    with pytest.raises(ConnectionLost) as caught:
        plain.query("*IDN?")
    assert caught.value.instrument == "psu-plain" and caught.value.operation == "*IDN?"
    with pytest.raises(ConnectionLost):  # refused while the link is down, as a TCP connect is
        open_resource(psu_served.resource, 0.5, BACKEND)
    assert resilient.query_float("VOLT?") == 0.0  # re-opened once the server accepts again
    plain.close()
    resilient.close()


def test_closed_server_is_no_longer_reachable_in_process() -> None:
    served = _served("bk_8600")
    resource = served.resource
    assert resource.replace("TCPIP::", "TCPIP0::") in resource_manager(BACKEND).list_resources("?*")
    served.server.close()
    with pytest.raises(ConnectionLost):
        open_resource(resource, 0.5, BACKEND)


def test_inprocess_can_channel_delivers_to_every_other_bus_and_wakes_a_blocked_reader() -> None:
    channel = InProcessCanChannel(f"t-{uuid.uuid4().hex[:6]}")
    a, b, c = channel.bus(), channel.bus(), channel.bus(receive_own_messages=True)
    try:
        a.send(can.Message(arbitration_id=0x351, data=b"\x01\x02", is_extended_id=False))
        for bus in (b, c):
            got = bus.recv(0)
            assert got is not None and got.arbitration_id == 0x351 and bytes(got.data) == b"\x01\x02"
            assert got.is_rx
        assert a.recv(0) is None  # a bus does not hear itself
        c.send(can.Message(arbitration_id=0x7E4, data=b"\x02\x3e\x00", is_extended_id=False))
        assert c.recv(0) is not None  # unless it asked to
        assert a.recv(0) is not None and b.recv(0) is not None
        received: list[can.Message] = []
        reader = threading.Thread(target=lambda: received.append(b.recv(5.0)))  # type: ignore[arg-type]
        reader.start()
        time.sleep(0.05)
        a.send(can.Message(arbitration_id=0x355, data=b"\x05", is_extended_id=False))
        reader.join(2.0)
        assert received and received[0].arbitration_id == 0x355
        started = time.monotonic()
        assert b.recv(0.05) is None and time.monotonic() - started >= 0.04
    finally:
        for bus in (a, b, c):
            bus.shutdown()
    with pytest.raises(can.CanOperationError):
        a.send(can.Message(arbitration_id=0x1))


@pytest.fixture
def polled_rig(tmp_path: Path):
    """Simulated adapter and a polled driver on one in-process channel, with a bus capture."""
    channel = InProcessCanChannel(f"vs02-{uuid.uuid4().hex[:6]}")
    bms = StandinBms()
    sim = SimAdapter(bms, channel.bus(), lock=threading.RLock())
    sim.start_uds()
    driver = Vs02Adapter(CanConfig(interface="virtual", channel=channel.name),
                         seedkey=HmacSha256First4(b"VS02-SIM-SECRET"), log_path=tmp_path / "can.blf",
                         polled=True, bus=channel.bus())
    driver.open()
    yield bms, sim, driver
    driver.close()
    sim.close()
    sim.bus.shutdown()


def test_polled_adapter_decodes_each_cycle_on_poll_without_a_listener_thread(polled_rig, tmp_path: Path) -> None:
    bms, sim, driver = polled_rig
    assert not [t for t in threading.enumerate() if t.name.startswith("can.notifier")]
    sent = sim.emit_due(0.0)
    assert sent > 0 and driver.frames_received == 0  # nothing happens behind the controller's back
    assert driver.poll() == sent and driver.frames_received == sent
    snap = driver.snapshot()
    assert snap.soc_pct == pytest.approx(bms.soc_pct, abs=0.005)
    assert snap.cell_voltages_v == pytest.approx(bms.cell_voltages_v, abs=0.0005)
    sent += sim.emit_due(1.0)
    assert driver.wait_frames(sent, timeout_s=0.0)  # polled: delivers, then answers at once
    # UDS works in polled mode: the exchange pumps the bus while it waits for the answer
    assert driver.read_identity()["serial"] == bms.serial
    driver.session("extended")
    driver.unlock(1)
    driver.close()
    # the capture holds the broadcast and both directions of the UDS exchanges
    with can.BLFReader(tmp_path / "can.blf") as reader:
        ids = {m.arbitration_id for m in reader}
    assert {0x351, 0x7E4, 0x7EC} <= ids


def test_inprocess_send_all_and_drain_move_a_cycle_in_one_call_each() -> None:
    """A batch sent with send_all reaches every other bus in order with one time stamp; drain
    returns everything queued, oldest first, applies the bus's filters, waits for a first frame
    only when asked to, and refuses on a shut-down bus."""
    channel = InProcessCanChannel(f"t-{uuid.uuid4().hex[:6]}")
    sender, reader, filtered = channel.bus(), channel.bus(), channel.bus(
        can_filters=[{"can_id": 0x400, "can_mask": 0x700}])
    try:
        cycle = [can.Message(arbitration_id=0x351 + k, data=bytes([k]), is_extended_id=False) for k in range(3)]
        cycle += [can.Message(arbitration_id=0x400 + k, data=bytes([k]), is_extended_id=False) for k in range(2)]
        before = time.time()
        sender.send_all(cycle)
        sender.send(can.Message(arbitration_id=0x404, data=b"\x09", is_extended_id=False))
        got = reader.drain()
        assert [(m.arbitration_id, bytes(m.data)) for m in got] == \
            [(m.arbitration_id, bytes(m.data)) for m in cycle] + [(0x404, b"\x09")]
        assert len({m.timestamp for m in got[:5]}) == 1 and before <= got[0].timestamp <= got[5].timestamp
        assert all(m.is_rx for m in got)
        assert [m.arbitration_id for m in filtered.drain()] == [0x400, 0x401, 0x404]
        assert reader.drain() == [] and sender.drain() == []  # empty; a bus does not hear itself
        started = time.monotonic()
        assert reader.drain(0.05) == [] and time.monotonic() - started >= 0.04
        late = threading.Timer(0.05, sender.send_all, args=(cycle[:2],))
        late.start()
        assert [m.arbitration_id for m in reader.drain(5.0)][:1] == [0x351]  # woken by the first
        late.join()
    finally:
        for bus in (sender, reader, filtered):
            bus.shutdown()
    with pytest.raises(can.CanOperationError):
        reader.drain()


def test_polled_adapter_on_a_bus_without_drain_reads_it_per_frame(tmp_path: Path) -> None:
    """The polled adapter's batch path works on any python-can bus: on a virtual bus (no drain,
    frames carry a channel name) poll reads a recv at a time, decodes every frame and captures
    them without the channel name (python-can's BLF writer would parse a number out of it)."""
    channel = f"vs02-{uuid.uuid4().hex[:6]}"
    sim_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    bms = StandinBms()
    sim = SimAdapter(bms, sim_bus, lock=threading.RLock())  # a virtual bus: one send per frame
    driver = Vs02Adapter(CanConfig(interface="virtual", channel=channel), log_path=tmp_path / "can.blf",
                         polled=True, bus=can.Bus(interface="virtual", channel=channel))
    driver.open()
    try:
        sent = sim.emit_due(0.0) + sim.emit_due(1.0)
        assert driver.poll() == sent and driver.frames_received == sent
        snap = driver.snapshot()
        assert snap.soc_pct == pytest.approx(bms.soc_pct, abs=0.005) and snap.message_counter == 1
    finally:
        driver.close()
        sim_bus.shutdown()
    with can.BLFReader(tmp_path / "can.blf") as reader:
        captured = list(reader)
    assert len(captured) == sent and [m.arbitration_id for m in captured[:2]] == [0x351, 0x355]


def test_inprocess_send_rows_queue_one_batch_that_reads_as_the_frames() -> None:
    """Frames sent as rows reach every other bus as one FrameRows (one time stamp), in order
    with the frames sent around them: drain_batches returns it whole, drain and recv return
    its frames as python-can messages (the fields a classic received data frame has, and those
    of the same frame sent as a message); a filtered bus gets messages only; a bus that hears
    itself gets them as transmitted; empty rows queue nothing."""
    from drivers.can_inprocess import FrameRows

    channel = InProcessCanChannel(f"t-{uuid.uuid4().hex[:6]}")
    sender, reader, filtered = channel.bus(receive_own_messages=True), channel.bus(), channel.bus(
        can_filters=[{"can_id": 0x400, "can_mask": 0x700}])
    rows = [(0x351, b"\x1c\x01\xe8\x03\xe8\x03\xe0\x00"), (0x400, b"\x01\x02"), (0x401, b"")]
    first, last = (can.Message(arbitration_id=i, data=b"\x07", is_extended_id=False) for i in (0x7E4, 0x404))
    try:
        def send_cycle() -> None:
            sender.send(first)
            sender.send_rows(rows)
            sender.send_rows([])
            sender.send(last)

        send_cycle()
        batches = reader.drain_batches()
        assert [type(b) for b in batches] == [can.Message, FrameRows, can.Message]
        batch = batches[1]
        assert isinstance(batch, FrameRows) and batch.rows == tuple(rows) and batch.is_rx
        send_cycle()
        frames = reader.drain()
        assert [(m.arbitration_id, bytes(m.data)) for m in frames] == [(0x7E4, b"\x07"), *rows, (0x404, b"\x07")]
        assert len({m.timestamp for m in frames[1:4]}) == 1 and frames[1].timestamp >= batch.timestamp
        expected = can.Message(timestamp=frames[1].timestamp, arbitration_id=0x351, data=rows[0][1],
                               is_extended_id=False, is_rx=True)
        slots = [name for name in can.Message.__slots__ if name != "__weakref__"]
        assert {n: getattr(frames[1], n) for n in slots} == {n: getattr(expected, n) for n in slots}
        assert frames[3].dlc == 0 and frames[2].dlc == 2
        assert [m.arbitration_id for m in filtered.drain_batches()] == [0x400, 0x401, 0x404, 0x400, 0x401, 0x404]
        own = sender.drain_batches()
        assert [getattr(b, "is_rx", None) for b in own] == [False] * 6  # its own frames: transmitted
        # recv takes the frames one at a time, the batch's others staying first in line
        sender.send_rows(rows)
        sender.send(last)
        assert [reader.recv(0).arbitration_id for _ in range(4)] == [0x351, 0x400, 0x401, 0x404]
        assert reader.recv(0) is None
    finally:
        for bus in (sender, reader, filtered):
            bus.shutdown()
    with pytest.raises(can.CanOperationError):
        sender.send_rows(rows)


def test_polled_adapter_takes_rows_as_it_takes_the_same_frames_sent_as_messages(tmp_path: Path) -> None:
    """A broadcast cycle sent as rows and the same cycle sent as messages give the polled adapter
    the same decoded snapshot and the same capture (ids, payloads, directions); a listener that
    does not take rows gets them as messages, in order with the frames around them."""
    from bench.sim.can_adapter import BroadcastEncoder, BroadcastFrame, broadcast_rows

    bms = StandinBms()
    encoder = BroadcastEncoder()
    cycles = []
    for k in range(3):
        bms.soc_pct -= 0.4
        cycles.append(encoder.encode_payloads(broadcast_rows(bms, k, float(k))))
    snapshots, captured, heard = [], [], []
    for as_rows in (True, False):
        channel = InProcessCanChannel(f"t-{uuid.uuid4().hex[:6]}")
        sender = channel.bus()
        path = tmp_path / f"rows-{as_rows}.blf"
        driver = Vs02Adapter(CanConfig(interface="virtual", channel=channel.name), log_path=path,
                             polled=True, bus=channel.bus())
        driver.open()
        other = can.BufferedReader()
        assert driver._notifier is not None
        driver._notifier.add_listener(other)
        try:
            for cycle in cycles:
                if as_rows:
                    sender.send_rows(cycle)
                else:
                    sender.send_all([BroadcastFrame(i, d) for i, d in cycle])
                sender.send(can.Message(arbitration_id=0x123, data=b"\x01", is_extended_id=False))
            assert driver.poll() == 3 * 12 and driver.frames_received == 33
            snapshots.append(driver.snapshot())
            heard.append([])
            while (msg := other.get_message(0)) is not None:
                heard[-1].append((msg.arbitration_id, bytes(msg.data)))
        finally:
            driver.close()
            sender.shutdown()
        with can.BLFReader(path) as reader:
            captured.append([(m.arbitration_id, bytes(m.data), m.dlc, m.is_rx) for m in reader])
    assert snapshots[0].soc_pct == pytest.approx(bms.soc_pct, abs=0.005)
    assert {**vars(snapshots[0]), "taken_at": 0, "timestamps": {}} == {**vars(snapshots[1]), "taken_at": 0,
                                                                        "timestamps": {}}
    assert captured[0] == captured[1] and len(captured[0]) == 36
    assert heard[0] == heard[1] and len(heard[0]) == 36 and heard[0][11] == (0x123, b"\x01")


def test_isotp_stack_takes_from_rows_only_the_frames_of_its_receive_id() -> None:
    """The adapter's ISO-TP stack, handed a FrameRows, receives the single frame on its receive
    ID that the batch holds (made a message for it) and nothing of a batch without one."""
    import isotp

    from drivers.can_inprocess import FrameRows
    from drivers.vs02_adapter import ResponseOnlyIsoTpStack

    channel = InProcessCanChannel(f"t-{uuid.uuid4().hex[:6]}")
    bus = channel.bus()
    notifier = can.Notifier([], [])
    stack = ResponseOnlyIsoTpStack(bus, notifier, rx_id=0x7EC,
                                   address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E4, rxid=0x7EC))
    stack.start()
    try:
        stack.on_rows(FrameRows(1.0, True, ((0x351, bytes(8)), (0x355, bytes(6)))))
        assert stack.recv(block=True, timeout=0.2) is None
        stack.on_rows(FrameRows(2.0, True, ((0x351, bytes(8)), (0x7EC, b"\x02\x7e\x00" + b"\xcc" * 5))))
        assert stack.recv(block=True, timeout=2.0) == b"\x7e\x00"
    finally:
        stack.stop()
        notifier.stop()
        bus.shutdown()
