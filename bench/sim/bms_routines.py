"""RoutineControl (0x31) bodies of the simulated BMS: what each routine does and its result record.

Session and security checks happen in :class:`~bench.sim.bms.BmsModel` before these run; the
routines see the BMS only as a :class:`RoutineHost`. All multi-byte fields are big-endian (UDS
convention). Result records start with a status byte (0 running, 1 done ok, 2 failed):

- 0x0201 extended balancing: status, u8 bitmap of cells bled, 8 x u16 mAh bled per cell.
- 0x0202 capacity learning: status, u32 learned FCC mAh (the stored FCC while none was learned),
  u8 qualification (:class:`LearnQualification`), u8 reason (:class:`LearnReason`).
- 0x0203 SOC sync: status, u16 SOC 0.01 %.
- 0x0204 current zero-offset calibration: status, s16 offset mA now in use.
- 0x0205 reset learned data: status, u32 FCC mAh after the reset.
"""

from __future__ import annotations

from typing import Protocol

from bench.sim.bms_balancer import Balancer
from bench.sim.bms_gauge import SocGauge
from bench.sim.bms_types import BmsRefusal, LearnReason, Nrc, RoutineId, RoutineStatus

# Current zero-offset calibration (0x0204): average 30 s of raw current the bench holds at 0 A;
# 30 samples of 50 mA noise leave ~9 mA, within battery.md §4.1's ±10 mA post-calibration class.
ZERO_CAL_DURATION_S = 30.0
ZERO_CAL_MAX_OFFSET_A = 2.0  # more than this means the bench was not holding 0 A [A]
# 0x0201 option limits [A].
EXTENDED_TARGET_MV = (5, 200)


def routine_id(rid: int) -> RoutineId:
    try:
        return RoutineId(rid)
    except ValueError:
        raise BmsRefusal(Nrc.REQUEST_OUT_OF_RANGE, f"unknown routine 0x{rid:04X}") from None


class RoutineHost(Protocol):
    """The part of the BMS the routines act on (``bench.sim.bms.BmsModel`` implements it; this
    module does not import that one, which imports this)."""

    time_s: float
    current_offset_calibration_a: float
    gauge: SocGauge
    balancer: Balancer

    @property
    def now_epoch_s(self) -> float: ...


