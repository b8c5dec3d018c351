"""Instrument knowledge lives in drivers/ (issue 16 point 4).

Behaviour first: the gauge flags the sampler reports come from the typed ``BmsSnapshot`` and agree,
bit for bit, with the UDS map and the simulated BMS (two independent writings of the same table).
``output_is_on()`` is exercised against every simulated family over pyvisa in
tests/drivers/test_integration.py. The source checks below only complement those: they catch
the old shapes coming back (bit constants in the engine, command templates split outside drivers).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.engine.sampler import RawReading, quantities
from bench.sim.bms_types import GaugeFlags as SimGaugeFlags
from drivers.uds_map import default_uds_map
from drivers.vs02_broadcast import BmsSnapshot, GaugeStatus

ROOT = Path(__file__).resolve().parents[2]
# sampler quantity -> UDS map bit name (drivers/data/vs02_uds.yaml, DID 0x011A)
QUANTITY_BIT = {"bms_full": "full_charge", "bms_empty": "fully_discharged",
                "bms_learning": "learning_armed", "bms_learn_ok": "learn_ok"}


def _uds_bits() -> dict[str, int]:
    (flags,) = default_uds_map().did("gauge_status").fields
    assert flags.bits is not None
    return {name: 1 << bit for bit, name in flags.bits.items()}


def test_gauge_status_is_the_uds_map_and_the_simulated_bms_table() -> None:
    uds = _uds_bits()
    assert {f.name.lower(): f.value for f in GaugeStatus if f.name} == uds
    assert sorted(f.value for f in SimGaugeFlags) == sorted(uds.values())


def _sample(flags: int | None) -> dict[str, object]:
    bms = BmsSnapshot(taken_at=0.0, flags=flags)
    reading = RawReading(t_s=0.0, supply_v=26.0, supply_i=0.0, load_v=26.0, load_i=0.0,
                         supply_on=False, load_on=False, bms=bms)
    return quantities(reading, can_age_s=0.0)


@pytest.mark.parametrize("bit", sorted(_uds_bits()))
def test_sampler_reports_each_gauge_bit_alone(bit: str) -> None:
    q = _sample(_uds_bits()[bit])
    for quantity, name in QUANTITY_BIT.items():
        assert q[quantity] is (name == bit), quantity


def test_sampler_gauge_flags_all_set_and_never_received() -> None:
    everything = _sample(0xFFFF)
    assert all(everything[quantity] is True for quantity in QUANTITY_BIT)
    never = _sample(None)  # BMS_Status never received: no flag claimed
    assert all(never[quantity] is False for quantity in QUANTITY_BIT)
    snapshot = BmsSnapshot(taken_at=0.0, flags=0x21)  # tests/data/vs02_golden.yaml, DID 0x011A
    assert (snapshot.full_charge, snapshot.learn_ok, snapshot.learning_armed) == (True, True, False)


def _tree(relative: str) -> ast.Module:
    return ast.parse((ROOT / relative).read_text(), relative)


def test_no_gauge_bit_constant_in_the_engine() -> None:
    offenders = []
    for path in sorted((ROOT / "bench" / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.asname or a.name for a in node.names] if isinstance(node, ast.ImportFrom)
                     else [t.id for t in node.targets if isinstance(t, ast.Name)]
                     if isinstance(node, ast.Assign) else [])
            offenders += [f"{path.name}:{getattr(node, 'lineno', 0)} {n}" for n in names
                          if n.startswith("GAUGE_") or n in ("GaugeStatus", "GaugeFlags")]
            if isinstance(node, ast.Attribute) and node.attr == "flags":
                offenders.append(f"{path.name}:{node.lineno} .flags (raw gauge word)")
    assert offenders == []


@pytest.mark.parametrize("module", ["bench/watchdog.py", "bench/pytest_plugin.py"])
def test_watchdog_and_plugin_do_not_build_instrument_commands(module: str) -> None:
    """They ask the driver (``output_is_on()``); a family's command table or SCPI session is the
    driver's business."""
    private = {"commands", "family", "scpi", "_template", "query_bool"}
    offenders = []
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            offenders.append(f"{node.lineno} .{node.attr}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and any(isinstance(a, ast.Constant) and a.value in private for a in node.args)):
            offenders.append(f"{node.lineno} getattr(...)")
    assert offenders == []
