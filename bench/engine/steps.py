"""What each step kind does. The engine sequences steps; this module runs one.

Timed steps (rest, charge, discharge, balance, wait_for) set the outputs once, then sample
every control interval until an end condition holds. Instant steps (bms, check, prompt,
set, if, goto, repeat, end) act once on a fresh reading and return.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.engine.charge_control import (
    DEFAULT_CELL_LIMIT_V,
    ChargeController,
    ChargeFeedback,
    ChargeRequest,
    ChargeSetpoint,
)
from bench.engine.limits import LimitMonitor
from bench.engine.sampler import read_bench
from bench.errors import ProcedureError, RunAborted, SafetyTrip
from bench.procedure.quantities import QUANTITY
from bench.record import CheckRecord

if TYPE_CHECKING:
    from bench.engine.runner import Engine

#: battery.md §8 balancing: passive 60 mA at duty 0.8 -> 48 mA average per bleeding cell.
DEFAULT_BLEED_CURRENT_A = 0.060 * 0.8
#: The balance hold first estimates the time it still needs once the cells have settled at the top
#: (30 min), then every 10 min.
BALANCE_ESTIMATE_AFTER_S = 1800.0
BALANCE_ESTIMATE_EVERY_S = 600.0


class _ChargeRegulator:
    """Applies the charge control law (bench.engine.charge_control) to the bench, sample by sample,
    and says in the record when the BMS stops and restarts the charge."""

    def __init__(self, engine: Engine, step: Any, request: ChargeRequest) -> None:
        self.engine = engine
        self.step = step
        self.controller = ChargeController(request)
        self.applied: ChargeSetpoint | None = None

    def start(self) -> None:
        """First interval (and again after a pause): from a soft start, inside the BMS's limits."""
        self.controller = ChargeController(self.controller.request)
        bms = self.engine.bench.adapter.snapshot()
        limits = bms.limits
        ccl = limits.charge_current_a if limits else None
        setpoint = self.controller.first(ccl, limits.charge_voltage_v if limits else None)
        self.applied = None
        self._apply(setpoint, ccl, bms.cell_v_max)

    def regulate(self, env: dict[str, Any]) -> None:
        fb = ChargeFeedback(current_a=float(env["current"]), pack_v=float(env["pack_v"]),
                            cell_v_max=env.get("cell_v_max"), ccl_a=env.get("bms_ccl"),
                            cvl_v=env.get("bms_cvl"))
        setpoint = self.controller.update(fb)
        self._apply(setpoint, fb.ccl_a, fb.cell_v_max)
        env["charge_cv"] = setpoint.cv_phase
        env["charge_paused"] = not setpoint.output_on

    def _apply(self, setpoint: ChargeSetpoint, ccl: float | None, vmax: float | None) -> None:
        bench = self.engine.bench
        previous = self.applied
        if not setpoint.output_on:
            if previous is None or previous.output_on:
                bench.outputs_off()
                self.engine.event("pause", f"{self.step.id}: charge paused with the output off: the BMS "
                                  f"allows no charge current (CCL {_fmt(ccl, 'A')}, highest cell "
                                  f"{_fmt(vmax, 'V', 3)})", data={"limit": "bms_ccl"})
        elif previous is None:
            bench.charge(setpoint.voltage_v, setpoint.current_a)  # the step programs its own protections
        else:
            if not previous.output_on:
                self.engine.event("resume", f"{self.step.id}: charge resumed: the BMS allows "
                                  f"{_fmt(ccl, 'A')} again")
            bench.adjust_charge(setpoint.voltage_v, setpoint.current_a)  # a full charge() after a pause
        self.applied = setpoint


def _fmt(value: Any, unit: str, digits: int = 1) -> str:
    return "?" if value is None else f"{float(value):.{digits}f} {unit}"