class Routines:
    """Routine state that lives outside the gauge and balancer (the zero-offset calibration)."""

    def __init__(self) -> None:
        self.zero_cal_status: RoutineStatus | None = None
        self._zero_cal_sum_as = 0.0
        self._zero_cal_elapsed_s = 0.0

    def start(self, bms: RoutineHost, routine: RoutineId, option: bytes) -> None:
        if routine is RoutineId.EXTENDED_BALANCING:
            if len(option) != 4:
                raise BmsRefusal(Nrc.INCORRECT_MESSAGE_LENGTH, "option: target delta mV u16, timeout min u16")
            target_mv = int.from_bytes(option[:2], "big")
            timeout_min = int.from_bytes(option[2:], "big")
            low, high = EXTENDED_TARGET_MV
            if not low <= target_mv <= high or timeout_min == 0:
                raise BmsRefusal(Nrc.REQUEST_OUT_OF_RANGE, f"target {low}-{high} mV, timeout >= 1 min")
            bms.balancer.start_extended(bms.time_s, target_mv / 1000.0, timeout_min * 60.0)
        elif routine is RoutineId.CAPACITY_LEARNING:
            bms.gauge.arm_learning(bms.time_s)
        elif routine is RoutineId.SOC_SYNC:
            if len(option) not in (0, 2):
                raise BmsRefusal(Nrc.INCORRECT_MESSAGE_LENGTH, "option: none (100 %) or SOC u16 0.01 %")
            soc = int.from_bytes(option, "big") / 10000.0 if option else 1.0
            if soc > 1.0:
                raise BmsRefusal(Nrc.REQUEST_OUT_OF_RANGE, "SOC above 100 %")
            bms.gauge.soc = soc
        elif routine is RoutineId.CURRENT_ZERO_CALIBRATION:
            self.zero_cal_status = RoutineStatus.RUNNING
            self._zero_cal_sum_as = self._zero_cal_elapsed_s = 0.0
        else:
            bms.gauge.reset_learned_data()

    def stop(self, bms: RoutineHost, routine: RoutineId) -> None:
        if routine is RoutineId.EXTENDED_BALANCING:
            if not bms.balancer.extended_running:
                raise BmsRefusal(Nrc.REQUEST_SEQUENCE_ERROR, "extended balancing is not running")
            bms.balancer.stop_extended(bms.now_epoch_s)
        elif routine is RoutineId.CAPACITY_LEARNING:
            if bms.gauge.learn_status is not RoutineStatus.RUNNING:
                raise BmsRefusal(Nrc.REQUEST_SEQUENCE_ERROR, "capacity learning is not armed")
            bms.gauge.abort_learning(LearnReason.ABORTED)
        elif routine is RoutineId.CURRENT_ZERO_CALIBRATION:
            if self.zero_cal_status is not RoutineStatus.RUNNING:
                raise BmsRefusal(Nrc.REQUEST_SEQUENCE_ERROR, "zero-offset calibration is not running")
            self.zero_cal_status = RoutineStatus.FAILED
        else:
            raise BmsRefusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"routine 0x{routine:04X} cannot be stopped")

    def results(self, bms: RoutineHost, routine: RoutineId) -> bytes:
        if routine is RoutineId.EXTENDED_BALANCING:
            balancer = bms.balancer
            if balancer.extended_status is None:
                raise BmsRefusal(Nrc.REQUEST_SEQUENCE_ERROR, "extended balancing never started")
            bled = b"".join(min(0xFFFF, round(ah * 1000.0)).to_bytes(2, "big")
                            for ah in balancer.extended_bled_ah)
            return bytes((balancer.extended_status, balancer.extended_bitmap)) + bled
        if routine is RoutineId.CAPACITY_LEARNING:
            gauge = bms.gauge
            if gauge.learn_status is None:
                raise BmsRefusal(Nrc.REQUEST_SEQUENCE_ERROR, "capacity learning never armed")
            fcc_ah = gauge.learn_result_ah if gauge.learn_result_ah is not None else gauge.fcc_ah
            return (bytes((gauge.learn_status,)) + round(fcc_ah * 1000.0).to_bytes(4, "big")
                    + bytes((gauge.learn_state, gauge.learn_reason)))
        if routine is RoutineId.SOC_SYNC:
            return bytes((RoutineStatus.DONE_OK,)) + round(bms.gauge.soc * 10000.0).to_bytes(2, "big")
        if routine is RoutineId.CURRENT_ZERO_CALIBRATION:
            if self.zero_cal_status is None:
                raise BmsRefusal(Nrc.REQUEST_SEQUENCE_ERROR, "zero-offset calibration never started")
            offset_ma = round(bms.current_offset_calibration_a * 1000.0)
            return bytes((self.zero_cal_status,)) + offset_ma.to_bytes(2, "big", signed=True)
        return bytes((RoutineStatus.DONE_OK,)) + round(bms.gauge.fcc_ah * 1000.0).to_bytes(4, "big")

    @property
    def zero_cal_running(self) -> bool:
        return self.zero_cal_status is RoutineStatus.RUNNING

    def zero_cal_step(self, bms: RoutineHost, dt_s: float, raw_current_a: float) -> None:
        """Average the uncalibrated current while the bench holds 0 A, then store the offset."""
        self._zero_cal_sum_as += raw_current_a * dt_s
        self._zero_cal_elapsed_s += dt_s
        if self._zero_cal_elapsed_s >= ZERO_CAL_DURATION_S:
            offset = self._zero_cal_sum_as / self._zero_cal_elapsed_s
            if abs(offset) > ZERO_CAL_MAX_OFFSET_A:
                self.zero_cal_status = RoutineStatus.FAILED
            else:
                bms.current_offset_calibration_a = offset
                self.zero_cal_status = RoutineStatus.DONE_OK

    def abort_on_reset(self) -> None:
        if self.zero_cal_status is RoutineStatus.RUNNING:
            self.zero_cal_status = RoutineStatus.FAILED
