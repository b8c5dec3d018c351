"""What each step kind does. The engine sequences steps; this module runs one.

Timed steps (rest, charge, discharge, balance, wait_for) set the outputs once, then sample
every control interval until an end condition holds. Instant steps (bms, check, prompt,
set, if, goto, repeat, end) act once on a fresh reading and return.

The executor sees the run through a :class:`~bench.engine.context.StepContext` and answers each
step with a :class:`~bench.engine.context.StepOutcome`; it does not know the runner.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Literal

from bench.engine.bms_actions import run_bms_action
from bench.engine.charge_control import (
    DEFAULT_CELL_LIMIT_V,
    ChargeController,
    ChargeFeedback,
    ChargeRequest,
    ChargeSetpoint,
)
from bench.engine.context import PauseRequest, RunEnd, Sample, StepContext, StepOutcome
from bench.engine.limits import LimitMonitor
from bench.engine.values import Env, EnvView, Value, as_float, to_float
from bench.errors import ProcedureError, RunAborted, SafetyTrip
from bench.procedure.expr import Expr
from bench.procedure.model import (
    BalanceAction,
    BmsAction,
    ChargeAction,
    CheckItem,
    DischargeAction,
    EndAction,
    IfAction,
    PromptAction,
    RepeatAction,
    RestAction,
    Step,
    WaitForAction,
)
from bench.procedure.quantities import QUANTITY
from bench.record import CheckRecord

ToleranceKind = Literal["abs", "pct"]

#: battery.md §8 balancing: passive 60 mA at duty 0.8 -> 48 mA average per bleeding cell.
DEFAULT_BLEED_CURRENT_A = 0.060 * 0.8
#: The balance hold first estimates the time it still needs once the cells have settled at the top
#: (30 min), then every 10 min.
BALANCE_ESTIMATE_AFTER_S = 1800.0
BALANCE_ESTIMATE_EVERY_S = 600.0


class _ChargeRegulator:
    """Applies the charge control law (bench.engine.charge_control) to the bench, sample by sample,
    and says in the record when the BMS stops and restarts the charge."""

    def __init__(self, engine: StepContext, step: Step, request: ChargeRequest) -> None:
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

    def regulate(self, sample: Sample) -> None:
        env = sample.env
        fb = ChargeFeedback(current_a=sample.reading.current, pack_v=sample.reading.pack_v,
                            cell_v_max=as_float(env.get("cell_v_max")), ccl_a=as_float(env.get("bms_ccl")),
                            cvl_v=as_float(env.get("bms_cvl")))
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
            # the step's request is the ceiling: range and over-current protection are set for it,
            # not for the soft start's first setpoint
            bench.charge(setpoint.voltage_v, setpoint.current_a, up_to_a=self.controller.request.current_a)
        else:
            if not previous.output_on:
                self.engine.event("resume", f"{self.step.id}: charge resumed: the BMS allows "
                                  f"{_fmt(ccl, 'A')} again")
            bench.adjust_charge(setpoint.voltage_v, setpoint.current_a,  # a full charge() after a pause
                                up_to_a=self.controller.request.current_a)
        self.applied = setpoint


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "?" if value is None else f"{float(value):.{digits}f} {unit}"


class StepExecutor:
    def __init__(self, engine: StepContext) -> None:
        self.engine = engine
        self.end_reason = ""
        self._run_end: RunEnd | None = None
        self._step_limits: dict[str, LimitMonitor] = {}
        self._resuming = False

    # -------------------------------------------------------------- entry points
    def on_resume(self, step: Step) -> str | None:
        """Called before the interrupted ``step`` continues; returns a step to restart from, if any."""
        self._resuming = True
        eng = self.engine
        policy = step.on_resume
        if policy is None:
            return None
        gap = 0.0 if eng.bench.simulated else max(0.0, time.time() - eng.state.written_at)
        if gap <= policy.max_gap_s:
            return None
        eng.event("resume_run", f"step {step.id} cannot continue after {gap:.0f} s "
                  f"(> {policy.max_gap_s:.0f} s): restarting from {policy.restart_from}")
        self._resuming = False
        return str(policy.restart_from)

    def execute(self, step: Step) -> StepOutcome:
        """Run ``step``; say where to go next (None: the next one) and why it ended."""
        eng = self.engine
        if not self._resuming:
            eng.state.hold_since = {}
        self._resuming = False
        self.end_reason = "done"
        self._run_end = None
        target = self._dispatch(step)
        if self._run_end is not None:
            return StepOutcome(self.end_reason, None, self._run_end)
        if target is None:
            target = step.next
        return StepOutcome(self.end_reason, target)

    def _dispatch(self, step: Step) -> str | None:
        """The handler of the step's one action (the model guarantees exactly one is set)."""
        if step.rest is not None:
            return self._do_rest(step, step.rest)
        if step.charge is not None:
            return self._do_charge(step, step.charge)
        if step.discharge is not None:
            return self._do_discharge(step, step.discharge)
        if step.balance is not None:
            return self._do_balance(step, step.balance)
        if step.wait_for is not None:
            return self._do_wait_for(step, step.wait_for)
        if step.bms is not None:
            return self._do_bms(step, step.bms)
        if step.check is not None:
            return self._do_check(step, step.check)
        if step.prompt is not None:
            return self._do_prompt(step, step.prompt)
        if step.set is not None:
            return self._do_set(step, step.set)
        if step.if_ is not None:
            return self._do_if(step, step.if_)
        if step.goto is not None:
            return self._do_goto(step, step.goto)
        if step.repeat is not None:
            return self._do_repeat(step, step.repeat)
        if step.end is not None:
            return self._do_end(step, step.end)
        raise ProcedureError(f"step {step.id}: no action")

    # -------------------------------------------------------------- timed steps
    def _do_rest(self, step: Step, action: RestAction) -> str | None:
        duration = action.duration

        def builtin(sample: Sample) -> str | None:
            if duration is not None and sample.step_time >= self._number(duration, sample.env) - 1e-9:
                return "duration"
            return None

        return self._timed(step, self.engine.bench.outputs_off, builtin)

    def _do_charge(self, step: Step, action: ChargeAction) -> str | None:
        env = self._instant_env(step)
        request = ChargeRequest(voltage_v=self._number(action.voltage, env),
                                current_a=self._number(action.current, env),
                                cell_limit_v=self._cell_limit(action.cell_limit, env))
        regulator = _ChargeRegulator(self.engine, step, request)
        return self._timed(step, regulator.start, None, regulator.regulate)

    def _do_discharge(self, step: Step, action: DischargeAction) -> str | None:
        env = self._instant_env(step)
        bench = self.engine.bench
        cutoff = action.cutoff_v
        cutoff_v = self._number(cutoff, env) if cutoff is not None else bench.default_cutoff_v()
        if action.mode == "cp":
            assert action.power is not None  # DischargeAction._setpoints
            power = self._number(action.power, env)
            return self._timed(step, lambda: bench.discharge_cp(power, cutoff_v), None)
        assert action.current is not None  # DischargeAction._setpoints
        current = self._number(action.current, env)
        return self._timed(step, lambda: bench.discharge_cc(current, cutoff_v), None)

    def _do_balance(self, step: Step, action: BalanceAction) -> str | None:
        env = self._instant_env(step)
        request = ChargeRequest(voltage_v=self._number(action.hold_voltage, env),
                                current_a=self._number(action.current_limit, env),
                                cell_limit_v=self._cell_limit(action.cell_limit, env))
        target = self._number(action.target_divergence, env)
        timeout = self._number(action.timeout, env)
        bleed_a = (self._number(action.bleed_current, env) if action.bleed_current is not None
                   else DEFAULT_BLEED_CURRENT_A)
        regulator = _ChargeRegulator(self.engine, step, request)

        next_estimate = BALANCE_ESTIMATE_AFTER_S

        def builtin(sample: Sample) -> str | None:
            nonlocal next_estimate
            div = as_float(sample.env.get("divergence"))
            elapsed = sample.step_time
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

    def _balance_estimate(self, step: Step, bleed_a: float) -> float | None:
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

    def _cell_limit(self, expr: Expr | None, env: Env) -> float:
        return self._number(expr, env) if expr is not None else DEFAULT_CELL_LIMIT_V

    def _do_wait_for(self, step: Step, action: WaitForAction) -> str | None:
        timeout = action.timeout

        def builtin(sample: Sample) -> str | None:
            if self._true(action.when, sample.env):
                return "condition met"
            if timeout is not None and sample.step_time >= self._number(timeout, sample.env):
                return "timeout"
            return None

        target = self._timed(step, None, builtin)
        if self.end_reason == "timeout":
            on_timeout = action.on_timeout
            if on_timeout == "abort":
                raise RunAborted(f"step {step.id}: timed out waiting for {action.when.text}")
            if on_timeout != "next":
                return str(on_timeout)
        return target

    def _timed(self, step: Step, configure: Callable[[], None] | None,
               builtin: Callable[[Sample], str | None] | None,
               regulate: Callable[[Sample], None] | None = None) -> str | None:
        """Set the outputs (``configure``), then sample every control interval: ``regulate``
        re-decides the setpoints from each sample, then limits and end conditions are judged."""
        eng = self.engine
        st = eng.state
        limits = self._step_limits.get(step.id)
        if limits is None:  # one monitor per step, kept across re-entries (its hold timers, its precomputed limits)
            limits = self._step_limits[step.id] = LimitMonitor(step.limits)
        if configure is not None:
            configure()
        # each condition's hold key built once, not every sample
        until = [(f"{step.id}#{i}", cond) for i, cond in enumerate(step.until)]
        compares = bool(step.compare)
        functions = eng.functions
        while True:
            sample = eng.sample(step, limits)
            env = sample.env
            if sample.pause is not None:
                self._pause(step, sample.pause, configure, limits)
                continue
            if sample.goto is not None:
                self.end_reason = f"limit → {sample.goto}"
                return sample.goto
            if regulate is not None:
                regulate(sample)
            if compares:
                self._compare(step, env, final=False)
            if builtin is not None and (reason := builtin(sample)):
                self.end_reason = reason
                self._compare(step, env, final=True)
                return None
            for key, cond in until:
                try:  # the usual sample: evaluated once, directly (every control interval: issue 17)
                    holds = bool(cond.when.evaluate(env, functions))
                except Exception:  # judged again as every condition is: no value yet, or an error
                    holds = self._true(cond.when, env)
                if holds:
                    since = st.hold_since.setdefault(key, sample.t)
                    if sample.t - since >= float(cond.hold_s or 0.0) - 1e-9:
                        self.end_reason = cond.reason or cond.when.text
                        self._compare(step, env, final=True)
                        return cond.goto
                elif st.hold_since:  # nearly every sample: no condition holding
                    st.hold_since.pop(key, None)

    def _pause(self, step: Step, breach: PauseRequest, configure: Callable[[], None] | None,
               limits: LimitMonitor) -> None:
        eng = self.engine
        limit = breach.limit
        eng.bench.outputs_off()
        eng.event("pause", f"paused with outputs off: {breach.message}", data={"limit": limit.id})
        eng.publish("pause", {"message": breach.message})
        started = eng.now()
        abort_after = limit.abort_after_s
        resume_when = limit.resume_when
        while True:
            sample = eng.sample(step, limits)
            if resume_when is not None and self._true(resume_when, sample.env):
                break
            if resume_when is None and sample.pause is None:
                break
            if abort_after is not None and sample.t - started >= float(abort_after):
                raise SafetyTrip(f"{limit.id}: still paused after {abort_after:.0f} s: {breach.message}")
        eng.event("resume", f"resumed after pause ({limit.id}) of {eng.now() - started:.0f} s")
        eng.publish("resume", {"limit": limit.id})
        if configure is not None:
            configure()

    def _compare(self, step: Step, env: Env, *, final: bool) -> None:
        """Tracking checks: value against reference at every N % of reference SOC crossed."""
        for spec in step.compare:
            ref = self._value(spec.reference, env)
            val = self._value(spec.value, env)
            if ref is None or val is None:
                continue
            every = float(spec.every_ref_soc_pct)
            bucket = math.floor(to_float(ref) / every)
            marks = self.engine.state.compare_marks
            previous = marks.get(spec.id)
            marks[spec.id] = bucket
            if final or (previous is not None and bucket != previous):
                description = f"{spec.value.text} vs {spec.reference.text}"
                self._add_check(step, spec.id + ("@end" if final else f"@{bucket * every:.0f}%"),
                                description,
                                to_float(val), "%", None, None, to_float(ref),
                                float(spec.tolerance), spec.tolerance_kind)

    # -------------------------------------------------------------- instant steps
    def _do_bms(self, step: Step, actions: list[BmsAction]) -> str | None:
        adapter = self.engine.bench.adapter
        vars_ = self.engine.state.vars
        for item in actions:
            result = run_bms_action(adapter, item)
            for key, value in result.items():
                vars_[key] = value
        self.end_reason = "done"
        return None

    def _do_check(self, step: Step, items: list[CheckItem]) -> str | None:
        env = self._instant_env(step)
        for item in items:
            value = self._value(item.value, env)
            low = self._value(item.low, env)
            high = self._value(item.high, env)
            ref = self._value(item.reference, env)
            tol = self._value(item.tolerance, env)
            self._add_check(step, item.id, render(item.description, env) or item.value.text, value,
                            item.unit or "", low, high, ref, tol,
                            item.tolerance_kind, action=self._action_text(item, env))
        self.end_reason = "checked"
        return None

    def _do_prompt(self, step: Step, action: PromptAction) -> str | None:
        eng = self.engine
        choices = list(action.choices or ["OK"])
        eng.publish("prompt", {"step": step.id, "message": action.message, "choices": choices,
                               "input": action.input.model_dump() if action.input is not None else None})
        answer = eng.prompter.ask(action.message, choices, action.input)
        eng.event("operator", f"prompt '{action.message}' answered: {answer}",
                  actor=eng.operator or None)
        eng.publish("prompt_answered", {"step": step.id, "answer": answer})
        eng.state.vars[f"{step.id}.answer"] = answer
        if action.input is not None:
            eng.state.vars[action.input.name] = answer
        self.end_reason = f"answered {answer}"
        return None

    def _do_set(self, step: Step, assignments: dict[str, Expr]) -> str | None:
        eng = self.engine
        env = self._instant_env(step)
        for name, expr in assignments.items():
            value = self._eval(expr, env)
            quantity = QUANTITY.get(name)
            if quantity is not None and quantity.settable:
                # the bench's reference moves; the value stays a run variable only where the record
                # reads it (ref_capacity_ah), not where it moves with every sample (ref_soc)
                eng.state.reference.assign(name, to_float(value), eng.state.throughput.ah)
                if quantity.record_field is not None:
                    eng.state.vars[name] = to_float(value)
            else:
                eng.state.vars[name] = value
            env[name] = value
        self.end_reason = "set"
        return None

    def _do_if(self, step: Step, action: IfAction) -> str | None:
        taken = self._true(action.when, self._instant_env(step))
        self.end_reason = f"{action.when.text} is {taken}"
        return action.then if taken else action.else_

    def _do_goto(self, step: Step, target: str) -> str | None:
        self.end_reason = "goto"
        return str(target)

    def _do_repeat(self, step: Step, action: RepeatAction) -> str | None:
        counts = self.engine.state.repeat_counts
        done = counts.get(step.id, 0)
        if done < int(action.times):
            counts[step.id] = done + 1
            self.end_reason = f"repeat {done + 1}/{action.times}"
            return str(action.goto)
        counts[step.id] = 0
        self.end_reason = "repeats done"
        return None

    def _do_end(self, step: Step, action: EndAction) -> str | None:
        self.end_reason = "end"
        self._run_end = RunEnd(action.verdict, action.message or "")
        return None

    # -------------------------------------------------------------- helpers
    def _instant_env(self, step: Step) -> Env:
        return self.engine.instant_env(step)

    def _eval(self, expr: Expr, env: EnvView) -> Value:
        try:
            value: Value = expr.evaluate(env, self.engine.functions)
        except ProcedureError:
            raise
        except Exception as exc:
            raise ProcedureError(f"{expr.text}: {exc}") from None
        return value

    def _number(self, expr: Expr, env: EnvView) -> float:
        return to_float(self._eval(expr, env))

    def _value(self, expr: Expr | None, env: EnvView) -> Value:
        """Value of ``expr``, None when a quantity it reads has no value yet (a BMS value not
        received). Any other failure stops the run: a condition that raises would otherwise be
        false until the step's time-out, hours later (issue 15, point 4)."""
        if expr is None:
            return None
        try:
            value: Value = expr.evaluate(env, self.engine.functions)
        except Exception as exc:
            if expr.lacks_value(env):
                return None
            detail = str(exc) if isinstance(exc, ProcedureError) else \
                f"{expr.where()}: {expr.text!r}: {type(exc).__name__}: {exc}"
            raise ProcedureError(f"expression failed: {detail}") from None
        return value

    def _true(self, expr: Expr, env: EnvView) -> bool:
        return bool(self._value(expr, env))

    def _action_text(self, item: CheckItem, env: EnvView) -> str | None:
        """The check's ``action`` for this sample: the text, or the first choice whose ``when`` holds."""
        action = item.action
        if action is None:
            return None
        if isinstance(action, str):
            return render(action, env)
        for choice in action:
            if choice.when is None or self._true(choice.when, env):
                return render(choice.text, env)
        return None

    def _add_check(self, step: Step, check_id: str, description: str, value: Value, unit: str,
                   low: Value, high: Value, ref: Value, tol: Value, tol_kind: ToleranceKind | None,
                   action: str | None = None) -> None:
        passed, message, rule = judge(value, low, high, ref, tol, tol_kind)
        eng = self.engine
        full_message = f"{check_id}: {description}: {message}"
        if not passed and action:
            full_message += f" — action: {action}"
        eng.add_check(CheckRecord(
            id=check_id, step_id=step.id, description=description, t_s=eng.now(),
            value=value if isinstance(value, (int, float, str, bool)) or value is None else str(value),
            unit=unit, low=_f(low), high=_f(high), reference=_f(ref), tolerance=_f(tol),
            tolerance_kind=tol_kind if ref is not None else None,
            passed=passed, decision_rule=rule, message=full_message, action=action))


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^{}]*))?\}")


def render(text: str, env: EnvView) -> str:
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


def judge(value: Value, low: Value, high: Value, ref: Value, tol: Value,
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
    v = to_float(value)
    if ref is not None and tol is not None:
        r = to_float(ref)
        if tol_kind == "pct":
            err = 100.0 * (v - r) / r if r else math.inf
            ok = abs(err) <= to_float(tol)
            return ok, f"{v:.4g} vs reference {r:.4g}: {err:+.2f} % (limit ±{tol:g} %)", rule
        err = v - r
        ok = abs(err) <= to_float(tol)
        return ok, f"{v:.4g} vs reference {r:.4g}: {err:+.3g} (limit ±{tol:g})", rule
    ok = (low is None or v >= to_float(low)) and (high is None or v <= to_float(high))
    lo = f"{to_float(low):g}" if low is not None else "-inf"
    hi = f"{to_float(high):g}" if high is not None else "+inf"
    return ok, f"{v:.4g} in [{lo}, {hi}]" + ("" if ok else " — out of limits"), rule


def _f(x: Value) -> float | None:
    if x is None or isinstance(x, (str, bool)):
        return None
    try:
        return to_float(x)
    except (TypeError, ValueError):
        return None
