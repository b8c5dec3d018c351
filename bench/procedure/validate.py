"""Semantic checks of a procedure, beyond the schema: nothing here touches an instrument.

Checks (every problem is reported, each located as ``file:line:column``):

* step ids unique; every jump target (next, goto, if, repeat, until/limit goto, wait_for
  on_timeout) names a step;
* every name in every expression is a runtime quantity, a parameter, a variable set by an
  earlier step (``set``, ``bms read into``, routine ``into``, prompt input) or a result of an
  existing step; units agree (``pack_v > 3A`` is an error); conditions are conditions;
* constant setpoints (after parameter defaults/overrides and C-rate resolution) lie inside the
  pack's limits (battery.md §2.1/§2.2) and the station's instrument ranges;
* steps can end: a charge/discharge/rest step needs an end condition, and an end condition
  that the step's own setpoints make impossible (pack_v above the charge voltage) is an error;
* values of a known type are used as such: text (prompt answers, ASCII and enumerated DIDs,
  routine status, DTC codes) and lists (multi-value DIDs) are not computed with, ordered or
  compared with a number; nothing is divided by a constant zero. At run time these would raise
  and abort the run (issue 15, point 4).

Callers go through :func:`bench.procedure.loader.load` (schema, ``--param`` overrides, then these
checks, once); this module imports the model and is imported by nothing in it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from bench.config import InstrumentRanges, PackConfig, StationConfig, instrument_ranges
from bench.errors import InputError
from bench.procedure.expr import Binary, Boolean, Call, Expr, Name, Node, Number, Unary, fold_node
from bench.procedure.model import (
    PROMPT_RESULT,
    SELF_ENDING_ACTIONS,
    STEP_RESULTS,
    BalanceAction,
    BmsRead,
    BmsReadDtcs,
    BmsRoutine,
    ChargeAction,
    CheckItem,
    DischargeAction,
    Limit,
    Procedure,
    Step,
)
from bench.procedure.quantities import SAMPLE_UNITS, SETTABLE, STATION_UNITS
from bench.procedure.units import describe, parse_unit_name
from bench.yamlio import PathKey
from drivers.uds_map import default_uds_map


def check_semantics(procedure: Procedure, station: StationConfig | None) -> tuple[list[InputError], list[str]]:
    """Every semantic problem of a parsed procedure (parameter overrides already applied), checked
    against ``station``'s pack and instrument ranges (None: the default pack, no range checks),
    and the notes (checks that could not be made). Entry point: :func:`bench.procedure.loader.load`."""
    checker = _Checker(procedure, station)
    errors = checker.run()
    return errors, list(dict.fromkeys(checker.notes))


# ---------------------------------------------------------------------------------------------


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_ALWAYS_INSTRUMENTS = ("supply", "load")


class _Checker:
    def __init__(self, procedure: Procedure, station: StationConfig | None) -> None:
        self.procedure = procedure
        self.station = station
        self.pack: PackConfig = station.pack if station is not None else PackConfig()
        self.errors: list[InputError] = []
        self.notes: list[str] = []
        self.step_ids = {step.id for step in procedure.steps}
        #: position of each step (the first of a duplicated id), for jumps backwards and forwards
        self.step_pos = {step_id: index for index, step_id in reversed(list(enumerate(procedure.step_ids())))}
        self.name_dims: dict[str, str | None] = dict(SAMPLE_UNITS)  # the one table's runtime names
        for step in procedure.steps:
            for suffix, dim in STEP_RESULTS.items():
                self.name_dims[f"{step.id}.{suffix}"] = dim
            if step.prompt is not None:
                self.name_dims[f"{step.id}.{PROMPT_RESULT}"] = None
        for name, parameter in procedure.parameters.items():
            self.name_dims[name] = parse_unit_name(parameter.unit) if parameter.unit else None
        self.constants = self._constants()
        self.uds = _uds_names()
        self.did_kinds = _did_kinds()
        # names whose values are not numbers: "text" or "list" (see _check_value_types)
        # (a prompt's answer is the chosen text, or the typed value when it has an input)
        self.kinds: dict[str, str] = {
            f"{step.id}.{PROMPT_RESULT}": "text" for step in procedure.steps
            if step.prompt is not None and (step.prompt.input is None or step.prompt.input.type == "text")}

    # -- helpers ---------------------------------------------------------------------------
    def error_at(self, path: PathKey, message: str) -> None:
        self.errors.append(self.procedure.error(path, message))

    def _constants(self) -> dict[str, Any]:
        """Values known before the run: capacity, instrument ranges, foldable parameters."""
        env: dict[str, Any] = {"capacity_nominal": self.pack.nominal_capacity_ah}
        if self.station is not None:
            for role in _ALWAYS_INSTRUMENTS:
                ranges = instrument_ranges(getattr(self.station, role))
                if ranges is None:
                    self.notes.append(f"{role} ranges unknown (no 'ranges' in the station, none from the "
                                      f"driver registry): {role} range checks skipped")
                else:
                    env.update(_range_names(role, ranges))
        else:
            self.notes.append("no station given: instrument range checks skipped (pack limits checked)")
        for name, parameter in self.procedure.parameters.items():
            value = parameter.default.fold(env)
            if value is not None:
                env[name] = value
        return env

    # -- the checks --------------------------------------------------------------------------
    def run(self) -> list[InputError]:
        self._check_ids()
        self._check_endless_loops()
        self._check_parameters()
        for index, limit in enumerate(self.procedure.safety):
            self._check_limit(limit, ("safety", index), self.name_dims, set())
        defined: set[str] = set()      # variables set by earlier steps
        prefixes: set[str] = set()     # into-prefixes of earlier steps
        for index, step in enumerate(self.procedure.steps):
            scope = _Scope(self.name_dims, defined, prefixes)
            self._check_step(step, ("steps", index), scope)
            defined |= scope.new_names
            prefixes |= scope.new_prefixes
        return self.errors

    def _check_ids(self) -> None:
        seen: set[str] = set()
        for index, step in enumerate(self.procedure.steps):
            if step.id in seen:
                self.error_at(("steps", index, "id"), f"duplicate step id {step.id!r}")
            seen.add(step.id)
        if not self.procedure.steps:
            return
        self._unique_ids(self.procedure.safety, ("safety",), "safety limit")

    def _check_endless_loops(self) -> None:
        """A cycle of steps that each have exactly one way out (no condition, limit, branch, count or
        end anywhere on it) runs for ever: report it at the jump that closes it."""
        steps = self.procedure.steps
        ids = self.procedure.step_ids()
        only_exit: dict[str, str | None] = {}
        for index, step in enumerate(steps):
            following = ids[index + 1] if index + 1 < len(ids) else None
            branches = (step.kind in ("if", "repeat", "end", "wait_for")
                        or any(c.goto for c in step.until) or any(lim.goto for lim in step.limits)
                        or step.retry is not None or step.on_fail != "continue")
            if branches:
                only_exit[step.id] = None
            elif step.kind == "goto":
                only_exit[step.id] = str(step.action)
            else:
                only_exit[step.id] = step.next or following
        for step in steps:
            seen = [step.id]
            current = only_exit.get(step.id)
            while current is not None and current not in seen and current in only_exit:
                seen.append(current)
                current = only_exit.get(current)
            if current == step.id and step.id == min(seen, key=self.step_pos.__getitem__):
                jump_index = self.step_pos[seen[-1]]
                key = "goto" if steps[jump_index].kind == "goto" else "next"
                self.error_at(("steps", jump_index, key), "steps " + " -> ".join([*seen, step.id])
                              + " loop for ever: nothing on the way can end or leave the loop")

    def _unique_ids(self, items: list[Any], path: PathKey, what: str) -> None:
        seen: set[str] = set()
        for index, item in enumerate(items):
            if item.id in seen:
                self.error_at((*path, index, "id"), f"duplicate {what} id {item.id!r}")
            seen.add(item.id)

    def _check_parameters(self) -> None:
        earlier: dict[str, str | None] = dict(STATION_UNITS)
        for name, parameter in self.procedure.parameters.items():
            path = ("parameters", name)
            if parameter.unit and parse_unit_name(parameter.unit) is None:
                self.error_at((*path, "unit"), f"unknown unit {parameter.unit!r}")
            scope = _Scope(earlier, set(), set())
            self._check_expr(parameter.default, scope, expected=parse_unit_name(parameter.unit))
            earlier[name] = self.name_dims[name]

    def _target(self, target: str | None, path: PathKey, *, extra: tuple[str, ...] = ()) -> None:
        if target is None or target in extra or target in self.step_ids:
            return
        self.error_at(path, f"unknown step {target!r}{did_you_mean(target, self.step_ids)}")

    def _check_expr(self, expr: Expr | None, scope: _Scope, *, expected: str | None = None,
                    condition: bool = False, what: str = "") -> None:
        if expr is None:
            return
        for name, offset in expr.name_offsets():
            if not scope.knows(name):
                hint = did_you_mean(name, scope.all_names())
                self.errors.append(expr.error(f"unknown name {name!r}{hint} in {expr.text!r}", offset))
        dim, problems = expr.dimension(scope.dims)
        for offset, problem in problems:
            self.errors.append(expr.error(f"{expr.text!r} {problem}", offset))
        self._check_value_types(expr)
        label = f"{what} " if what else ""
        if condition:
            if expr.kind == "num" or (isinstance(expr.node, Name) and dim is not None):
                self.errors.append(expr.error(f"{label}{expr.text!r} is a number; a condition (e.g. a "
                                              "comparison) is needed here"))
        elif expr.kind == "bool":
            self.errors.append(expr.error(f"{label}{expr.text!r} is a condition; a number is needed here"))
        elif expected is not None and dim is not None and dim != expected:
            self.errors.append(expr.error(f"{label}{expr.text!r} is {describe(dim)}; "
                                          f"expected {describe(expected)}"))

    def _check_value_types(self, expr: Expr) -> None:
        """What would raise at run time and is known now: text or lists computed with, ordered or
        compared with a number, and division by a constant zero."""
        def kind_of(node: Node) -> str | None:
            return self.kinds.get(node.name) if isinstance(node, Name) else None

        for node in expr.nodes():
            operands: tuple[Node, ...] = ()
            if isinstance(node, Binary) and node.op in ("+", "-", "*", "/", "<", "<=", ">", ">="):
                operands = (node.left, node.right)
                denominator = fold_node(node.right, self.constants) if node.op == "/" else None
                if isinstance(denominator, (int, float)) and not isinstance(denominator, bool) \
                        and denominator == 0:
                    self.errors.append(expr.error(f"{expr.text!r} divides by zero", node.right.offset))
            elif isinstance(node, Binary) and node.op in ("==", "!="):
                for side, other in ((node.left, node.right), (node.right, node.left)):
                    if kind_of(side) == "text" and isinstance(other, Number):
                        self.errors.append(expr.error(
                            f"{expr.text!r}: {side.name} is text and is never equal to a number "  # type: ignore[attr-defined]
                            f"(compare with a quoted string)", side.offset))
            elif isinstance(node, Unary) and node.op == "-":
                operands = (node.operand,)
            elif isinstance(node, Call):
                operands = node.args
            for operand in operands:
                kind = kind_of(operand)
                if kind is not None:
                    self.errors.append(expr.error(
                        f"{expr.text!r}: {operand.name} is {'text' if kind == 'text' else 'a list'}; "  # type: ignore[attr-defined]
                        "it cannot be computed with or ordered (only == and != compare text)", operand.offset))

    def _check_limit(self, limit: Limit, path: PathKey, dims: Mapping[str, str | None],
                     defined: set[str]) -> None:
        scope = _Scope(dims, defined, set())
        if not scope.knows(limit.quantity):
            self.error_at((*path, "quantity"), f"unknown quantity {limit.quantity!r}"
                          f"{did_you_mean(limit.quantity, scope.all_names())}")
        unit = dims.get(limit.quantity)
        for key in ("trip_above", "trip_below", "warn_above", "warn_below"):
            self._check_expr(getattr(limit, key), scope, expected=unit, what=key)
        self._check_expr(limit.resume_when, scope, condition=True, what="resume_when")
        self._check_expr(limit.when, scope, condition=True, what="when")
        self._target(limit.goto, (*path, "goto"))
        self._check_limit_against_pack(limit)

    def _check_limit_against_pack(self, limit: Limit) -> None:
        """A trip level beyond the pack's absolute limits would never protect it (battery.md §2.1)."""
        pack = self.pack
        bounds = {
            "cell_v_max": (pack.cell_v_max_abs, "above", "cell_v_max_abs"),
            "cell_v_min": (pack.cell_v_min_abs, "below", "cell_v_min_abs"),
            "pack_v": (pack.pack_v_max, "above", "cells x cell_v_max_abs"),
        }
        if limit.quantity not in bounds:
            return
        bound, side, name = bounds[limit.quantity]
        expr = limit.trip_above if side == "above" else limit.trip_below
        value = expr.fold(self.constants) if expr is not None else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or expr is None:
            return
        if (side == "above" and value > bound + 1e-9) or (side == "below" and value < bound - 1e-9):
            self.errors.append(expr.error(
                f"trip_{side} {value:g} is beyond the pack's absolute limit {bound:g} "
                f"({name}, battery.md §2.1): the limit would never protect the pack"))

    def _check_step(self, step: Step, path: PathKey, scope: _Scope) -> None:
        self._target(step.next, (*path, "next"))
        if step.on_resume is not None:
            self._target(step.on_resume.restart_from, (*path, "on_resume", "restart_from"))
        self._unique_ids(step.limits, (*path, "limits"), "limit")
        self._unique_ids(step.compare, (*path, "compare"), "compare")
        for index, limit in enumerate(step.limits):
            self._check_limit(limit, (*path, "limits", index), scope.dims, scope.defined)
        self._check_action(step, path, scope)
        self._check_failure_policy(step, path)
        for index, condition in enumerate(step.until):
            self._check_expr(condition.when, scope, condition=True, what="until")
            self._target(condition.goto, (*path, "until", index, "goto"))
        for spec in step.compare:
            self._check_expr(spec.value, scope)
            self._check_expr(spec.reference, scope)
        self._check_ends(step, path)

    # -- actions -------------------------------------------------------------------------------
    def _check_action(self, step: Step, path: PathKey, scope: _Scope) -> None:
        kind = step.kind
        action = step.action
        here = (*path, kind)
        if isinstance(action, ChargeAction):
            self._check_expr(action.voltage, scope, expected="V", what="charge voltage")
            self._check_expr(action.current, scope, expected="A", what="charge current")
            self._check_charge_setpoints(action.voltage, action.current, "charge", step.id)
            self._check_cell_limit(action.cell_limit, scope)
        elif isinstance(action, DischargeAction):
            self._check_discharge(action, scope, here)
        elif isinstance(action, BalanceAction):
            self._check_expr(action.hold_voltage, scope, expected="V", what="hold_voltage")
            self._check_expr(action.current_limit, scope, expected="A", what="current_limit")
            self._check_expr(action.target_divergence, scope, expected="V", what="target_divergence")
            self._check_expr(action.timeout, scope, expected="s", what="timeout")
            self._check_charge_setpoints(action.hold_voltage, action.current_limit, "balance", step.id)
            self._positive(action.target_divergence, "target_divergence")
            self._positive(action.timeout, "timeout")
            self._check_cell_limit(action.cell_limit, scope)
            self._check_expr(action.bleed_current, scope, expected="A", what="bleed_current")
            self._positive(action.bleed_current, "bleed_current")
        elif kind == "rest":
            self._check_expr(action.duration, scope, expected="s", what="duration")
            self._positive(action.duration, "duration")
        elif kind == "bms":
            self._check_bms(action, here, scope)
        elif kind == "check":
            for item in action:
                self._check_item(item, scope)
        elif kind == "prompt":
            self._check_expr(action.timeout, scope, expected="s", what="timeout")
            if action.input is not None:
                scope.define(action.input.name)
                if action.input.type == "text":
                    self.kinds[action.input.name] = "text"
        elif kind == "wait_for":
            self._check_expr(action.when, scope, condition=True, what="wait_for")
            self._check_expr(action.timeout, scope, expected="s", what="timeout")
            self._target(action.on_timeout, (*here, "on_timeout"), extra=("abort", "next"))
        elif kind == "set":
            for name, expr in action.items():
                self._check_expr(expr, scope)
                if name in SAMPLE_UNITS and name not in SETTABLE:
                    # the next sample would overwrite it: the set would silently do nothing
                    self.error_at((*here, name), f"{name!r} is measured on every sample and cannot be set "
                                  f"(settable: {', '.join(sorted(SETTABLE))})")
                scope.define(name)
        elif kind == "if":
            self._check_expr(action.when, scope, condition=True, what="if")
            self._target(action.then, (*here, "then"))
            self._target(action.else_, (*here, "else"))
        elif kind == "goto":
            self._target(action, here)
        elif kind == "repeat":
            self._target(action.goto, (*here, "goto"))

    def _check_cell_limit(self, expr: Expr | None, scope: _Scope) -> None:
        self._check_expr(expr, scope, expected="V", what="cell_limit")
        self._positive(expr, "cell_limit")
        self._at_most(expr, "cell_limit", "V", [
            (self.pack.cell_v_max_abs, f"the cell's absolute maximum {self.pack.cell_v_max_abs:g} V "
                                       "(battery.md §2.1)")])

    def _check_failure_policy(self, step: Step, path: PathKey) -> None:
        """``on_fail`` and ``retry`` name steps, and cannot loop for ever (a backward ``goto`` on
        failure repeats as long as the check keeps failing: that is what ``retry`` bounds)."""
        index = self.step_pos[step.id]
        target = step.on_fail_goto
        if target is not None:
            self._target(target, (*path, "on_fail"))
            if target in self.step_pos and self.step_pos[target] <= index:
                self.error_at((*path, "on_fail"), f"on_fail: goto {target} jumps back: it would repeat for "
                              "ever while the check keeps failing; use 'retry: {times: N, from: "
                              f"{target}}}' to repeat a bounded number of times")
        if step.retry is not None:
            first = step.retry.from_
            self._target(first, (*path, "retry", "from"))
            if first in self.step_pos and self.step_pos[first] > index:
                self.error_at((*path, "retry", "from"), f"retry from {first!r}: the step comes after "
                              f"{step.id!r}; a retry runs an earlier group of steps again")

    def _check_discharge(self, action: DischargeAction, scope: _Scope, path: PathKey = ()) -> None:
        pack = self.pack
        self._check_instrument_cutoff(path)
        self._check_expr(action.current, scope, expected="A", what="discharge current")
        self._check_expr(action.power, scope, expected="W", what="discharge power")
        self._check_expr(action.cutoff_v, scope, expected="V", what="cutoff_v")
        self._at_most(action.current, "discharge current", "A", [
            (pack.max_discharge_current_a, "the pack's max discharge current (battery.md §2.2)"),
            (self.constants.get("load.current_max"), "the load's current range")])
        self._at_most(action.power, "discharge power", "W", [
            (self.constants.get("load.power_max"), "the load's power range")])
        self._within_load_power(action.current)
        self._positive(action.current, "discharge current")
        self._positive(action.power, "discharge power")
        cutoff = self._fold(action.cutoff_v)
        if cutoff is not None and action.cutoff_v is not None and cutoff < pack.pack_v_min - 1e-9:
            self.errors.append(action.cutoff_v.error(
                f"cutoff_v {cutoff:g} V is below the pack's minimum {pack.pack_v_min:g} V "
                f"({pack.cells_in_series} x {pack.cell_v_min_abs:g} V, battery.md §2.1)"))
        self._at_most(action.cutoff_v, "cutoff_v", "V", [
            (pack.pack_v_max, "the pack's maximum voltage"),
            (self.constants.get("load.voltage_max"), "the load's voltage range")])

    def _within_load_power(self, current: Expr | None) -> None:
        """A CC discharge the load cannot dissipate: at the pack's maximum voltage the current must
        stay inside the load's power rating, or the load falls short of the setpoint and the run
        aborts on it (issue 15, point 6). The pack's maximum is the worst case the step can meet."""
        amps = self._fold(current)
        rating = self.constants.get("load.power_max")
        if amps is None or current is None or rating is None:
            return
        volts = self.pack.pack_v_max
        if amps * volts > float(rating) + 1e-9:
            self.errors.append(current.error(
                f"discharge current {amps:g} A at the pack's maximum {volts:g} V is {amps * volts:g} W, "
                f"beyond the load's power rating {float(rating):g} W: at most {float(rating) / volts:.4g} A"))

    def _check_instrument_cutoff(self, path: PathKey) -> None:
        """A discharge must be ended by the load itself if the controller dies (issue: defence in
        depth): refuse it when the station's load family cannot enforce an under-voltage cut-off
        and no watchdog covers the bench."""
        if self.station is None:
            return
        try:
            # lazy: as in bench.config.instrument_ranges, only a check against a station loads the
            # driver tables (and pyvisa with them)
            from drivers.registry import driver_class

            capabilities = driver_class(self.station.load.family).family.capabilities
        except Exception:  # unknown family: the station check reports it
            return
        if capabilities.can("uvp") or self.station.watchdog.enabled:
            return
        self.error_at(
            path, f"the load family {self.station.load.family!r} cannot enforce an under-voltage cut-off "
                  "and the station has no watchdog: nothing would end this discharge if the controller died")

    def _check_charge_setpoints(self, voltage: Expr, current: Expr, what: str, step_id: str) -> None:
        pack = self.pack
        self._at_most(voltage, f"{what} voltage", "V", [
            (pack.pack_v_max, f"the pack's maximum {pack.pack_v_max:g} V ({pack.cells_in_series} x "
                              f"{pack.cell_v_max_abs:g} V, battery.md §2.1)"),
            (self.constants.get("supply.voltage_max"), "the supply's voltage range")])
        self._at_most(current, f"{what} current", "A", [
            (pack.max_charge_current_a, "the pack's max charge current (battery.md §2.2)"),
            (self.constants.get("supply.current_max"), "the supply's current range")])
        self._positive(voltage, f"{what} voltage")
        self._positive(current, f"{what} current")
        v = self._fold(voltage)
        i = self._fold(current)
        power_max = self.constants.get("supply.power_max")
        if v is not None and i is not None and power_max is not None and v * i > power_max + 1e-9:
            self.notes.append(f"step {step_id}: {what} {v:g} V x {i:g} A = {v * i:g} W exceeds the supply's "
                              f"{power_max:g} W: the supply will limit power")

    def _fold(self, expr: Expr | None) -> float | None:
        if expr is None:
            return None
        value = expr.fold(self.constants)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    def _at_most(self, expr: Expr | None, what: str, unit: str, bounds: list[tuple[Any, str]]) -> None:
        value = self._fold(expr)
        if value is None or expr is None:
            return
        for bound, description in bounds:
            if bound is not None and value > float(bound) + 1e-9:
                self.errors.append(expr.error(f"{what} {value:g} {unit} exceeds {description}: "
                                              f"at most {float(bound):g} {unit}"))
                return

    def _positive(self, expr: Expr | None, what: str) -> None:
        value = self._fold(expr)
        if value is not None and expr is not None and value <= 0:
            self.errors.append(expr.error(f"{what} must be > 0, got {value:g}"))

    def _check_bms(self, actions: list[Any], path: PathKey, scope: _Scope) -> None:
        for index, action in enumerate(actions):
            here = (*path, index)
            if isinstance(action, BmsRoutine):
                call = action.routine
                if self.uds is not None and call.name not in self.uds[1]:
                    known = ", ".join(self.uds[1])
                    self.error_at((*here, "routine", "name"), f"unknown routine {call.name!r}"
                                  f"{did_you_mean(call.name, self.uds[1])} (UDS map: {known})")
                if call.into:
                    scope.define_prefix(call.into)
                self.kinds[f"{call.into or call.name}.status"] = "text"
            elif isinstance(action, BmsRead):
                for k, did in enumerate(action.read):
                    if self.uds is not None and did not in self.uds[0]:
                        self.error_at((*here, "read", k),
                                      f"unknown DID {did!r}{did_you_mean(did, self.uds[0])}")
                    name = f"{action.into}.{did}" if action.into else did
                    scope.define(name)
                    scope.define_prefix(name)  # multi-field DIDs: <name>.<field>
                    for suffix, value_kind in self.did_kinds.get(did, {}).items():
                        self.kinds[name + suffix] = value_kind
            elif isinstance(action, BmsReadDtcs):
                if action.read_dtcs.into:
                    scope.define_prefix(action.read_dtcs.into)
                self.kinds[f"{action.read_dtcs.into or 'dtcs'}.codes"] = "text"

    def _check_item(self, item: CheckItem, scope: _Scope) -> None:
        if isinstance(item.action, list):
            for choice in item.action:
                self._check_expr(choice.when, scope, condition=True, what=f"check {item.id} action when")
        expected = parse_unit_name(item.unit) if item.unit else None
        value_dim, _ = item.value.dimension(scope.dims)
        expected = expected or value_dim
        self._check_expr(item.value, scope, expected=expected, what=f"check {item.id}")
        for key in ("low", "high", "reference"):
            self._check_expr(getattr(item, key), scope, expected=expected, what=f"check {item.id} {key}")
        self._check_expr(item.tolerance, scope,
                         expected=expected if item.tolerance_kind == "abs" else None,
                         what=f"check {item.id} tolerance")

    # -- can the step end? ------------------------------------------------------------------
    def _check_ends(self, step: Step, path: PathKey) -> None:
        kind = step.kind
        if kind in SELF_ENDING_ACTIONS:
            return
        if kind == "rest" and step.action.duration is not None:
            return
        if not step.until:
            self.error_at((*path, kind), f"step {step.id!r} never ends: a {kind} step needs an 'until' "
                                         + ("or a 'duration'" if kind == "rest" else "end condition"))
            return
        upper, lower = self._bounds(step)
        reachable = 0
        for condition in step.until:
            reason = _impossible(condition.when.node, upper, lower, self.constants)
            if reason is None:
                reachable += 1
            else:
                self.errors.append(condition.when.error(f"end condition {condition.when.text!r} can never "
                                                        f"be true: {reason}"))
        if reachable == 0:
            self.error_at((*path, "until"), f"step {step.id!r} never ends: none of its end conditions "
                                            "can become true")

    def _bounds(self, step: Step) -> tuple[dict[str, tuple[float, str]], dict[str, tuple[float, str]]]:
        """What the step's own setpoints guarantee: name -> (bound, why)."""
        upper: dict[str, tuple[float, str]] = {}
        lower: dict[str, tuple[float, str]] = {}
        cells = self.pack.cells_in_series
        action = step.action
        if isinstance(action, (ChargeAction, BalanceAction)):
            voltage_expr = action.voltage if isinstance(action, ChargeAction) else action.hold_voltage
            current_expr = action.current if isinstance(action, ChargeAction) else action.current_limit
            v = self._fold(voltage_expr)
            if v is not None:
                why = f"the supply holds the pack at {v:g} V at most"
                upper.update({"pack_v": (v, why), "cell_v_max": (v, why),
                              "cell_v_min": (v / cells, why), "cell_v_mean": (v / cells, why)})
            i = self._fold(current_expr)
            if i is not None:
                why = f"the supply delivers {i:g} A at most"
                upper.update({"current": (i, why), "abs_current": (i, why)})
        elif isinstance(action, DischargeAction):
            cutoff = self._fold(action.cutoff_v) if action.cutoff_v is not None else self.pack.pack_v_min
            if cutoff is not None:
                why = f"the load stops at its {cutoff:g} V cut-off"
                lower.update({"pack_v": (cutoff, why), "cell_v_max": (cutoff / cells, why)})
            i = self._fold(action.current)
            if i is not None:
                upper["abs_current"] = (i, f"the load sinks {i:g} A at most")
                lower["current"] = (-i, f"the load sinks {i:g} A at most")
        elif step.kind == "rest":
            upper["abs_current"] = (0.0, "outputs are off")
        return upper, lower


