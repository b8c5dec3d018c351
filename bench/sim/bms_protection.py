"""Protections (contactor control) and the DTC memory of the simulated BMS.

Thresholds are battery.md §2.4's recommended set for this pack. Release rule (kept simple, [A]):
once a trip's release condition has held for 5 s the contactor recloses, provided no other trip
is latched. Cell UV additionally recloses in *charge-only* mode after 5 s so a deeply discharged
pack can still be recharged (a real BMS keeps its charge FET on); any discharge current in that
mode reopens the contactor at once.
"""

from __future__ import annotations

import math

from bench.sim.bms_types import DTC_ACTIVE_STATUS, DTC_STORED_STATUS, BmsAlarm, Dtc, DtcCode, DtcStatus

# battery.md §2.4 recommended protection set (1C = 200 A).
CELL_OV_TRIP_V, CELL_OV_RELEASE_V = 3.65, 3.60  # release at the 3.60 V warning level [A]
CELL_UV_TRIP_V, CELL_UV_RELEASE_V = 2.50, 2.90
CHARGE_OT_TRIP_C, OT_RELEASE_C = 55.0, 50.0
DISCHARGE_OT_TRIP_C = 60.0
CHARGE_UT_TRIP_C, CHARGE_UT_RELEASE_C = 0.0, 2.0  # charge inhibit below 0 °C; 2 °C release [A]
DISCHARGE_UT_TRIP_C, DISCHARGE_UT_RELEASE_C = -20.0, -15.0  # release [A]
CHARGE_OC_TRIP_A = 1.1 * 200.0  # 1.1C for 10 s
DISCHARGE_OC_TRIP_A = 1.5 * 200.0  # 1.5C for 10 s
DISCHARGE_OC_FAST_TRIP_A = 2.0 * 200.0  # 2C for 1 s
VOLTAGE_TRIP_DELAY_S = 2.0
TEMPERATURE_TRIP_DELAY_S = 2.0  # [A]
OC_TRIP_DELAY_S, OC_FAST_TRIP_DELAY_S = 10.0, 1.0
RELEASE_HOLD_S = 5.0
#: A measured discharge beyond this (not a noisy zero reading) ends charge-only mode [A].
CHARGE_ONLY_DISCHARGE_A = 1.0
# Warnings for 0x35A (battery.md §2.4): OV warn 3.60 V, UV warn 2.90 V; temperatures 5 K before trip [A].
CELL_OV_WARN_V, CELL_UV_WARN_V = 3.60, 2.90
HIGH_TEMP_WARN_C, LOW_TEMP_WARN_C = 50.0, 2.0
#: Fault history window (calibration procedure: "fault codes in past 90 days").
FAULT_HISTORY_S = 90 * 86400.0

ALARM_OF_TRIP: dict[int, BmsAlarm] = {
    DtcCode.CELL_OVERVOLTAGE: BmsAlarm.HIGH_VOLTAGE,
    DtcCode.CELL_UNDERVOLTAGE: BmsAlarm.LOW_VOLTAGE,
    DtcCode.CHARGE_OVERTEMPERATURE: BmsAlarm.CHARGE_HIGH_TEMPERATURE | BmsAlarm.HIGH_TEMPERATURE,
    DtcCode.DISCHARGE_OVERTEMPERATURE: BmsAlarm.HIGH_TEMPERATURE,
    DtcCode.CHARGE_UNDERTEMPERATURE: BmsAlarm.CHARGE_LOW_TEMPERATURE,
    DtcCode.DISCHARGE_UNDERTEMPERATURE: BmsAlarm.LOW_TEMPERATURE,
    DtcCode.CHARGE_OVERCURRENT: BmsAlarm.CHARGE_OVERCURRENT,
    DtcCode.DISCHARGE_OVERCURRENT: BmsAlarm.DISCHARGE_OVERCURRENT,
}


