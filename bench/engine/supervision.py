"""Per-sample supervision of the bench against the BMS: the engine's layer of defence in depth.

The procedure's limits judge the pack; this module judges the *bench*, with tolerances from
the station file (``supervision:``, :class:`bench.config.SupervisionConfig`) because they
depend on the wiring and the instruments, not on the procedure:

* **Supervised CAN.** No BMS frame for ``can_stale_s`` or the adapter reporting bus-off is a
  silent BMS: the declared action (pause with outputs off, resumed when frames return; or
  abort), and abort when it lasts ``can_abort_after_s``.
* **Contactor open.** The BMS's own flag, or the pack voltage collapsing at the terminals
  (below ``collapse_fraction`` x the pack minimum): outputs off and abort in the same control
  interval, since the instruments are then driving an open circuit. The reason names the cause
  first: the BMS's alarms and active DTCs, read in that interval (bench.engine.bms_cause).
* **Setpoints followed.** The bench current against what the bench last commanded (off: no
  current; CC discharge: the setpoint, unless the pack is at the load's cut-off; charge: at most
  the current limit). An instrument that ignores a setpoint or an off command is a fault
  (scenario fault ``setpoint_ignored``): abort naming the command and the measurement.
* **Cross-checked sensors.** Bench current vs BMS current, bench pack voltage vs BMS pack
  voltage and vs the sum of the 8 cell voltages. Beyond tolerance: a warning at once; held for
  ``*_hold_s``: abort naming both readings and the difference (a miswired sense lead or a wrong
  shunt would otherwise teach the BMS a wrong capacity over a 20-hour run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.config import PackConfig, StationConfig, SupervisionConfig
from bench.engine.bms_cause import contactor_cause
from bench.engine.journal import RunContext
from bench.engine.port import BenchPort
from bench.engine.values import EnvView, JsonObject, as_float
from bench.errors import SafetyTrip


@dataclass(frozen=True)
class SupervisionLimit:
    """Quacks like a procedure ``Limit`` for the step executor's pause loop."""

    id: str
    message: str
    abort_after_s: float | None = None
    resume_when: None = None  # resume when supervision no longer asks for the pause
    action: str = "pause"


@dataclass(frozen=True)
class SupervisionPause:
    """What supervision returns when it pauses the run (like a limit Breach)."""

    limit: SupervisionLimit
    message: str
    value: float


@dataclass(frozen=True)
class CrossCheck:
    """Two readings of one physical quantity that must agree within a tolerance."""

    id: str
    what: str
    unit: str
    first: str   # environment quantity names
    second: str
    tolerance: Callable[[float, float], float]
    hold_s: float

    def difference(self, env: EnvView) -> tuple[float, float, float] | None:
        a, b = as_float(env.get(self.first)), as_float(env.get(self.second))
        if a is None or b is None:
            return None
        if math.isnan(a) or math.isnan(b):  # an instrument not answering (bench.engine.links)
            return None
        return a, b, a - b

    def describe(self, a: float, b: float, diff: float, limit: float, held_s: float) -> str:
        return (f"{self.id}: {self.what}: {self.first} = {a:.3f} {self.unit} but {self.second} = "
                f"{b:.3f} {self.unit}, differing by {diff:+.3f} {self.unit} (tolerance ±{limit:.3f} "
                f"{self.unit}) for {held_s:.0f} s")


def cross_checks(cfg: SupervisionConfig) -> list[CrossCheck]:
    def current_tol(a: float, b: float) -> float:
        return max(cfg.current_tolerance_a, cfg.current_tolerance_pct / 100.0 * max(abs(a), abs(b)))

    def voltage_tol(a: float, b: float) -> float:
        return cfg.voltage_tolerance_v

    return [
        CrossCheck("current_disagree", "bench and BMS current disagree", "A", "current", "bms_current",
                   current_tol, cfg.current_hold_s),
        CrossCheck("pack_v_disagree", "bench and BMS pack voltage disagree", "V", "pack_v", "bms_pack_v",
                   voltage_tol, cfg.voltage_hold_s),
        CrossCheck("cell_sum_disagree", "bench pack voltage and the sum of the cell voltages disagree",
                   "V", "pack_v", "cell_sum_v", voltage_tol, cfg.voltage_hold_s),
    ]