class _Scope:
    """Names visible to one step's expressions."""

    def __init__(self, dims: Mapping[str, str | None], defined: set[str], prefixes: set[str]) -> None:
        self.base = dims
        self.defined = set(defined)
        self.prefixes = set(prefixes)
        self.new_names: set[str] = set()
        self.new_prefixes: set[str] = set()

    @property
    def dims(self) -> Mapping[str, str | None]:
        return self.base

    def knows(self, name: str) -> bool:
        if name in self.base or name in self.defined:
            return True
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)

    def define(self, name: str) -> None:
        self.defined.add(name)
        self.new_names.add(name)

    def define_prefix(self, prefix: str) -> None:
        self.prefixes.add(prefix)
        self.new_prefixes.add(prefix)

    def all_names(self) -> list[str]:
        return [*self.base, *self.defined, *self.prefixes]


def _range_names(role: str, ranges: InstrumentRanges) -> dict[str, float]:
    return {f"{role}.voltage_max": ranges.voltage_max_v, f"{role}.current_max": ranges.current_max_a,
            f"{role}.power_max": ranges.power_max_w}


def _uds_names() -> tuple[list[str], list[str]] | None:
    """(DID names, routine names) of the repository's UDS map, or None if it is not available."""
    try:
        uds = default_uds_map()
    except (InputError, OSError):
        return None
    return [d.name for d in uds.dids], [r.name for r in uds.routines]


