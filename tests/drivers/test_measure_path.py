"""measure(): the bytes it sends, the work it adds to the query, and the error paths of the
direct transport call (issue 17 point 3). The simulated instruments are reached through pyvisa
with the ``@inprocess`` backend (the same ScpiServer code as over TCP) or a recorded transcript."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from bench.errors import ConnectionLost, ProtocolError
from bench.sim.instruments import SIM_LOAD_FAMILIES, SIM_SUPPLY_FAMILIES
from bench.sim.scpi_server import InProcessSession
from drivers.registry import driver_class
from drivers.scpi import ReconnectPolicy, ScpiInstrument
from drivers.visa import open_resource
from drivers.visa_inprocess import BACKEND, register, unregister
from tests.drivers.recorded import RecordedTransport
from tests.drivers.test_integration import Served

DRIVERS_DIR = Path(__file__).resolve().parents[2] / "drivers"


class RecordingEndpoint:
    """The simulated instrument's ScpiServer as an in-process endpoint, recording what each
    session writes (the bytes a socket would carry)."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.received: list[bytes] = []

    def connect(self) -> RecordingEndpoint.Connection:
        return RecordingEndpoint.Connection(self, self.served.server.connect())

    class Connection:
        def __init__(self, endpoint: RecordingEndpoint, session: InProcessSession) -> None:
            self.endpoint = endpoint
            self.session = session

        def exchange(self, data: bytes) -> bytes:
            if data:
                self.endpoint.received.append(data)
            return self.session.exchange(data)

        def close(self) -> None:
            self.session.close()


@pytest.mark.parametrize("family", SIM_SUPPLY_FAMILIES + SIM_LOAD_FAMILIES)
def test_measure_sends_the_same_bytes_as_the_raw_query_once(family: str) -> None:
    """The benchmark's raw side is ``session.query(command)``: the driver must send exactly that."""
    served = Served(family)
    endpoint = RecordingEndpoint(served)
    register(served.resource, endpoint)
    try:
        session = open_resource(served.resource, 1.0, BACKEND)
        driver = driver_class(family)(ScpiInstrument(session, family))
        command = driver.family.commands["measure"]
        endpoint.received.clear()  # *IDN? and the family's init writes
        volts, amps = driver.measure()
        measure_bytes, endpoint.received = endpoint.received, []
        raw_reply = session.query(command)
        assert measure_bytes == endpoint.received == [(command + "\n").encode("ascii")]
        assert [volts, amps] == [float(part) for part in raw_reply.split(";")]
        session.close()
    finally:
        unregister(served.resource, endpoint)
        served.server.close()


def _driver_calls(action: Any) -> list[str]:
    """Names of the Python functions under drivers/ that run during ``action()``."""
    names: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and Path(frame.f_code.co_filename).parent == DRIVERS_DIR:
            names.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return names


def test_measure_runs_no_wrapper_layers_between_the_driver_and_the_transport() -> None:
    """measure() is the engine's per-interval call: the family method, one parse, the transport.
    Before, a closure, two error-mapping frames, a template look-up and a comprehension ran per
    call (about 1.5 us against ~40 us per TCP round trip; 0.9 us now, most of it float())."""
    transport = RecordedTransport([("MEAS:VOLT?;CURR?", "26.400000;40.000000")])
    driver = driver_class("keysight_n8700")(ScpiInstrument(transport, "psu"), model="N8735A")
    assert _driver_calls(driver.measure) == ["measure", "query_floats"]
    transport.assert_done()


@pytest.mark.parametrize(
    ("reply", "values"),
    [(" 26.4;40.0 \r", [26.4, 40.0]), ("1.5,2.5", [1.5, 2.5]), ("1,2;3", [1.0, 2.0, 3.0]), ("+9.9E+37", [9.9e37])],
)
def test_query_floats_splits_on_either_separator_and_ignores_whitespace(reply: str, values: list[float]) -> None:
    scpi = ScpiInstrument(RecordedTransport([("Q?", reply)]), "dut")
    assert scpi.query_floats("Q?") == values


@pytest.mark.parametrize(
    ("reply", "message"),
    [("26.4", r"expected 2 values, got '26.4'"), ("26.4;40;1", r"expected 2 values"),
     ("26.4;OFF", r"not numbers: '26.4;OFF'"), ("", r"expected 2 values, got ''")],
)
def test_measure_with_a_malformed_reply_is_a_protocol_error_naming_the_command(reply: str, message: str) -> None:
    transport = RecordedTransport([("MEAS:VOLT?;CURR?", reply)])
    driver = driver_class("bk_8600")(ScpiInstrument(transport, "load"), model="8610")
    with pytest.raises(ProtocolError, match=message) as caught:
        driver.measure()
    assert caught.value.instrument == "load" and caught.value.operation == "MEAS:VOLT?;CURR?"


def test_lost_link_retries_setpoints_and_queries_but_never_a_switch_on() -> None:
    """The transport is called directly now; a failure still goes through the typed mapping and
    the reconnect policy: idempotent operations are retried on a fresh session, ``OUTP ON`` is not."""
    served = Served("keysight_n8700")
    register(served.resource, served.server)
    reopened: list[object] = []

    def reopen() -> Any:
        reopened.append(None)
        return open_resource(served.resource, 0.5, BACKEND)

    scpi = ScpiInstrument(open_resource(served.resource, 0.5, BACKEND), "psu", reopen=reopen,
                          reconnect=ReconnectPolicy(attempts=20, delay_s=0.05))
    try:
        served.server.disconnect(0.3)
        with pytest.raises(ConnectionLost) as caught:
            scpi.write("OUTP ON", idempotent=False)
        assert caught.value.operation == "OUTP ON" and reopened == []
        assert served.instrument.output_on is False
        scpi.write("VOLT 3")  # idempotent: re-opened once the port accepts again, then sent
        assert reopened and scpi.query_floats("VOLT?;CURR?", 2)[0] == 3.0
        served.server.disconnect(0.3)
        assert scpi.query_floats("VOLT?", 1) == [3.0]  # the measure path retries too
        scpi.close()
    finally:
        served.server.close()
