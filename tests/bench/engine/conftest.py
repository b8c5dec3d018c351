from __future__ import annotations

from pathlib import Path

import pytest

from bench.run import RunRequest, execute_run

PROCEDURES = Path(__file__).parent / "procedures"
REPO = Path(__file__).resolve().parents[3]


def scenario_file(tmp_path: Path, base: str, extra: str) -> str:
    """A scenario file: a built-in scenario plus extra YAML (e.g. a ``faults:`` list)."""
    text = (REPO / "bench" / "sim" / "scenarios" / f"{base}.yaml").read_text(encoding="utf-8")
    path = tmp_path / f"{base}-variant.yaml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return str(path)


@pytest.fixture
def run_procedure(tmp_path: Path):
    def run(procedure: str | Path, *, scenario: str | None = None, params: dict[str, str] | None = None,
            out: Path | None = None):
        request = RunRequest(procedure=Path(procedure), scenario=scenario, params=params or {},
                             out_dir=out or tmp_path / "run", yes=True, watchdog=False,
                             db=f"sqlite:///{tmp_path / 'bench.db'}")
        return execute_run(request, console=None)

    return run