def _did_kinds() -> dict[str, dict[str, str]]:
    """DID name -> {suffix: "text" | "list"} for the non-numeric values a read produces
    (bench/engine/bms_actions.py): suffix "" is the DID's own variable (the single field's value,
    or the text of all fields for a multi-field DID), ".<field>" a field of a multi-field DID."""
    try:
        uds = default_uds_map()
    except (InputError, OSError):
        return {}
    kinds: dict[str, dict[str, str]] = {}
    for did in uds.dids:
        fields: dict[str, str] = {}
        for spec in did.fields:
            if spec.type == "ascii" or spec.enum is not None:
                fields[spec.name] = "text"
            elif spec.count > 1 or spec.bits is not None:
                fields[spec.name] = "list"
        if len(did.fields) == 1 and did.records is None:
            kinds[did.name] = {"": fields[did.fields[0].name]} if fields else {}
        else:
            kinds[did.name] = {"": "text", **{f".{name}": kind for name, kind in fields.items()}}
    return kinds


_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _impossible(node: Node, upper: Mapping[str, tuple[float, str]], lower: Mapping[str, tuple[float, str]],
                constants: Mapping[str, Any]) -> str | None:
    """Why the condition ``node`` can never hold given the bounds, or None if it might."""
    if isinstance(node, Boolean):
        return None if node.value else "it is always false"
    if not isinstance(node, Binary):
        return None
    if node.op == "and":
        return (_impossible(node.left, upper, lower, constants)
                or _impossible(node.right, upper, lower, constants))
    if node.op == "or":
        left = _impossible(node.left, upper, lower, constants)
        right = _impossible(node.right, upper, lower, constants)
        return f"{left}; and {right}" if left and right else None
    if node.op not in _FLIPPED:
        return None
    if isinstance(node.left, Name):
        name, op, other = node.left.name, node.op, node.right
    elif isinstance(node.right, Name):
        name, op, other = node.right.name, _FLIPPED[node.op], node.left
    else:
        return None
    value = fold_node(other, constants)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if op in (">", ">=") and name in upper:
        bound, why = upper[name]
        if value > bound + 1e-9 or (op == ">" and value >= bound - 1e-9):
            return f"{name} cannot exceed {bound:g} ({why})"
    if op in ("<", "<=") and name in lower:
        bound, why = lower[name]
        if value < bound - 1e-9 or (op == "<" and value <= bound + 1e-9):
            return f"{name} cannot go below {bound:g} ({why})"
    return None
