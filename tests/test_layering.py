"""The layering rules of docs/architecture.md, checked on the source (ast, nothing imported).

The import graph comes from tools/measure_seams.py, the same tool that gives issue 16's figures.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tools import measure_seams as seams

ROOT = Path(__file__).resolve().parents[1]
KNOWN = seams.modules(ROOT)
# every import, the ones inside functions and under TYPE_CHECKING included: a lazy import still
# ties the layers together
EVERYWHERE = {m: seams.imports(m, p, KNOWN, top_level_only=False) for m, p in KNOWN.items()}
MODULE_LEVEL = {m: seams.imports(m, p, KNOWN, top_level_only=True) for m, p in KNOWN.items()}


def _targets(prefix: str) -> dict[str, set[str]]:
    """Project modules imported by the modules under ``prefix`` (each importer named)."""
    return {m: t for m, t in EVERYWHERE.items() if m == prefix or m.startswith(prefix + ".")}


def _outside(prefix: str, allowed: tuple[str, ...]) -> list[str]:
    """``importer -> imported`` for imports from ``prefix`` that leave it and are not ``allowed``."""
    bad = []
    for module, targets in _targets(prefix).items():
        for target in sorted(targets):
            inside = target == prefix or target.startswith(prefix + ".")
            if not inside and not target.startswith(allowed):
                bad.append(f"{module} -> {target}")
    return bad


def test_no_import_circle_at_module_level():
    assert seams.cycles(MODULE_LEVEL) == []


def test_no_package_circle():
    packages: dict[str, set[str]] = {}
    for module, targets in EVERYWHERE.items():
        source = seams._package(module)
        packages.setdefault(source, set()).update(
            seams._package(t) for t in targets if seams._package(t) != source)
    assert seams.cycles(packages) == []


def test_no_import_circle_even_through_lazy_imports():
    # issue 16 untied bench.sim.faults <-> world, bench.sim.bms <-> bms_routines,
    # bench.engine.runner <-> steps, bench.procedure.model <-> validate, bench.store <-> reports
    assert seams.cycles(EVERYWHERE) == []


@pytest.mark.parametrize(("layer", "allowed"), [
    # drivers know instruments, not procedures, runs or the simulator
    ("drivers", ("bench.errors", "bench.yamlio")),
    # the simulator meets the drivers only over real transports
    ("bench.sim", ("bench.errors", "bench.yamlio")),
    # reports read records and write documents
    ("reports", ("bench.errors", "bench.record")),
    # the store keeps records; only its CLI renders a report (checked below)
    ("bench.store", ("bench.errors", "bench.record", "reports")),
    ("bench.fleet", ("bench.errors",)),
    ("bench.record", ()),
    ("bench.errors", ()),
    ("bench.clock", ()),
])
def test_a_layer_imports_only_what_lies_below_it(layer, allowed):
    assert _outside(layer, allowed) == []


def test_only_the_store_cli_imports_reports():
    importers = sorted(m for m, t in _targets("bench.store").items() if any(x.startswith("reports") for x in t))
    assert importers == ["bench.store.cli"]


def _within(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def test_the_engine_never_imports_the_layers_above_it():
    above = ("bench.station", "bench.run", "bench.cli", "bench.ui", "bench.pytest_plugin", "bench.diag",
             "bench.instruments_cmd", "bench.drivers_factory", "bench.store", "reports", "bench.watchdog",
             "bench.progress", "bench.fleet",
             "bench.sim")
    bad = [f"{m} -> {t}" for m, ts in _targets("bench.engine").items() for t in sorted(ts) if _within(t, above)]
    assert bad == []


def test_the_engine_opens_no_driver():
    """The engine knows the drivers only as the port's protocols: driver types appear under
    TYPE_CHECKING at most, never as a run-time import."""
    bad = [f"{m} -> {t}" for m, ts in MODULE_LEVEL.items() if _within(m, ("bench.engine",))
           for t in sorted(ts) if _within(t, ("drivers",))]
    assert bad == []


def test_the_station_knows_the_engine_only_by_its_port():
    engine = sorted(t for t in EVERYWHERE["bench.station"] if _within(t, ("bench.engine",)))
    assert engine == ["bench.engine.port"]


@pytest.mark.parametrize("path", ["bench/sim/faults.py", "bench/sim/bms_routines.py"])
def test_no_reach_into_another_objects_private_state(path):
    """Faults and routines act through the Protocols they declare, not the world's/BMS's privates."""
    tree = ast.parse((ROOT / path).read_text())
    private = [f"line {node.lineno}: {ast.unparse(node)}" for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr.startswith("_")
               and not node.attr.startswith("__")
               and not (isinstance(node.value, ast.Name) and node.value.id == "self")]
    strings = [f"line {node.lineno}: {node.value!r}" for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str)
               and node.value.startswith("_") and not node.value.startswith("__")]
    assert private + strings == []




def _comment_above_says_lazy(lines: list[str], index: int) -> bool:
    """A ``# ... lazy ...`` comment heads the block of imports and comments holding line ``index``."""
    for line in reversed(lines[:index]):
        text = line.strip()
        if text.startswith("#") and "lazy" in text:
            return True
        if not text.startswith(("#", "from ", "import ")):
            return False
    return False


def test_every_lazy_import_says_why():
    """An import inside a function needs a comment with "lazy" on its line or heading its block."""
    silent = []
    for path in sorted(KNOWN.values()):
        relative = path.relative_to(ROOT).as_posix()
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    here = lines[sub.lineno - 1]
                    if "lazy" not in here and not _comment_above_says_lazy(lines, sub.lineno - 1):
                        silent.append(f"{relative}:{sub.lineno}: {here.strip()}")
    assert silent == []
