"""The run engine: executes a procedure on a connected bench, sample by sample.

At every control interval it reads every instrument, integrates Ah and Wh from the bench's
own current measurement, updates the reference SOC, judges the global and step limits and
the end conditions, and appends the sample to durable storage. Whatever ends the run
(verdict, exception, limit breach, Ctrl-C, SIGTERM, lost instrument) the ``finally`` puts
load and supply in their safe state and writes the reason into the record.

The engine drives a :class:`~bench.engine.port.BenchPort` (the connected station fills it) and
hands each step to the step executor through a :class:`~bench.engine.context.StepContext`, which
it implements; the executor answers with a :class:`~bench.engine.context.StepOutcome`.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from bench import __version__
from bench.engine.checkpoint import CheckpointWriter, EngineState, atomic_write, checkpoint_policy
from bench.engine.context import AutoPrompter, EndVerdict, PauseRequest, Prompter, RunEnd, Sample
from bench.engine.datalog import SampleLog, format_row, sha256_file
from bench.engine.end_of_run import EndOfRun
from bench.engine.events import EventBus, EventKind, ProgressEvent
from bench.engine.journal import RecordEventKind
from bench.engine.limits import Breach, LimitMonitor
from bench.engine.links import LinkSupervisor, confirm_outputs_off
from bench.engine.port import BenchPort, Role
from bench.engine.sampler import RawReading, Sampler, read_bench
from bench.engine.steps import StepExecutor
from bench.engine.supervision import Supervisor
from bench.engine.throughput import ReferenceSoc, Throughput
from bench.engine.values import Env, Functions, JsonObject, Value
from bench.errors import BenchError, ConnectionLost, InstrumentError, RunAborted, SafetyTrip
from bench.procedure.model import Procedure, Step
from bench.procedure.quantities import RECORDED
from bench.record import (
    CheckRecord,
    EventRecord,
    FileRecord,
    PackIdentity,
    ProcedureIdentity,
    RunRecord,
    StationIdentity,
    StepRecord,
    Verdict,
    unconfirmed_outputs_warning,
)
from bench.watchdog_files import trips

# Prompter and AutoPrompter live with the step context; the run's callers import them from here.
__all__ = ["STORE_DRAIN_TIMEOUT_S", "UNHASHED_FILES", "AutoPrompter", "Engine", "Prompter", "RunEnded",
           "RunOptions"]

log = logging.getLogger(__name__)

#: Wall seconds the end of a run waits for the records store to take the last of its copy.
STORE_DRAIN_TIMEOUT_S = 30.0
#: samples.csv lines per call when a resumed run hands the whole file to the records store again
_RESEND_LINES = 10_000

#: Files of a run folder not listed with a digest in ``record.files``: the record itself, the
#: checkpoint and simulator state (rewritten until the end), and the reports rendered from the
#: record after it is sealed (a document cannot carry its own digest), and the watchdog's own log and
#: result, which its process may still write after the engine sealed the folder (an off command
#: handed over to it: bench.watchdog); what it did is copied into the record's events on resume.
UNHASHED_FILES = frozenset({"record.json", "checkpoint.json", "sim_state.pkl", "sim_state.new.pkl", "report.html",
                            "report.pdf", "junit.xml", "watchdog.json", "watchdog.log"})


class RunEnded(Exception):
    """Raised by :meth:`Engine.end_run`: a caller outside the step loop (the operator station's
    check of the scanned pack, run from the stop hook) ends the run where it cannot return a
    :class:`~bench.engine.context.StepOutcome`."""

    def __init__(self, end: RunEnd) -> None:
        super().__init__(end.message)
        self.end = end


class StoreQueue(Protocol):
    """The records store as the engine reaches it: calls queued and applied elsewhere, in order,
    never waited on (a hung database must not stall the loop); failures read back later."""

    def submit(self, method: str, *args: object) -> None:
        """Queue ``RunStore.<method>(*args)``; the arguments are copied at once."""

    def failures(self) -> list[str]:
        """Failures since the last call, for the record."""

    def close(self, timeout_s: float) -> bool:
        """Let the queued calls finish within ``timeout_s``; False if they did not."""


@dataclass
class RunOptions:
    run_dir: Path
    operator: str = ""
    serial: str | None = None
    prompter: Prompter = field(default_factory=AutoPrompter)
    store: StoreQueue | None = None  # the records store's copy (bench.store.writer.StoreWriter)
    events: EventBus = field(default_factory=EventBus)
    run_id: str | None = None
    procedure_path: str = ""
    procedure_sha256: str = ""
    heartbeat: Callable[[float], None] | None = None
    #: None: the bench's own cadence (bench.engine.checkpoint.checkpoint_policy)
    checkpoint_every_s: float | None = None
    stop_requested: Callable[[], str | None] | None = None
    #: hand the off command of unconfirmed outputs to the watchdog when the engine must exit
    #: first: called with the instruments and the bench seconds left; returns who took it over
    hand_over: Callable[[list[str], float], str | None] | None = None
    #: the run's owner closes it once the run is sealed (None: the engine, at the end of run())
    end_of_run: EndOfRun | None = None


class Engine:
    """Runs one procedure once on one bench."""

    def __init__(self, bench: BenchPort, procedure: Procedure, options: RunOptions,
                 resume: EngineState | None = None) -> None:
        self.bench = bench
        self.procedure = procedure
        self.opts = options
        self.clock = bench.clock
        self.interval = float(procedure.control_interval_s)
        self.events = options.events
        self.steps = procedure.steps
        self.step_index = {s.id: i for i, s in enumerate(self.steps)}
        self.functions: Functions = bench.expression_functions()
        self.global_limits = LimitMonitor(procedure.safety)
        self.supervisor = Supervisor.for_station(bench.station)
        self.links = LinkSupervisor(bench, self.supervisor.cfg.reconnect_window_s)
        self.sampler = Sampler(bench)
        self.state = resume or EngineState.new(run_id=options.run_id or _new_run_id())
        self.run_dir = options.run_dir
        # replaced by the full record once the bench has been read; exists from the start so
        # that even a failure while opening the run leaves a record saying why
        self.record = RunRecord(
            run_id=self.state.run_id,
            procedure=ProcedureIdentity(name=procedure.procedure, version=str(procedure.version),
                                        sha256=options.procedure_sha256, path=options.procedure_path),
            station=StationIdentity(name=bench.station.name, simulated=bench.simulated),
            software_version=__version__, operator=options.operator, started_at=datetime.now(UTC),
            pack=PackIdentity(serial=options.serial or "unknown"))
        self.samples: SampleLog | None = None
        self.durability = checkpoint_policy(bool(getattr(self.clock, "simulated", False)),
                                            options.checkpoint_every_s)
        self.checkpoints = CheckpointWriter(self.run_dir, every_s=self.durability.every_s,
                                            fsync=self.durability.fsync)
        self._last: RawReading | None = None
        self._store_writer: StoreQueue | None = None
        self._store_failed = False
        self._unstored: list[str] = []  # samples.csv lines not yet handed to the records store
        #: samples taken in this run (the record's ``sample_count``, written into it with the totals)
        self._sample_count = 0
        self._executor = StepExecutor(self)
        #: from the run's first trip or its end on, Ctrl-C and SIGTERM are noted, not raised;
        #: closed by the run's owner once it is sealed (bench.run), else at the end of run()
        self.end_of_run = options.end_of_run or EndOfRun()

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> RunRecord:
        try:
            return self._run_to_its_end()
        finally:
            if self.opts.end_of_run is None:  # the engine's own: nobody else closes it
                self.end_of_run.close()

    def end_begins(self) -> None:
        self.end_of_run.begin()

    def _run_to_its_end(self) -> RunRecord:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.state.step_pos is not None
        end: RunEnd | None = None
        try:
            self._open_record(resumed)
            self.publish("run_started", {"procedure": self.procedure.procedure,
                                          "resumed": resumed, "serial": self.record.pack.serial})
            end = self._execute()
            if end is None:
                self._finish("fail" if self.record.failed_checks else "pass", None)
        except RunEnded as ended:
            end = ended.end
        except KeyboardInterrupt:
            self._finish("aborted", "interrupted by the operator (Ctrl-C / SIGTERM)")
        except SafetyTrip as exc:
            self._finish("aborted", str(exc))
        except ConnectionLost as exc:
            self._finish("aborted", f"lost instrument: {exc}")
        except InstrumentError as exc:
            self._finish("aborted", f"instrument error: {exc}")
        except BenchError as exc:
            self._finish("aborted", str(exc))
        except Exception as exc:  # never leave a pack connected without a record of why
            log.exception("engine crashed")
            self._finish("aborted", f"internal error: {type(exc).__name__}: {exc}")
        if end is not None:
            verdict: Verdict = end.verdict if end.verdict != "auto" else (
                "fail" if self.record.failed_checks else "pass")
            self._finish(verdict, end.message if verdict == "aborted" else None, note=end.message)
        return self.record

    def _open_record(self, resumed: bool) -> None:
        record_path = self.run_dir / "record.json"
        if resumed and record_path.exists():
            self.record = RunRecord.model_validate_json(record_path.read_text(encoding="utf-8"))
            self._sample_count = self.record.sample_count
            self.record.verdict = "running"
            self.record.abort_reason = None
            self.record.ended_at = None
            moved = SampleLog.truncate_after(self.run_dir / "samples.csv", self.state.t_s)
            self.event("resume_run", f"resumed from checkpoint at t={self.state.t_s:.0f} s"
                        + (f"; {moved} samples after it kept aside" if moved else ""))
            self._note_watchdog_trips()
        else:
            self.record = self.bench.new_record(
                run_id=self.state.run_id,
                procedure=self.procedure,
                procedure_path=self.opts.procedure_path,
                procedure_sha256=self.opts.procedure_sha256,
                operator=self.opts.operator,
                serial=self.opts.serial,
                software_version=__version__,
            )
            self.state.vars.update(self._resolve_parameters())
            self.record.parameters = {k: self.state.vars[k] for k in self.procedure.parameters}
            self.state.reference = ReferenceSoc(capacity_ah=self.bench.nominal_capacity_ah)
        self.samples = SampleLog(self.run_dir / "samples.csv", fsync=self.durability.fsync,
                                 sync_every_s=self.durability.sample_sync_every_s)
        self._write_record()
        if self.opts.store is not None:
            self._store_writer = self.opts.store
            self._store_call("start_run", self.record)
            if resumed:  # what the store missed when the engine died (calls still queued): again;
                # samples are keyed by time and inserted "on conflict do nothing"
                lines = self.samples.lines_written()
                for start in range(0, len(lines), _RESEND_LINES):  # a multi-day run: bounded calls
                    self._store_call("add_sample_lines", self.record.run_id, lines[start:start + _RESEND_LINES])

    def _note_watchdog_trips(self) -> None:
        """What the watchdog did while no engine ran (bench.watchdog), into the record once."""
        seen = {e.data.get("watchdog_pid") for e in self.record.events if e.kind == "watchdog"}
        for trip in trips(self.run_dir):
            if trip.get("pid") not in seen:
                self.event("watchdog", f"watchdog (pid {trip.get('pid')}) made the bench safe: "
                            f"{trip.get('reason')}; read back {trip.get('readback')}",
                            data={"watchdog_pid": trip.get("pid"), **{k: trip.get(k) for k in (
                                "detected_at", "done_at", "verified", "bench_t_s_estimate")}})

    def _finish(self, verdict: Verdict, abort_reason: str | None, note: str | None = None) -> None:
        self.end_begins()
        problems = self.bench.safe_state(skip=set(self.links.lost))
        for problem in problems:
            self.event("warning", f"safe state: {problem}")
        if abort_reason:
            self.event("abort", abort_reason)
        self._confirm_outputs_off(problems)
        if note and verdict != "aborted":
            self.event("info", note)
        self._close_open_step(abort_reason or "run ended")
        rec = self.record
        rec.verdict = verdict
        rec.abort_reason = abort_reason
        rec.ended_at = datetime.now(UTC)
        if self.samples is not None:
            self._unstored.extend(self.samples.sync())
            self.samples.close()
        if self._unstored:
            self._store_call("add_sample_lines", rec.run_id, self._unstored)
        self._unstored = []
        self.bench.finish_record(rec)
        self._write_record()
        self.checkpoints.mark_finished()
        self.publish("run_ended", {"verdict": verdict, "abort_reason": abort_reason,
                                    "failed_checks": [c.message or c.id for c in rec.failed_checks],
                                    "outputs_warning": unconfirmed_outputs_warning(
                                        rec.outputs_not_confirmed_off)})

    def _confirm_outputs_off(self, problems: list[str]) -> None:
        """Every output read back off, or the off command repeated until it is (or the station's
        ``off_retry_s`` has passed, or the engine is told to exit); what stays unconfirmed goes
        into the record, in words."""
        deadline = self.supervisor.cfg.off_retry_s
        started = self.clock.now()
        unconfirmed = confirm_outputs_off(self.bench, problems, set(self.links.lost), deadline,
                                          self._wait_alive, self.clock.now,
                                          lambda: self.end_of_run.exit_requested)
        retried = self.clock.now() - started
        retried_roles: set[str] = {p.split(":", 1)[0] for p in problems} | set(self.links.lost)
        for role in sorted(retried_roles - {u.instrument for u in unconfirmed}):
            if retried > 0:
                self.event("info", f"{role} confirmed off after {retried:.0f} s of retrying the off command",
                           data={"instrument": role})
        self.links.lost.clear()
        if self.end_of_run.exit_requested:
            self.event("operator", "Ctrl-C / SIGTERM while the run was ending: switching off and the record "
                       "carried through" + (f"; the off command retried no more (after {retried:.0f} s of retrying)"
                                            if unconfirmed else ""),
                       data={"exit_requested": True})
        if unconfirmed and self.opts.hand_over is not None and retried < deadline:
            # the engine was told to exit before the deadline: the watchdog keeps trying
            try:
                taker = self.opts.hand_over([u.instrument for u in unconfirmed], deadline - retried)
            except Exception as exc:
                taker = None
                self.event("warning", f"handing the off command to the watchdog failed: {exc}")
            for u in unconfirmed:
                u.handed_to = taker
        self.record.outputs_not_confirmed_off = unconfirmed
        warning = unconfirmed_outputs_warning(unconfirmed)
        if warning is not None:
            log.error("%s", warning)
            self.event("warning", warning, data={"unconfirmed": [u.instrument for u in unconfirmed]})

    def seal_files(self) -> None:
        """Hash the run folder's files into the record, then write it and finish it in the store.

        Called by the run's owner once nothing writes into the folder any more: after the CAN
        adapter has closed its BLF writer (which flushes and rewrites the file's header), after
        the watchdog and the fault injector have stopped. Hashing at the end of :meth:`run`
        recorded a digest of a file still being written (issue 15, point 5).
        """
        rec = self.record
        rec.files = [FileRecord(name=p.name, sha256=sha256_file(p), bytes=p.stat().st_size)
                     for p in sorted(self.run_dir.iterdir())
                     if p.is_file() and p.name not in UNHASHED_FILES and not p.name.endswith(".tmp")]
        self._write_record()
        self._store_call("finish_run", rec)
        writer = self._store_writer
        if writer is not None:
            drained = writer.close(STORE_DRAIN_TIMEOUT_S)
            self._note_store_failures()
            if not drained:
                self.event("warning", f"records store did not answer within {STORE_DRAIN_TIMEOUT_S:.0f} s: "
                                      "the run folder holds the complete record; the store's copy is incomplete")
            if not drained or self._store_failed:
                self._write_record()

    def _wait_alive(self, until_s: float) -> None:
        """Sleep to bench time ``until_s`` one control interval at a time, heart-beating, so the
        watchdog does not take an engine that is busy retrying for a dead one. Told to exit: at once."""
        while self.clock.now() < until_s - 1e-9 and not self.end_of_run.exit_requested:
            self.clock.sleep_until(min(until_s, self.clock.now() + self.interval))
            if self.opts.heartbeat is not None:
                try:
                    self.opts.heartbeat(self.clock.now())
                except BenchError as exc:  # the watchdog is gone: keep retrying ourselves
                    log.warning("%s", exc)
                    self.opts.heartbeat = None

    # ------------------------------------------------------------------ step sequencing
    def _execute(self) -> RunEnd | None:
        """Run the steps from the current one; returns how the run ends when a step ends it."""
        st = self.state
        if st.step_pos is None:
            st.step_pos = 0
            st.t_s = self.clock.now()
            st.next_tick = st.t_s
        else:
            restart = self._executor.on_resume(self.steps[st.step_pos])
            if restart is not None:
                self._close_open_step("interrupted; restarted from a safe point")
                st.step_pos = self.step_index[restart]
                st.step_started_at = None
        while st.step_pos < len(self.steps):
            step = self.steps[st.step_pos]
            if st.step_started_at is None:
                self._begin_step(step)
            checks_before = len(self.record.checks)
            outcome = self._executor.execute(step)
            if outcome.run_end is not None:
                return outcome.run_end  # the step stays open: the end of the run closes it
            target = outcome.next_step
            self._end_step(step, outcome.end_reason)
            failed = [c for c in self.record.checks[checks_before:] if not c.passed]
            if failed:
                decided = self._on_failure(step, failed, target)
                if isinstance(decided, RunEnd):
                    return decided
                target = decided
            elif step.retry is not None:
                st.repeat_counts.pop(f"retry:{step.id}", None)
            st.step_pos = self.step_index[target] if target else st.step_pos + 1
            st.step_started_at = None
        return None

    def _on_failure(self, step: Step, failed: list[CheckRecord], target: str | None) -> str | RunEnd | None:
        """A step recorded failed checks: retry its group, or apply its ``on_fail`` policy."""
        names = ", ".join(c.id for c in failed)
        retry = step.retry
        if retry is not None:
            key = f"retry:{step.id}"
            done = self.state.repeat_counts.get(key, 0)
            if done < retry.times:
                self.state.repeat_counts[key] = done + 1
                group = set(self.procedure.step_ids()[self.step_index[retry.from_]:self.step_index[step.id] + 1])
                for check in self.record.checks:
                    if check.step_id in group and not check.retried:
                        check.retried = True
                self.event("info", f"step {step.id} failed ({names}): retry {done + 1}/{retry.times} "
                                   f"from {retry.from_}")
                self._write_record()
                return str(retry.from_)
        policy = step.on_fail
        if policy == "abort":
            self.event("info", f"step {step.id} failed ({names}): on_fail abort ends the run")
            return RunEnd("fail", f"stopped after step {step.id} failed: {names}")
        goto = step.on_fail_goto
        if goto is not None:
            self.event("info", f"step {step.id} failed ({names}): on_fail goes to {goto}")
            return str(goto)
        return target

    def _begin_step(self, step: Step) -> None:
        st = self.state
        st.step_started_at = self.clock.now()
        st.step_throughput = Throughput()
        st.compare_marks = {}
        self.record.steps.append(StepRecord(
            id=step.id, kind=step.kind, start_s=st.step_started_at, started_at=datetime.now(UTC)))
        self.publish("step_started", {"step": step.id, "kind": step.kind,
                                       "description": step.description or "",
                                       "index": st.step_pos, "count": len(self.steps)})

    def _end_step(self, step: Step, reason: str) -> None:
        st = self.state
        rec = self.record.steps[-1]
        now = self.clock.now()
        tp = st.step_throughput
        rec.end_s = now
        rec.ended_at = datetime.now(UTC)
        rec.end_reason = reason
        rec.ah, rec.wh = tp.ah, tp.wh
        rec.ah_charged, rec.ah_discharged = tp.ah_charged, tp.ah_discharged
        duration = now - (st.step_started_at if st.step_started_at is not None else now)
        st.vars.update({
            f"{step.id}.ah": tp.ah, f"{step.id}.wh": tp.wh, f"{step.id}.duration": duration,
            f"{step.id}.ah_charged": tp.ah_charged, f"{step.id}.ah_discharged": tp.ah_discharged,
            f"{step.id}.wh_discharged": tp.wh_discharged, f"{step.id}.wh_charged": tp.wh_charged,
        })
        hints = step.record
        if hints is not None and hints.ref_soc_anchor is not None:
            st.reference.anchor(float(hints.ref_soc_anchor), st.throughput.ah)
            self.bench.note_soc_checkpoint(now, float(hints.ref_soc_anchor))
        self.publish("step_ended", {"step": step.id, "reason": reason, "ah": tp.ah, "wh": tp.wh,
                                     "duration_s": duration})
        self._checkpoint(force=True)

    def _close_open_step(self, reason: str) -> None:
        if self.record.steps and self.record.steps[-1].end_s is None:
            rec = self.record.steps[-1]
            rec.end_s = self.clock.now()
            rec.ended_at = datetime.now(UTC)
            rec.end_reason = reason
            tp = self.state.step_throughput
            rec.ah, rec.wh = tp.ah, tp.wh
            rec.ah_charged, rec.ah_discharged = tp.ah_charged, tp.ah_discharged

    # ------------------------------------------------------------------ sampling
    @property
    def last_reading(self) -> RawReading | None:
        """The instruments as read at the last sample."""
        return self._last

    def sample(self, step: Step, step_limits: LimitMonitor | None) -> Sample:
        """Wait for the next tick, read the bench, integrate, log and judge limits.

        Returns the sample with its expression environment. Raises SafetyTrip on an abort
        limit; returns normally with ``goto`` set for a goto limit and ``pause`` set (to the
        breach, or supervision's pause) for a pause limit.
        """
        st = self.state
        st.next_tick += self.interval
        self.clock.sleep_until(st.next_tick)
        self._check_stop()
        t = self.clock.now()
        links = self.links
        lost_before = set(links.lost) if links.lost else None  # nearly always none lost: no set a sample
        reading = read_bench(self.bench, t, links)
        newly_lost: list[Role] = ([role for role in links.lost if lost_before is None or role not in lost_before]
                                  if links.lost else [])
        can_age = self.bench.adapter_age_s(reading.bms)
        self._last = reading
        st.t_s = t
        if reading.lost:  # no measurement while an instrument is unreachable: not integrated, not guessed
            st.last_sample = None
        else:
            current, pack_v = reading.current, reading.pack_v  # properties: each read once
            if st.last_sample is not None:
                t0, i0, v0 = st.last_sample
                dt = reading.t_s - t0
                st.throughput.add(dt, i0, current, v0, pack_v)
                st.step_throughput.add(dt, i0, current, v0, pack_v)
            st.last_sample = [reading.t_s, current, pack_v]
        env = self.environment(reading, can_age, step)
        self._log_sample(env, step, reading, t)
        if self.opts.heartbeat is not None:
            self.opts.heartbeat(t)
        pause: PauseRequest | None = None
        goto: str | None = None
        link_pause = self.links.supervise(self, t, newly_lost)
        trips: list[Breach] = []
        for monitor in (self.global_limits, step_limits):
            if monitor is None or not monitor.limits:  # most steps declare no limits of their own
                continue
            warnings, found = monitor.evaluate(env, t, self.functions)
            for w in warnings:
                self._warning(w)
            trips.extend(found)
        for trip in trips:  # every limit that tripped in this sample is recorded, not the first
            self._note_trip(trip)
            # the first pause and the first goto of this sample are acted on
            if trip.limit.action == "pause" and pause is None:
                pause = trip
            elif trip.limit.action == "goto" and goto is None:
                goto = trip.limit.goto
        aborts = [trip.message for trip in trips if trip.limit.action == "abort"] if trips else None
        if aborts:
            # supervision still judges this sample, while the outputs are as they were, so that
            # an open contactor seen with the breach is named too; then outputs off, in the same
            # control interval that saw the breach
            try:
                self.supervisor.supervise(self, env, t)
            except SafetyTrip as also:
                aborts.append(str(also))
            self.end_begins()
            self.bench.safe_state()
            raise SafetyTrip("; ".join(aborts))
        supervision_pause = self.supervisor.supervise(self, env, t)
        if pause is None:
            pause = supervision_pause
        if link_pause is not None:
            # before any other pause: resuming while an instrument is unreachable cannot work
            pause = link_pause
        if self.checkpoints.due(t):  # the test _checkpoint makes, without its call every sample
            self._checkpoint(force=True)
        started = st.step_started_at
        return Sample(env, reading, t - (t if started is None else started), pause, goto)

    def instant_env(self, step: Step) -> Env:
        """The environment of a fresh reading, for an instant step: integrals are those of the
        last sample; this reading is not logged."""
        reading = read_bench(self.bench, self.clock.now())
        return self.environment(reading, self.bench.adapter_age_s(reading.bms), step)

    def environment(self, reading: RawReading, can_age: float, step: Step) -> Env:
        st = self.state
        return self.sampler.values(reading, can_age, st.step_started_at, st.throughput,
                                   st.step_throughput, st.reference, into=dict(st.vars))

    def _log_sample(self, env: Env, step: Step, reading: RawReading, now: float) -> None:
        """``reading``: this sample's, taken at bench time ``now``."""
        assert self.samples is not None
        cells = (reading.bms.cell_voltages_v or _NO_CELLS)[:8]
        line = format_row(reading.t_s, step.id, (
            env["pack_v"], env["current"], *cells, env["temp_max"], env["temp_min"], env["bms_pack_v"],
            env["bms_current"], env["bms_soc"], env["ref_soc"], env["ah"], env["wh"], env["step_ah"],
            env["divergence"]), reading.supply_on, reading.load_on)
        # durable in samples.csv now; copied to the records store at each checkpoint
        synced = self.samples.append(line, reading.t_s)
        if synced:
            self._unstored.extend(synced)
        self._sample_count += 1  # into the record with its totals (_totals_into_record): no pydantic setattr a sample
        if not self.events.wants_sample(now):
            return  # nobody takes this sample (--json, a sweep, a status line not yet due)
        self.events.publish(ProgressEvent(kind="sample", run_id=self.state.run_id, t_s=now, data={
            "step": step.id, "pack_v": _finite(env["pack_v"]), "current": _finite(env["current"]),
            "cells": [_finite(v) for v in cells], "temp_max": env["temp_max"],
            "temp_min": env["temp_min"], "bms_soc": env["bms_soc"], "ref_soc": env["ref_soc"],
            "ah": env["ah"], "step_time": env["step_time"], "divergence": env["divergence"],
        }))

    # ------------------------------------------------------------------ limits
    def _warning(self, breach: Breach) -> None:
        self.event("warning", breach.message, data={"limit": breach.limit.id, "value": breach.value})
        self.publish("warning", {"message": breach.message})

    def _note_trip(self, breach: Breach) -> None:
        action = breach.limit.action
        self.event("trip", breach.message, data={"limit": breach.limit.id, "value": breach.value,
                                                  "action": action})
        self.publish("trip", {"message": breach.message, "action": action})

    def _check_stop(self) -> None:
        if self.opts.stop_requested is not None:
            reason = self.opts.stop_requested()
            if reason:
                raise RunAborted(reason)

    # ------------------------------------------------------------------ checks and record
    def add_check(self, check: CheckRecord) -> None:
        self.record.checks.append(check)
        self.publish("check", check.model_dump(mode="json"))
        self._write_record()

    def event(self, kind: RecordEventKind, message: str, data: JsonObject | None = None,
              actor: str | None = None) -> None:
        self.record.events.append(EventRecord(
            t_s=self.clock.now(), at=datetime.now(UTC), kind=kind,
            message=message, data=data or {}, actor=actor))

    def publish(self, kind: EventKind, data: JsonObject) -> None:
        self.events.publish(ProgressEvent(kind=kind, run_id=self.state.run_id,
                                          t_s=self.clock.now(), data=data))

    # ------------------------------------------------------------------ the rest of the step context
    @property
    def prompter(self) -> Prompter:
        return self.opts.prompter

    @property
    def operator(self) -> str:
        return self.opts.operator

    def now(self) -> float:
        return self.clock.now()

    def _totals_into_record(self) -> None:
        rec, st = self.record, self.state
        rec.sample_count = self._sample_count
        rec.variables = {k: v for k, v in st.vars.items()
                         if isinstance(v, (int, float, str, bool)) and k not in self.procedure.parameters}
        tp = st.throughput
        rec.ah_charged, rec.ah_discharged = tp.ah_charged, tp.ah_discharged
        rec.wh_charged, rec.wh_discharged = tp.wh_charged, tp.wh_discharged
        rec.bench_hours = self.clock.now() / 3600.0
        for name, record_field in RECORDED:  # the one table's recorded quantities (bench.procedure.quantities)
            value = st.vars.get(name)
            setattr(rec, record_field, float(value) if isinstance(value, (int, float)) else None)

    def _write_record(self) -> None:
        self._totals_into_record()
        atomic_write(self.run_dir / "record.json", self.record.model_dump_json(indent=2).encode(),
                     fsync=self.durability.fsync)

    def _checkpoint(self, force: bool = False) -> None:
        if self.checkpoints.due(self.clock.now()) or force:
            self._write_record()
            if self.samples is not None:
                self._unstored.extend(self.samples.sync())
            if self._unstored:
                self._store_call("add_sample_lines", self.record.run_id, self._unstored)
            self._unstored = []
            self.checkpoints.write(self.state, self.clock.now(), self.bench.simulator_checkpoint())
            self._store_call("update_run", self.record)
            self._note_store_failures()

    def _store_call(self, method: str, *args: object) -> None:
        """Queue a call for the records store's copy (:class:`StoreQueue`): the engine never waits
        on a database. The arguments are copied at once: the record may go on changing."""
        if self._store_writer is not None:
            self._store_writer.submit(method, *args)

    def _note_store_failures(self) -> None:
        """The store is a copy of the run folder: a failure is recorded (once in a row), not fatal."""
        if self._store_writer is None:
            return
        for failure in self._store_writer.failures():
            self._store_failed = True
            if not any(e.message.startswith("records store") for e in self.record.events[-3:]):
                self.event("warning", f"records store {failure}")

    def _resolve_parameters(self) -> Env:
        env: Env = {"capacity_nominal": self.bench.nominal_capacity_ah}
        env.update(self.bench.range_variables())
        values: Env = {}
        for name, param in self.procedure.parameters.items():
            # an override from --param is already the default (bench.procedure.loader.load)
            values[name] = param.default.evaluate({**env, **values}, self.functions)
        return values

    def end_run(self, verdict: EndVerdict, message: str) -> None:
        """End the run now, from outside the step loop (see :class:`RunEnded`)."""
        raise RunEnded(RunEnd(verdict, message))


#: The cell columns of a sample whose BMS has not sent its cell voltages yet.
_NO_CELLS = [math.nan] * 8


def _new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _finite(value: Value) -> Value:
    """NaN (an instrument not answering) as None: the operator page's JSON has no NaN."""
    return None if isinstance(value, float) and math.isnan(value) else value
