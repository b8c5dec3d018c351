"""Ground truth (``SimulatedBench.truth()``) is for tests and audits only: no controller logic
may read it. The engine and the drivers must not call ``truth()`` at all; ``bench/station.py``
may, only in functions that run solely on the simulator (they start with ``if self.sim is
None: return``) and hand nothing back to the caller (``-> None``): they write the record's
``sim_truth``. Also checks that every key docs/simulator.md documents is what truth() returns."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bench.sim.scenario import load_scenario
from bench.sim.world import SimulatedBench
from tests.simserve import REPO

CONTROLLER_DIRS = [REPO / "bench" / "engine", REPO / "drivers"]
STATION = REPO / "bench" / "station.py"


def _truth_calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute) and n.func.attr == "truth"]


@pytest.mark.parametrize("path", [p for d in CONTROLLER_DIRS for p in sorted(d.rglob("*.py"))],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_controller_code_never_reads_ground_truth(path: Path) -> None:
    source = path.read_text()
    calls = _truth_calls(ast.parse(source))
    assert not calls, f"{path.relative_to(REPO)}:{calls[0].lineno} calls truth()" if calls else ""
    assert "sim_truth" not in source


def _is_sim_guard(stmt: ast.stmt) -> bool:
    """``if self.sim is None: return`` (nothing else in the branch)."""
    return (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare)
            and ast.unparse(stmt.test) == "self.sim is None"
            and len(stmt.body) == 1 and isinstance(stmt.body[0], ast.Return)
            and stmt.body[0].value is None)


def test_station_reads_truth_only_on_sim_paths_that_return_nothing() -> None:
    tree = ast.parse(STATION.read_text())
    functions = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)]
    readers = [f for f in functions if _truth_calls(f)]
    assert readers, "bench/station.py no longer records sim_truth (update this test and the docs)"
    all_calls = {c.lineno for c in _truth_calls(tree)}
    assert all_calls == {c.lineno for f in readers for c in _truth_calls(f)}  # none at module level
    for f in readers:
        body = [s for s in f.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        assert _is_sim_guard(body[0]), f"station.py:{f.lineno} {f.name}() reads truth() on a non-sim path"
        assert f.returns is not None and ast.unparse(f.returns) == "None", (
            f"station.py:{f.lineno} {f.name}() must not hand ground truth back to its caller")


def test_documented_truth_keys_match_what_truth_returns() -> None:
    docs = (REPO / "docs" / "simulator.md").read_text()
    section = docs.split("## Ground truth", 1)[1]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    world = SimulatedBench(load_scenario("healthy"))
    try:
        keys = set(world.truth())
    finally:
        world.close()
    assert keys <= documented, f"undocumented truth() keys: {sorted(keys - documented)}"
