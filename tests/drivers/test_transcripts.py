"""Every family's driver sends exactly the manual's syntax, in order (recorded-protocol tests).

The transcripts in ``transcripts/`` are annotated with the manual section of each command.
Regenerate a transcript from the simulator (then review it against the manual!) with
``BENCH_RECORD_TRANSCRIPTS=1 pytest tests/drivers/test_transcripts.py``.
"""

from __future__ import annotations

import os
import random

import pytest

from bench.errors import SetpointOutOfRange
from drivers.power import ElectronicLoad, PowerSupply, ProtectionSettings, program_and_verify
from drivers.registry import BUILTIN_FAMILIES, driver_class
from drivers.scpi import ScpiInstrument
from tests.drivers.recorded import TRANSCRIPTS, RecordedTransport, load_transcript

SUPPLY_LIMITS = {"ovp": 30.5, "ocp": 55.0, "opp": 1600.0}
LOAD_LIMITS = {"uvp": 22.0, "ocp": 45.0, "opp": 1150.0, "timer": 3600.0}


def run_scenario(driver: PowerSupply | ElectronicLoad) -> dict[str, object]:
    """The scenario every transcript records; returns what the driver parsed."""
    limits = SUPPLY_LIMITS if isinstance(driver, PowerSupply) else LOAD_LIMITS
    wanted = ProtectionSettings(**{k: v for k, v in limits.items() if driver.capabilities.can(k)})
    if isinstance(driver, PowerSupply):
        driver.set_voltage(29.2)
        driver.set_current(50.0)
        readback = program_and_verify(driver, wanted)
        driver.output(True)
    else:
        driver.set_mode("CC")
        driver.set_current(40.0)
        readback = program_and_verify(driver, wanted)
        driver.input(True)
    measured = driver.measure()
    tripped = driver.protection_tripped()
    driver.clear_protection()
    problems = driver.safe_state()
    return {"readback": readback, "measured": measured, "tripped": tripped, "problems": problems}


class _Recorder:
    """Transport over an in-process simulated instrument that writes the transcript."""

    def __init__(self, family: str) -> None:
        from bench.sim.instruments import make_instrument

        self.instrument = make_instrument(family, random.Random(7), serial="SIM0001")
        self.lines: list[str] = []
        self.timeout = 2000
        self._reply: str | None = None

    def write(self, message: str) -> None:
        self.lines.append(f"> {message}")
        self._reply = self.instrument.handle(message)

    def read(self) -> str:
        assert self._reply is not None
        self.lines.append(f"< {self._reply}")
        reply, self._reply = self._reply, None
        return reply

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def close(self) -> None:
        pass


@pytest.mark.parametrize("family", sorted(BUILTIN_FAMILIES))
def test_driver_matches_transcript(family: str) -> None:
    path = TRANSCRIPTS / f"{family}.txt"
    cls = driver_class(family)
    if os.environ.get("BENCH_RECORD_TRANSCRIPTS"):
        recorder = _Recorder(family)
        run_scenario(cls(ScpiInstrument(recorder, family)))  # type: ignore[arg-type]
        path.write_text(f"# {cls.family.manual}\n" + "\n".join(recorder.lines) + "\n")
    transport = RecordedTransport(load_transcript(path.name))
    driver = cls(ScpiInstrument(transport, family))
    result = run_scenario(driver)  # type: ignore[arg-type]
    transport.assert_done()
    readback = result["readback"]
    assert isinstance(readback, ProtectionSettings)
    limits = SUPPLY_LIMITS if isinstance(driver, PowerSupply) else LOAD_LIMITS
    for name, value in limits.items():
        if driver.capabilities.can(name):
            assert getattr(readback, name) == pytest.approx(value)
    assert result["tripped"] == []
    assert result["problems"] == []
    volts, amps = result["measured"]  # type: ignore[misc]
    assert abs(volts) < 0.1 and abs(amps) < 0.5  # nothing connected: only the meter offsets


@pytest.mark.parametrize("family", sorted(BUILTIN_FAMILIES))
def test_out_of_range_setpoint_sends_nothing(family: str) -> None:
    transport = RecordedTransport(load_transcript(f"{family}.txt")[:2])  # *IDN? (+ SYST:REM)
    cls = driver_class(family)
    driver = cls(ScpiInstrument(transport, family))
    position = transport.position
    with pytest.raises(SetpointOutOfRange, match=driver.model):
        driver.set_current(driver.ranges.i_max * 1.5)
    with pytest.raises(SetpointOutOfRange):
        driver.set_voltage(-1.0)
    assert transport.position == position
