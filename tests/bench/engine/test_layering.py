"""The engine's layering (issue 16.1), read from the source: the engine drives the bench port and
never imports the bench layer above it; runner and steps do not import each other; no ``Any`` in
the engine's signatures; the connected bench is a complete backend of the port."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from bench.engine.port import BenchPort
from bench.station import Bench
from tools.measure_seams import any_in_signatures

ENGINE = Path(__file__).resolve().parents[3] / "bench" / "engine"
#: the layers above the engine: they use it, it must not use them
ABOVE = ("bench.station", "bench.run", "bench.cli", "bench.ui", "bench.diag", "bench.pytest_plugin",
         "bench.progress", "bench.fleet", "bench.drivers_factory")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level, inside functions or under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_engine_imports_nothing_from_the_bench_layer_above_it() -> None:
    offending = {f"{path.name}: {name}" for path in ENGINE.glob("*.py") for name in _imports(path)
                 if name.startswith(ABOVE)}
    assert offending == set()


def test_runner_and_steps_do_not_import_each_other() -> None:
    assert "bench.engine.runner" not in _imports(ENGINE / "steps.py")
    # the runner uses the executor; the executor knows the run only as a StepContext
    assert "bench.engine.steps" in _imports(ENGINE / "runner.py")


def test_no_any_in_engine_signatures() -> None:
    counts = {path.name: any_in_signatures(path) for path in ENGINE.glob("*.py")}
    assert {name: n for name, n in counts.items() if n} == {}


def test_the_connected_bench_is_a_complete_backend_of_the_port() -> None:
    assert issubclass(Bench, BenchPort)
    assert not inspect.isabstract(Bench), sorted(getattr(Bench, "__abstractmethods__", ()))


def test_the_bench_knows_the_engine_only_by_its_port() -> None:
    # BMS step actions are the engine's (bench.engine.bms_actions), run on the port's adapter
    station = ENGINE.parent / "station.py"
    assert {name for name in _imports(station) if name.startswith("bench.engine")} == {"bench.engine.port"}
