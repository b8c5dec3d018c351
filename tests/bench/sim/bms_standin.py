"""A small stand-in for ``bench.sim.bms.BmsModel`` with the attributes the CAN adapter reads.

Test-only. Its security state machine, DTC records and flag types are the firmware's real ones
(``bench.sim.bms_security``, ``bench.sim.bms_types``); the measurements are fixed values the tests
set and then look for on the far end of the bus.
"""

from __future__ import annotations

import random
import time

from bench.sim.bms_security import DEFAULT_SECRET, SecurityAccess
from bench.sim.bms_types import (
    BalancingLogEntry,
    BmsAlarm,
    BmsRefusal,
    Dtc,
    DtcCode,
    GaugeFlags,
    Nrc,
    RoutineId,
    RoutineStatus,
)

EPOCH = 1_780_000_000.0


class StandinBms:
    def __init__(self, secret: bytes = DEFAULT_SECRET) -> None:
        self.contactor_closed = True
        self.soc_pct = 63.27
        self.soh_pct = 91.5
        self.learned_capacity_ah = 183.0
        self.design_capacity_ah = 200.0
        self.cycle_count = 412
        self.cell_voltages_v = [3.301, 3.302, 3.298, 3.305, 3.300, 3.299, 3.351, 3.303]
        self.pack_voltage_v = 26.46
        self.current_a = -50.0
        self.temperatures_c = [25.0, 25.5, 26.0, 24.5, 25.0, 27.5, 25.0, 25.0, 23.4]
        self.divergence_v = 0.053
        self.divergence_condition = "end_of_cv"
        self.balancing_active_cells = 0b0100_0000
        self.balancing_log = [BalancingLogEntry(EPOCH - 7200, EPOCH - 3600, 0b0100_0000, 0.054)]
        self.flags = GaugeFlags.FULLY_CHARGED | GaugeFlags.LEARN_OK
        self.dtcs = [
            Dtc(DtcCode.CELL_UNDERVOLTAGE, 0x28, EPOCH - 86400 * 40, EPOCH - 86400 * 35, 3,
                {"soc": 4.5, "vmin": 2.49, "vmax": 2.71, "temp": 12.5, "current": -38.2}),
            Dtc(DtcCode.CHARGE_OVERTEMPERATURE, 0x09, EPOCH - 600, EPOCH - 300, 1,
                {"soc": 88.0, "vmin": 3.33, "vmax": 3.41, "temp": 55.5, "current": 99.0}),
        ]
        self.charge_voltage_limit_v = 28.4  # battery.md §6.1 example payloads
        self.charge_current_limit_a = 100.0
        self.discharge_current_limit_a = 200.0
        self.discharge_voltage_limit_v = 22.4
        self.alarm_bits = int(BmsAlarm.CELL_IMBALANCE)
        self.warning_bits = int(BmsAlarm.HIGH_VOLTAGE | BmsAlarm.LOW_TEMPERATURE)
        self.serial = "VS02P-2405-00731"
        self.sw_version = "1.4.2"
        self.hw_version = "HW-B3"
        self.manufacturing_date = "2024-05-17"
        self.session = "default"
        self._security = SecurityAccess(secret, random.Random(7))
        self.resets: list[int] = []
        self.started: list[tuple[int, bytes]] = []
        self.learning_delay_s = 0.3

    @property
    def flag_bits(self) -> int:
        return int(self.flags)

    @property
    def security_unlocked(self) -> bool:
        return self._security.unlocked_level is not None

    def set_session(self, name: str) -> None:
        self.session = name
        self._security.lock()

    def security_seed(self, level: int) -> bytes:
        return self._security.request_seed(level, time.monotonic())

    def security_send_key(self, level: int, key: bytes) -> None:
        self._security.send_key(level, key, time.monotonic())

    def _check_routine(self, rid: int) -> None:
        if rid not in set(RoutineId):
            raise BmsRefusal(Nrc.REQUEST_OUT_OF_RANGE, "unknown routine")
        if self.session != "extended":
            raise BmsRefusal(Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION, "extended session needed")
        if not self.security_unlocked:
            raise BmsRefusal(Nrc.SECURITY_ACCESS_DENIED, "locked")

    def routine_start(self, rid: int, option: bytes) -> bytes:
        self._check_routine(rid)
        self.started.append((rid, option))
        return bytes([RoutineStatus.RUNNING])

    def routine_stop(self, rid: int) -> bytes:
        self._check_routine(rid)
        return bytes([RoutineStatus.DONE_OK])

    def routine_results(self, rid: int) -> bytes:
        if rid == RoutineId.CAPACITY_LEARNING:
            mah = round(self.learned_capacity_ah * 1000)
            return bytes([RoutineStatus.DONE_OK]) + mah.to_bytes(4, "big") + bytes([3, 0])
        return bytes([RoutineStatus.DONE_OK])

    def routine_start_delay_s(self, rid: int) -> float:
        return self.learning_delay_s if rid == RoutineId.CAPACITY_LEARNING else 0.0

    def ecu_reset(self, kind: int) -> None:
        self.resets.append(kind)
        self.set_session("default")

    def clear_dtcs(self, group: int) -> None:
        if group == 0xFFFFFF:
            self.dtcs.clear()
