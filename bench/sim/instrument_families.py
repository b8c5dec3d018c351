"""Family tables for the simulated supplies and loads: identity, ranges, accuracy, SCPI tree.

Each entry impersonates one real instrument model. The SCPI patterns are written exactly as the
programming manuals print them (optional nodes in brackets, short form in capitals); the
simulator's parser (:mod:`bench.sim.scpi`) derives the accepted forms from them. Behaviour is
shared (:mod:`bench.sim.instruments`); only these tables differ per family.

Sources (stored copies found with the search tool; see docs/instruments.md):
* Keysight/Agilent Series N8700 User's Guide, ch. 5 "Language Reference" (Source, Output,
  Measure, Status commands; VOLT:PROT / VOLT:LIM:LOW range tables; CURR:PROT:STAT = trip on CC).
* ITECH IT6500C/D Series Programming Guide v2.1 (VOLT:PROT[:LEV], :STAT, :DEL, :TRIG?, :CLE;
  POW:PROT:STAT/[:LEV]/:DEL).
* B&K Precision 8600 Series Programming Manual and ITECH IT8500+ Programming Guide v2.0
  (FUNC, CURR/VOLT/RES/POW levels, INP, VOLT:ON, VOLT:LATC, CURR:PROT, POW:PROT, PROT:CLE).
  ITECH builds the B&K 8500 loads; both manuals give the same SCPI tree for these commands.
Ratings and accuracies are the datasheet class of each model (see docs/instruments.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["number", "bool", "choice", "action", "query"]


@dataclass(frozen=True)
class NumberSetting:
    unit: str
    low: float
    high: float
    reset: float


@dataclass(frozen=True)
class Accuracy:
    """Datasheet readback accuracy: ±(gain_fraction · reading + offset)."""

    gain_fraction: float
    offset: float
    resolution: float


@dataclass(frozen=True)
class Command:
    """One SCPI node: ``pattern`` in manual syntax, what it does (``kind``) and on which ``key``."""

    pattern: str
    kind: Kind
    key: str


@dataclass(frozen=True)
class SimFamily:
    name: str
    kind: Literal["supply", "load"]
    make: str
    model: str
    firmware: str
    serial_prefix: str
    v_max: float
    i_max: float
    p_max: float
    numbers: dict[str, NumberSetting]
    bools: dict[str, bool]  # key -> *RST value
    choices: dict[str, dict[str, str]]  # key -> {long form: value}
    commands: tuple[Command, ...]
    voltage_accuracy: Accuracy
    current_accuracy: Accuracy
    questionable_bits: dict[str, int]  # protection -> bit value in STAT:QUES:COND?
    operation_bits: dict[str, int] = field(default_factory=dict)  # "CV"/"CC" -> bit value
    ocp_trips_on_cc: bool = False  # Keysight N8700: OCP trips when the output enters CC
    min_operating_v_at_i_max: float = 0.0  # loads: input resistance floor, datasheet "min. operating V"


def _cmd(pattern: str, kind: Kind, key: str) -> Command:
    return Command(pattern, kind, key)


MEASURE_COMMANDS = (
    _cmd("MEASure[:SCALar]:VOLTage[:DC]", "query", "measure_voltage"),
    _cmd("MEASure[:SCALar]:CURRent[:DC]", "query", "measure_current"),
    _cmd("MEASure[:SCALar]:POWer[:DC]", "query", "measure_power"),
)

# --- supplies -----------------------------------------------------------------------------------

# N8700 User's Guide ch. 5: N8735A is the 30 V / 110 A / 3.3 kW model; programmable maximum is
# 105 % of rating (31.5 V, 115.5 A); OVP range 2..36 V for the 30 V models.
KEYSIGHT_N8700 = SimFamily(
    name="keysight_n8700",
    kind="supply",
    make="Keysight Technologies",
    model="N8735A",
    firmware="B.00.06",
    serial_prefix="MY5",
    v_max=31.5,
    i_max=115.5,
    p_max=3300.0,
    numbers={
        "voltage": NumberSetting("V", 0.0, 31.5, 0.0),
        "current": NumberSetting("A", 0.0, 115.5, 0.0),
        "ovp_level": NumberSetting("V", 2.0, 36.0, 36.0),
        "uvl": NumberSetting("V", 0.0, 28.5, 0.0),
    },
    bools={"output": False, "ocp_enabled": False, "ovp_enabled": True},
    choices={},
    commands=(
        _cmd("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "number", "voltage"),
        _cmd("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", "number", "current"),
        _cmd("[SOURce:]VOLTage:PROTection[:LEVel]", "number", "ovp_level"),
        _cmd("[SOURce:]VOLTage:LIMit:LOW", "number", "uvl"),
        _cmd("[SOURce:]CURRent:PROTection:STATe", "bool", "ocp_enabled"),
        _cmd("OUTPut[:STATe]", "bool", "output"),
        _cmd("OUTPut:PROTection:CLEar", "action", "clear"),
        _cmd("MEASure[:SCALar]:VOLTage[:DC]", "query", "measure_voltage"),
        _cmd("MEASure[:SCALar]:CURRent[:DC]", "query", "measure_current"),
    ),
    voltage_accuracy=Accuracy(0.001, 0.03, 0.001),
    current_accuracy=Accuracy(0.003, 0.33, 0.01),
    # N8700 Questionable register: bit 0 OV, bit 1 OC, bit 4 OT; Operation: bit 8 CV, bit 10 CC.
    questionable_bits={"ovp": 1, "ocp": 2, "otp": 16},
    operation_bits={"CV": 256, "CC": 1024},
    ocp_trips_on_cc=True,
)


def _itech_supply_protection(prefix: str, name: str) -> tuple[Command, ...]:
    # IT6500C/D Programming Guide: the same five nodes under VOLT:PROT, CURR:PROT and POW:PROT.
    return (
        _cmd(f"[SOURce:]{prefix}:PROTection[:LEVel]", "number", f"{name}_level"),
        _cmd(f"[SOURce:]{prefix}:PROTection:STATe", "bool", f"{name}_enabled"),
        _cmd(f"[SOURce:]{prefix}:PROTection:DELay", "number", f"{name}_delay"),
        _cmd(f"[SOURce:]{prefix}:PROTection:TRIGgered", "query", f"tripped:{name}"),
        _cmd(f"[SOURce:]{prefix}:PROTection:CLEar", "action", f"clear:{name}"),
    )


# IT6512C: 80 V / 120 A / 1800 W (IT6500C series, 1.8 kW class).
ITECH_IT6500C = SimFamily(
    name="itech_it6500c",
    kind="supply",
    make="ITECH Ltd.",
    model="IT6512C",
    firmware="1.07-1.05",
    serial_prefix="6005",
    v_max=80.0,
    i_max=120.0,
    p_max=1800.0,
    numbers={
        "voltage": NumberSetting("V", 0.0, 80.0, 0.0),
        "current": NumberSetting("A", 0.0, 120.0, 120.0),
        "ovp_level": NumberSetting("V", 0.0, 88.0, 88.0),
        "ovp_delay": NumberSetting("S", 0.001, 0.6, 0.001),
        "ocp_level": NumberSetting("A", 0.0, 132.0, 132.0),
        "ocp_delay": NumberSetting("S", 0.001, 0.6, 0.001),
        "opp_level": NumberSetting("W", 0.0, 1980.0, 1980.0),
        "opp_delay": NumberSetting("S", 0.001, 0.6, 0.001),
    },
    bools={"output": False, "ovp_enabled": False, "ocp_enabled": False, "opp_enabled": False},
    choices={},
    commands=(
        _cmd("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "number", "voltage"),
        _cmd("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", "number", "current"),
        *_itech_supply_protection("VOLTage", "ovp"),
        *_itech_supply_protection("CURRent", "ocp"),
        *_itech_supply_protection("POWer", "opp"),
        _cmd("OUTPut[:STATe]", "bool", "output"),
        *MEASURE_COMMANDS,
    ),
    voltage_accuracy=Accuracy(0.0002, 0.016, 0.001),
    current_accuracy=Accuracy(0.001, 0.12, 0.001),
    questionable_bits={"ovp": 1, "ocp": 2, "opp": 8, "otp": 16},
    operation_bits={"CV": 256, "CC": 1024},
)

# --- loads --------------------------------------------------------------------------------------


def _load_commands() -> tuple[Command, ...]:
    """The load tree common to the B&K 8600 and ITECH IT8500+ programming manuals."""
    return (
        _cmd("[SOURce:]FUNCtion", "choice", "mode"),
        _cmd("[SOURce:]CURRent[:LEVel][:IMMediate]", "number", "current"),
        _cmd("[SOURce:]VOLTage[:LEVel][:IMMediate]", "number", "voltage"),
        _cmd("[SOURce:]RESistance[:LEVel][:IMMediate]", "number", "resistance"),
        _cmd("[SOURce:]POWer[:LEVel][:IMMediate]", "number", "power"),
        _cmd("[SOURce:]INPut[:STATe]", "bool", "input"),
        _cmd("[SOURce:]VOLTage:ON", "number", "von"),
        _cmd("[SOURce:]VOLTage:LATCh[:STATe]", "bool", "von_latch"),
        _cmd("[SOURce:]CURRent:PROTection[:LEVel]", "number", "ocp_level"),
        _cmd("[SOURce:]CURRent:PROTection:DELay", "number", "ocp_delay"),
        _cmd("[SOURce:]CURRent:PROTection:STATe", "bool", "ocp_enabled"),
        _cmd("[SOURce:]POWer:PROTection[:LEVel]", "number", "opp_level"),
        _cmd("[SOURce:]POWer:PROTection:DELay", "number", "opp_delay"),
        _cmd("[SOURce:]POWer:PROTection:STATe", "bool", "opp_enabled"),
        _cmd("[SOURce:]INPut:TIMer[:STATe]", "bool", "timer_enabled"),
        _cmd("[SOURce:]INPut:TIMer:DELay", "number", "timer_delay"),
        _cmd("[SOURce:]PROTection:CLEar", "action", "clear"),
        *MEASURE_COMMANDS,
    )


LOAD_MODES = {"CURRent": "CC", "VOLTage": "CV", "RESistance": "CR", "POWer": "CP"}


def _load_numbers(v_max: float, i_max: float, p_max: float, r_max: float) -> dict[str, NumberSetting]:
    return {
        "current": NumberSetting("A", 0.0, i_max, 0.0),
        "voltage": NumberSetting("V", 0.0, v_max, v_max),
        "resistance": NumberSetting("OHM", 0.05, r_max, r_max),
        "power": NumberSetting("W", 0.0, p_max, 0.0),
        "von": NumberSetting("V", 0.0, v_max, 0.0),
        "ocp_level": NumberSetting("A", 0.0, i_max * 1.1, i_max * 1.1),
        "ocp_delay": NumberSetting("S", 0.0, 60.0, 0.0),
        "opp_level": NumberSetting("W", 0.0, p_max * 1.1, p_max * 1.1),
        "opp_delay": NumberSetting("S", 0.0, 60.0, 0.0),
        "timer_delay": NumberSetting("S", 0.0, 99999.0, 0.0),
    }


_LOAD_BOOLS = {"input": False, "von_latch": False, "ocp_enabled": False, "opp_enabled": False,
               "timer_enabled": False}

# B&K 8614: 120 V / 240 A / 1500 W, minimum operating voltage 2.5 V at 240 A (datasheet class).
BK_8600 = SimFamily(
    name="bk_8600",
    kind="load",
    make="B&K Precision",
    model="8614",
    firmware="1.37-1.42",
    serial_prefix="6026",
    v_max=120.0,
    i_max=240.0,
    p_max=1500.0,
    numbers=_load_numbers(120.0, 240.0, 1500.0, 7500.0),
    bools=dict(_LOAD_BOOLS),
    choices={"mode": LOAD_MODES},
    commands=_load_commands(),
    voltage_accuracy=Accuracy(0.00025, 0.03, 0.001),
    current_accuracy=Accuracy(0.0005, 0.12, 0.001),
    questionable_bits={"ovp": 1, "ocp": 2, "opp": 8, "otp": 16},
    min_operating_v_at_i_max=2.5,
)

# ITECH IT8514C+: 120 V / 240 A / 1200 W (the ITECH original of the B&K 8514).
ITECH_IT8500PLUS = SimFamily(
    name="itech_it8500plus",
    kind="load",
    make="ITECH Ltd.",
    model="IT8514C+",
    firmware="1.45-1.40",
    serial_prefix="8014",
    v_max=120.0,
    i_max=240.0,
    p_max=1200.0,
    numbers=_load_numbers(120.0, 240.0, 1200.0, 7500.0),
    bools=dict(_LOAD_BOOLS),
    choices={"mode": LOAD_MODES},
    commands=_load_commands(),
    voltage_accuracy=Accuracy(0.0005, 0.05, 0.001),
    current_accuracy=Accuracy(0.001, 0.24, 0.01),
    questionable_bits={"ovp": 1, "ocp": 2, "opp": 8, "otp": 16},
    min_operating_v_at_i_max=2.5,
)

SIM_FAMILIES: dict[str, SimFamily] = {
    f.name: f for f in (KEYSIGHT_N8700, ITECH_IT6500C, BK_8600, ITECH_IT8500PLUS)
}
