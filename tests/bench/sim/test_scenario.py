import pytest

from bench.errors import ConfigError
from bench.sim.pack import N_CELLS, Pack
from bench.sim.scenario import BmsScenario, Scenario, builtin_scenarios, load_scenario
from tests.bench.sim.pack_charging import cc_cv_charge

BUILTINS = ["bms_cannot_learn", "deep_discharge", "degraded_cell", "divergence_high", "divergence_moderate",
            "healthy"]


def test_builtins_are_listed():
    assert builtin_scenarios() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_loads_and_builds_a_pack(name):
    scenario = load_scenario(name)
    assert scenario.name == name
    assert isinstance(scenario.bms, BmsScenario)
    pack = Pack(scenario.pack_params())
    assert len(pack.cell_soc) == N_CELLS
    assert 150.0 < pack.true_capacity_ah() < 210.0


def test_pack_params_are_deterministic_per_seed():
    a = load_scenario("healthy")
    first = a.pack_params()
    assert a.pack_params() == first
    other = a.model_copy(update={"seed": a.seed + 1}).pack_params()
    assert [c.capacity_ah for c in other.cells] != [c.capacity_ah for c in first.cells]


def test_drawn_values_follow_battery_md_distributions():
    caps, r0s = [], []
    for seed in range(40):
        params = Scenario(name="x", seed=seed).pack_params()
        caps += [c.capacity_ah for c in params.cells]
        r0s += [c.r0_ohm for c in params.cells]
    mean = sum(caps) / len(caps)
    assert mean == pytest.approx(203.0, abs=0.2)  # §1.8 Normal(203, 1.0) clipped ±3σ
    assert min(caps) >= 200.0 and max(caps) <= 206.0
    assert max(r0s) <= 0.00025 * 1.09 + 1e-12


def test_top_alignment_gives_the_requested_true_soc():
    scenario = Scenario.model_validate({"name": "x", "cells": {"soc_pct": 37.0, "spread_sd_pct": 0}})
    pack = Pack(scenario.pack_params())
    assert pack.true_soc_pct() == pytest.approx(37.0, abs=1e-9)
    assert pack.true_capacity_ah() == pytest.approx(min(pack.cell_capacity_ah))


def test_deep_discharge_scenario_matches_its_story():
    scenario = load_scenario("deep_discharge")
    pack = Pack(scenario.pack_params())
    assert 3.0 <= pack.true_soc_pct() <= 8.0
    assert scenario.bms.soc_estimate_pct == 80.0
    assert scenario.bms.learned_capacity_ah == 160.0
    assert any(e.code == "cell_uv" for e in scenario.bms.fault_history)


def _divergence_at_full(name: str) -> float:
    """battery.md §9.2 charge (CC 0.5C to 3.55 V, CV 28.4 V to 0.05C); §8 divergence condition
    end_of_cv: max - min cell voltage at the end of absorption."""
    pack = Pack(load_scenario(name).pack_params())
    # the bench's charge: the highest cell held at 3.55 V (bench.engine.charge_control)
    _, volts = cc_cv_charge(pack, cc_a=100.0, cc_until_cell_v=3.55, cv_pack_v=28.4, cell_limit_v=3.55,
                            tail_a=10.0)
    return max(volts) - min(volts)


@pytest.mark.parametrize(("name", "low", "high"), [
    ("healthy", 0.0, 0.05),
    ("divergence_moderate", 0.05, 0.10),
    ("divergence_high", 0.10, 0.15),
    ("degraded_cell", 0.15, 1.0),
])
def test_divergence_at_full_matches_the_scenario(name, low, high):
    assert low <= _divergence_at_full(name) < high


def test_unknown_name_lists_the_builtins():
    with pytest.raises(ConfigError) as info:
        load_scenario("no_such_scenario")
    message = str(info.value)
    assert "'no_such_scenario'" in message and "\n" not in message
    for name in BUILTINS:
        assert name in message


def test_unknown_key_is_located(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ncells:\n  soc_pct: 50\n  colour: red\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    err = info.value
    assert err.file == str(path) and err.line == 4 and err.field == "cells.colour"
    assert str(err).startswith(f"{path}:4:") and str(err).endswith("cells.colour: unknown key 'colour'")


def test_bad_values_are_all_reported_with_positions(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n"
        "cells:\n  capacity_ah: [200, 201]\n"
        "faults:\n  - {at_s: 10, kind: meteor_strike}\n"
        "  - {at_s: 5, kind: weak_cell, cell: 9, capacity_scale: 0.9}\n",
        encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    text = str(info.value)
    assert f"{path}:3:" in text and "cells.capacity_ah" in text
    assert f"{path}:5:" in text and "meteor_strike" in text
    assert f"{path}:6:" in text and "faults.1.cell" in text


def test_malformed_yaml_is_located(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ncells: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    assert info.value.file == str(path) and info.value.line is not None


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_scenario(str(tmp_path / "nope.yaml"))


def test_faults_parse_as_a_discriminated_union(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text(
        "name: f\nfaults:\n"
        "  - {at_s: 60, kind: instrument_disconnect, instrument: load, duration_s: 5}\n"
        "  - {at_s: 70, kind: cell_over_voltage, cell: 3}\n"
        "  - {at_s: 80, kind: weak_cell, cell: 2, capacity_scale: 0.85, r_scale: 1.5}\n"
        "  - {at_s: 90, kind: watchdog_death}\n",
        encoding="utf-8")
    faults = load_scenario(str(path)).faults
    kinds = ["instrument_disconnect", "cell_over_voltage", "weak_cell", "watchdog_death"]
    assert [f.kind for f in faults] == kinds
    assert faults[1].voltage_v > 3.65
    assert faults[2].r_scale == 1.5


def test_per_cell_soc_cannot_be_top_aligned():
    with pytest.raises(ValueError, match="alignment"):
        Scenario.model_validate({"name": "x", "cells": {"soc_pct": [50.0] * 8, "alignment": "top"}})
