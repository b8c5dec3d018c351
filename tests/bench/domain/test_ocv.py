"""The bench's own OCV table (bench/domain): the §1.4 values, its inverse, and its independence
from the simulator (the controller must never read the simulated cells' curve)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest

from bench.domain.ocv import OCV_TABLE_PATH, default_ocv_table, load_ocv_table, soc_from_ocv
from tests.simserve import REPO

SHARED_TABLE = Path("/work/shared/domain/lfp_ocv_recommended.csv")


def test_table_reproduces_battery_md_1_4():
    table = default_ocv_table()
    # battery.md §1.4 rows (mean, charge, discharge)
    for soc_pct, mean, charge, discharge in [(2, 2.911, 2.919, 2.903), (5, 3.092, 3.104, 3.080),
                                             (50, 3.299, 3.309, 3.289), (99, 3.371, 3.374, 3.368)]:
        assert table.ocv_mean(soc_pct / 100) == pytest.approx(mean, abs=6e-4)
        assert table.ocv_charge(soc_pct / 100) == pytest.approx(charge, abs=6e-4)
        assert table.ocv_discharge(soc_pct / 100) == pytest.approx(discharge, abs=6e-4)


def test_every_csv_row_is_read():
    with OCV_TABLE_PATH.open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    table = default_ocv_table()
    assert len(table.soc) == len(rows)
    for row in rows:
        assert table.ocv_mean(float(row["soc_pct"]) / 100) == pytest.approx(float(row["ocv_mean_V"]), abs=1e-12)


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="shared domain folder not mounted")
def test_package_copy_equals_the_domain_reference():
    assert OCV_TABLE_PATH.read_text() == SHARED_TABLE.read_text()


def test_inverse_and_end_slopes():
    table = default_ocv_table()
    for soc in (0.0, 0.005, 0.02, 0.05, 0.077, 0.5, 0.985, 1.0):
        assert soc_from_ocv(table.ocv_mean(soc)) == pytest.approx(soc, abs=1e-9)
    assert soc_from_ocv(2.40) < 0.0  # below the table: the end slope, not a clamp
    assert soc_from_ocv(3.70) > 1.0
    assert table.ocv_mean(-0.01) < 2.5 < table.ocv_mean(0.001)


def test_a_table_that_falls_is_refused(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("soc_pct,ocv_mean_V,ocv_charge_V,ocv_discharge_V\n0,3.0,3.0,3.0\n50,2.9,2.9,2.9\n100,3.6,3.6,3.6\n")
    with pytest.raises(ValueError, match="rise strictly"):
        load_ocv_table(bad)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("path", [p for p in sorted((REPO / "bench").rglob("*.py"))
                                  if "sim" not in p.relative_to(REPO / "bench").parts],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_controller_never_reads_the_simulators_ocv(path: Path):
    # issue 14: procedures (ocv_soc) and diagnostics read the simulated cells' own curve, so their
    # OCV arithmetic could never be wrong in simulation
    assert "bench.sim.ocv" not in _imports(path)
