"""The engine's own seams (issue 16.1), read from the source: runner and steps do not import each
other; no ``Any`` in the engine's signatures; the connected bench is a complete backend of the
port. What the engine may import, and the station's use of it, are checked with the other
layering rules in tests/test_layering.py."""

from __future__ import annotations

import inspect
from pathlib import Path

from bench.engine.port import BenchPort
from bench.station import Bench
from tools.measure_seams import any_in_signatures, imports, modules

ENGINE = Path(__file__).resolve().parents[3] / "bench" / "engine"


ROOT = ENGINE.parents[1]
KNOWN = modules(ROOT)


def _imports(module: str) -> set[str]:
    """Every project module ``module`` imports, anywhere in it (the measure_seams graph)."""
    return imports(module, KNOWN[module], KNOWN, top_level_only=False)


def test_runner_and_steps_do_not_import_each_other() -> None:
    assert "bench.engine.runner" not in _imports("bench.engine.steps")
    # the runner uses the executor; the executor knows the run only as a StepContext
    assert "bench.engine.steps" in _imports("bench.engine.runner")


def test_no_any_in_engine_signatures() -> None:
    counts = {path.name: any_in_signatures(path) for path in ENGINE.glob("*.py")}
    assert {name: n for name, n in counts.items() if n} == {}


def test_the_connected_bench_is_a_complete_backend_of_the_port() -> None:
    assert issubclass(Bench, BenchPort)
    assert not inspect.isabstract(Bench), sorted(getattr(Bench, "__abstractmethods__", ()))
