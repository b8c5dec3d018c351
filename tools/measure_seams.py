"""Measure the seams issue 16 names: import circles, `Any` in signatures, in-function imports.

Run from the repository root: ``python tools/measure_seams.py``. Static (ast) only: nothing is
imported, so the figures do not depend on what happens to be installed.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("bench", "drivers", "reports")


def modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known: dict[str, Path], *, top_level_only: bool) -> set[str]:
    """Project modules imported by ``module`` (module level only, or everywhere)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    nodes: Iterator[ast.AST] = iter(tree.body) if top_level_only else ast.walk(tree)
    targets: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:
            # `if TYPE_CHECKING:` imports do not run; other module-level ifs are rare here.
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            resolved = _resolve(name, known)
            if resolved and resolved != module:
                targets.add(resolved)
    return targets


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def any_in_signatures(path: Path) -> int:
    count = 0
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            annotations = [a.annotation for a in every if a is not None] + [node.returns]
            for annotation in annotations:
                if annotation is None:
                    continue
                count += sum(
                    1 for sub in ast.walk(annotation)
                    if (isinstance(sub, ast.Name) and sub.id == "Any")
                    or (isinstance(sub, ast.Attribute) and sub.attr == "Any")
                    or (isinstance(sub, ast.Constant) and isinstance(sub.value, str) and "Any" in sub.value)
                )
    return count


def in_function_imports(path: Path) -> int:
    count = 0
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            count += sum(
                1 for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)
            )
    return count


def _package(module: str) -> str:
    """bench.engine.runner -> bench.engine; top-level modules (bench.station) stay themselves."""
    parts = module.split(".")
    if parts[0] != "bench":
        return parts[0]
    return ".".join(parts[:2])


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    known = modules(root)
    runtime = {m: imports(m, p, known, top_level_only=True) for m, p in known.items()}
    everywhere = {m: imports(m, p, known, top_level_only=False) for m, p in known.items()}
    print("import circles (module-level imports):")
    for component in cycles(runtime):
        print("  ", " <-> ".join(component))
    print("import circles (counting in-function imports too):")
    for component in cycles(everywhere):
        print("  ", " <-> ".join(component))
    packages: dict[str, set[str]] = {}
    for module, targets in everywhere.items():
        source = _package(module)
        packages.setdefault(source, set()).update(
            _package(t) for t in targets if _package(t) != source
        )
    print("package circles (bench sub-packages and top-level modules, drivers, reports):")
    for component in cycles(packages):
        print("  ", " <-> ".join(component))
    engine_any = sum(any_in_signatures(p) for m, p in known.items() if m.startswith("bench.engine"))
    all_any = sum(any_in_signatures(p) for p in known.values())
    print(f"Any in signatures: bench/engine {engine_any}, all packages {all_any}")
    per_file = {m: in_function_imports(p) for m, p in known.items()}
    print(f"imports inside functions: {sum(per_file.values())}")
    for module, count in sorted(per_file.items(), key=lambda kv: -kv[1]):
        if count:
            print(f"   {count:3d} {module}")


if __name__ == "__main__":
    main()
