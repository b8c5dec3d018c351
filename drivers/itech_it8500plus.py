"""ITECH IT8500+ series programmable DC electronic loads.

Manual: ITECH IT8500+ Series Programming Guide v2.0 ("Input Settings": ``[SOURce:]FUNCtion``,
``[SOURce:]CURRent…``, ``[SOURce:]VOLTage:ON``, ``[SOURce:]CURRent:PROTection[:LEVel]``,
``[SOURce:]POWer:PROTection[:LEVel]`` with ``:DELay``/``:STATe``, ``[SOURce:]INPut``,
``PROTection:CLEar``). Same tree as the B&K 8600 (ITECH is the OEM of the B&K 85xx loads);
the differences are the identity, the models and ``SYSTem:REMote`` before remote control.
"""

from __future__ import annotations

from drivers.bk_8600 import LOAD_COMMANDS, LOAD_LIMITS, LOAD_MODE_NAMES, LOAD_TRIPPED_BITS
from drivers.power import Ranges, Resolution
from drivers.scpi_power import PowerFamily, ScpiElectronicLoad

IT8500PLUS_FAMILY = PowerFamily(
    name="itech_it8500plus",
    kind="load",
    manual="ITECH IT8500+ Series Programming Guide v2.0",
    make_pattern=r"^ITECH",
    models={
        "IT8512C+": Ranges(120.0, 60.0, 300.0, 0.05, 7500.0),
        "IT8513C+": Ranges(120.0, 120.0, 600.0, 0.05, 7500.0),
        "IT8514C+": Ranges(120.0, 240.0, 1200.0, 0.05, 7500.0),
    },
    resolution=Resolution(voltage=0.001, current=0.01, power=0.01, resistance=0.001, time=0.1),
    commands=LOAD_COMMANDS,
    limits=LOAD_LIMITS,
    clear=("PROT:CLE",),
    tripped_register="STAT:QUES:COND?",
    tripped_bits=LOAD_TRIPPED_BITS,
    init=("SYST:REM",),
    mode_names=LOAD_MODE_NAMES,
    notes="Von with latch off is the under-voltage cut-off; OCP/OPP are trips with delay.",
)


class ItechIT8500Plus(ScpiElectronicLoad):
    family = IT8500PLUS_FAMILY
