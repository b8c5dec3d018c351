"""The one table of quantities (issue 16 point 3): the sampler, the validator, the JSON Schema and
docs/procedures.md agree with bench/procedure/quantities.py."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from bench.config import load_station
from bench.engine.sampler import Sampler, read_bench
from bench.engine.throughput import ReferenceSoc, Throughput
from bench.procedure.loader import check_procedure
from bench.procedure.quantities import QUANTITY, QUANTITY_TABLE, RECORDED, SAMPLE_QUANTITIES, SETTABLE, SOURCES
from bench.procedure.quantity_doc import DOC_BEGIN, DOC_END, render_doc, update_doc
from bench.procedure.schema import procedure_schema
from bench.procedure.units import DIMENSION_NAMES
from bench.record import RunRecord
from bench.station import connect_bench


def test_the_table_is_well_formed() -> None:
    names = [q.name for q in QUANTITY_TABLE]
    assert len(names) == len(set(names)), "a quantity is declared twice"
    for q in QUANTITY_TABLE:
        assert all(part.isidentifier() for part in q.name.split(".")), q.name
        assert q.source in SOURCES, q.name
        assert q.description, q.name
        # a number carries a unit that is a dimension of the unit checks; flags and cell numbers none
        assert (q.kind == "number") == (q.unit is not None), q.name
        assert q.unit is None or q.unit in DIMENSION_NAMES, q.name
        assert not q.settable or q.source == "bench-reference", q.name
        assert (q.routine_result is not None) == (q.source == "bms-routine"), q.name
    for _, record_field in RECORDED:
        assert record_field in RunRecord.model_fields, record_field
    # the names the issue found missing from the old list
    assert {"bms_learning", "cell_sum_v", "ref_soc", "wh", "ref_capacity_ah"} <= set(SAMPLE_QUANTITIES)


def _sample(charging: bool) -> dict[str, object]:
    with connect_bench(load_station(None)) as bench:
        if charging:
            bench.charge(27.0, 20.0)
        bench.clock.sleep_until(3.0)  # a few BMS broadcasts received
        reading = read_bench(bench, bench.clock.now())
        reference = ReferenceSoc(capacity_ah=200.0)
        reference.anchor(50.0, 0.0)
        sampler = Sampler(bench)
        values = sampler.values(reading, bench.adapter_age_s(reading.bms), 1.0, Throughput(), Throughput(),
                                reference)
        again = sampler.values(reading, 0.0, None, Throughput(), Throughput(), reference)
        bench.outputs_off()
    assert again.keys() == values.keys()
    return values


@pytest.mark.parametrize("charging", [False, True])
def test_the_sampler_produces_exactly_the_sample_quantities_on_the_simulated_bench(charging: bool) -> None:
    values = _sample(charging)
    produced, declared = set(values), set(SAMPLE_QUANTITIES)
    assert not produced - declared, f"produced but not declared: {sorted(produced - declared)}"
    assert not declared - produced, f"declared but not produced: {sorted(declared - produced)}"
    for name, value in values.items():  # and of the declared kind
        kind = QUANTITY[name].kind
        if kind == "bool":
            assert isinstance(value, bool), name
        elif kind == "cell":
            assert isinstance(value, int) and 1 <= value <= 8, name
        else:
            assert isinstance(value, float | int) and not isinstance(value, bool), name
    assert values["pack_v"] > 20 and values["ref_soc"] == 50.0
    assert (values["current"] > 0) is charging


def _procedure_naming(tmp_path: Path, names: list[str]) -> Path:
    """A procedure that names each of ``names`` in a limit's quantity and in a condition."""
    procedure = {
        "procedure": "every quantity", "version": "1",
        "safety": [{"id": f"l{i}", "quantity": name, "warn_above": 1e9} for i, name in enumerate(names)],
        "steps": [{"id": "w", "wait_for": {"when": " and ".join(f"{n} == {n}" for n in names), "timeout": 10}}],
    }
    path = tmp_path / "every.yaml"
    path.write_text(yaml.safe_dump(procedure, sort_keys=False), encoding="utf-8")
    return path


