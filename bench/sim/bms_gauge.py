"""SOC gauge of the simulated BMS: coulomb counter, full/empty synchronisation, capacity learning.

Everything here works on what the BMS *measures* (its own current with offset and gain error,
its own cell voltages and temperatures) -- never on the pack's true state -- so the estimator
drifts and gets de-calibrated the way a real one does (battery.md §4.1, §4.6).
"""

from __future__ import annotations

from bench.sim.bms_types import (
    DESIGN_CAPACITY_AH,
    GaugeFlags,
    LearnQualification,
    LearnReason,
    RoutineStatus,
)

# battery.md §8 soc_estimator: coulomb counting with an assumed efficiency on charge.
ASSUMED_COULOMBIC_EFFICIENCY = 0.999
# battery.md §8 full_sync / §4.3: cell max >= 3.45 V and |I| < 10 A for 80 s -> SOC 100 %.
FULL_SYNC_CELL_V = 3.45
FULL_SYNC_CURRENT_A = 10.0
FULL_SYNC_DWELL_S = 80.0
# battery.md §8 empty_sync (EDV2-like): cell min <= 2.95 V while discharging below 50 A -> SOC 5 %.
EMPTY_SYNC_CELL_V = 2.95
# battery.md §4.3: CEDV gauges compensate EDV2 for the discharge rate. The rested discharge-branch
# OCV at the 5 % "battery low" point (lfp_ocv_recommended.csv: 3.080 V) minus the firmware's
# estimate of the cell's DC resistance at low SOC (§8 ecm: R0+R1+R2 = 0.5 mOhm x soc_factor 1.4)
# times the current; never below the fixed 2.95 V of §8.
EDV2_OCV_V = 3.080
EDV2_COMPENSATION_OHM = 0.0007
EMPTY_SYNC_CURRENT_A = 50.0
EMPTY_SYNC_SOC = 0.05
# Flag clear points (TI-style hysteresis, [A]): FC clears below 95 %, FD/EDV2 clear above 10 %.
FC_CLEAR_SOC = 0.95
FD_CLEAR_SOC = 0.10
# battery.md §8 learning: armed only within 12 h of a full sync; no charge > 0.01 Ah; 10-40 °C.
LEARN_FULL_SYNC_WITHIN_S = 12 * 3600.0
LEARN_MAX_CHARGE_AH = 0.01
LEARN_TEMP_RANGE_C = (10.0, 40.0)
# A discharge counts as started once 1 Ah has left the pack after arming [A].
LEARN_DISCHARGE_START_AH = 1.0
# battery.md §4.4 (Impedance Track): passed charge must be >= 37 % of design capacity.
LEARN_MIN_PASSED_FRACTION = 0.37
# An explicitly armed learning accepts any plausible value, 50-110 % of design [A]: after a deep
# discharge the stored value may be off by more than §8's 20 % auto-learning limit.
LEARN_PLAUSIBLE_FRACTION = (0.50, 1.10)

_FC, _FD, _ARMED, _VDQ, _EDV2, _LEARN_OK, _LEARN_FAILED = (
    int(f) for f in (GaugeFlags.FULLY_CHARGED, GaugeFlags.FULLY_DISCHARGED, GaugeFlags.LEARNING_ARMED,
                     GaugeFlags.DISCHARGE_QUALIFIED, GaugeFlags.EDV2, GaugeFlags.LEARN_OK,
                     GaugeFlags.LEARN_FAILED))

#: States of an armed learning cycle (a module tuple: read at every sample, enum members read slower)
_LEARNING = (LearnQualification.WAITING_FOR_DISCHARGE, LearnQualification.DISCHARGING)


