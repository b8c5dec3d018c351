"""Vocabulary of the simulated BMS firmware: refusals, DTCs, flags, log entries, routine ids.

Kept apart from :mod:`bench.sim.bms` so the CAN/UDS servers and the report code can import the
codes and bit layouts without pulling in the firmware model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum, IntFlag
from typing import Protocol

N_CELLS = 8
#: battery.md §8 ``assumed_capacity_Ah`` / nameplate: the design capacity until a learning succeeds.
DESIGN_CAPACITY_AH = 200.0


class BmsRefusal(Exception):
    """The simulated firmware refuses a service request; the UDS server answers ``0x7F sid nrc``.

    Deliberately *not* a :class:`~bench.errors.BenchError`: it is simulated device behaviour that
    the UDS server turns into a negative response, never an error of the bench itself.
    """

    def __init__(self, nrc: int, reason: str) -> None:
        self.nrc = nrc
        self.reason = reason
        super().__init__(f"NRC 0x{nrc:02X}: {reason}")


class Nrc(IntEnum):
    """ISO 14229-1 negative response codes the firmware uses (battery.md §6.2)."""

    SUB_FUNCTION_NOT_SUPPORTED = 0x12
    INCORRECT_MESSAGE_LENGTH = 0x13
    CONDITIONS_NOT_CORRECT = 0x22
    REQUEST_SEQUENCE_ERROR = 0x24
    REQUEST_OUT_OF_RANGE = 0x31
    SECURITY_ACCESS_DENIED = 0x33
    INVALID_KEY = 0x35
    EXCEEDED_NUMBER_OF_ATTEMPTS = 0x36
    REQUIRED_TIME_DELAY_NOT_EXPIRED = 0x37
    SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION = 0x7F


class DtcCode(IntEnum):
    """Project-defined 3-byte DTCs of the simulated BMS (battery.md §6.2 list; codes are ours)."""

    CELL_OVERVOLTAGE = 0x911001
    CELL_UNDERVOLTAGE = 0x911002
    PACK_OVERVOLTAGE = 0x911003
    PACK_UNDERVOLTAGE = 0x911004
    CHARGE_OVERTEMPERATURE = 0x912001
    DISCHARGE_OVERTEMPERATURE = 0x912002
    CHARGE_UNDERTEMPERATURE = 0x912003
    DISCHARGE_UNDERTEMPERATURE = 0x912004
    CHARGE_OVERCURRENT = 0x913001
    DISCHARGE_OVERCURRENT = 0x913002
    SHORT_CIRCUIT = 0x913003
    CELL_IMBALANCE = 0x914001
    SENSOR_FAULT = 0x915001
    COMMS_TIMEOUT = 0x916001
    LEARNING_INVALIDATED = 0x917001


#: The scenario's short DTC names (``bench.sim.scenario.DtcName``) -> codes.
DTC_SHORT_NAMES: dict[str, DtcCode] = {
    "cell_ov": DtcCode.CELL_OVERVOLTAGE,
    "cell_uv": DtcCode.CELL_UNDERVOLTAGE,
    "pack_ov": DtcCode.PACK_OVERVOLTAGE,
    "pack_uv": DtcCode.PACK_UNDERVOLTAGE,
    "charge_ot": DtcCode.CHARGE_OVERTEMPERATURE,
    "discharge_ot": DtcCode.DISCHARGE_OVERTEMPERATURE,
    "charge_ut": DtcCode.CHARGE_UNDERTEMPERATURE,
    "discharge_ut": DtcCode.DISCHARGE_UNDERTEMPERATURE,
    "overcurrent_charge": DtcCode.CHARGE_OVERCURRENT,
    "overcurrent_discharge": DtcCode.DISCHARGE_OVERCURRENT,
    "short_circuit": DtcCode.SHORT_CIRCUIT,
    "cell_imbalance": DtcCode.CELL_IMBALANCE,
    "sensor_fault": DtcCode.SENSOR_FAULT,
    "comms_timeout": DtcCode.COMMS_TIMEOUT,
    "learning_invalidated": DtcCode.LEARNING_INVALIDATED,
}


class DtcStatus(IntFlag):
    """ISO 14229-1 DTC status byte bits (battery.md §6.2)."""

    TEST_FAILED = 0x01
    TEST_FAILED_THIS_OPERATION_CYCLE = 0x02
    PENDING = 0x04
    CONFIRMED = 0x08
    TEST_NOT_COMPLETED_SINCE_LAST_CLEAR = 0x10
    TEST_FAILED_SINCE_LAST_CLEAR = 0x20
    TEST_NOT_COMPLETED_THIS_OPERATION_CYCLE = 0x40
    WARNING_INDICATOR_REQUESTED = 0x80


#: Status of a DTC whose fault is present right now.
DTC_ACTIVE_STATUS = (
    DtcStatus.TEST_FAILED | DtcStatus.TEST_FAILED_THIS_OPERATION_CYCLE | DtcStatus.PENDING
    | DtcStatus.CONFIRMED | DtcStatus.TEST_FAILED_SINCE_LAST_CLEAR | DtcStatus.WARNING_INDICATOR_REQUESTED
)
#: Status of a stored (historical) DTC whose fault has gone.
DTC_STORED_STATUS = DtcStatus.CONFIRMED | DtcStatus.TEST_FAILED_SINCE_LAST_CLEAR


@dataclass
class Dtc:
    """One stored DTC with its ISO status byte, occurrence data and the last freeze-frame."""

    code: int
    status: int
    first_epoch: float
    last_epoch: float
    occurrences: int = 1
    #: Freeze frame at the most recent occurrence: soc (%), vmin/vmax (V), temp (°C max), current (A).
    snapshot: dict[str, float] = field(default_factory=dict)


@dataclass
class BalancingLogEntry:
    """One balancing session: UNIX start/end, union of bled cells (bit i = cell i+1), Ah bled in total."""

    start_epoch: float
    end_epoch: float
    cells_bitmap: int
    ah_bled: float


class GaugeFlags(IntFlag):
    """Gauge status bits (UDS DID 0x011A), after TI CEDV flag names (battery.md §4.3, §4.4)."""

    FULLY_CHARGED = 0x01  # FC: set at full sync, cleared below 95 % SOC
    FULLY_DISCHARGED = 0x02  # FD: set at empty sync, cleared above 10 % SOC
    LEARNING_ARMED = 0x04  # routine 0x0202 armed and not finished
    DISCHARGE_QUALIFIED = 0x08  # VDQ: the armed discharge is still qualified
    EDV2 = 0x10  # empty-sync threshold reached (cleared with FD)
    LEARN_OK = 0x20  # last learning accepted
    LEARN_FAILED = 0x40  # last learning disqualified or rejected


class BmsAlarm(IntFlag):
    """Alarm/warning fields in 0x35A order: field *i* is the bit pair at byte i//4, bits 2*(i%4) (§6.1)."""

    GENERAL = 1 << 0
    HIGH_VOLTAGE = 1 << 1
    LOW_VOLTAGE = 1 << 2
    HIGH_TEMPERATURE = 1 << 3
    LOW_TEMPERATURE = 1 << 4
    CHARGE_HIGH_TEMPERATURE = 1 << 5
    CHARGE_LOW_TEMPERATURE = 1 << 6
    DISCHARGE_OVERCURRENT = 1 << 7
    CHARGE_OVERCURRENT = 1 << 8
    CONTACTOR = 1 << 9
    SHORT_CIRCUIT = 1 << 10
    BMS_INTERNAL = 1 << 11
    CELL_IMBALANCE = 1 << 12


