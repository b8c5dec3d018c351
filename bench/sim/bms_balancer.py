"""Passive top balancing of the simulated BMS, its activity log and the extended-balancing routine.

The bleed is modelled as its duty-cycle average (``current x duty``) so the pack model sees a
steady per-cell current and the balancing time follows t = ΔQ / (I_bal x duty) (battery.md §3.3).
"""

from __future__ import annotations

from bench.sim.bms_types import N_CELLS, BalancingLogEntry, RoutineStatus

# battery.md §8 balancing: passive 60 mA, start at max cell >= 3.40 V and delta >= 50 mV,
# stop at delta <= 20 mV, duty 0.8 (measurement interleaving).
BALANCE_CURRENT_A = 0.060
BALANCE_DUTY = 0.8
BALANCE_START_CELL_V = 3.40
BALANCE_START_DELTA_V = 0.050
BALANCE_STOP_DELTA_V = 0.020
# §8 allowed_states [charging_cv, rest_after_full]: the BMS cannot see the charger's mode, so
# "CV" is read as a charge current tapered below 0.1C [A]; "rest after full" as the FC flag set.
CV_TAPER_CURRENT_A = 20.0
CV_TAPER_HYSTERESIS = 1.5
# Only a real discharge (not a noisy zero reading) stops balancing [A].
DISCHARGE_BELOW_A = -1.0
#: Completed sessions kept in the activity log (oldest dropped first) [A].
LOG_CAPACITY = 200
_RUNNING = RoutineStatus.RUNNING  # a module global reads faster than the enum member (every sample)


class Balancer:
    """Decides which cells bleed, keeps the activity log and runs routine 0x0201."""

    def __init__(self, *, stuck: bool) -> None:
        self.stuck = stuck
        self.active_bitmap = 0
        self.bleed_a: list[float] = [0.0] * N_CELLS
        self.log: list[BalancingLogEntry] = []
        self.session: BalancingLogEntry | None = None
        # extended balancing routine (0x0201)
        self.extended_status: RoutineStatus | None = None
        self.extended_target_v = BALANCE_STOP_DELTA_V
        self.extended_deadline_s = 0.0
        self.extended_bitmap = 0
        self.extended_bled_ah: list[float] = [0.0] * N_CELLS

    @property
    def extended_running(self) -> bool:
        return self.extended_status is RoutineStatus.RUNNING

    def update(self, t_s: float, epoch_s: float, dt_s: float, *, cells_v: list[float], vmax: float,
               vmin: float, current_a: float, fully_charged: bool) -> None:
        """One BMS sample with measured cell voltages, their extremes, and current (+ = charge)."""
        if self.active_bitmap:
            self._account(epoch_s, dt_s)
        delta = vmax - vmin
        extended = self.extended_status is _RUNNING
        if extended:
            # Extended balancing: any charge current at the top of charge, down to the target delta.
            allowed = current_a > DISCHARGE_BELOW_A and vmax >= BALANCE_START_CELL_V
            start_delta = stop_delta = self.extended_target_v
            if allowed and delta <= stop_delta:
                self.extended_status = RoutineStatus.DONE_OK
            elif t_s >= self.extended_deadline_s:
                self.extended_status = RoutineStatus.FAILED
        else:
            # Hysteresis on the taper current so a CV current hovering near 20 A does not flicker.
            taper_a = CV_TAPER_CURRENT_A * (CV_TAPER_HYSTERESIS if self.active_bitmap else 1.0)
            allowed = current_a > DISCHARGE_BELOW_A and (fully_charged or 0.0 < current_a <= taper_a)
            start_delta, stop_delta = BALANCE_START_DELTA_V, BALANCE_STOP_DELTA_V
        if self.stuck or not allowed or delta <= stop_delta:
            if self.active_bitmap:
                self._set_bitmap(0, epoch_s)
            return
        if not self.active_bitmap and (vmax < BALANCE_START_CELL_V or delta < start_delta):
            return
        threshold = vmin + stop_delta
        bitmap = 0
        for index, v in enumerate(cells_v):
            if v > threshold:
                bitmap |= 1 << index
        self._set_bitmap(bitmap, epoch_s)

    def _account(self, epoch_s: float, dt_s: float) -> None:
        """Charge bled over the sample that just ended, per cell and per session."""
        ah = BALANCE_CURRENT_A * BALANCE_DUTY * dt_s / 3600.0
        bitmap = self.active_bitmap
        count = 0
        for index in range(N_CELLS):
            if bitmap >> index & 1:
                count += 1
                if self.extended_status is RoutineStatus.RUNNING:
                    self.extended_bled_ah[index] += ah
        if self.extended_status is RoutineStatus.RUNNING:
            self.extended_bitmap |= bitmap
        if self.session is not None:
            self.session.ah_bled += ah * count
            self.session.cells_bitmap |= bitmap
            self.session.end_epoch = epoch_s

    def _set_bitmap(self, bitmap: int, epoch_s: float) -> None:
        if bitmap == self.active_bitmap:
            return
        if bitmap and self.session is None:
            self.session = BalancingLogEntry(epoch_s, epoch_s, bitmap, 0.0)
        elif not bitmap and self.session is not None:
            self.session.end_epoch = epoch_s
            self.log.append(self.session)
            del self.log[:-LOG_CAPACITY]
            self.session = None
        self.active_bitmap = bitmap
        bleed = BALANCE_CURRENT_A * BALANCE_DUTY
        self.bleed_a = [bleed if bitmap >> i & 1 else 0.0 for i in range(N_CELLS)]

    def log_entries(self, now_epoch: float) -> list[BalancingLogEntry]:
        """Completed sessions plus the running one (ending now)."""
        entries = list(self.log)
        if self.session is not None:
            s = self.session
            entries.append(BalancingLogEntry(s.start_epoch, now_epoch, s.cells_bitmap, s.ah_bled))
        return entries

    # -- routine 0x0201 --------------------------------------------------------------------------
    def start_extended(self, t_s: float, target_delta_v: float, timeout_s: float) -> None:
        self.extended_status = RoutineStatus.RUNNING
        self.extended_target_v = target_delta_v
        self.extended_deadline_s = t_s + timeout_s
        self.extended_bitmap = 0
        self.extended_bled_ah = [0.0] * N_CELLS

    def stop_extended(self, epoch_s: float) -> None:
        if self.extended_status is RoutineStatus.RUNNING:
            self.extended_status = RoutineStatus.FAILED
            self._set_bitmap(0, epoch_s)
