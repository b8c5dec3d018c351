"""pytest plugin: connected, safe bench fixtures and YAML procedures as test items.

Registered through the ``pytest11`` entry point ``bench`` (setup.cfg), so any ``pytest`` run in
an environment where this package is installed gets:

* options ``--station``, ``--scenario``, ``--serial``, ``--operator``, ``--bench-out``,
  ``--bench-param`` and the ini key ``bench_procedure_dirs``;
* fixtures ``station``, ``bench``, ``supply``, ``load``, ``bms``, ``sim`` (session-scoped: the
  bench is connected once), ``bench_run`` and ``procedure_record`` (per test);
* markers ``procedure(path, **params)``, ``hardware`` and ``scenario(name)``;
* YAML procedure files collected as test items (only files named on the command line or
  under a ``bench_procedure_dirs`` folder: the repo holds YAML files that are not procedures).

Safety net (the bench may hold a 200 Ah pack): after EVERY test the connected bench is put in
its safe state whatever the outcome; a test that leaves an output on is reported (an error at
teardown when the test itself passed, like python-can's leaking-channel check). Ctrl-C,
``pytest.exit`` and the end of the session also go through the safe state, and the session
finalizer closes the bench (load off, supply off, drivers closed, simulator stopped).

Imports: pytest loads this plugin in every session of an environment where bench is installed,
so the bench's stack (pydantic models, pyvisa, python-can, the simulator, the engine) is imported
lazily, where a fixture or an item first needs it ("lazy: see the module docstring").

See docs/pytest.md.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bench.errors import BenchError, InputError
from bench.store.url import DB_ENV_VAR

if TYPE_CHECKING:
    from bench.config import StationConfig
    from bench.record import CheckRecord, RunRecord
    from bench.station import Bench
    from drivers.power import PowerInstrument

#: The engine's abort reason for Ctrl-C (bench/engine/runner.py): a procedure item re-raises it.
_INTERRUPTED_PREFIX = "interrupted by the operator"

_MARKERS = (
    "procedure(path, **params): run the YAML procedure at path (relative to the test file) before "
    "the test; the test gets the RunRecord through the procedure_record fixture",
    "hardware: needs real instruments; skipped on a simulated station",
    "scenario(name): simulator scenario (built-in name or YAML file) for this test's bench, sim "
    "and bench_run fixtures",
)


# ----------------------------------------------------------------------------- options
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "VS02 bench")
    group.addoption("--station", default=None, help="station file (default: the embedded simulated bench)")
    group.addoption("--scenario", default=None, help="simulator scenario: built-in name or YAML file")
    group.addoption("--serial", default=None, help="pack serial number")
    group.addoption("--operator", default="", help="operator name recorded in runs")
    group.addoption("--bench-out", default=None, help="folder for run folders (default: a temporary folder)")
    group.addoption("--bench-param", action="append", default=[], metavar="NAME=VALUE",
                    help="parameter override for YAML procedure items (repeatable)")
    parser.addini("bench_procedure_dirs", type="paths", default=[],
                  help="folders whose YAML procedures are collected as test items")


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    guard = BenchGuard(config)
    config.stash[_GUARD_KEY] = guard
    # Bad bench options are a usage error before any test runs (exit code 4, one message).
    if (config.getoption("station") is not None or config.getoption("scenario") is not None
            or config.getoption("bench_param")):
        guard.validate_options()


def _guard(config: pytest.Config) -> BenchGuard:
    return config.stash[_GUARD_KEY]


# ----------------------------------------------------------------------------- the safety net
@dataclass
class BenchGuard:
    """The session's bench connection and everything that keeps it safe."""

    config: pytest.Config
    active: Bench | None = None
    _station: StationConfig | None = None
    _params: dict[str, str] | None = None
    _out_root: Path | None = None
    _runs: int = 0

    @property
    def station(self) -> StationConfig:
        if self._station is None:
            # lazy: see the module docstring
            from bench.config import load_station

            self._station = load_station(self.config.getoption("station"))
        return self._station

    @property
    def simulated(self) -> bool:
        return self.station.simulator is not None

    @property
    def bench_params(self) -> dict[str, str]:
        """``--bench-param`` pairs, split as ``bench run`` splits ``--param``."""
        if self._params is None:
            # lazy: see the module docstring
            from bench.procedure.loader import parse_param_pairs

            self._params = parse_param_pairs(self.config.getoption("bench_param"), option="--bench-param")
        return self._params

    def validate_options(self) -> None:

        try:
            station = self.station
            _ = self.bench_params  # split now: a malformed pair is a usage error too
            scenario = self.config.getoption("scenario")
            if scenario is not None:
                if station.simulator is None:
                    raise InputError("--scenario applies only to a simulated station", field="--scenario")
                # lazy: see the module docstring
                from bench.sim.scenario import load_scenario

                load_scenario(scenario)
        except InputError as exc:
            raise pytest.UsageError(exc.format()) from exc

    # -- connection
    def connect(self, scenario: str | None) -> Bench:
        # lazy: see the module docstring
        from bench.station import connect_bench

        if scenario is not None and not self.simulated:
            pytest.skip(f"scenario {scenario!r}: station {self.station.name!r} is not simulated")
        self.active = connect_bench(self.station, scenario=scenario)
        return self.active

    def disconnect(self) -> None:
        bench, self.active = self.active, None
        if bench is not None:
            bench.close()  # safe state first, then drivers, then the simulator

    # -- safe state
    def make_safe(self) -> list[str]:
        """Load off, then supply off. Never raises; returns the problems met."""
        return self.active.safe_state() if self.active is not None else []

    def outputs_left_on(self) -> list[str]:
        """Roles whose output is on: the bench's bookkeeping, the instruments' own state and, on
        the simulator, the ground truth (a test may switch a driver directly)."""
        bench = self.active
        if bench is None:
            return []
        on: set[str] = set()
        if bench.outputs.supply_on:
            on.add("supply")
        if bench.outputs.load_on:
            on.add("load")
        for role, driver in (("supply", bench.supply), ("load", bench.load)):
            if instrument_output_state(driver):
                on.add(role)
        if bench.sim is not None:
            truth = bench.sim.truth()
            if truth["supply_output_on"]:
                on.add("supply")
            if truth["load_input_on"]:
                on.add("load")
        return sorted(on)

    def after_test(self, item: pytest.Item) -> None:
        """Teardown of every test: report outputs left on, then force the safe state."""
        if self.active is None:
            return

        try:
            leaks = self.outputs_left_on()
        except BenchError as exc:  # the instrument may be the reason the test failed
            leaks = []
            item.add_report_section("teardown", "bench", f"output state not readable: {exc}")
        problems = self.make_safe()
        if problems:
            item.add_report_section("teardown", "bench", "safe state problems:\n" + "\n".join(problems))
        if not leaks:
            return
        message = (f"test left the {' and '.join(leaks)} output on; "
                   "the bench plugin switched it off (switch outputs off before a test ends)")
        call = item.stash.get(_CALL_REPORT_KEY, None)
        if call is not None and call.failed:
            item.add_report_section("teardown", "bench", message)  # already failing: say it, once
        else:
            pytest.fail(message, pytrace=False)

    # -- run folders
    def out_root(self) -> Path:
        if self._out_root is None:
            given = self.config.getoption("bench_out")
            if given:
                self._out_root = Path(given).resolve()
                self._out_root.mkdir(parents=True, exist_ok=True)
            else:
                factory = getattr(self.config, "_tmp_path_factory", None)
                if factory is not None:
                    self._out_root = factory.mktemp("bench-runs", numbered=True)
                else:  # the tmpdir plugin is disabled (-p no:tmpdir)

                    self._out_root = Path(tempfile.mkdtemp(prefix="bench-runs-"))
        return self._out_root

    def new_run_dir(self, node: pytest.Item, procedure: Path) -> Path:
        self._runs += 1
        safe_node = re.sub(r"[^A-Za-z0-9_.-]+", "_", node.nodeid).strip("_")[-80:]
        return self.out_root() / safe_node / f"{self._runs:03d}-{procedure.stem}"

    def db_url(self) -> str | None:
        """The records database: as configured ($BENCH_DB, the station), else SQLite next to
        the run folders rather than in the station's ``runs/`` (tests must not fill it)."""

        if os.environ.get(DB_ENV_VAR) or self.station.database_url:
            return None
        return f"sqlite:///{self.out_root() / 'bench.db'}"