class StepExecutor:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.end_reason = ""
        self._step_limits: dict[str, LimitMonitor] = {}
        self._resuming = False

    # -------------------------------------------------------------- entry points
    def on_resume(self) -> str | None:
        """Called before the interrupted step continues; returns a step to restart from, if any."""
        self._resuming = True
        eng = self.engine
        step = eng.steps[eng.state.step_pos or 0]
        policy = getattr(step, "on_resume", None)
        if policy is None:
            return None
        gap = 0.0 if eng.bench.simulated else max(0.0, time.time() - eng.state.written_at)
        if gap <= policy.max_gap_s:
            return None
        eng.event("resume_run", f"step {step.id} cannot continue after {gap:.0f} s "
                  f"(> {policy.max_gap_s:.0f} s): restarting from {policy.restart_from}")
        self._resuming = False
        return str(policy.restart_from)

    def execute(self, step: Any) -> str | None:
        """Run ``step``; return the id of the step to go to, or None for the next one."""
        eng = self.engine
        if not self._resuming:
            eng.state.hold_since = {}
        self._resuming = False
        self.end_reason = "done"
        handler: Callable[[Any, Any], str | None] = getattr(self, f"_do_{step.kind}")
        target = handler(step, step.action)
        if target is None:
            target = getattr(step, "next", None)
        return target

    # -------------------------------------------------------------- timed steps
    def _do_rest(self, step: Any, action: Any) -> str | None:
        duration = getattr(action, "duration", None)

        def builtin(env: dict[str, Any]) -> str | None:
            if duration is not None and env["step_time"] >= float(self._eval(duration, env)) - 1e-9:
                return "duration"
            return None

        return self._timed(step, self.engine.bench.outputs_off, builtin)

    def _do_charge(self, step: Any, action: Any) -> str | None:
        env = self._instant_env()
        request = ChargeRequest(voltage_v=float(self._eval(action.voltage, env)),
                                current_a=float(self._eval(action.current, env)),
                                cell_limit_v=self._cell_limit(action, env))
        regulator = _ChargeRegulator(self.engine, step, request)
        return self._timed(step, regulator.start, None, regulator.regulate)

    def _do_discharge(self, step: Any, action: Any) -> str | None:
        env = self._instant_env()
        bench = self.engine.bench
        cutoff = action.cutoff_v
        cutoff_v = float(self._eval(cutoff, env)) if cutoff is not None else bench.default_cutoff_v()
        if action.mode == "cp":
            power = float(self._eval(action.power, env))
            return self._timed(step, lambda: bench.discharge_cp(power, cutoff_v), None)
        current = float(self._eval(action.current, env))
        return self._timed(step, lambda: bench.discharge_cc(current, cutoff_v), None)

    def _do_balance(self, step: Any, action: Any) -> str | None:
        env = self._instant_env()
        request = ChargeRequest(voltage_v=float(self._eval(action.hold_voltage, env)),
                                current_a=float(self._eval(action.current_limit, env)),
                                cell_limit_v=self._cell_limit(action, env))
        target = float(self._eval(action.target_divergence, env))
        timeout = float(self._eval(action.timeout, env))
        bleed_a = (float(self._eval(action.bleed_current, env)) if action.bleed_current is not None
                   else DEFAULT_BLEED_CURRENT_A)
        regulator = _ChargeRegulator(self.engine, step, request)

        next_estimate = BALANCE_ESTIMATE_AFTER_S

        def builtin(env: dict[str, Any]) -> str | None:
            nonlocal next_estimate
            div = env.get("divergence")
            elapsed = env["step_time"]
            # judged at the CV hold: divergence only shows near full (battery.md §1.6)
            if div is not None and div <= target and elapsed >= 60.0:
                return "balanced"
            if elapsed >= timeout:
                return "timeout"
            if elapsed >= next_estimate:
                # a hold that cannot reach the target in time is ended early: the verdict is the
                # same, the bench hours are not wasted (battery.md §3.3 balancing-time math)
                next_estimate = elapsed + BALANCE_ESTIMATE_EVERY_S
                hours = self._balance_estimate(step, bleed_a)
                if hours is not None and hours * 3600.0 > 1.25 * (timeout - elapsed):
                    return (f"cannot balance in time: about {hours:.0f} h needed at the BMS's bleed, "
                            f"{(timeout - elapsed) / 3600.0:.1f} h left")
            return None

        target_step = self._timed(step, regulator.start, builtin, regulator.regulate)
        if self._balance_estimate(step, bleed_a) is not None:
            vars_ = self.engine.state.vars
            self.engine.event("info", f"{step.id}: about {vars_[f'{step.id}.imbalance_ah']:.2f} Ah between the "
                                      f"highest and lowest cell at the end of the hold: "
                                      f"{vars_[f'{step.id}.hours_needed']:.0f} h at the BMS's "
                                      f"{bleed_a * 1000:.0f} mA bleed")
        return target_step

    def _balance_estimate(self, step: Any, bleed_a: float) -> float | None:
        """Charge still to move between cells and the hours the BMS's bleed needs for it (into the
        step results ``<step>.imbalance_ah`` and ``<step>.hours_needed``; returns the hours)
        (battery.md §3.3: ΔQ_i = (SOC_max - SOC_i) x C; t = ΔQ / (I_bal x duty)), from the cell
        voltages at the end of the hold mapped through the top of the OCV curve: only there does
        a voltage difference say how much charge separates the cells (battery.md §1.6)."""
        eng = self.engine
        reading = eng.last_reading
        cells = list(reading.bms.cell_voltages_v or []) if reading is not None else []
        if not cells:
            return None
        ocv_soc = eng.functions["ocv_soc"]
        socs = [float(ocv_soc(v)) for v in cells]
        imbalance_ah = (max(socs) - min(socs)) / 100.0 * eng.bench.nominal_capacity_ah
        eng.state.vars[f"{step.id}.imbalance_ah"] = imbalance_ah
        hours = imbalance_ah / bleed_a  # Ah / A = h
        eng.state.vars[f"{step.id}.hours_needed"] = hours
        return hours

    def _cell_limit(self, action: Any, env: dict[str, Any]) -> float:
        expr = getattr(action, "cell_limit", None)
        return float(self._eval(expr, env)) if expr is not None else DEFAULT_CELL_LIMIT_V

    def _do_wait_for(self, step: Any, action: Any) -> str | None:
        timeout = action.timeout

        def builtin(env: dict[str, Any]) -> str | None:
            if self._true(action.when, env):
                return "condition met"
            if timeout is not None and env["step_time"] >= float(self._eval(timeout, env)):
                return "timeout"
            return None

        target = self._timed(step, None, builtin)
        if self.end_reason == "timeout":
            on_timeout = getattr(action, "on_timeout", "abort")
            if on_timeout == "abort":
                raise RunAborted(f"step {step.id}: timed out waiting for {action.when.text}")
            if on_timeout != "next":
                return str(on_timeout)
        return target

    def _timed(self, step: Any, configure: Callable[[], None] | None,
               builtin: Callable[[dict[str, Any]], str | None] | None,
               regulate: Callable[[dict[str, Any]], None] | None = None) -> str | None:
        """Set the outputs (``configure``), then sample every control interval: ``regulate``
        re-decides the setpoints from each sample, then limits and end conditions are judged."""
        eng = self.engine
        st = eng.state
        limits = self._step_limits.setdefault(step.id, LimitMonitor(getattr(step, "limits", []) or []))
        if configure is not None:
            configure()
        until = list(getattr(step, "until", []) or [])
        while True:
            env = eng.sample(step, limits)
            if env["__pause"] is not None:
                self._pause(step, env["__pause"], configure, limits)
                continue
            if env["__goto"] is not None:
                self.end_reason = f"limit → {env['__goto']}"
                return str(env["__goto"])
            if regulate is not None:
                regulate(env)
            self._compare(step, env, final=False)
            if builtin is not None and (reason := builtin(env)):
                self.end_reason = reason
                self._compare(step, env, final=True)
                return None
            for i, cond in enumerate(until):
                key = f"{step.id}#{i}"
                if self._true(cond.when, env):
                    since = st.hold_since.setdefault(key, env["t"])
                    if env["t"] - since >= float(cond.hold_s or 0.0) - 1e-9:
                        self.end_reason = cond.reason or cond.when.text
                        self._compare(step, env, final=True)
                        return cond.goto
                else:
                    st.hold_since.pop(key, None)

    def _pause(self, step: Any, breach: Any, configure: Callable[[], None] | None,
               limits: LimitMonitor) -> None:
        eng = self.engine
        limit = breach.limit
        eng.bench.outputs_off()
        eng.event("pause", f"paused with outputs off: {breach.message}", data={"limit": limit.id})
        eng.publish("pause", {"message": breach.message})
        started = eng.clock.now()
        abort_after = getattr(limit, "abort_after_s", None)
        resume_when = getattr(limit, "resume_when", None)
        while True:
            env = eng.sample(step, limits)
            if resume_when is not None and self._true(resume_when, env):
                break
            if resume_when is None and env["__pause"] is None:
                break
            if abort_after is not None and env["t"] - started >= float(abort_after):
                raise SafetyTrip(f"{limit.id}: still paused after {abort_after:.0f} s: {breach.message}")
        eng.event("resume", f"resumed after pause ({limit.id}) of {eng.clock.now() - started:.0f} s")
        eng.publish("resume", {"limit": limit.id})
        if configure is not None:
            configure()

    def _compare(self, step: Any, env: dict[str, Any], *, final: bool) -> None:
        """Tracking checks: value against reference at every N % of reference SOC crossed."""
        for spec in getattr(step, "compare", []) or []:
            ref = self._value(spec.reference, env)
            val = self._value(spec.value, env)
            if ref is None or val is None:
                continue
            every = float(spec.every_ref_soc_pct)
            bucket = math.floor(float(ref) / every)
            marks = self.engine.state.compare_marks
            previous = marks.get(spec.id)
            marks[spec.id] = bucket
            if final or (previous is not None and bucket != previous):
                description = f"{spec.value.text} vs {spec.reference.text}"
                self._add_check(step, spec.id + ("@end" if final else f"@{bucket * every:.0f}%"),
                                description,
                                float(val), getattr(spec, "unit", "%"), None, None, float(ref),
                                float(spec.tolerance), spec.tolerance_kind)

    # -------------------------------------------------------------- instant steps
    def _do_bms(self, step: Any, actions: Any) -> str | None:
        bench = self.engine.bench
        vars_ = self.engine.state.vars
        for item in actions:
            result = bench.bms_action(item)
            for key, value in result.items():
                vars_[key] = value
        self.end_reason = "done"
        return None

    def _do_check(self, step: Any, items: Any) -> str | None:
        env = self._instant_env()
        for item in items:
            value = self._value(item.value, env)
            low = self._value(getattr(item, "low", None), env)
            high = self._value(getattr(item, "high", None), env)
            ref = self._value(getattr(item, "reference", None), env)
            tol = self._value(getattr(item, "tolerance", None), env)
            self._add_check(step, item.id, render(item.description, env) or item.value.text, value,
                            getattr(item, "unit", "") or "", low, high, ref, tol,
                            getattr(item, "tolerance_kind", None), action=self._action_text(item, env))
        self.end_reason = "checked"
        return None

    def _do_prompt(self, step: Any, action: Any) -> str | None:
        eng = self.engine
        choices = list(getattr(action, "choices", None) or ["OK"])
        eng.publish("prompt", {"step": step.id, "message": action.message, "choices": choices,
                               "input": getattr(action, "input", None) and action.input.model_dump()})
        answer = eng.opts.prompter.ask(action.message, choices, getattr(action, "input", None))
        eng.event("operator", f"prompt '{action.message}' answered: {answer}",
                  actor=eng.opts.operator or None)
        eng.publish("prompt_answered", {"step": step.id, "answer": answer})
        eng.state.vars[f"{step.id}.answer"] = answer
        if getattr(action, "input", None) is not None:
            eng.state.vars[action.input.name] = answer
        self.end_reason = f"answered {answer}"
        return None

    def _do_set(self, step: Any, assignments: Any) -> str | None:
        eng = self.engine
        env = self._instant_env()
        for name, expr in assignments.items():
            value = self._eval(expr, env)
            quantity = QUANTITY.get(name)
            if quantity is not None and quantity.settable:
                # the bench's reference moves; the value stays a run variable only where the record
                # reads it (ref_capacity_ah), not where it moves with every sample (ref_soc)
                eng.state.reference.assign(name, float(value), eng.state.throughput.ah)
                if quantity.record_field is not None:
                    eng.state.vars[name] = float(value)
            else:
                eng.state.vars[name] = value
            env[name] = value
        self.end_reason = "set"
        return None

    def _do_if(self, step: Any, action: Any) -> str | None:
        taken = self._true(action.when, self._instant_env())
        self.end_reason = f"{action.when.text} is {taken}"
        return action.then if taken else action.else_

    def _do_goto(self, step: Any, target: Any) -> str | None:
        self.end_reason = "goto"
        return str(target)

    def _do_repeat(self, step: Any, action: Any) -> str | None:
        counts = self.engine.state.repeat_counts
        done = counts.get(step.id, 0)
        if done < int(action.times):
            counts[step.id] = done + 1
            self.end_reason = f"repeat {done + 1}/{action.times}"
            return str(action.goto)
        counts[step.id] = 0
        self.end_reason = "repeats done"
        return None

    def _do_end(self, step: Any, action: Any) -> str | None:
        self.end_reason = "end"
        self.engine.end_run(getattr(action, "verdict", "auto"), getattr(action, "message", "") or "")
        return None

    # -------------------------------------------------------------- helpers
    def _instant_env(self) -> dict[str, Any]:
        eng = self.engine
        reading = read_bench(eng.bench, eng.clock.now())
        step = eng.steps[eng.state.step_pos or 0]
        env = eng.environment(reading, eng.bench.adapter_age_s(reading.bms), step)
        # integrals are those of the last sample; this reading is not logged
        return env

    def _eval(self, expr: Any, env: dict[str, Any]) -> Any:
        try:
            return expr.evaluate(env, self.engine.functions)
        except ProcedureError:
            raise
        except Exception as exc:
            raise ProcedureError(f"{expr.text}: {exc}") from None

    def _value(self, expr: Any, env: dict[str, Any]) -> Any:
        """Value of ``expr``, None when a quantity it reads has no value yet (a BMS value not
        received). Any other failure stops the run: a condition that raises would otherwise be
        false until the step's time-out, hours later (issue 15, point 4)."""
        if expr is None:
            return None
        try:
            return expr.evaluate(env, self.engine.functions)
        except Exception as exc:
            if expr.lacks_value(env):
                return None
            detail = str(exc) if isinstance(exc, ProcedureError) else \
                f"{expr.where()}: {expr.text!r}: {type(exc).__name__}: {exc}"
            raise ProcedureError(f"expression failed: {detail}") from None

    def _true(self, expr: Any, env: dict[str, Any]) -> bool:
        return bool(self._value(expr, env))

    def _action_text(self, item: Any, env: dict[str, Any]) -> str | None:
        """The check's ``action`` for this sample: the text, or the first choice whose ``when`` holds."""
        action = getattr(item, "action", None)
        if action is None:
            return None
        if isinstance(action, str):
            return render(action, env)
        for choice in action:
            if choice.when is None or self._true(choice.when, env):
                return render(choice.text, env)
        return None

    def _add_check(self, step: Any, check_id: str, description: str, value: Any, unit: str,
                   low: Any, high: Any, ref: Any, tol: Any, tol_kind: str | None,
                   action: str | None = None) -> None:
        passed, message, rule = judge(value, low, high, ref, tol, tol_kind)
        eng = self.engine
        full_message = f"{check_id}: {description}: {message}"
        if not passed and action:
            full_message += f" — action: {action}"
        eng.add_check(CheckRecord(
            id=check_id, step_id=step.id, description=description, t_s=eng.clock.now(),
            value=value if isinstance(value, (int, float, str, bool)) or value is None else str(value),
            unit=unit, low=_f(low), high=_f(high), reference=_f(ref), tolerance=_f(tol),
            tolerance_kind=tol_kind if ref is not None else None,  # type: ignore[arg-type]
            passed=passed, decision_rule=rule, message=full_message, action=action))


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^{}]*))?\}")


