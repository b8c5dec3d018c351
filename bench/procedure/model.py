"""The YAML procedure model: steps, end conditions, limits, checks, parameters.

Every model forbids unknown keys and mirrors the YAML one to one (no restructuring
validators), so a path in the model is a path in the file and every error and every
expression can be located as ``file:line:column``. The vocabulary follows battery.md §9
(cycler-style steps: action + end conditions + limits, global safety limits, checks).

``parse_procedure`` only checks the schema; :func:`bench.procedure.loader.load` applies parameter
overrides and runs the semantic checks of :mod:`bench.procedure.validate` (names, targets,
setpoints against the pack and the station's ranges). This module imports neither.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bench.errors import ConfigError, InputError, InputErrors
from bench.procedure.expr import Expr
from bench.yamlio import LocatedData, PathKey, load_yaml, read_input, validation_errors

# ---------------------------------------------------------------------------------------------
# Runtime quantities (names the engine provides on every sample) are declared in the one table,
# bench.procedure.quantities.

#: ``<step_id>.<suffix>``: results of a step that has run (dimension or None).
STEP_RESULTS: dict[str, str | None] = {
    "ah": "Ah", "wh": "Wh", "duration": "s", "ah_discharged": "Ah", "ah_charged": "Ah",
    "wh_discharged": "Wh", "wh_charged": "Wh",
    # balance steps: charge still to move between cells at the end, and the hours the BMS's bleed needs
    "imbalance_ah": "Ah", "hours_needed": None,
}
#: ``<step_id>.answer``: the operator's answer to a prompt step.
PROMPT_RESULT = "answer"

#: Step action keys as written in YAML, in documentation order.
ACTION_KEYS: tuple[str, ...] = (
    "rest", "charge", "discharge", "balance", "bms", "check", "prompt", "wait_for", "set", "if",
    "goto", "repeat", "end",
)
#: Actions that finish on their own (the others need an ``until``).
SELF_ENDING_ACTIONS = frozenset(ACTION_KEYS) - {"rest", "charge", "discharge"}

# ---------------------------------------------------------------------------------------------


def _identifier(value: str) -> str:
    if not value.isidentifier() or not value.isascii():
        raise PydanticCustomError("identifier", "'{value}' is not an identifier (letters, digits and _, "
                                  "not starting with a digit)", {"value": value})
    return value


def _var_name(value: str) -> str:
    for part in value.split("."):
        _identifier(part)
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
VarName = Annotated[str, AfterValidator(_var_name)]  # identifiers joined by dots


def _problem(message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("procedure", message, ctx or None)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Parameter(_Model):
    """A procedure parameter; ``default`` is an expression, overridable with ``--param k=v``."""

    default: Expr
    description: str = ""
    unit: str = ""
    _overridden: bool = PrivateAttr(default=False)

    @property
    def overridden(self) -> bool:
        """True when ``default`` holds a value given on the command line."""
        return self._overridden


class Limit(_Model):
    """A limit judged on every sample (global ``safety``) or during one step (``limits``)."""

    id: Identifier
    quantity: str
    trip_above: Expr | None = None
    trip_below: Expr | None = None
    warn_above: Expr | None = None
    warn_below: Expr | None = None
    hold_s: float = Field(default=0.0, ge=0)
    action: Literal["abort", "pause", "goto"] = "abort"
    goto: str | None = None
    resume_when: Expr | None = None
    abort_after_s: float | None = Field(default=None, gt=0)
    when: Expr | None = Field(default=None, description="judge the limit only while this holds "
                              "(e.g. cell under-voltage only while discharging)")
    message: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Limit:
        if not any((self.trip_above, self.trip_below, self.warn_above, self.warn_below)):
            raise _problem("a limit needs trip_above, trip_below, warn_above or warn_below")
        if self.action == "goto" and not self.goto:
            raise _problem("action 'goto' needs a 'goto: <step id>'")
        if self.action != "goto" and self.goto:
            raise _problem("'goto' is only used with action: goto")
        if self.action != "pause" and (self.resume_when or self.abort_after_s):
            raise _problem("resume_when and abort_after_s are only used with action: pause")
        return self


class EndCondition(_Model):
    """``until`` entry: the step ends when ``when`` has been true for ``hold_s`` (first wins)."""

    when: Expr
    hold_s: float = Field(default=0.0, ge=0)
    goto: str | None = None
    reason: str | None = None


class CompareSpec(_Model):
    """Tracking check during a step: |value - reference| within tolerance every N % of ref SOC."""

    id: Identifier
    value: Expr
    reference: Expr
    tolerance: float = Field(gt=0)
    tolerance_kind: Literal["abs", "pct"] = "abs"
    every_ref_soc_pct: float = Field(default=10.0, gt=0)


class RecordHints(_Model):
    """Engine hints for what a step does to the run's bookkeeping."""

    ref_soc_anchor: float | None = Field(
        default=None, ge=0, le=100, description="set the reference SOC to this value (%) when the step ends")


