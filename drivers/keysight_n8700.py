"""Keysight (Agilent) Series N8700 system DC power supplies, 3.3 kW models.

Manual: Keysight Series N8700 User's Guide, ch. 5 "Language Reference" — Source commands
(``[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]``, ``…CURRent…``, ``VOLTage:PROTection:LEVel``,
``CURRent:PROTection:STATe``), Output commands (``OUTPut[:STATe]``, ``OUTPut:PROTection:CLEar``),
Measure commands (``MEASure[:SCALar]:VOLTage[:DC]?``), Status commands
(``STATus:QUEStionable:CONDition?``: bit 0 OV, bit 1 OC, bit 4 OT).

OCP on this family is a state, not a level: with ``CURR:PROT:STAT ON`` the output trips when it
enters constant-current, so the OCP level IS the current setpoint (``set_limit("ocp", …)`` programs both).
OVP is always active (no state command). Ranges: programmable maxima are 105 % of rating.
"""

from __future__ import annotations

from drivers.power import Ranges, Resolution
from drivers.scpi_power import LimitCommands, PowerFamily, ScpiPowerSupply

N8700_FAMILY = PowerFamily(
    name="keysight_n8700",
    kind="supply",
    manual="Keysight Series N8700 User's Guide, ch. 5 Language Reference",
    make_pattern=r"^(Keysight|Agilent)",
    models={
        "N8731A": Ranges(8.4, 420.0, 3300.0),
        "N8732A": Ranges(10.5, 346.5, 3300.0),
        "N8733A": Ranges(15.75, 231.0, 3300.0),
        "N8734A": Ranges(21.0, 173.25, 3300.0),
        "N8735A": Ranges(31.5, 115.5, 3300.0),
        "N8736A": Ranges(42.0, 89.25, 3300.0),
        "N8737A": Ranges(63.0, 57.75, 3300.0),
    },
    resolution=Resolution(voltage=0.001, current=0.01, power=1.0),
    commands={
        "set_voltage": "VOLT {value}",
        "set_current": "CURR {value}",
        "output": "OUTP {state}",
        "output_state": "OUTP?",  # OUTPut[:STATe]? -> 0/1
        "measure": "MEAS:VOLT?;CURR?",
    },
    limits={
        "ovp": LimitCommands(set="VOLT:PROT {value}", query="VOLT:PROT?"),
        "ocp": LimitCommands(
            set="CURR {value}", query="CURR?",
            enable="CURR:PROT:STAT ON", enabled_query="CURR:PROT:STAT?",
        ),
    },
    clear=("OUTP:PROT:CLE",),
    tripped_register="STAT:QUES:COND?",
    tripped_bits={"ovp": 1, "ocp": 2, "otp": 16},
    ocp_is_cc_trip=True,
    notes="OCP trips on entering CC: its level is the current setpoint; OVP always on.",
)


class KeysightN8700(ScpiPowerSupply):
    family = N8700_FAMILY