class Protection:
    """Debounced trips that open the contactor, and the rules that close it again."""

    def __init__(self) -> None:
        self.contactor_closed = True
        self.charge_only = False
        #: Latched trips: code -> seconds its release condition has held.
        self.latched: dict[int, float] = {}
        #: Trips building up: code -> seconds the trip condition has held.
        self._pending: dict[int, float] = {}
        #: Seconds the contactor has been open with only cell UV latched (charge-only countdown).
        self._uv_open_s = 0.0

    def update(self, dt_s: float, current_a: float, *, vmax: float, vmin: float, tmin: float,
               tmax: float) -> list[int]:
        """One BMS sample; returns the codes that tripped now (to be recorded as DTCs)."""
        if (not self.latched and not self._pending and vmin > CELL_UV_TRIP_V and vmax < CELL_OV_TRIP_V
                and tmin > DISCHARGE_UT_TRIP_C and tmax < CHARGE_OT_TRIP_C
                and -DISCHARGE_OC_TRIP_A < current_a < CHARGE_OC_TRIP_A
                and (tmin >= CHARGE_UT_TRIP_C or current_a <= 0.0)):
            return []  # fast path: nothing near a limit
        charging = current_a > 0.0
        checks = (
            (DtcCode.CELL_OVERVOLTAGE, vmax >= CELL_OV_TRIP_V, vmax < CELL_OV_RELEASE_V,
             VOLTAGE_TRIP_DELAY_S),
            (DtcCode.CELL_UNDERVOLTAGE, vmin <= CELL_UV_TRIP_V, vmin >= CELL_UV_RELEASE_V,
             VOLTAGE_TRIP_DELAY_S),
            (DtcCode.CHARGE_OVERTEMPERATURE, charging and tmax >= CHARGE_OT_TRIP_C, tmax < OT_RELEASE_C,
             TEMPERATURE_TRIP_DELAY_S),
            (DtcCode.DISCHARGE_OVERTEMPERATURE, tmax >= DISCHARGE_OT_TRIP_C, tmax < OT_RELEASE_C,
             TEMPERATURE_TRIP_DELAY_S),
            (DtcCode.CHARGE_UNDERTEMPERATURE, charging and tmin < CHARGE_UT_TRIP_C,
             tmin >= CHARGE_UT_RELEASE_C, TEMPERATURE_TRIP_DELAY_S),
            (DtcCode.DISCHARGE_UNDERTEMPERATURE, tmin <= DISCHARGE_UT_TRIP_C, tmin >= DISCHARGE_UT_RELEASE_C,
             TEMPERATURE_TRIP_DELAY_S),
            (DtcCode.CHARGE_OVERCURRENT, current_a >= CHARGE_OC_TRIP_A, True, OC_TRIP_DELAY_S),
            (DtcCode.DISCHARGE_OVERCURRENT, current_a <= -DISCHARGE_OC_TRIP_A, True,
             OC_FAST_TRIP_DELAY_S if current_a <= -DISCHARGE_OC_FAST_TRIP_A else OC_TRIP_DELAY_S),
        )
        tripped: list[int] = []
        for code, failing, releasable, delay in checks:
            if code in self.latched:
                self.latched[code] = self.latched[code] + dt_s if releasable and not failing else 0.0
                continue
            if failing:
                held = self._pending.get(code, 0.0) + dt_s
                if held >= delay - 1e-9:
                    self._pending.pop(code, None)
                    self.latched[code] = 0.0
                    tripped.append(code)
                else:
                    self._pending[code] = held
            else:
                self._pending.pop(code, None)
        self._release(dt_s, current_a)
        return tripped

    def force_open(self, duration_s: float | None) -> None:
        """Fault injection: open the contactor for ``duration_s`` (None: until an ECU reset)."""
        self.forced_open_s = math.inf if duration_s is None else duration_s
        self.contactor_closed, self.charge_only = False, False

    def _release(self, dt_s: float, current_a: float) -> None:
        if getattr(self, "forced_open_s", 0.0) > 0.0:
            self.forced_open_s -= dt_s
            self.contactor_closed, self.charge_only = False, False
            return
        for code in [c for c, held in self.latched.items() if held >= RELEASE_HOLD_S]:
            del self.latched[code]
        if not self.latched:
            self.contactor_closed, self.charge_only, self._uv_open_s = True, False, 0.0
            return
        if set(self.latched) != {DtcCode.CELL_UNDERVOLTAGE}:
            self.contactor_closed, self.charge_only, self._uv_open_s = False, False, 0.0
            return
        # Only cell UV is latched: charge-only mode after 5 s open; a discharge reopens at once.
        if self.charge_only:
            if current_a < -CHARGE_ONLY_DISCHARGE_A:
                self.contactor_closed, self.charge_only, self._uv_open_s = False, False, 0.0
            return
        self.contactor_closed = False
        self._uv_open_s += dt_s
        if self._uv_open_s >= RELEASE_HOLD_S:
            self.contactor_closed, self.charge_only = True, True

    @property
    def alarms(self) -> BmsAlarm:
        alarms = BmsAlarm(0)
        for code in self.latched:
            alarms |= ALARM_OF_TRIP.get(code, BmsAlarm(0))
        return alarms | BmsAlarm.GENERAL if alarms else alarms


class DtcMemory:
    """Stored DTCs with ISO 14229 status bytes, occurrence counters and freeze frames."""

    def __init__(self) -> None:
        self.entries: dict[int, Dtc] = {}

    def record(self, code: int, epoch_s: float, snapshot: dict[str, float], *, active: bool = True,
               occurrences: int = 1) -> None:
        status = DTC_ACTIVE_STATUS if active else DTC_STORED_STATUS
        dtc = self.entries.get(code)
        if dtc is None:
            self.entries[code] = Dtc(code, int(status), epoch_s, epoch_s, occurrences, snapshot)
            return
        dtc.status |= int(status)
        dtc.first_epoch = min(dtc.first_epoch, epoch_s)
        if epoch_s >= dtc.last_epoch:
            dtc.last_epoch = epoch_s
            dtc.snapshot = snapshot
        dtc.occurrences += occurrences

    def set_passed(self, codes: set[int]) -> None:
        """Faults in ``codes`` are no longer present: drop testFailed and the warning bit."""
        for code in codes:
            dtc = self.entries.get(code)
            if dtc is not None:
                dtc.status &= ~int(DtcStatus.TEST_FAILED | DtcStatus.WARNING_INDICATOR_REQUESTED)

    def new_operation_cycle(self) -> None:
        for dtc in self.entries.values():
            dtc.status &= ~int(DtcStatus.TEST_FAILED_THIS_OPERATION_CYCLE)

    def clear(self, group: int) -> bool:
        """Clear all (0xFFFFFF) or one DTC; False if ``group`` names no stored DTC."""
        if group == 0xFFFFFF:
            self.entries.clear()
            return True
        return self.entries.pop(group, None) is not None

    def current(self, now_epoch: float) -> list[Dtc]:
        """DTCs still inside the 90-day history window (active ones always), oldest first."""
        horizon = now_epoch - FAULT_HISTORY_S
        for code in [c for c, d in self.entries.items()
                     if d.last_epoch < horizon and not d.status & DtcStatus.TEST_FAILED]:
            del self.entries[code]
        return sorted(self.entries.values(), key=lambda d: d.first_epoch)