class ResumePolicy(_Model):
    """What ``bench resume`` does when a run was interrupted inside this step.

    A step whose physics does not survive an interruption (a capacity-learning discharge: the BMS
    saw the pack rest) restarts from ``restart_from`` when the pack was left alone longer than
    ``max_gap_s`` of real time between the last checkpoint and the resume. With the embedded
    simulator the pack's state is restored with the checkpoint, so no time has passed for it.
    """

    max_gap_s: float = Field(default=0.0, ge=0, description="longest interruption the step survives")
    restart_from: str = Field(description="step to restart from after a longer interruption")


# -- actions ------------------------------------------------------------------------------------


class RestAction(_Model):
    """Outputs off. ``duration`` is shorthand for an end condition ``step_time >= duration``."""

    duration: Expr | None = None


class ChargeAction(_Model):
    """Supply on, load off. A supply always gets both setpoints: in ``cc`` the voltage is the
    compliance ceiling, in ``cv`` the current is the limit; ``mode`` says which one regulates.
    In every control interval the current is also held under the BMS's CCL and lowered to keep
    the highest cell at ``cell_limit`` (bench.engine.charge_control)."""

    mode: Literal["cc", "cv", "cc_cv"]
    current: Expr
    voltage: Expr
    cell_limit: Expr | None = Field(default=None, description="highest cell's charge limit "
                                    "(default 3.55 V: battery.md §2.2)")


class DischargeAction(_Model):
    """Load on, supply off. ``cutoff_v``: the load's own under-voltage cut-off (default:
    cells x pack.cell_v_min_abs)."""

    mode: Literal["cc", "cp"]
    current: Expr | None = None
    power: Expr | None = None
    cutoff_v: Expr | None = None

    @model_validator(mode="after")
    def _setpoints(self) -> DischargeAction:
        if self.mode == "cc" and (self.current is None or self.power is not None):
            raise _problem("discharge mode cc needs 'current' (and no 'power')")
        if self.mode == "cp" and (self.power is None or self.current is not None):
            raise _problem("discharge mode cp needs 'power' (and no 'current')")
        return self


class BalanceAction(_Model):
    """Supply CV at ``hold_voltage`` while the BMS bleeds; ends when divergence <= target or at
    ``timeout`` (end reason "timeout")."""

    hold_voltage: Expr
    current_limit: Expr
    target_divergence: Expr
    timeout: Expr
    cell_limit: Expr | None = Field(default=None, description="highest cell's charge limit (default 3.55 V)")
    bleed_current: Expr | None = Field(
        default=None, description="the BMS's average bleed current per cell, for the estimate of the "
        "hours still needed (default 48 mA: 60 mA x duty 0.8, battery.md §8 balancing)")


class BmsSession(_Model):
    session: Literal["default", "extended", "programming"]


class BmsUnlock(_Model):
    unlock: int = Field(ge=1, le=0x7F, description="security level (the odd requestSeed sub-function)")


