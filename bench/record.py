"""The run model: one record per run, the single source of truth.

``record.json``, the database rows and every report are produced from a :class:`RunRecord`
(and the sample file it references); nothing downstream changes it. Samples are kept out of
the record because a 24-hour run at 1 s holds ~86,000 of them: they live in ``samples.csv``
in the run folder (columns :data:`SAMPLE_COLUMNS`), referenced by SHA-256 in ``files``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
N_CELLS = 8

Verdict = Literal["pass", "fail", "aborted", "running"]

#: Columns of ``samples.csv``, in order. Currents: + = into the pack (charge).
SAMPLE_COLUMNS: tuple[str, ...] = (
    "t_s",                # bench seconds since the run started
    "step",               # step id
    "pack_v",             # bench (instrument) pack voltage, V
    "pack_i",             # bench current, A, + = charge
    *(f"cell{i}_v" for i in range(1, N_CELLS + 1)),  # BMS cell voltages, V
    "temp_max_c",
    "temp_min_c",
    "bms_pack_v",
    "bms_i",
    "bms_soc_pct",
    "ref_soc_pct",        # the bench's reference SOC
    "ah",                 # cumulative net Ah (bench), + = into the pack
    "wh",                 # cumulative net Wh (bench)
    "step_ah",
    "divergence_v",
    "supply_on",
    "load_on",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InstrumentIdentity(_Model):
    name: str
    role: Literal["supply", "load", "adapter"]
    family: str
    resource: str
    make: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""
    calibration_due: date | None = None
    calibration_overdue: bool = False


class AsReceived(_Model):
    soc_pct: float | None = None
    soh_pct: float | None = None
    cycle_count: int | None = None
    learned_capacity_ah: float | None = None
    dtcs: list[str] = Field(default_factory=list)


class PackIdentity(_Model):
    serial: str
    part_number: str = ""
    bms_serial: str = ""
    bms_sw_version: str = ""
    bms_hw_version: str = ""
    nominal_capacity_ah: float = 200.0
    as_received: AsReceived = Field(default_factory=AsReceived)


class ProcedureIdentity(_Model):
    name: str
    version: str
    sha256: str
    path: str = ""


class StationIdentity(_Model):
    name: str
    location: str = ""
    simulated: bool
    production: bool = False
    scenario: str | None = None


class StepRecord(_Model):
    id: str
    kind: str
    start_s: float
    end_s: float | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str = ""
    ah: float = 0.0
    wh: float = 0.0
    ah_charged: float = 0.0
    ah_discharged: float = 0.0
    resumed: bool = False
    note: str = ""


class CheckRecord(_Model):
    id: str
    step_id: str
    description: str = ""
    t_s: float
    value: float | str | bool | None
    unit: str = ""
    low: float | None = None
    high: float | None = None
    reference: float | None = None
    tolerance: float | None = None
    tolerance_kind: Literal["abs", "pct"] | None = None
    passed: bool
    decision_rule: str = "simple acceptance (value inside limits, measurement uncertainty not guard-banded)"
    message: str = ""
    #: what to do about a failure, from the procedure (e.g. "extended balancing, about 40 h")
    action: str | None = None
    #: superseded by a later attempt of a ``retry`` group: kept for the record, not in the verdict
    retried: bool = False


class EventRecord(_Model):
    t_s: float
    at: datetime | None = None
    kind: Literal["info", "warning", "trip", "pause", "resume", "abort", "operator", "watchdog", "resume_run"]
    message: str
    actor: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class FileRecord(_Model):
    name: str
    sha256: str
    bytes: int


class SocCheckpoint(_Model):
    t_s: float
    true_soc_pct: float
    bms_soc_pct: float
    reference_soc_pct: float | None


class SimTruth(_Model):
    capacity_ah: float
    scenario: str
    soc_checkpoints: list[SocCheckpoint] = Field(default_factory=list)
    outputs_off_at_end: bool | None = None
    #: every change of the simulated instruments' output state: {t_s, instrument, on}
    output_transitions: list[dict[str, Any]] = Field(default_factory=list)
    faults_applied: list[dict[str, Any]] = Field(default_factory=list)
    #: highest true cell voltage of the run; lowest once every cell was >= 2.5 V; contactor openings
    cell_v_max: float | None = None
    cell_v_min_after_recovery: float | None = None
    contactor_openings: list[float] = Field(default_factory=list)

    @property
    def protection_events(self) -> list[str]:
        """What a charger obeying the BMS must never cause (battery.md §2.4)."""
        events = [f"BMS contactor opened at t={t:.0f} s" for t in self.contactor_openings]
        if self.cell_v_max is not None and self.cell_v_max > 3.60:
            events.append(f"a cell reached {self.cell_v_max:.3f} V (> 3.60 V)")
        if self.cell_v_min_after_recovery is not None and self.cell_v_min_after_recovery < 2.50:
            events.append(f"a cell fell to {self.cell_v_min_after_recovery:.3f} V (< 2.50 V)")
        return events


class UnconfirmedOutput(_Model):
    """An output the bench could not confirm off when the run ended (its instrument unreachable)."""

    instrument: Literal["supply", "load"]
    last_error: str
    #: bench seconds the engine kept sending the off command before giving up
    retried_s: float = 0.0
    #: who keeps trying after the engine has gone (e.g. "watchdog pid 4242 until 2026-…"), if anyone
    handed_to: str | None = None


def unconfirmed_outputs_warning(outputs: list[UnconfirmedOutput]) -> str | None:
    """The words the CLI, the report and the operator page show, or None when all were confirmed off."""
    if not outputs:
        return None
    names = " and ".join(f"the {o.instrument} {'output' if o.instrument == 'supply' else 'input'}"
                         for o in outputs)
    handed = "; ".join(f"{o.instrument}: {o.handed_to} keeps trying" for o in outputs if o.handed_to)
    return (f"DANGER: {names} could NOT be confirmed OFF (instrument unreachable) and may still be "
            f"driving the pack. Switch {'them' if len(outputs) > 1 else 'it'} off at the instrument "
            f"or open the DC isolator before touching the pack." + (f" ({handed})" if handed else ""))


class RunRecord(_Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    verdict: Verdict = "running"
    abort_reason: str | None = None
    procedure: ProcedureIdentity
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: variables at the end of the run (BMS reads, routine results, step results), for traceability
    variables: dict[str, Any] = Field(default_factory=dict)
    station: StationIdentity
    software_version: str
    operator: str = ""
    started_at: datetime
    ended_at: datetime | None = None
    instruments: list[InstrumentIdentity] = Field(default_factory=list)
    pack: PackIdentity
    steps: list[StepRecord] = Field(default_factory=list)
    checks: list[CheckRecord] = Field(default_factory=list)
    events: list[EventRecord] = Field(default_factory=list)
    ah_charged: float = 0.0
    ah_discharged: float = 0.0
    wh_charged: float = 0.0
    wh_discharged: float = 0.0
    reference_capacity_ah: float | None = None
    bms_learned_capacity_ah: float | None = None
    bench_hours: float = 0.0
    sample_count: int = 0
    files: list[FileRecord] = Field(default_factory=list)
    #: outputs the bench could not confirm off at the end of the run (empty: all confirmed off)
    outputs_not_confirmed_off: list[UnconfirmedOutput] = Field(default_factory=list)
    sim_truth: SimTruth | None = None

    @property
    def failed_checks(self) -> list[CheckRecord]:
        return [c for c in self.checks if not c.passed and not c.retried]

    @property
    def exit_requested(self) -> bool:
        """Ctrl-C or SIGTERM arrived while the run was ending (bench.engine.end_of_run)."""
        return any(e.kind == "operator" and e.data.get("exit_requested") for e in self.events)


def mark_aborted(record: RunRecord, reason: str) -> None:
    """An orphaned run in words: aborted, why, and when it was found (its true end is unknown)."""
    now = datetime.now(UTC)
    record.verdict = "aborted"
    record.abort_reason = reason
    record.ended_at = now
    t_s = record.events[-1].t_s if record.events else 0.0
    record.events.append(EventRecord(t_s=t_s, at=now, kind="abort", message=reason))


# -- rows the records store returns (bench.store) and the reports render (reports.html) --------
# They live here, beside the record they summarise, so that reports need not import the store
# (whose CLI imports reports).


@dataclass(frozen=True)
class RunSummary:
    """One run in a listing of the store (``bench db runs``)."""

    run_id: str
    started_at: datetime
    ended_at: datetime | None
    verdict: str
    station: str
    pack_serial: str
    procedure_name: str
    procedure_version: str
    operator: str
    simulated: bool
    abort_reason: str | None


@dataclass(frozen=True)
class PackVisit:
    """One run of a pack, for its history (oldest first)."""

    run_id: str
    started_at: datetime
    station: str
    procedure_name: str
    verdict: str
    as_received_soh_pct: float | None
    soh_pct: float | None
    reference_capacity_ah: float | None
    bms_learned_capacity_ah: float | None
    divergence_v: float | None
