"""One bench of the station: its state, its worker thread, its live view.

States (depot overview): ``idle``, ``running``, ``waiting`` (for the operator), ``finished``,
``faulted`` (the run could not start or the server lost it). The engine runs in a worker
thread through :func:`bench.run.execute_run`; this object subscribes to the run's EventBus,
keeps the newest values for the screens, paces the simulated clock, and carries operator
actions (stop, fault injection, speed) into the engine thread so they are logged with who
did them in the run's record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import StationConfig, load_station
from bench.engine.events import EventBus, ProgressEvent
from bench.errors import BenchError, InputError
from bench.procedure.loader import load
from bench.record import CheckRecord, unconfirmed_outputs_warning
from bench.run import RunRequest, execute_run
from bench.ui import preflight
from bench.ui.chart import ChartHistory, Point
from bench.ui.feed import Feed
from bench.ui.prompter import PendingPrompt, WebPrompter
from bench.ui.security import User
from bench.ui.serials import SERIAL_CHECK_ID, bms_mismatch, serial_problem

log = logging.getLogger(__name__)

#: what the operator does next, by verdict, when the failed checks carry no action of their own
#: (a check's ``action:`` in the procedure file is shown instead)
NEXT_ACTION = {
    "fail": "Do not ship: put the pack in quarantine with this report and call the engineer.",
    "aborted": "The test did not finish: read the reason, then retest the pack or call the engineer.",
}


@dataclass
class StartRequest:
    serial: str
    procedure: Path
    user: User
    params: dict[str, str] = field(default_factory=dict)
    scenario: str | None = None


@dataclass
class RunView:
    """What the screens show about the current (or last) run."""

    run_id: str | None = None
    serial: str = ""
    procedure: str = ""
    operator: str = ""
    retest_count: int = 0
    step: str = ""
    step_description: str = ""
    step_index: int = 0
    step_count: int = 0
    t0_s: float | None = None
    t_s: float = 0.0
    expected_total_s: float | None = None
    sample: dict[str, Any] = field(default_factory=dict)
    sample_wall_ms: float | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verdict: str | None = None
    abort_reason: str | None = None
    #: outputs not confirmed off at the end, in words (bench.record.unconfirmed_outputs_warning)
    outputs_warning: str | None = None
    failed_checks: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    report: bool = False
    chart: ChartHistory = field(default_factory=ChartHistory)
    truth_at_end: dict[str, Any] | None = None


class BenchSlot:
    def __init__(self, slot_id: str, station_path: str | None, *, db: str | None = None) -> None:
        self.id = slot_id
        self.station_path = station_path
        self.station: StationConfig = load_station(station_path)
        self.db = db
        self.feed = Feed()
        self.state = "idle"
        self.error: str | None = None
        self.view = RunView()
        self.run_dirs: dict[str, Path] = {}
        self.speed: float | None = None  # x real time on the simulator; None = as fast as possible
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop_reason: str | None = None
        self._actions: deque[tuple[str, Any, User]] = deque()
        self._engine: Any = None
        self._pace_anchor: tuple[float, float] | None = None
        self.prompter: WebPrompter | None = None
        self.version = 0
        self._starting = False
        self._closing = False
        #: the scanned serial against the BMS's: "pending" until the run has read the BMS, then "done"
        self._identity = "done"
        self._answered_by: str | None = None
        self._rate: deque[tuple[float, float]] = deque(maxlen=40)  # (wall monotonic, bench t_s)

    # ------------------------------------------------------------------ facts for the screens
    @property
    def simulated(self) -> bool:
        return self.station.simulator is not None

    @property
    def busy(self) -> bool:
        return self.state in ("running", "waiting")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            v = self.view
            elapsed = (v.t_s - v.t0_s) if v.t0_s is not None else 0.0
            progress = self._progress()
            remaining = self._remaining(elapsed, progress)
            prompt = self.prompter.pending if self.prompter is not None else None
            return {
                "id": self.id, "station": self.station.name, "location": self.station.location,
                "simulated": self.simulated, "production": self.station.production,
                "state": self.state, "error": self.error, "speed": self.speed,
                "run": {
                    "run_id": v.run_id, "serial": v.serial, "procedure": v.procedure,
                    "operator": v.operator, "retest_count": v.retest_count,
                    "step": v.step, "step_description": v.step_description,
                    "step_index": v.step_index, "step_count": v.step_count,
                    "elapsed_s": elapsed, "remaining_s": remaining, "progress": progress,
                    "remaining_wall_s": self._remaining_wall(remaining),
                    "next_action": " ".join(v.actions) or NEXT_ACTION.get(v.verdict or ""),
                    "sample": v.sample, "sample_wall_ms": v.sample_wall_ms,
                    "checks": v.checks[-40:], "warnings": v.warnings[-5:],
                    "verdict": v.verdict, "abort_reason": v.abort_reason,
                    "outputs_warning": v.outputs_warning,
                    "failed_checks": v.failed_checks,
                    "report": f"/runs/{v.run_id}/report" if v.report and v.run_id else None,
                },
                "prompt": prompt.public() if prompt is not None else None,
                "version": self.version,
            }

    def chart_since(self, index: int, key: tuple[Any, int] | None) -> tuple[tuple[Any, int], int, int,
                                                                           list[Point]]:
        """The chart's buckets from ``index`` on, consistently: (key, start, count, points).

        ``key`` is (run id, epoch) of what the browser holds; when it is not the chart's any more
        (a new run, or buckets merged) the chart is sent whole (start 0).
        """
        with self._lock:
            chart = self.view.chart
            now = (self.view.run_id, chart.epoch)
            start = index if now == key and index <= len(chart) else 0
            return now, start, len(chart), chart.points(start)

    def _progress(self) -> float:
        v = self.view
        if v.verdict is not None:
            return 1.0
        if v.step_count <= 0:
            return 0.0
        return min(1.0, v.step_index / v.step_count)

    def _remaining(self, elapsed: float, progress: float) -> float | None:
        v = self.view
        if v.verdict is not None or v.t0_s is None:
            return None
        if v.expected_total_s:  # the newest passed run of this procedure on this station
            return max(0.0, v.expected_total_s - elapsed)
        return None

    def _remaining_wall(self, remaining: float | None) -> float | None:
        """Remaining wall time: bench time over the bench's recent pace (a simulator runs faster)."""
        if remaining is None:
            return None
        if not self.simulated:
            return remaining
        if len(self._rate) < 2:
            return None  # the simulator's pace is not known yet
        (w0, t0), (w1, t1) = self._rate[0], self._rate[-1]
        if w1 - w0 <= 0 or t1 - t0 <= 0:
            return None
        return remaining * (w1 - w0) / (t1 - t0)

    def _changed(self) -> None:
        with self._lock:
            self.version += 1
        self.feed.notify()

    # ------------------------------------------------------------------ start
    def start(self, request: StartRequest) -> None:
        """Start a run in a worker thread; PermissionError(reason) when refused.

        The bench is reserved under the lock, but every check that talks to the outside world
        (records store, instruments) runs with the lock released: the live streams read this
        bench's state under the same lock and must never wait for a database (issue 18 item 2).
        """
        serial = request.serial.strip()
        if not serial:
            raise PermissionError("scan or type the pack's serial number first")
        problem = serial_problem(serial, self.station.pack.serial_pattern)
        if problem:
            raise InputError(problem, field="serial")
        with self._lock:
            if self._closing:
                raise PermissionError("the station is shutting down")
            if self.busy or self._starting:
                raise PermissionError(self._busy_message())
            self._starting = True
        try:
            reason = (preflight.store_problem(self.station, self.db)
                      or preflight.calibration_problem(self.station)
                      or preflight.instrument_problem(self.station))
            if reason:
                raise PermissionError(reason)
            procedure = load(request.procedure, self.station, request.params)  # as the run will
            retests, expected = self._history(serial, procedure.procedure)
            with self._lock:
                if self._closing:
                    raise PermissionError("the station is shutting down")
                self._begin(request, serial, procedure, retests, expected)
        finally:
            with self._lock:
                self._starting = False
        self._changed()

    def _busy_message(self) -> str:
        if self._starting and not self.busy:
            return f"bench {self.id} is already starting a run"
        return f"bench {self.id} is already running ({self.view.procedure}, pack {self.view.serial})"

    def _begin(self, request: StartRequest, serial: str, procedure: Any, retests: int,
               expected: float | None) -> None:
        """Under the lock: the new run's view, and its worker thread."""
        self.view = RunView(serial=serial, procedure=procedure.procedure, operator=request.user.recorded_name,
                            retest_count=retests, expected_total_s=expected,
                            step_count=len(procedure.steps))
        self.state, self.error = "running", None
        self._stop_reason = None
        self._actions.clear()
        self._pace_anchor = None
        self._identity = "pending"
        self._answered_by = None
        self._rate.clear()
        bus = EventBus()
        bus.subscribe(self._on_event)
        self.prompter = WebPrompter(on_change=self._on_prompt_change, stop_reason=self._stop_now,
                                    on_answered=self._on_answered)
        run_request = RunRequest(
            procedure=request.procedure, station=self.station_path, scenario=request.scenario,
            serial=serial, operator=request.user.recorded_name, params=dict(request.params), yes=False,
            db=self.db, interactive=False, events=bus, prompter=self.prompter,  # type: ignore[arg-type]
            stop_requested=self._stop_now, on_engine=self._attach)
        self._thread = threading.Thread(target=self._work, args=(run_request,),
                                        name=f"bench-{self.id}", daemon=True)
        self._thread.start()

    def _history(self, serial: str, procedure_name: str) -> tuple[int, float | None]:
        """(previous runs of this procedure on this pack, expected bench seconds of a run)."""

        def read(store: Any) -> tuple[int, float | None]:
            retests = store.retest_count(serial, procedure_name)
            expected = None
            for run in store.runs(limit=50, station=self.station.name):
                if run.procedure_name == procedure_name and run.verdict == "pass":
                    record = store.get_record(run.run_id)
                    if record is not None and record.bench_hours:
                        expected = record.bench_hours * 3600.0
                    break
            return retests, expected

        try:
            return preflight.with_store(self.station, self.db, "run history", read)
        except Exception as exc:  # the start-time ping already passed; history is a nicety
            log.warning("run history for %s: %s", serial, exc)
            return 0, None

    def _work(self, run_request: RunRequest) -> None:
        try:
            record = execute_run(run_request, console=None)
        except (InputError, BenchError) as exc:
            self._fault(str(exc))
            return
        except Exception as exc:  # the station must survive whatever a run does
            log.exception("run on %s crashed", self.id)
            self._fault(f"internal error: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            v = self.view
            v.verdict = record.verdict
            v.abort_reason = record.abort_reason
            v.outputs_warning = unconfirmed_outputs_warning(record.outputs_not_confirmed_off)
            texts = {c["id"]: c["text"] for c in v.checks}
            v.failed_checks = [texts.get(c.id) or plain_check(c.model_dump()) for c in record.failed_checks]
            # the procedure's own instructions for its failed checks, each once, in order
            v.actions = list(dict.fromkeys(c.action for c in record.failed_checks if c.action))
            run_dir = self.run_dirs.get(record.run_id)
            v.report = run_dir is not None and (run_dir / "report.html").exists()
            self.state = "finished"
            self._engine = None
        self._changed()

    def _fault(self, message: str) -> None:
        with self._lock:
            self.state, self.error = "faulted", message
            self.view.verdict = self.view.verdict or None
            self._engine = None
        self._changed()

    # ------------------------------------------------------------------ engine thread side
    def _attach(self, engine: Any) -> None:
        with self._lock:
            self._engine = engine
            self.run_dirs[engine.state.run_id] = Path(engine.run_dir)

    def _stop_now(self) -> str | None:
        """Called by the engine at every sample (and by the prompter while it waits)."""
        self._drain_actions()
        self._confirm_pack()
        return self._stop_reason

    def _confirm_pack(self) -> None:
        """Engine thread, once the record holds the BMS's identity: is the scanned pack on the bench?

        The comparison is a check in the record; a mismatch ends the run as FAIL at once (the
        wrong pack is connected: nothing the procedure measures belongs to the scanned serial).
        """
        engine = self._engine
        if (self._identity != "ready" or engine is None
                or threading.current_thread() is not self._thread):
            return
        self._identity = "done"
        pack = engine.record.pack
        problem = bms_mismatch(self.view.serial, pack.bms_serial)
        step = engine.record.steps[-1].id if engine.record.steps else "start"
        engine.add_check(CheckRecord(
            id=SERIAL_CHECK_ID, step_id=step, t_s=engine.clock.now(), value=pack.bms_serial or None,
            description="the pack on the bench is the scanned one (serial read from the BMS over UDS)",
            passed=problem is None, message=problem or f"scanned {self.view.serial}, BMS reports the same",
            action=("Find the pack whose label was scanned, or scan the label of the pack that is "
                    "connected, and start again.")))
        if problem is not None:
            engine.end_run("fail", problem)

    def _drain_actions(self) -> None:
        engine = self._engine
        if engine is None or threading.current_thread() is not self._thread:
            return
        while self._actions:
            kind, payload, user = self._actions.popleft()
            if kind == "fault":
                sim = engine.bench.sim
                if sim is not None:
                    sim.apply_fault(payload)
                engine.event("operator", f"fault injected: {payload.model_dump(mode='json')}",
                             actor=user.label)
            else:
                engine.event("operator", str(payload), actor=user.label)

    def _on_event(self, ev: ProgressEvent) -> None:
        kind, data = ev.kind, ev.data
        with self._lock:
            v = self.view
            v.run_id = ev.run_id
            if v.t0_s is None:
                v.t0_s = ev.t_s
            v.t_s = ev.t_s
            if kind == "sample":
                v.sample = data
                v.sample_wall_ms = time.time() * 1000.0
                self._rate.append((time.monotonic(), ev.t_s))
                self._chart_point(ev.t_s, data)
            elif kind == "step_started":
                v.step, v.step_description = data.get("step", ""), data.get("description", "")
                v.step_index, v.step_count = int(data.get("index", 0)), int(data.get("count", 0))
            elif kind == "check":
                v.checks.append({"id": data.get("id"), "passed": data.get("passed"),
                                 "text": self._check_text(data)})
            elif kind in ("warning", "trip"):
                v.warnings.append(str(data.get("message", "")))
            elif kind == "prompt_answered" and self._answered_by is not None:
                engine = self._engine
                events = engine.record.events if engine is not None else []
                if events and events[-1].kind == "operator" and "answered" in events[-1].message:
                    events[-1].actor = self._answered_by
                self._answered_by = None
            elif kind == "run_started" and self._identity == "pending":
                self._identity = "ready"  # the record now holds what the BMS reported
            elif kind == "run_ended":
                engine = self._engine
                sim = engine.bench.sim if engine is not None else None
                # safe state is done; the simulator is still open: keep its ground truth
                v.truth_at_end = sim.truth() if sim is not None else None
        self._changed()
        if kind == "sample":
            self._pace(ev.t_s)

    def _check_text(self, check: dict[str, Any]) -> str:
        """The check in words, with what was read where the value alone hides it (software version)."""
        text = plain_check(check)
        engine = self._engine
        version = engine.record.pack.bms_sw_version if engine is not None else ""
        if "version" in str(check.get("id", "")) and version:
            text = text.replace(" — ", f" (the BMS reports software {version}) — ", 1)
        return text

    def _chart_point(self, t: float, data: dict[str, Any]) -> None:
        self.view.chart.add(t - (self.view.t0_s or 0.0), _num(data.get("bms_soc")), _num(data.get("ref_soc")))

    def _pace(self, t_s: float) -> None:
        """Hold the simulated bench at ``speed`` x real time (sleeps in the engine thread)."""
        speed = self.speed
        if speed is None or not self.simulated:
            self._pace_anchor = None
            return
        now = time.monotonic()
        if self._pace_anchor is None:
            self._pace_anchor = (now, t_s)
            return
        wall0, t0 = self._pace_anchor
        target = wall0 + (t_s - t0) / speed
        while target - time.monotonic() > 0 and self._stop_reason is None and self.speed == speed:
            time.sleep(min(0.1, target - time.monotonic()))

    def _on_prompt_change(self) -> None:
        self._pace_anchor = None  # waiting for the operator is not simulated time
        with self._lock:
            if self.state in ("running", "waiting"):
                pending = self.prompter is not None and self.prompter.pending is not None
                self.state = "waiting" if pending else "running"
        self._changed()

    def _on_answered(self, prompt: PendingPrompt, answer: str | float, actor: str) -> None:
        """Engine thread, just before the engine logs the answer: remember who gave it.

        The engine writes the one 'prompt … answered' event; the station only puts the person
        who answered (not the one who started the run) into its actor (issue 18 item 8).
        """
        self._answered_by = actor

    # ------------------------------------------------------------------ operator actions
    def answer(self, prompt_id: int, raw: str, user: User) -> None:
        if self.prompter is None:
            raise ValueError("no prompt is open")
        self.prompter.answer(prompt_id, raw, user.label)

    def stop(self, user: User) -> None:
        with self._lock:
            if not self.busy:
                raise ValueError("no run in progress")
            self._stop_reason = f"stopped by {user.label} at the operator station"
        if self.prompter is not None:
            self.prompter.wake()
        self._changed()

    @property
    def closing(self) -> bool:
        return self._closing

    def shutdown(self, reason: str) -> None:
        """The server is going down: refuse new starts, stop the run through the engine's safe state."""
        with self._lock:
            self._closing = True
            if self.busy:
                self._stop_reason = reason
        if self.prompter is not None:
            self.prompter.wake()
        self._changed()

    def set_speed(self, speed: float | None, user: User) -> None:
        if not self.simulated:
            raise ValueError("speed applies to a simulated bench only")
        if speed is not None and not 0.1 <= speed <= 100000:
            raise ValueError("speed must be between 0.1 and 100000 x real time")
        self.speed = speed
        self._pace_anchor = None
        if self.busy:
            self._actions.append(("note", f"simulator speed set to {speed or 'max'}", user))
        self._changed()

    def inject_fault(self, fault: Any, user: User) -> None:
        if not self.simulated:
            raise ValueError("fault injection applies to a simulated bench only")
        if not self.busy:
            raise ValueError("faults are injected into a running simulated bench: start a run first")
        self._actions.append(("fault", fault, user))

    def truth(self) -> dict[str, Any] | None:
        """The simulator's ground truth: live during a run, as it was at the end afterwards."""
        engine = self._engine
        sim = engine.bench.sim if engine is not None else None
        if sim is not None:
            try:
                return dict(sim.truth())
            except Exception as exc:  # the run may be closing the simulator right now
                log.debug("live truth: %s", exc)
        return self.view.truth_at_end

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread; True when no run is left going."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def plain_check(check: dict[str, Any]) -> str:
    """A check in words an operator can read from across the room."""
    description = check.get("description") or check.get("id") or "check"
    value, unit = check.get("value"), check.get("unit") or ""
    unit_s = f" {unit}" if unit and unit != "%" else unit
    shown = f"{value:.4g}{unit_s}" if isinstance(value, (int, float)) else ("no value" if value is None
                                                                           else str(value))
    low, high, ref, tol = check.get("low"), check.get("high"), check.get("reference"), check.get("tolerance")
    if ref is not None and tol is not None:
        pct = check.get("tolerance_kind") == "pct"
        allowed = f"{ref:.4g}{unit_s} ± {tol:g}{' %' if pct else unit_s}"
    elif low is not None and high is not None:
        allowed = f"between {low:g} and {high:g}{unit_s}"
    elif low is not None:
        allowed = f"at least {low:g}{unit_s}"
    elif high is not None:
        allowed = f"at most {high:g}{unit_s}"
    else:
        allowed = ""
    verdict = "OK" if check.get("passed") else "FAILED"
    if isinstance(value, str) and check.get("message"):
        return f"{description}: {check['message']} — {verdict}"
    return f"{description}: measured {shown}" + (f", allowed {allowed}" if allowed else "") + f" — {verdict}"