class RoutineId(IntEnum):
    """RoutineControl identifiers of the simulated BMS (battery.md §6.2, project-defined)."""

    EXTENDED_BALANCING = 0x0201
    CAPACITY_LEARNING = 0x0202
    SOC_SYNC = 0x0203
    CURRENT_ZERO_CALIBRATION = 0x0204
    RESET_LEARNED_DATA = 0x0205


class RoutineStatus(IntEnum):
    """First byte of every routine result record."""

    RUNNING = 0
    DONE_OK = 1
    FAILED = 2


class LearnQualification(IntEnum):
    """Qualification status byte in the 0x0202 results."""

    NOT_ARMED = 0
    WAITING_FOR_DISCHARGE = 1
    DISCHARGING = 2
    LEARNED = 3
    DISQUALIFIED = 4


class LearnReason(IntEnum):
    """Reason code byte in the 0x0202 results."""

    NONE = 0
    NO_RECENT_FULL_SYNC = 1
    CHARGE_DURING_DISCHARGE = 2
    TEMPERATURE_OUT_OF_RANGE = 3
    CAPACITY_IMPLAUSIBLE = 4
    DISCHARGE_TOO_SHORT = 5
    ABORTED = 6
    LEARNING_INHIBITED = 7
    ECU_RESET = 8


class BmsScenarioLike(Protocol):
    """What :class:`~bench.sim.bms.BmsModel` reads from the scenario's ``bms`` section.

    Read-only properties so any pydantic model with these fields matches. Optional extras read
    with ``getattr`` and a default: ``hw_version``, ``manufacturing_date``.
    """

    @property
    def soc_estimate_pct(self) -> float | None: ...

    @property
    def learned_capacity_ah(self) -> float | None: ...

    @property
    def current_offset_a(self) -> float: ...

    @property
    def current_gain_error(self) -> float: ...

    @property
    def install_date(self) -> date: ...

    @property
    def serial(self) -> str: ...

    @property
    def sw_version(self) -> str: ...

    @property
    def ignores_calibration_routine(self) -> bool: ...

    @property
    def cycle_count(self) -> int: ...

    @property
    def fault_history(self) -> Sequence[object]: ...

    @property
    def balancing_stuck(self) -> bool: ...


class PackLike(Protocol):
    """The part of :class:`bench.sim.pack.Pack` the BMS reads (current > 0 charges)."""

    @property
    def cell_temperatures_c(self) -> list[float]: ...

    @property
    def enclosure_temperature_c(self) -> float: ...

    def cell_voltages(self, current_a: float) -> list[float]: ...

    def true_soc_pct(self) -> float: ...
