"""B&K Precision 8600 series programmable DC electronic loads.

Manual: B&K Precision 8600 Series Programming Manual — ``[SOURce:]FUNCtion
CURRent|VOLTage|RESistance|POWer``, ``[SOURce:]CURRent[:LEVel][:IMMediate]`` (and VOLTage,
RESistance, POWer), ``[SOURce:]INPut[:STATe]``, ``[SOURce:]VOLTage:ON`` (Von) with
``[SOURce:]VOLTage:LATCh`` (OFF: the load stops sinking whenever the input falls below Von — the
under-voltage cut-off), ``[SOURce:]CURRent:PROTection[:LEVel]|:DELay|:STATe``,
``[SOURce:]POWer:PROTection[:LEVel]|:DELay|:STATe``, ``[SOURce:]INPut:TIMer[:STATe]|:DELay``,
``[SOURce:]PROTection:CLEar``, ``STATus:QUEStionable:CONDition?``.
"""

from __future__ import annotations

from drivers.power import Ranges, Resolution
from drivers.scpi_power import LimitCommands, PowerFamily, ScpiElectronicLoad

# The load tree shared with the ITECH IT8500+ (ITECH builds the B&K 85xx loads; both manuals
# give these nodes with the same syntax).
LOAD_COMMANDS = {
    "set_mode": "FUNC {mode}",
    "set_current": "CURR {value}",
    "set_voltage": "VOLT {value}",
    "set_resistance": "RES {value}",
    "set_power": "POW {value}",
    "input": "INP {state}",
    "output_state": "INP?",  # INPut[:STATe]? -> 0/1
    "measure": "MEAS:VOLT?;CURR?",
}
LOAD_LIMITS = {
    # LATC OFF makes Von a cut-off: below it the input stops sinking (not only "starts at").
    "uvp": LimitCommands(set="VOLT:ON {value}", query="VOLT:ON?", enable="VOLT:LATC OFF"),
    "ocp": LimitCommands(set="CURR:PROT {value}", query="CURR:PROT?",
                         enable="CURR:PROT:STAT ON", enabled_query="CURR:PROT:STAT?"),
    "opp": LimitCommands(set="POW:PROT {value}", query="POW:PROT?",
                         enable="POW:PROT:STAT ON", enabled_query="POW:PROT:STAT?"),
    "timer": LimitCommands(set="INP:TIM:DEL {value}", query="INP:TIM:DEL?",
                           enable="INP:TIM ON", enabled_query="INP:TIM?"),
}
LOAD_MODE_NAMES = {"CC": "CURR", "CV": "VOLT", "CR": "RES", "CP": "POW"}
LOAD_TRIPPED_BITS = {"ovp": 1, "ocp": 2, "opp": 8, "otp": 16}

BK_8600_FAMILY = PowerFamily(
    name="bk_8600",
    kind="load",
    manual="B&K Precision 8600 Series Programming Manual",
    make_pattern=r"^B&K",
    models={
        "8610": Ranges(120.0, 120.0, 750.0, 0.05, 7500.0),
        "8614": Ranges(120.0, 240.0, 1500.0, 0.05, 7500.0),
    },
    resolution=Resolution(voltage=0.001, current=0.001, power=0.01, resistance=0.001, time=0.1),
    commands=LOAD_COMMANDS,
    limits=LOAD_LIMITS,
    clear=("PROT:CLE",),
    tripped_register="STAT:QUES:COND?",
    tripped_bits=LOAD_TRIPPED_BITS,
    mode_names=LOAD_MODE_NAMES,
    notes="Von with latch off is the under-voltage cut-off; OCP/OPP are trips with delay.",
)


class BK8600(ScpiElectronicLoad):
    family = BK_8600_FAMILY