class Supervisor:
    """Judges one sample; the engine calls :meth:`supervise` after the procedure's limits."""

    def __init__(self, cfg: SupervisionConfig, pack: PackConfig) -> None:
        self.cfg = cfg
        self.collapse_v = cfg.collapse_fraction * pack.pack_v_min
        self._open_noted = False
        self.checks = cross_checks(cfg)
        self._since: dict[str, float] = {}   # check id -> bench time it started disagreeing
        self._warned: set[str] = set()
        self._can_fault_since: float | None = None

    @classmethod
    def for_station(cls, station: StationConfig) -> Supervisor:
        return cls(getattr(station, "supervision", None) or SupervisionConfig(), station.pack)

    def supervise(self, engine: RunContext, env: EnvView, t_s: float) -> SupervisionPause | None:
        """Act on this sample: may raise SafetyTrip (outputs already off); returns the pause a
        silent BMS asks for (None while its frames arrive)."""
        bus_state = _bus_state(engine.bench)
        self._contactor(engine, env)
        can_pause = self._can(engine, env, t_s, bus_state)
        self._setpoint(engine, env, t_s)
        # with the contactor open the terminals are cut off from the cells: nothing to compare
        if can_pause is None and env.get("contactor_closed") is not False:
            self._cross_check(engine, env, t_s)
        else:
            # stale BMS values cannot be compared with fresh bench readings
            self._since.clear()
        return can_pause

    # ---------------------------------------------------------------- contactor
    def _contactor(self, engine: RunContext, env: EnvView) -> None:
        outputs = engine.bench.outputs
        if not (outputs.supply_on or outputs.load_on):
            # Nothing flows: an open contactor is a state, not a hazard. An over-discharged pack
            # arrives with its contactor open on cell under-voltage and recloses for charging only
            # (battery.md §2.4); the precheck judges it, and a charge into it trips below.
            if env.get("contactor_closed") is False and not self._open_noted:
                self._open_noted = True
                cause = contactor_cause(engine.bench.adapter)
                engine.event("warning", f"the BMS reports its contactor open (outputs are off): {cause}",
                             data={"cause": cause})
            elif env.get("contactor_closed") is not False:
                self._open_noted = False
            return
        reason = None
        if env.get("contactor_closed") is False:
            reason = "the BMS opened its contactor"
        pack_v = as_float(env.get("pack_v"))
        if pack_v is not None and pack_v < self.collapse_v:
            reason = (f"pack voltage collapsed at the terminals: pack_v = {pack_v:.2f} V < "
                      f"{self.collapse_v:.1f} V (contactor open or a lead off)")
        if reason is not None:
            engine.end_begins()
            engine.bench.safe_state()  # outputs off first; then ask the BMS why
            cause = contactor_cause(engine.bench.adapter)
            _trip(engine, "contactor_open", f"contactor_open: {cause}; {reason}: immediate stop",
                  outputs_off=True, data={"cause": cause})

    # ---------------------------------------------------------------- CAN
    def _can(self, engine: RunContext, env: EnvView, t_s: float, bus_state: str) -> SupervisionPause | None:
        """None while the BMS is heard; else the pause it asks for (or an abort)."""
        age = as_float(env.get("can_age")) or 0.0
        problem = None
        if bus_state == "bus_off":
            problem = "CAN adapter is bus-off"
        elif age > self.cfg.can_stale_s:
            problem = f"no BMS broadcast for {age:.1f} s (limit {self.cfg.can_stale_s:g} s)"
        if problem is None:
            self._can_fault_since = None
            return None
        since = self._can_fault_since = self._can_fault_since if self._can_fault_since is not None else t_s
        message = f"can_supervision: {problem}"
        if self.cfg.can_action == "abort" or t_s - since >= self.cfg.can_abort_after_s:
            _trip(engine, "can_supervision",
                  message + (f"; still silent after {t_s - since:.0f} s" if self.cfg.can_action == "pause"
                             else ""))
        limit = SupervisionLimit("can_supervision", message, abort_after_s=self.cfg.can_abort_after_s)
        return SupervisionPause(limit, message, age)

    # ---------------------------------------------------------------- setpoints
    def _setpoint(self, engine: RunContext, env: EnvView, t_s: float) -> None:
        commanded = engine.bench.commanded
        current, pack_v = as_float(env.get("current")), as_float(env.get("pack_v"))
        if current is None or pack_v is None:
            return
        cfg = self.cfg
        deviation: str | None = None
        if commanded.kind == "off":
            if abs(current) > cfg.setpoint_tolerance_a:
                deviation = f"outputs commanded off but {current:+.2f} A flows"
        elif commanded.kind == "discharge_cc":
            tolerance = max(cfg.setpoint_tolerance_a, cfg.setpoint_tolerance_pct / 100 * commanded.current_a)
            at_cutoff = pack_v <= commanded.cutoff_v + 0.5
            if not at_cutoff and abs(-current - commanded.current_a) > tolerance:
                deviation = (f"load commanded {commanded.current_a:.2f} A but {-current:.2f} A is "
                             f"measured (tolerance {tolerance:.2f} A)")
        elif commanded.kind == "charge":
            tolerance = max(cfg.setpoint_tolerance_a, cfg.setpoint_tolerance_pct / 100 * commanded.current_a)
            if current > commanded.current_a + tolerance:
                deviation = (f"supply current limit {commanded.current_a:.2f} A but {current:.2f} A is "
                             f"measured (tolerance {tolerance:.2f} A)")
        if deviation is None:
            if self._since:
                self._since.pop("setpoint", None)
            return
        since = self._since.setdefault("setpoint", t_s)
        if t_s - since >= cfg.setpoint_hold_s - 1e-9:
            _trip(engine, "setpoint", f"setpoint: instrument does not follow the bench: {deviation} "
                                      f"for {t_s - since:.0f} s")

    # ---------------------------------------------------------------- cross-checks
    def _cross_check(self, engine: RunContext, env: EnvView, t_s: float) -> None:
        get = env.get
        since_of, warned = self._since, self._warned
        for check in self.checks:
            a, b = get(check.first), get(check.second)
            if a.__class__ is float and b.__class__ is float:  # nearly every sample: no conversions
                if math.isnan(a) or math.isnan(b):  # an instrument not answering (bench.engine.links)
                    continue
                diff = a - b
            else:
                found = check.difference(env)
                if found is None:
                    continue
                a, b, diff = found
            limit = check.tolerance(a, b)
            if abs(diff) <= limit:
                if since_of or warned:  # nearly every sample agrees and nothing is pending
                    since_of.pop(check.id, None)
                    warned.discard(check.id)
                continue
            since = since_of.setdefault(check.id, t_s)
            held = t_s - since
            if held >= check.hold_s - 1e-9:
                _trip(engine, check.id, check.describe(a, b, diff, limit, held))
            if check.id not in self._warned:
                self._warned.add(check.id)
                message = check.describe(a, b, diff, limit, held) + " (warning)"
                engine.event("warning", message, data={"limit": check.id, "value": diff})
                engine.publish("warning", {"message": message})


def _bus_state(bench: BenchPort) -> str:
    state = getattr(bench.adapter, "bus_state", None)
    try:
        return str(state()) if callable(state) else "unknown"
    except Exception:  # a driver that cannot tell is not a bus-off
        return "unknown"


def _trip(engine: RunContext, check_id: str, message: str, *, outputs_off: bool = False,
          data: JsonObject | None = None) -> None:
    """Outputs off in this control interval (unless ``outputs_off``: done already), then abort
    the run with ``message``."""
    engine.end_begins()
    if not outputs_off:
        engine.bench.safe_state()
    engine.event("trip", message, data={"limit": check_id, "action": "abort", **(data or {})})
    engine.publish("trip", {"message": message, "action": "abort"})
    raise SafetyTrip(message)
