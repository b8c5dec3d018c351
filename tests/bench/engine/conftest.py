from __future__ import annotations

from pathlib import Path

import pytest

from bench.run import RunRequest, execute_run

PROCEDURES = Path(__file__).parent / "procedures"
REPO = Path(__file__).resolve().parents[3]
#: a 40-minute charge: the instrument-link and end-of-run tests' procedure
LONG_CHARGE = PROCEDURES / "long_charge.yaml"
RETRY_MAX_S = 15.0  # bench.engine.links.RETRY_MAX_S: the longest gap between two attempts


def scenario_file(tmp_path: Path, base: str, extra: str) -> str:
    """A scenario file: a built-in scenario plus extra YAML (e.g. a ``faults:`` list)."""
    text = (REPO / "bench" / "sim" / "scenarios" / f"{base}.yaml").read_text(encoding="utf-8")
    path = tmp_path / f"{base}-variant.yaml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return str(path)


def link_drop(tmp_path: Path, instrument: str, at_s: float, duration_s: float) -> str:
    """The healthy scenario with ``instrument``'s LAN link down from ``at_s`` for ``duration_s``."""
    return scenario_file(tmp_path, "healthy", "faults:\n"
                         f"  - {{at_s: {at_s}, kind: instrument_disconnect, instrument: {instrument}, "
                         f"duration_s: {duration_s}}}\n")


def sim_station_with(tmp_path: Path, supervision: str) -> str:
    """The embedded simulated station with a ``supervision:`` block (YAML flow mapping)."""
    text = (REPO / "bench" / "stations" / "sim.yaml").read_text(encoding="utf-8")
    path = tmp_path / "station.yaml"
    path.write_text(text + f"supervision: {supervision}\n", encoding="utf-8")
    return str(path)


def output_on_at(transitions: list[dict], instrument: str, t_s: float) -> bool:
    """Whether ``instrument``'s output was on at bench time ``t_s`` (simulator ground truth)."""
    on = False
    for change in transitions:
        if change["instrument"] == instrument and change["t_s"] <= t_s + 1e-9:
            on = change["on"]
    return on


@pytest.fixture
def run_procedure(tmp_path: Path):
    def run(procedure: str | Path, *, scenario: str | None = None, params: dict[str, str] | None = None,
            out: Path | None = None):
        request = RunRequest(procedure=Path(procedure), scenario=scenario, params=params or {},
                             out_dir=out or tmp_path / "run", yes=True, watchdog=False,
                             db=f"sqlite:///{tmp_path / 'bench.db'}")
        return execute_run(request, console=None)

    return run