def render(text: str, env: dict[str, Any]) -> str:
    """``text`` with ``{name}`` / ``{name:.1f}`` replaced by values from ``env`` (unknown names stay)."""
    def one(match: re.Match[str]) -> str:
        name, spec = match.group(1), match.group(2) or ""
        if name not in env or env[name] is None:
            return match.group(0) if name not in env else "?"
        try:
            return format(env[name], spec)
        except (TypeError, ValueError):
            return str(env[name])
    return _PLACEHOLDER.sub(one, text) if "{" in text else text


def judge(value: Any, low: Any, high: Any, ref: Any, tol: Any,
          tol_kind: str | None) -> tuple[bool, str, str]:
    """Decide one check. Returns (passed, message, decision rule)."""
    rule = "simple acceptance: value inside limits; measurement uncertainty not guard-banded"
    if value is None:
        return False, "no value (quantity not available)", rule
    if isinstance(value, bool) and ref is None and low is None and high is None:
        return value, ("true" if value else "false"), rule
    if isinstance(value, str):
        ok = ref is None or str(value) == str(ref)
        return ok, f"{value!r}" + ("" if ok else f" expected {ref!r}"), rule
    v = float(value)
    if ref is not None and tol is not None:
        r = float(ref)
        if tol_kind == "pct":
            err = 100.0 * (v - r) / r if r else math.inf
            ok = abs(err) <= float(tol)
            return ok, f"{v:.4g} vs reference {r:.4g}: {err:+.2f} % (limit ±{tol:g} %)", rule
        err = v - r
        ok = abs(err) <= float(tol)
        return ok, f"{v:.4g} vs reference {r:.4g}: {err:+.3g} (limit ±{tol:g})", rule
    ok = (low is None or v >= float(low)) and (high is None or v <= float(high))
    lo = f"{float(low):g}" if low is not None else "-inf"
    hi = f"{float(high):g}" if high is not None else "+inf"
    return ok, f"{v:.4g} in [{lo}, {hi}]" + ("" if ok else " — out of limits"), rule


def _f(x: Any) -> float | None:
    if x is None or isinstance(x, (str, bool)):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None
