"""The charge control law: what the supply is told in every control interval of a charge.

A charge step asks for a pack voltage (CV) and a current (CC). What the supply actually gets is
the least the pack allows, re-decided at every sample (battery.md §2.1-§2.4, §6.1):

1. **Pack CV**: ``min(step voltage, BMS CVL)``; the supply regulates it itself.
2. **BMS CCL** (0x351): never command more than the BMS allows. CCL = 0 pauses the charge with
   the output off; it resumes once CCL is back to ``resume_ccl_a``.
3. **Cell-limited CV**: a discrete integral loop on the highest cell,
   ``I_cell = I_measured + gain x (cell_limit_v - cell_v_max)``. With ``gain = 1 / R_loop`` and
   ``R_loop`` several times the cell's real 1-s resistance, each interval removes a fraction of the
   error, so the loop neither overshoots nor oscillates even with one interval of measurement
   delay (see docs/procedures.md, "Charge control law"). It starts from the *measured* current,
   so it does not wind up while the supply is in pack CV or following CCL.

Increases are slew-limited (``slew_a`` per interval: a soft start, and no hunting between the loop
and the BMS's own CCL taper); decreases act in the interval that asks for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Highest cell's charge limit when a step names none: 3.55 V/cell, the CV voltage of battery.md §2.2
#: (28.4 V / 8), 50 mV under the 3.60 V over-voltage warning of §2.4.
DEFAULT_CELL_LIMIT_V = 3.55
#: Loop gain of the cell-limited CV [A per V of error] = 1 / 2 mOhm. A 200 Ah LFP cell shows about
#: 0.3-0.5 mOhm within 1 s (battery.md §8 ecm: R0 0.25 mOhm, x1.25 at full): 4-6x margin, the
#: margin a one-interval measurement delay needs to stay free of overshoot (docs/procedures.md).
CELL_LOOP_GAIN_A_PER_V = 500.0
#: How far ahead the cell loop looks along the highest cell's rise [control intervals]: the reading
#: is one interval old (CAN broadcast), the new setpoint acts one interval later, and at the top of
#: charge the diffusion polarisation keeps the voltage rising for a while after the current falls.
PREDICTION_INTERVALS = 8.0
#: Smoothing of that rise (exponential, weight of the newest interval): a noisy 1 mV step must not
#: move the current by 4 A, and the loop must not zig-zag on its own delay.
RISE_SMOOTHING = 0.3
#: Measurement noise the loop ignores [V]: the BMS reports cells with 1 mV noise at 1 mV resolution
#: (battery.md §8); inside this band around the limit the current is held, and a rise slower than
#: this per interval is not extrapolated.
NOISE_BAND_V = 0.002
#: CCL below this is "charging not allowed" (0x351 resolution is 0.1 A).
PAUSE_BELOW_CCL_A = 0.1

LimitedBy = Literal["request", "bms_ccl", "cell_cv", "paused"]


@dataclass(frozen=True)
class ChargeRequest:
    """What the step asked for."""

    voltage_v: float
    current_a: float
    cell_limit_v: float = DEFAULT_CELL_LIMIT_V


@dataclass(frozen=True)
class ChargeFeedback:
    """One sample, as the controller needs it. ``None``: the BMS has not broadcast that value."""

    current_a: float             # bench current, + = into the pack
    pack_v: float
    cell_v_max: float | None
    ccl_a: float | None
    cvl_v: float | None


@dataclass(frozen=True)
class ChargeSetpoint:
    """What the supply gets for the next interval."""

    output_on: bool
    voltage_v: float
    current_a: float
    limited_by: LimitedBy
    #: the charge is in its constant-voltage part (pack CV or cell CV): taper ends are meaningful
    cv_phase: bool


class ChargeController:
    """Decides the supply setpoints of one charge step, sample by sample."""

    def __init__(self, request: ChargeRequest, *, gain_a_per_v: float = CELL_LOOP_GAIN_A_PER_V,
                 slew_a: float | None = None, resume_ccl_a: float | None = None) -> None:
        if request.current_a < 0 or request.voltage_v <= 0 or request.cell_limit_v <= 0:
            raise ValueError(f"invalid charge request {request}")
        self.request = request
        self.gain = gain_a_per_v
        # soft start: full current in 20 intervals; never slower than 1 A per interval
        self.slew_a = slew_a if slew_a is not None else max(1.0, 0.05 * request.current_a)
        self.resume_ccl_a = resume_ccl_a if resume_ccl_a is not None else max(1.0, 0.02 * request.current_a)
        self.commanded_a = 0.0
        self.paused = False
        self._last_vmax: float | None = None
        self._rise_v = 0.0

    def first(self, ccl_a: float | None, cvl_v: float | None) -> ChargeSetpoint:
        """Setpoint before any charge current has flowed (the step's first interval)."""
        feedback = ChargeFeedback(current_a=0.0, pack_v=0.0, cell_v_max=None, ccl_a=ccl_a, cvl_v=cvl_v)
        return self.update(feedback)

    def update(self, fb: ChargeFeedback) -> ChargeSetpoint:
        req = self.request
        voltage = min(req.voltage_v, fb.cvl_v) if fb.cvl_v is not None and fb.cvl_v > 0 else req.voltage_v
        if fb.ccl_a is not None:
            threshold = self.resume_ccl_a if self.paused else PAUSE_BELOW_CCL_A
            self.paused = fb.ccl_a < threshold
        if self.paused:
            self.commanded_a = 0.0
            return ChargeSetpoint(False, voltage, 0.0, "paused", cv_phase=False)
        target, limited_by = req.current_a, "request"
        if fb.ccl_a is not None and fb.ccl_a < target:
            target, limited_by = fb.ccl_a, "bms_ccl"
        cell_cv = False
        if fb.cell_v_max is not None:
            # the error ahead: where the highest cell will be when the new setpoint has acted
            if self._last_vmax is not None:
                step_rise = max(0.0, fb.cell_v_max - self._last_vmax)
                self._rise_v += RISE_SMOOTHING * (step_rise - self._rise_v)
            self._last_vmax = fb.cell_v_max
            rise = max(0.0, self._rise_v - NOISE_BAND_V / 4)
            error = req.cell_limit_v - (fb.cell_v_max + PREDICTION_INTERVALS * rise)
            if abs(error) <= NOISE_BAND_V:
                cell_current = self.commanded_a if fb.cell_v_max >= req.cell_limit_v - 0.02 else target
            else:
                cell_current = max(0.0, fb.current_a) + self.gain * (error - NOISE_BAND_V * (1 if error > 0 else -1))
            cell_cv = fb.cell_v_max >= req.cell_limit_v - 0.005
            if cell_current < target:
                target, limited_by = max(0.0, cell_current), "cell_cv"
        if target > self.commanded_a:
            target = min(target, self.commanded_a + self.slew_a)
        self.commanded_a = target
        pack_cv = fb.pack_v >= voltage - 0.1
        return ChargeSetpoint(True, voltage, target, limited_by,  # type: ignore[arg-type]
                              cv_phase=pack_cv or cell_cv or limited_by == "cell_cv")