_GUARD_KEY = pytest.StashKey[BenchGuard]()
_CALL_REPORT_KEY = pytest.StashKey[pytest.TestReport]()


def instrument_output_state(driver: PowerInstrument) -> bool | None:
    """Ask a supply/load whether its output (input, for a load) is on: the driver's own
    ``output_is_on()`` (the family table knows the query). ``None`` when the driver cannot read
    it back or the query fails."""

    try:
        return bool(driver.output_is_on())
    except BenchError:
        return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                               ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT_KEY] = report
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None
                            ) -> Generator[None, object, object]:
    try:
        return (yield)
    except BaseException as exc:
        # Ctrl-C / pytest.exit skip the per-test teardown: outputs off NOW, not at session end.
        if not isinstance(exc, Exception):
            _guard(item.config).make_safe()
        raise


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # normally the bench fixture's finalizer has closed it already; this covers the rest
    _guard(session.config).disconnect()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [i for i in items if i.get_closest_marker("hardware") or i.get_closest_marker("scenario")]
    if not marked:
        return  # do not even load the station
    guard = _guard(config)
    name = guard.station.name
    for item in marked:
        if item.get_closest_marker("hardware") is not None and guard.simulated:
            item.add_marker(pytest.mark.skip(
                reason=f"hardware test: station {name!r} is simulated (run with --station FILE)"))
        elif item.get_closest_marker("scenario") is not None and not guard.simulated:
            item.add_marker(pytest.mark.skip(reason=f"scenario marker: station {name!r} is not simulated"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A per-test scenario gives the session bench a parameter: pytest keeps one connection per
    # scenario, groups the tests by it and reconnects only when the scenario changes.
    marker = metafunc.definition.get_closest_marker("scenario")
    if marker is None or "bench_scenario" not in metafunc.fixturenames:
        return
    name = _scenario_name(marker)
    metafunc.parametrize("bench_scenario", [name], indirect=True, scope="session", ids=[Path(name).stem])


def _scenario_name(marker: pytest.Mark) -> str:
    if len(marker.args) != 1 or not isinstance(marker.args[0], str | os.PathLike):
        raise pytest.UsageError("@pytest.mark.scenario takes one argument: a scenario name or YAML file")
    return str(marker.args[0])


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def station(request: pytest.FixtureRequest) -> StationConfig:
    """The station configuration (``--station FILE``; default: the embedded simulated bench)."""
    return _guard(request.config).station


@pytest.fixture(scope="session")
def bench_scenario(request: pytest.FixtureRequest) -> str | None:
    """The session bench's simulator scenario: a test's ``scenario`` marker, else ``--scenario``."""
    return getattr(request, "param", request.config.getoption("scenario"))


@pytest.fixture(scope="session")
def bench(request: pytest.FixtureRequest, station: StationConfig,
          bench_scenario: str | None) -> Iterator[Bench]:
    """The connected bench, connected once per session (per scenario); safe after every test."""
    guard = _guard(request.config)
    connected = guard.connect(bench_scenario)
    try:
        yield connected
    finally:
        guard.disconnect()


@pytest.fixture(scope="session")
def supply(bench: Bench) -> Any:
    """The power supply driver (drivers.power.PowerSupply)."""
    return bench.supply


@pytest.fixture(scope="session")
def load(bench: Bench) -> Any:
    """The electronic load driver (drivers.power.ElectronicLoad)."""
    return bench.load


@pytest.fixture(scope="session")
def bms(bench: Bench) -> Any:
    """The BMS through the CAN/UDS adapter driver (drivers.vs02_adapter.Vs02Adapter)."""
    return bench.adapter


@pytest.fixture(scope="session")
def sim(bench: Bench) -> Any:
    """The in-process simulator (bench.sim.world.SimulatedBench): ``truth()``, ``apply_fault()``."""
    if bench.sim is None:
        pytest.skip(f"the sim fixture needs the in-process simulator; station {bench.station.name!r} "
                    "is real hardware (or an external simulator)")
    return bench.sim


@pytest.fixture(autouse=True)
def _bench_safe_after_test(request: pytest.FixtureRequest) -> Iterator[None]:
    # autouse + function scope: set up before, torn down after every other function fixture
    yield
    _guard(request.config).after_test(request.node)


@pytest.fixture
def bench_run(request: pytest.FixtureRequest) -> Callable[..., RunRecord]:
    """``bench_run(path, **params) -> RunRecord``: run a YAML procedure with ``bench run``'s
    machinery on the session's station (and scenario, or the test's ``scenario`` marker).

    On the simulator each run starts its own simulator, so runs are isolated from each other and
    from the ``bench`` fixture. Parameter values are procedure expressions (``28.4``, ``"20A"``).
    Each check becomes JUnit properties of the test and a report section.
    """
    marker = request.node.get_closest_marker("scenario")
    scenario = _scenario_name(marker) if marker is not None else None
    item = request.node

    def run(path: str | os.PathLike[str], **params: Any) -> RunRecord:
        return run_procedure(item, Path(path), params={k: str(v) for k, v in params.items()},
                             scenario=scenario)

    return run


@pytest.fixture
def procedure_record(request: pytest.FixtureRequest, bench_run: Callable[..., RunRecord]) -> RunRecord:
    """The record of the test's ``@pytest.mark.procedure(path, **params)`` run (path relative to
    the test file). The test decides what to assert; the verdict alone does not fail it."""
    marker = request.node.get_closest_marker("procedure")
    if marker is None or len(marker.args) != 1:
        pytest.fail("procedure_record needs @pytest.mark.procedure(path, **params)", pytrace=False)
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(request.node.path).parent / path
    return bench_run(path, **marker.kwargs)


# ----------------------------------------------------------------------------- running procedures
def run_procedure(item: pytest.Item, path: Path, *, params: dict[str, str],
                  scenario: str | None) -> RunRecord:
    """Run one procedure as ``bench run --yes`` would, record its checks on ``item``."""
    # lazy: see the module docstring
    from bench.engine.end_of_run import EndOfRun
    from bench.run import RunRequest, execute_run

    guard = _guard(item.config)
    if guard.active is not None and not guard.simulated:
        pytest.fail("the session's bench fixture holds the instruments: on real hardware run procedures "
                    "in a separate pytest session from the instrument fixtures", pytrace=False)
    end_of_run = EndOfRun()
    request = RunRequest(
        procedure=path, station=item.config.getoption("station"),
        scenario=scenario or item.config.getoption("scenario"), serial=item.config.getoption("serial"),
        operator=item.config.getoption("operator"), params=params, out_dir=guard.new_run_dir(item, path),
        yes=True, db=guard.db_url(), interactive=False, end_of_run=end_of_run)
    record = execute_run(request, console=None)
    report_checks(item, record, request.out_dir)
    interrupted = record.verdict == "aborted" and (record.abort_reason or "").startswith(_INTERRUPTED_PREFIX)
    if interrupted or end_of_run.exit_requested:  # Ctrl-C as it ended counts too
        raise KeyboardInterrupt  # the engine made the bench safe; now stop the session too
    return record


def check_properties(check: CheckRecord) -> list[tuple[str, object]]:
    """JUnit properties of one check: ``check.<id>.<field>`` for every field that is set."""
    fields: dict[str, object] = {"value": check.value, "unit": check.unit, "low": check.low,
                                 "high": check.high, "reference": check.reference,
                                 "tolerance": check.tolerance, "tolerance_kind": check.tolerance_kind,
                                 "passed": check.passed, "message": check.message}
    return [(f"check.{check.id}.{name}", value) for name, value in fields.items()
            if value is not None and value != ""]


def check_line(check: CheckRecord) -> str:
    return f"{'PASS' if check.passed else 'FAIL'} {check.message or check.id}"


def report_checks(item: pytest.Item, record: RunRecord, run_dir: Path | None) -> None:
    item.user_properties.append(("run.id", record.run_id))
    item.user_properties.append(("run.verdict", record.verdict))
    if run_dir is not None:
        item.user_properties.append(("run.dir", str(run_dir)))
    for check in record.checks:
        item.user_properties.extend(check_properties(check))
    head = f"{record.procedure.name} {record.procedure.version}: {record.verdict.upper()}"
    if record.abort_reason:
        head += f" ({record.abort_reason})"
    lines = [head, f"run folder: {run_dir}", *(check_line(c) for c in record.checks)]
    item.add_report_section("call", f"bench run {record.procedure.name}", "\n".join(lines))


# ----------------------------------------------------------------------------- YAML procedures as items
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    explicit = parent.session.isinitpath(file_path)
    configured = any(file_path.is_relative_to(d) for d in parent.config.getini("bench_procedure_dirs"))
    if not (explicit or configured) or not _looks_like_procedure(file_path):
        return None
    return ProcedureFile.from_parent(parent, path=file_path)


def _looks_like_procedure(path: Path) -> bool:
    # lazy: see the module docstring
    from bench.yamlio import load_yaml

    try:
        data = load_yaml(path).data  # bounded: collection must not hang on an alias bomb
    except InputError:
        return True  # collect it: the item reports the located error
    return isinstance(data, dict) and "procedure" in data and "steps" in data


class ProcedureFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield ProcedureItem.from_parent(self, name=self.path.stem)


class ProcedureFailed(Exception):
    """The procedure ran and one or more checks failed (verdict fail)."""


class ProcedureAborted(Exception):
    """The run was aborted (safety trip, lost instrument, ...)."""


class ProcedureItem(pytest.Item):
    """One YAML procedure run on the session's station, judged by its own checks."""

    def runtest(self) -> None:
        record = run_procedure(self, self.path, params=_guard(self.config).bench_params, scenario=None)
        if record.verdict == "aborted":
            raise ProcedureAborted(f"run aborted: {record.abort_reason}")
        if record.verdict != "pass":
            failed = record.failed_checks
            lines = [check_line(c) for c in failed] or [f"verdict {record.verdict}"]
            summary = f"{len(failed)} of {len(record.checks)} checks failed"
            raise ProcedureFailed("\n".join([summary, *lines]))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:

        if isinstance(excinfo.value, ProcedureFailed | ProcedureAborted):
            return str(excinfo.value)
        if isinstance(excinfo.value, InputError):
            return excinfo.value.format()
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"procedure {self.name}"

