"""What a step executor is given and what it gives back: the engine's inner seam.

The runner sequences steps and owns the run (record, samples, checkpoints); a step executor
(bench.engine.steps) runs one step. It sees the run only through :class:`StepContext` and answers
with a :class:`StepOutcome` -- where to go next, why the step ended, whether the run ends -- so
neither side reaches into the other's internals and the two modules do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from bench.engine.checkpoint import EngineState
from bench.engine.journal import RunContext
from bench.engine.limits import LimitMonitor
from bench.engine.sampler import RawReading
from bench.engine.values import Env, Functions
from bench.errors import RunAborted
from bench.procedure.expr import Expr
from bench.procedure.model import PromptInput, Step
from bench.record import CheckRecord

#: what an ``end`` step (or the operator station) may end a run with; ``auto``: fail if a check failed
EndVerdict = Literal["pass", "fail", "aborted", "auto"]


class Prompter:
    """Answers operator prompts. The CLI asks on the terminal; ``--yes`` answers the first choice."""

    def ask(self, message: str, choices: list[str], input_spec: PromptInput | None) -> str | float:
        raise NotImplementedError


class AutoPrompter(Prompter):
    """Unattended runs (``--yes``): answer with the first choice, or the input's default."""

    def ask(self, message: str, choices: list[str], input_spec: PromptInput | None) -> str | float:
        if input_spec is not None:
            default: str | float | None = getattr(input_spec, "default", None)
            if default is None:
                raise RunAborted(f"prompt needs a typed answer and --yes cannot give one: {message}")
            return default
        return choices[0]


class PauseLimit(Protocol):
    """The limit behind a pause: a procedure ``Limit`` or a supervision limit."""

    @property
    def id(self) -> str: ...

    @property
    def abort_after_s(self) -> float | None: ...

    @property
    def resume_when(self) -> Expr | None: ...


class PauseRequest(Protocol):
    """A sample asks for a pause: a limit's breach or supervision's (a silent BMS, a lost link)."""

    @property
    def limit(self) -> PauseLimit: ...

    @property
    def message(self) -> str: ...


@dataclass
class Sample:
    """One control interval as a timed step sees it."""

    env: Env
    reading: RawReading
    step_time: float
    #: hold the step with outputs off (the first pause asked for in this sample)
    pause: PauseRequest | None = None
    #: a ``goto`` limit tripped: leave the step for this one
    goto: str | None = None

    @property
    def t(self) -> float:
        """Bench time of the sample: its reading's."""
        return self.reading.t_s


@dataclass(frozen=True)
class RunEnd:
    """The run ends now, with ``verdict`` (``auto``: fail if a check failed, else pass)."""

    verdict: EndVerdict
    message: str


@dataclass(frozen=True)
class StepOutcome:
    """What a step tells the runner when it is done."""

    #: the step record's end reason ("duration", "condition met", "answered OK", ...)
    end_reason: str
    #: the step to go to; None: the next one in order
    next_step: str | None = None
    #: set by an ``end`` step
    run_end: RunEnd | None = None


class StepContext(RunContext, Protocol):
    """What a step executor may use of the run (implemented by bench.engine.runner.Engine)."""

    @property
    def state(self) -> EngineState: ...

    @property
    def functions(self) -> Functions: ...

    @property
    def prompter(self) -> Prompter: ...

    @property
    def operator(self) -> str: ...

    @property
    def last_reading(self) -> RawReading | None:
        """The instruments as read at the last sample."""
        ...

    def now(self) -> float:
        """Bench seconds."""
        ...

    def sample(self, step: Step, step_limits: LimitMonitor | None) -> Sample:
        """Wait for the next control interval, read, log and judge it (raises SafetyTrip on abort)."""
        ...

    def instant_env(self, step: Step) -> Env:
        """A fresh reading's environment for an instant step (not logged, not integrated)."""
        ...

    def add_check(self, check: CheckRecord) -> None: ...