class RoutineCall(_Model):
    name: str = Field(description="routine name from the UDS map (e.g. soc_calibration)")
    action: Literal["start", "stop", "results"]
    option: str | None = Field(default=None, pattern=r"^(0x)?([0-9A-Fa-f]{2})*$", description="hex bytes")
    into: VarName | None = None


class BmsRoutine(_Model):
    routine: RoutineCall


class BmsEcuReset(_Model):
    ecu_reset: Literal["hard", "soft"]


class BmsRead(_Model):
    read: list[str] = Field(min_length=1, description="DID names from the UDS map")
    into: VarName | None = Field(default=None, description="prefix: values become <into>.<did>")


class ReadDtcsSpec(_Model):
    mask: int = Field(default=0xFF, ge=0, le=0xFF)
    into: VarName | None = None


class BmsReadDtcs(_Model):
    read_dtcs: ReadDtcsSpec


class ClearDtcsSpec(_Model):
    group: int = Field(default=0xFFFFFF, ge=0, le=0xFFFFFF)


class BmsClearDtcs(_Model):
    clear_dtcs: ClearDtcsSpec


_BMS_KINDS: dict[str, type[_Model]] = {
    "session": BmsSession, "unlock": BmsUnlock, "routine": BmsRoutine, "ecu_reset": BmsEcuReset,
    "read": BmsRead, "read_dtcs": BmsReadDtcs, "clear_dtcs": BmsClearDtcs,
}


def _bms_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((key for key in value if key in _BMS_KINDS), None)
    return next((kind for kind, cls in _BMS_KINDS.items() if isinstance(value, cls)), None)


BmsAction = Annotated[
    Annotated[BmsSession, Tag("session")] | Annotated[BmsUnlock, Tag("unlock")]
    | Annotated[BmsRoutine, Tag("routine")] | Annotated[BmsEcuReset, Tag("ecu_reset")]
    | Annotated[BmsRead, Tag("read")] | Annotated[BmsReadDtcs, Tag("read_dtcs")]
    | Annotated[BmsClearDtcs, Tag("clear_dtcs")],
    Discriminator(_bms_kind, custom_error_type="bms_action",
                  custom_error_message="a bms action is one of: " + ", ".join(_BMS_KINDS)),
]


class ActionChoice(_Model):
    """One candidate of a check's ``action``: the first whose ``when`` holds is recorded."""

    when: Expr | None = None
    text: str


class CheckItem(_Model):
    """One check -> one CheckRecord: ``low``/``high`` bounds, or ``reference`` +- ``tolerance``.

    ``description`` and ``action`` may name values in braces, ``{cell_v_min_cell}`` or
    ``{balance.hours_needed:.0f}``; ``action`` says what to do when the check fails (a text, or a
    list of ``{when, text}`` choices of which the first that holds is taken)."""

    id: Identifier
    description: str = ""
    value: Expr
    unit: str = ""
    low: Expr | None = None
    high: Expr | None = None
    reference: Expr | None = None
    tolerance: Expr | None = None
    tolerance_kind: Literal["abs", "pct"] = "abs"
    action: str | list[ActionChoice] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> CheckItem:
        bounds = self.low is not None or self.high is not None
        reference = self.reference is not None or self.tolerance is not None
        if bounds == reference:
            raise _problem("a check needs either low/high, or reference and tolerance (not both)")
        if reference and (self.reference is None or self.tolerance is None):
            raise _problem("a reference check needs both 'reference' and 'tolerance'")
        return self


class PromptInput(_Model):
    name: VarName
    type: Literal["number", "text"] = "number"


class PromptAction(_Model):
    message: str
    choices: list[str] = Field(default_factory=lambda: ["OK"], min_length=1)
    input: PromptInput | None = None
    timeout: Expr | None = None


class WaitForAction(_Model):
    when: Expr
    timeout: Expr
    on_timeout: str = Field(default="abort", description="abort | next | <step id>")


