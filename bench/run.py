"""``bench run`` and ``bench resume``: everything around the engine.

Order matters for safety: every input (station, procedure, parameters, scenario) is loaded
and validated before any instrument is opened, so bad input never touches the bench.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.clock import WallClock
from bench.config import StationConfig, load_station
from bench.engine.checkpoint import load_checkpoint
from bench.engine.end_of_run import EndOfRun
from bench.engine.events import EventBus
from bench.engine.runner import STORE_DRAIN_TIMEOUT_S, AutoPrompter, Engine, Prompter, RunOptions, _new_run_id
from bench.errors import InputError
from bench.fault_injection import ControllerFaultInjector, carried_out, control_port_source, in_process_source
from bench.procedure.loader import load
from bench.procedure.model import Procedure, procedure_sha256
from bench.progress import ProgressPrinter, TerminalPrompter
from bench.record import RunRecord
from bench.station import Bench, connect_bench
from bench.store.liveness import RunLock
from bench.store.writer import StoreWriter, open_run_store
from bench.watchdog import start_watchdog
from reports.html import write_report

log = logging.getLogger(__name__)

#: how long the records store may take to open and migrate the database before a run starts
#: (PostgreSQL's connect time-out is 10 s; SQLite waits up to 30 s for another bench's lock)
STORE_READY_TIMEOUT_S = 120.0


@dataclass
class RunRequest:
    procedure: Path
    station: str | None = None
    scenario: str | None = None
    serial: str | None = None
    operator: str = ""
    params: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    yes: bool = False
    db: str | None = None
    watchdog: bool = True
    interactive: bool = False
    events: EventBus | None = None
    prompter: Prompter | None = None
    stop_requested: Any = None
    #: called with the Engine once it exists (operator station: reach bench.sim, log actions)
    on_engine: Any = None
    #: the run's end (bench.engine.end_of_run): its ``exit_requested`` says whether a Ctrl-C or
    #: SIGTERM arrived while the run ended, also after the record was sealed
    end_of_run: EndOfRun | None = None
    #: the run's records store, already started by the caller for this station and ``db``
    #: (:func:`open_store`; the CLI starts it before loading the engine, so that the writer's
    #: start-up overlaps the engine's); None: started here. The run closes it either way.
    store: StoreWriter | None = None


def prepare(request: RunRequest, station: StationConfig) -> tuple[Procedure, str]:
    """Load and validate the rest of the input for ``station`` (``request.station``, loaded);
    touch no instrument. The procedure comes from the one :func:`bench.procedure.loader.load`:
    checked against this station, overrides applied."""
    if request.scenario is not None:
        if station.simulator is None:
            raise InputError("--scenario applies only to a simulated station", field="--scenario")
        # lazy: only a simulated station loads the simulator
        from bench.sim.serve import load_scenario_option

        load_scenario_option(request.scenario)  # fail early on a bad scenario
    procedure = load(request.procedure, station, request.params)
    return procedure, procedure_sha256(request.procedure)


def execute_run(request: RunRequest, console: Console | None) -> RunRecord:
    station = load_station(request.station)
    # first: its writer process opens the database while the procedure loads and the bench connects
    store = request.store or open_store(request.db, station)
    with _closed_if_this_fails(store):
        procedure, sha = prepare(request, station)
        store.open()  # the input holds: the database opens while the bench connects
        run_id = _new_run_id()
        runs_dir = Path(station.runs_dir)
        run_dir = request.out_dir or runs_dir / run_id
        if run_dir.exists() and any(run_dir.iterdir()):
            raise InputError("run folder exists and is not empty", file=str(run_dir), field="--out")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.json").write_text(json.dumps({
            "procedure": str(Path(request.procedure).resolve()),
            "station": str(Path(request.station).resolve()) if request.station else None,
            "scenario": request.scenario, "serial": request.serial, "operator": request.operator,
            "params": request.params, "db": request.db, "watchdog": request.watchdog,
        }, indent=2), encoding="utf-8")
        bench = connect_bench(station, scenario=request.scenario, can_log=run_dir / "can.blf")
    return _run(bench, store, station, procedure, sha, run_dir, run_id, request, console)


def resume_run(run_dir: Path, *, yes: bool, db: str | None, console: Console | None,
               events: EventBus | None = None) -> RunRecord:
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise InputError("not a run folder (run.json missing)", file=str(run_dir))
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    state, sim_state = load_checkpoint(run_dir)
    request = RunRequest(procedure=Path(meta["procedure"]), station=meta["station"],
                         scenario=meta["scenario"], serial=meta["serial"], operator=meta["operator"],
                         params=meta["params"], yes=yes, db=db or meta.get("db"),
                         watchdog=meta.get("watchdog", True), events=events)
    station = load_station(request.station)
    store = open_store(request.db, station)  # first, as in execute_run
    with _closed_if_this_fails(store):
        procedure, sha = prepare(request, station)
        store.open()  # as in execute_run
        n = 1
        while (can_log := run_dir / f"can.resume-{n}.blf").exists():
            n += 1
        bench = connect_bench(station, scenario=request.scenario, sim_state=sim_state, can_log=can_log)
    if isinstance(bench.clock, WallClock):
        bench.clock.resume_at(state.t_s)  # the run's bench time goes on from its checkpoint
    return _run(bench, store, station, procedure, sha, run_dir, state.run_id, request, console,
                resume=state)


@contextmanager
def _closed_if_this_fails(store: StoreWriter) -> Iterator[None]:
    """Close the run's store writer if the block raises (the run then never starts)."""
    try:
        yield
    except BaseException:
        store.close(STORE_DRAIN_TIMEOUT_S)
        raise


