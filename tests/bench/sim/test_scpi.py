"""SCPI parsing as real instruments do it, on the simulated families."""

from __future__ import annotations

import random

import pytest

from bench.sim.instruments import make_instrument
from bench.sim.scpi import ERROR_QUEUE_LENGTH, parse_number


@pytest.fixture
def psu():
    return make_instrument("keysight_n8700", random.Random(1))


@pytest.fixture
def load():
    return make_instrument("bk_8600", random.Random(1))


def errors(device) -> list[int]:
    codes = []
    while True:
        reply = device.handle("SYST:ERR?")
        code = int(reply.split(",")[0])
        if code == 0:
            return codes
        codes.append(code)


@pytest.mark.parametrize(
    "command",
    ["VOLT 12.5", "volt 12.5", "VOLTage 12.5", "SOURce:VOLTage:LEVel:IMMediate:AMPLitude 12.5",
     ":sour:volt:lev 12.5", "VOLT:IMM 12.5", "VOLT 12500 mV", "VOLT 12.5V", "VOLT 1.25E1"],
)
def test_short_long_optional_nodes_and_units(psu, command: str) -> None:
    psu.handle(command)
    assert psu.handle("VOLT?") == "12.5"
    assert errors(psu) == []


def test_partial_mnemonic_is_undefined_header(psu) -> None:
    psu.handle("VOLTA 3")
    psu.handle("SOUR:VOL 3")
    assert errors(psu) == [-113, -113]
    assert psu.handle("VOLT?") == "0"


def test_compound_messages_relative_path_and_root_reset(psu) -> None:
    assert psu.handle("VOLT 10;CURR 20;:VOLT?;CURR?") == "10;20"
    assert psu.handle("VOLT:PROT 30;:VOLT:PROT?") == "30"
    # After VOLT:PROT the path is VOLT: — "CURR 5" would be VOLT:CURR, an undefined header.
    psu.handle("VOLT:PROT 31;CURR 5")
    assert errors(psu) == [-113]
    assert psu.handle("*IDN?;:CURR?").endswith(";20")


def test_min_max_def_and_range_errors(psu) -> None:
    assert psu.handle("VOLT MAX;VOLT?") == "31.5"
    assert psu.handle("VOLT? MIN") == "0"
    psu.handle("VOLT 40")
    psu.handle("CURR -1")
    psu.handle("CURR 5 V")
    psu.handle("CURR")
    psu.handle("CURR 1,2")
    psu.handle("OUTP MAYBE")
    assert errors(psu) == [-222, -222, -224, -109, -108, -224]
    assert psu.handle("VOLT?") == "31.5"  # the rejected values changed nothing


def test_booleans_and_choices(load) -> None:
    for text, expected in (("ON", "1"), ("0", "0"), ("1", "1"), ("off", "0")):
        load.handle(f"INP {text}")
        assert load.handle("INP?") == expected
    load.handle("FUNC RES")
    assert load.handle("FUNC?") == "RESISTANCE"
    load.handle("FUNCtion power")
    assert load.handle("FUNC?") == "POWER"
    load.handle("RES 2.5 OHM;:RES?")
    assert load.handle("RES?") == "2.5"
    assert errors(load) == []


def test_status_registers_and_common_commands(psu) -> None:
    assert psu.handle("*STB?") == "0"
    psu.handle("BOGUS")
    assert psu.handle("*STB?") == "4"  # error queue not empty
    assert int(psu.handle("*ESR?")) & 32  # command error
    assert psu.handle("*ESR?") == "0"  # reading clears it
    psu.handle("*CLS")
    assert psu.handle("SYSTem:ERRor:NEXT?") == '0,"No error"'
    assert psu.handle("*OPC?") == "1"
    psu.handle("VOLT 5;*RST")
    assert psu.handle("VOLT?") == "0"


def test_error_queue_overflow(psu) -> None:
    for _ in range(ERROR_QUEUE_LENGTH + 5):
        psu.handle("NOPE")
    codes = errors(psu)
    assert len(codes) == ERROR_QUEUE_LENGTH
    assert codes[-1] == -350 and set(codes[:-1]) == {-113}


def test_command_error_stops_the_rest_of_the_message(psu) -> None:
    psu.handle("VOLT 3;BAD;:VOLT 4")
    assert psu.handle("VOLT?") == "3"


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [("250mA", "A", 0.25), ("2.5 kOHM", "OHM", 2500.0), ("5ms", "S", 0.005), ("1.5MAW", "W", 1.5e6)],
)
def test_parse_number_multipliers(text: str, unit: str, expected: float) -> None:
    assert parse_number(text, unit, 0.0, 1e7) == pytest.approx(expected)


def test_a_repeated_message_executes_the_same_each_time(psu) -> None:
    """The parsed-message cache keeps no state that belongs to one execution."""
    for volts in (10, 11):
        psu.handle(f"VOLT {volts}")
        # the same message twice: answers follow the state, the relative path restarts each time
        assert psu.handle("VOLT?;CURR?") == f"{volts};0"
        assert psu.handle("VOLT?;CURR?") == f"{volts};0"
    for _ in range(2):  # an argument error (-102 syntax) is raised, and queued, every time
        psu.handle("VOLT 5,,6;:CURR 2")
        psu.handle("VOLT:PROT 31;CURR 5")  # a path error every time (VOLT:CURR)
    assert errors(psu) == [-102, -113, -102, -113]
    assert psu.handle("CURR?") == "0"  # the error stopped the rest of each message


def test_a_command_added_later_is_what_a_known_message_runs(psu) -> None:
    assert psu.handle("VOLT?") == "0"  # the message's plan is now kept
    psu.add("VOLTage", query=lambda args: "42")
    assert psu.handle("VOLT?") == "42"