class IfAction(_Model):
    when: Expr
    then: str
    else_: str | None = Field(default=None, alias="else")


class RepeatAction(_Model):
    goto: str
    times: int = Field(ge=1)


class EndAction(_Model):
    verdict: Literal["pass", "fail", "aborted", "auto"] = "auto"
    message: str = ""


_FIELD_OF_KEY = {key: ("if_" if key == "if" else key) for key in ACTION_KEYS}


class RetrySpec(_Model):
    """Run the steps from ``from`` to this one again, up to ``times`` more, while this step fails."""

    times: int = Field(ge=1, le=100)
    from_: str = Field(alias="from", description="first step of the group to run again")


#: What a failed step does when the procedure does not say (TestStand's and OpenHTF's default:
#: record the failure and go on, so every later check is still judged).
DEFAULT_ON_FAIL = "continue"


class Step(_Model):
    """One step: an id, exactly one action key, and optional end conditions/limits/compares."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": [key]} for key in ACTION_KEYS]})

    id: Identifier
    description: str = ""
    next: str | None = None
    until: list[EndCondition] = Field(default_factory=list)
    limits: list[Limit] = Field(default_factory=list)
    compare: list[CompareSpec] = Field(default_factory=list)
    record: RecordHints | None = None
    on_resume: ResumePolicy | None = None
    on_fail: str = Field(default=DEFAULT_ON_FAIL, description="when a check of this step fails: "
                         "abort (end the run now, verdict fail) | continue | goto <step id>")
    retry: RetrySpec | None = None

    rest: RestAction | None = None
    charge: ChargeAction | None = None
    discharge: DischargeAction | None = None
    balance: BalanceAction | None = None
    bms: list[BmsAction] | None = Field(default=None, min_length=1)
    check: list[CheckItem] | None = Field(default=None, min_length=1)
    prompt: PromptAction | None = None
    wait_for: WaitForAction | None = None
    set: dict[VarName, Expr] | None = Field(default=None, min_length=1)
    if_: IfAction | None = Field(default=None, alias="if")
    goto: str | None = None
    repeat: RepeatAction | None = None
    end: EndAction | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_actions(cls, data: Any) -> Any:
        # "rest:" and "end:" with nothing after them mean "with defaults".
        if isinstance(data, dict) and any(data.get(k, 0) is None for k in ("rest", "end")):
            data = {k: ({} if k in ("rest", "end") and v is None else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _exactly_one_action(self) -> Step:
        present = [key for key in ACTION_KEYS if getattr(self, _FIELD_OF_KEY[key]) is not None]
        if not present:
            raise PydanticCustomError("step_actions", "step '{id}' has no action: give exactly one of {keys}",
                                      {"id": self.id, "keys": ", ".join(ACTION_KEYS)})
        if len(present) > 1:
            raise PydanticCustomError(
                "step_actions", "step '{id}' has several actions ({found}): give exactly one",
                {"id": self.id, "found": ", ".join(present), "key": present[1]})
        return self

    @field_validator("on_fail")
    @classmethod
    def _on_fail_form(cls, value: str) -> str:
        if value in ("abort", "continue"):
            return value
        parts = value.split()
        if len(parts) == 2 and parts[0] == "goto" and parts[1].isidentifier():
            return value
        raise _problem("on_fail is 'abort', 'continue' or 'goto <step id>', not '{value}'", value=value)

    @property
    def on_fail_goto(self) -> str | None:
        """The step ``on_fail: goto X`` names, else None."""
        return self.on_fail.split()[1] if self.on_fail.startswith("goto ") else None

    @property
    def kind(self) -> str:
        """The action key as written in YAML: "rest", "charge", ..., "if", "goto", "end"."""
        return next(key for key in ACTION_KEYS if getattr(self, _FIELD_OF_KEY[key]) is not None)

    @property
    def action(self) -> Any:
        """The action's model (list for bms/check, dict for set, str for goto)."""
        return getattr(self, _FIELD_OF_KEY[self.kind])