def _run(bench: Bench, store: StoreWriter, station: StationConfig, procedure: Procedure, sha: str,
         run_dir: Path, run_id: str, request: RunRequest, console: Console | None,
         resume: Any = None) -> RunRecord:
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except OSError:
        bench.close()
        store.close(STORE_DRAIN_TIMEOUT_S)
        raise InputError("the run folder is in use by another process", file=str(run_dir)) from None
    with lock:  # held for the whole run: a 'running' record with no holder is an orphan (bench db runs)
        return _run_locked(bench, store, station, procedure, sha, run_dir, run_id, request, console,
                           resume)


def _run_locked(bench: Bench, store: StoreWriter, station: StationConfig, procedure: Procedure, sha: str,
                run_dir: Path, run_id: str, request: RunRequest, console: Console | None,
                resume: Any) -> RunRecord:
    events = request.events or EventBus()
    if console is not None:
        printer = ProgressPrinter(console, procedure, bench.clock)
        # its status line takes one sample per every_s: the others are not even built (events.py)
        events.subscribe(printer, sample_every_s=printer.every_s)
    prompter = request.prompter or (AutoPrompter() if request.yes or not request.interactive
                                    else TerminalPrompter(console or Console()))
    # from the run's end on, Ctrl-C/SIGTERM are noted, not raised; the caller may read it after
    end_of_run = request.end_of_run or EndOfRun()
    try:
        record = _run_and_seal(bench, store, station, procedure, sha, run_dir, run_id, request,
                               events, prompter, resume, end_of_run)
        _render_report(run_dir)
    finally:
        end_of_run.close()
    return record


def _run_and_seal(bench: Bench, store: StoreWriter, station: StationConfig, procedure: Procedure, sha: str,
                  run_dir: Path, run_id: str, request: RunRequest, events: EventBus, prompter: Prompter,
                  resume: Any, end_of_run: EndOfRun) -> RunRecord:
    try:  # the store's writer is closed on every path (the engine closes it when it seals the files)
        watchdog = None
        injector = None
        engine: Engine | None = None
        ended = False
        try:
            store.wait_ready(STORE_READY_TIMEOUT_S)  # the database opened and migrated, or why not
            if request.watchdog and station.watchdog.enabled and not bench.simulated:
                watchdog = start_watchdog(station, run_dir, request.station,
                                          interval_s=float(procedure.control_interval_s))
            injector = _fault_injector(bench, station, watchdog, run_dir)
            options = RunOptions(
                run_dir=run_dir, operator=request.operator, serial=request.serial,
                prompter=prompter, store=store, events=events, run_id=run_id,
                procedure_path=str(request.procedure), procedure_sha256=sha,
                heartbeat=watchdog.heartbeat if watchdog is not None else None,
                hand_over=watchdog.hand_over if watchdog is not None else None,
                stop_requested=request.stop_requested, end_of_run=end_of_run,
            )
            engine = Engine(bench, procedure, options, resume=resume)
            if request.on_engine is not None:
                request.on_engine(engine)
            record = engine.run()
            ended = True
        finally:
            end_of_run.begin()
            if injector is not None:
                injector.stop()
            if watchdog is not None:
                if engine is not None and not ended:
                    watchdog.leave_in_charge()  # the engine did not carry the run to its end
                else:
                    watchdog.stop()
            # an output the engine could not confirm off is listed and, with a watchdog, handed to
            # it: not waited out once more here
            bench.close(skip={u.instrument for u in record.outputs_not_confirmed_off} if ended else ())
            # hash only now: closing the adapter completes can.blf, and the watchdog and the
            # fault injector may have written into the folder until they stopped
            if engine is not None:
                engine.seal_files()
    finally:
        store.close(STORE_DRAIN_TIMEOUT_S)  # idempotent
    return record


def _fault_injector(bench: Bench, station: StationConfig, watchdog: Any, run_dir: Path) -> Any:
    """On a simulated bench, carry out the scenario's controller/watchdog deaths (once per run)."""
    sim_cfg = station.simulator
    if bench.sim is not None:
        bench.sim.skip_controller_faults(carried_out(run_dir))
        source = in_process_source(bench.sim)
    elif sim_cfg is not None and sim_cfg.control_port is not None:
        source = control_port_source(sim_cfg.control_host, sim_cfg.control_port)
    else:
        return None
    return ControllerFaultInjector(source, lambda: getattr(watchdog, "pid", None), run_dir).start()


def open_store(db: str | None, station: StationConfig) -> StoreWriter:
    """The run's records store (``db``, else the station's, else SQLite in its runs folder): its
    writer process opens the database and brings it to the current schema while the caller goes
    on; the run waits for that (``wait_ready``) just before its engine starts."""
    return open_run_store(db, station.database_url, Path(station.runs_dir))


def _render_report(run_dir: Path) -> None:
    try:
        write_report(run_dir)
    except Exception as exc:  # the run is recorded; a report can be re-rendered with `bench report`
        log.warning("report rendering failed: %s", exc)


