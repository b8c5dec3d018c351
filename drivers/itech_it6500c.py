"""ITECH IT6500C series high-power programmable DC supplies.

Manual: ITECH IT6500C/D Series Programming Guide v2.1 — ``[SOURce:]VOLTage[:LEVel]…``,
``[SOURce:]CURRent…``, ``OUTPut[:STATe]``, and for each of VOLTage/CURRent/POWer the protection
nodes ``:PROTection[:LEVel]``, ``:PROTection:STATe``, ``:PROTection:DELay``,
``:PROTection:TRIGgered?`` and ``:PROTection:CLEar``; ``MEASure[:SCALar]:VOLTage[:DC]?``.
``SYSTem:REMote`` puts the unit in remote mode over RS-232/USB (harmless on LAN).

Each protection is a level with its own enable and its own tripped query and clear command.
"""

from __future__ import annotations

from drivers.power import Ranges, Resolution
from drivers.scpi_power import LimitCommands, PowerFamily, ScpiPowerSupply


def _protection(node: str) -> LimitCommands:
    return LimitCommands(
        set=f"{node}:PROT {{value}}", query=f"{node}:PROT?",
        enable=f"{node}:PROT:STAT ON", enabled_query=f"{node}:PROT:STAT?",
        tripped_query=f"{node}:PROT:TRIG?",
    )


IT6500C_FAMILY = PowerFamily(
    name="itech_it6500c",
    kind="supply",
    manual="ITECH IT6500C/D Series Programming Guide v2.1",
    make_pattern=r"^ITECH",
    models={
        "IT6512C": Ranges(80.0, 120.0, 1800.0),
    },
    resolution=Resolution(voltage=0.001, current=0.001, power=0.01),
    commands={
        "set_voltage": "VOLT {value}",
        "set_current": "CURR {value}",
        "output": "OUTP {state}",
        "output_state": "OUTP?",  # OUTPut[:STATe]? -> 0/1
        "measure": "MEAS:VOLT?;CURR?",
    },
    limits={"ovp": _protection("VOLT"), "ocp": _protection("CURR"), "opp": _protection("POW")},
    clear=("VOLT:PROT:CLE", "CURR:PROT:CLE", "POW:PROT:CLE"),
    init=("SYST:REM",),
    notes="OVP/OCP/OPP are levels with their own enable, tripped query and clear.",
)


class ItechIT6500C(ScpiPowerSupply):
    family = IT6500C_FAMILY