def test_the_validator_accepts_the_sample_quantities_and_nothing_else_as_runtime_names(tmp_path: Path) -> None:
    report = check_procedure(_procedure_naming(tmp_path, list(SAMPLE_QUANTITIES)))
    assert report.errors == []
    # declared but not on every sample (a routine result): not a runtime name
    stray = check_procedure(_procedure_naming(tmp_path, ["bms_learned_capacity_ah"]))
    messages = [str(e) for e in stray.errors]
    assert any("unknown quantity 'bms_learned_capacity_ah'" in m for m in messages), messages
    assert any("unknown name 'bms_learned_capacity_ah'" in m for m in messages), messages


def test_the_json_schema_offers_the_sample_quantities(tmp_path: Path) -> None:
    schema = procedure_schema()
    offered = [entry["const"] for entry in schema["$defs"]["RuntimeQuantity"]["oneOf"]]
    assert offered == list(SAMPLE_QUANTITIES)
    procedure = yaml.safe_load(_procedure_naming(tmp_path, list(SAMPLE_QUANTITIES)).read_text(encoding="utf-8"))
    jsonschema.validate(procedure, schema)
    # a parameter or a variable may still be judged by a limit: the schema leaves that to validate
    procedure["safety"][0]["quantity"] = "my_parameter"
    jsonschema.validate(procedure, schema)


def test_docs_quantity_table_is_generated_from_the_table() -> None:
    assert update_doc(check=True), "docs/procedures.md is stale: run python -m bench.procedure.quantity_doc"
    text = Path(__file__).resolve().parents[3].joinpath("docs", "procedures.md").read_text(encoding="utf-8")
    section = text[text.index(DOC_BEGIN):text.index(DOC_END)]
    for name in SAMPLE_QUANTITIES:
        assert f"| `{name}` |" in section, name
    stale = text.replace("| `cell_sum_v` |", "| `cell_sum` |")
    assert stale != text and render_doc(stale) == text


def test_a_set_step_assigns_exactly_the_settable_quantities_to_the_reference() -> None:
    for name in SETTABLE:
        reference = ReferenceSoc(capacity_ah=200.0)
        reference.anchor(50.0, 0.0)
        reference.assign(name, 100.0, 10.0)
        assert (reference.value(10.0), reference.capacity_ah) == (
            (100.0, 200.0) if name == "ref_soc" else (55.0, 100.0))
    for name in set(QUANTITY) - SETTABLE:
        with pytest.raises(KeyError):
            ReferenceSoc(capacity_ah=200.0).assign(name, 1.0, 0.0)


def _write(tmp_path: Path, procedure: dict[str, object]) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(procedure, sort_keys=False), encoding="utf-8")
    return path


def test_a_parameter_default_may_name_only_the_station_constants(tmp_path: Path) -> None:
    # defaults are evaluated before the first sample: only the station's quantities exist then
    steps = [{"id": "w", "rest": {"duration": "1s"}}]
    ok = check_procedure(_write(tmp_path, {
        "procedure": "p", "version": "1", "steps": steps,
        "parameters": {"i": {"default": "min(0.5C, supply.current_max)", "unit": "A"}}}))
    assert ok.errors == []
    bad = check_procedure(_write(tmp_path, {
        "procedure": "p", "version": "1", "steps": steps,
        "parameters": {"v": {"default": "pack_v", "unit": "V"}}}))
    assert [e for e in bad.errors if "pack_v" in str(e)], [str(e) for e in bad.errors]


def test_a_set_step_refuses_a_measured_quantity(tmp_path: Path) -> None:
    report = check_procedure(_write(tmp_path, {
        "procedure": "p", "version": "1",
        "steps": [{"id": "s", "set": {"pack_v": "3V", "ref_soc": "50"}}]}))
    messages = [str(e) for e in report.errors]
    assert len(messages) == 1, messages
    assert "'pack_v' is measured on every sample and cannot be set" in messages[0]
    assert "p.yaml:" in messages[0] and "steps.0.set.pack_v" in messages[0]