class SocGauge:
    """Coulomb-counting SOC with synchronisation points and an armed capacity-learning cycle."""

    def __init__(
        self,
        soc_pct: float,
        learned_capacity_ah: float,
        cycle_count: int,
        *,
        learning_inhibited: bool,
        design_capacity_ah: float = DESIGN_CAPACITY_AH,
    ) -> None:
        self.soc = min(1.0, max(0.0, soc_pct / 100.0))
        self.fcc_ah = learned_capacity_ah
        self.design_capacity_ah = design_capacity_ah
        self.cycle_count = cycle_count
        #: GaugeFlags bits as a plain int (enum arithmetic is too slow for the per-sample path).
        self.flags = 0
        self.learning_inhibited = learning_inhibited
        self.last_full_sync_s: float | None = None
        self._full_dwell_s = 0.0
        self._cycle_ah = 0.0
        # capacity-learning routine (0x0202)
        self.learn_state = LearnQualification.NOT_ARMED
        self.learn_status: RoutineStatus | None = None
        self.learn_reason = LearnReason.NONE
        self.learn_result_ah: float | None = None
        self._learn_discharged_ah = 0.0
        self._learn_charged_ah = 0.0

    # -- per-sample update ---------------------------------------------------------------------
    def update(self, t_s: float, dt_s: float, current_a: float, *, vmax: float, vmin: float,
               tmin: float, tmax: float) -> None:
        """One BMS sample: ``current_a`` measured (+ = charge), cell extremes and temperatures."""
        ah = current_a * dt_s / 3600.0
        if ah > 0.0:
            self.soc += ah * ASSUMED_COULOMBIC_EFFICIENCY / self.fcc_ah
            self.soc = min(self.soc, 1.0)
        elif ah < 0.0:
            self.soc += ah / self.fcc_ah
            self.soc = max(self.soc, 0.0)
            self._cycle_ah -= ah
            if self._cycle_ah >= self.fcc_ah:
                self._cycle_ah -= self.fcc_ah
                self.cycle_count += 1

        if self.learn_state in _LEARNING:
            self._learning_step(ah, tmin, tmax)

        if vmax >= FULL_SYNC_CELL_V and -FULL_SYNC_CURRENT_A < current_a < FULL_SYNC_CURRENT_A:
            self._full_dwell_s += dt_s
            if self._full_dwell_s >= FULL_SYNC_DWELL_S:
                self.sync_full(t_s)
        else:
            self._full_dwell_s = 0.0
        edv2 = max(EMPTY_SYNC_CELL_V, EDV2_OCV_V + current_a * EDV2_COMPENSATION_OHM)
        if (vmin <= edv2 and -EMPTY_SYNC_CURRENT_A < current_a < 0.0
                and not self.flags & _FD):
            self._sync_empty()

        if self.flags & _FC and self.soc < FC_CLEAR_SOC:
            self.flags &= ~_FC
        if self.flags & _FD and self.soc > FD_CLEAR_SOC:
            self.flags &= ~(_FD | _EDV2)

    def sync_full(self, t_s: float) -> None:
        self.soc = 1.0
        self.flags |= _FC
        self.last_full_sync_s = t_s

    def _sync_empty(self) -> None:
        self.soc = EMPTY_SYNC_SOC
        self.flags |= _FD | _EDV2
        if self.learn_state is LearnQualification.DISCHARGING:
            self._finish_learning()

    # -- capacity learning ---------------------------------------------------------------------
    def arm_learning(self, t_s: float) -> None:
        """Routine 0x0202 start: qualified only within 12 h of a full sync (battery.md §8)."""
        self._learn_discharged_ah = self._learn_charged_ah = 0.0
        self.learn_result_ah = None
        self.flags &= ~(_LEARN_OK | _LEARN_FAILED | _VDQ)
        if self.last_full_sync_s is None or t_s - self.last_full_sync_s > LEARN_FULL_SYNC_WITHIN_S:
            self._fail_learning(LearnReason.NO_RECENT_FULL_SYNC)
            return
        self.learn_state = LearnQualification.WAITING_FOR_DISCHARGE
        self.learn_status = RoutineStatus.RUNNING
        self.learn_reason = LearnReason.NONE
        self.flags |= _ARMED

    def abort_learning(self, reason: LearnReason) -> None:
        if self.learn_state in (LearnQualification.WAITING_FOR_DISCHARGE, LearnQualification.DISCHARGING):
            self._fail_learning(reason)

    def _learning_step(self, ah: float, tmin: float, tmax: float) -> None:
        if self.learn_state is LearnQualification.WAITING_FOR_DISCHARGE:
            if ah > 0.0:  # still topping up: the qualified discharge starts after the last charge
                self._learn_discharged_ah = 0.0
            else:
                self._learn_discharged_ah -= ah
                if self._learn_discharged_ah >= LEARN_DISCHARGE_START_AH:
                    self.learn_state = LearnQualification.DISCHARGING
                    self.flags |= _VDQ
            return
        if ah > 0.0:
            self._learn_charged_ah += ah
            if self._learn_charged_ah > LEARN_MAX_CHARGE_AH:
                self._fail_learning(LearnReason.CHARGE_DURING_DISCHARGE)
                return
        else:
            self._learn_discharged_ah -= ah
        if not (LEARN_TEMP_RANGE_C[0] <= tmin and tmax <= LEARN_TEMP_RANGE_C[1]):
            self._fail_learning(LearnReason.TEMPERATURE_OUT_OF_RANGE)

    def _finish_learning(self) -> None:
        passed_ah = self._learn_discharged_ah
        if self.learning_inhibited:
            self._fail_learning(LearnReason.LEARNING_INHIBITED)
            return
        if passed_ah < LEARN_MIN_PASSED_FRACTION * self.design_capacity_ah:
            self._fail_learning(LearnReason.DISCHARGE_TOO_SHORT)
            return
        # battery.md §4.4: learned FCC = Ah removed / (1 - battery-low 5 %) when stopped at empty sync.
        learned = passed_ah / (1.0 - EMPTY_SYNC_SOC)
        self.learn_result_ah = learned
        low, high = LEARN_PLAUSIBLE_FRACTION
        if not low * self.design_capacity_ah <= learned <= high * self.design_capacity_ah:
            self._fail_learning(LearnReason.CAPACITY_IMPLAUSIBLE)
            return
        self.fcc_ah = learned
        self.learn_state = LearnQualification.LEARNED
        self.learn_status = RoutineStatus.DONE_OK
        self.learn_reason = LearnReason.NONE
        self.flags &= ~(_ARMED | _VDQ)
        self.flags |= _LEARN_OK

    def _fail_learning(self, reason: LearnReason) -> None:
        self.learn_state = LearnQualification.DISQUALIFIED
        self.learn_status = RoutineStatus.FAILED
        self.learn_reason = reason
        self.flags &= ~(_ARMED | _VDQ)
        self.flags |= _LEARN_FAILED

    def reset_learned_data(self) -> None:
        """Routine 0x0205: back to the design capacity, learning status forgotten."""
        self.fcc_ah = self.design_capacity_ah
        self.learn_state = LearnQualification.NOT_ARMED
        self.learn_status = None
        self.learn_reason = LearnReason.NONE
        self.learn_result_ah = None
        self.flags &= ~(_ARMED | _VDQ
                        | _LEARN_OK | _LEARN_FAILED)

    # -- persistence (battery.md §8 persistence: periodic EEPROM snapshot) ---------------------
    def snapshot(self) -> tuple[float, int, float]:
        return (self.soc, self.cycle_count, self._cycle_ah)

    def restore(self, snapshot: tuple[float, int, float]) -> None:
        self.soc, self.cycle_count, self._cycle_ah = snapshot
        self._full_dwell_s = 0.0