class Procedure(_Model):
    """A whole procedure file."""

    procedure: str = Field(min_length=1, description="procedure name")
    version: str
    description: str = ""
    control_interval_s: float = Field(default=1.0, gt=0)
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    safety: list[Limit] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    _source: LocatedData | None = PrivateAttr(default=None)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @property
    def file(self) -> str | None:
        return self._source.file if self._source else None

    def step_ids(self) -> list[str]:
        return [step.id for step in self.steps]

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def error(self, path: PathKey, message: str) -> ConfigError:
        """A ConfigError located at ``path`` in the file this procedure came from."""
        if self._source is None:
            return ConfigError(message, field=".".join(str(p) for p in path) or None)
        return self._source.error(path, message)


# ---------------------------------------------------------------------------------------------
# Loading.


def _expr_origin(lines: list[str], line: int, column: int, text: str) -> tuple[int, bool]:
    """Column of the first character of ``text`` in the file and whether columns inside it are
    exact (the text appears verbatim there: plain or simply quoted scalar on one line)."""
    raw = lines[line - 1] if 0 < line <= len(lines) else ""
    start = column - 1
    if start < len(raw) and raw[start] in "\"'":
        start += 1
    if raw[start:start + len(text)] == text:
        return start + 1, True
    return column, False


def _attach_origins(value: Any, path: PathKey, located: LocatedData, lines: list[str]) -> None:
    if isinstance(value, Expr):
        line, column = located.locate(path)
        if line is not None and column is not None:
            column, exact = _expr_origin(lines, line, column, value.text)
            value.set_origin(located.file, line, column, exact)
        else:
            value.set_origin(located.file, line, column, False)
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            _attach_origins(getattr(value, name), (*path, field.alias or name), located, lines)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _attach_origins(item, (*path, index), located, lines)
    elif isinstance(value, dict):
        for key, item in value.items():
            _attach_origins(item, (*path, key), located, lines)


def _located_errors(exc: ValidationError, located: LocatedData, lines: list[str]) -> InputErrors:
    """pydantic errors -> located errors, with exact columns inside expressions and hints."""
    generic = validation_errors(exc, located).errors
    result: list[InputError] = []
    for err, base in zip(exc.errors(include_url=False), generic, strict=True):
        ctx = err.get("ctx") or {}
        line, column, message = base.line, base.column, base.message
        if err["type"] == "expression" and line is not None and column is not None:
            start, exact = _expr_origin(lines, line, column, str(ctx.get("text", "")))
            column = start + int(ctx.get("offset", 0)) if exact else start
        elif err["type"] == "step_actions" and "key" in ctx and base.field is not None:
            line, column = located.locate((*_field_path(base.field), str(ctx["key"])))
        elif err["type"] == "extra_forbidden" and len(err["loc"]) == 3 and err["loc"][0] == "steps":
            message += f" (a step has id, description, next, until, limits, compare, record and " \
                       f"exactly one action: {', '.join(ACTION_KEYS)})"
        result.append(ConfigError(message, file=base.file, line=line, column=column, field=base.field))
    return InputErrors(result)


def _field_path(field: str) -> PathKey:
    return tuple(int(p) if p.isdigit() else p for p in field.split("."))


def parse_procedure(path: str | Path, *, text: str | None = None) -> Procedure:
    """Load ``path`` and check it against the schema only; located :class:`InputErrors`."""
    if text is None:
        text = read_input(path)  # bounded, like every YAML input
    located = load_yaml(path, text)
    if not isinstance(located.data, dict):
        raise located.error((), "a procedure file holds a mapping (procedure:, version:, steps: ...)")
    lines = text.splitlines()
    try:
        procedure = Procedure.model_validate(located.data)
    except ValidationError as exc:
        raise _located_errors(exc, located, lines) from None
    procedure._source = located
    _attach_origins(procedure, (), located, lines)
    return procedure


def procedure_sha256(path: str | Path) -> str:
    """SHA-256 of the procedure file's bytes (recorded with every run)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
