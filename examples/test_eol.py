"""End-of-line test of a VS02 PRO pack, written in Python with the bench plugin's fixtures.

Run: ``pytest examples/`` (the embedded simulated bench), or ``pytest examples/ --station
stations/bay3.yaml --serial SN --operator NAME`` on a real bench. See examples/README.md.
The plugin switches the supply and the load off after every test, whatever happens.
"""

from __future__ import annotations

import pytest

CELLS = 8
CELL_V_MIN, CELL_V_MAX = 2.50, 3.65  # battery.md §2.1: absolute cell window
DIVERGENCE_MAX_V = 0.05  # calibration procedure: normal divergence < 0.05 V
PULSE_A = 50.0  # up to 0.25C: a DCIR pulse well inside the 1C continuous rating (battery.md §1.5)
PULSE_S = 10.0  # battery.md §1: the model's DC resistance is the 10 s value
# battery.md §1 table: 8 x ~0.5 mOhm (10 s cell DCIR) + 0.8 mOhm interconnect/FET/shunt = ~4.8 mOhm;
# the window allows the cell-to-cell spread and temperature without passing a loose busbar.
PACK_DCIR_LIMITS_MOHM = (2.5, 8.0)


def test_identity(bms, supply, load, record_property):
    ident = bms.read_identity()
    record_property("bms.serial", ident["serial"])
    record_property("bms.sw_version", ident["sw_version"])
    assert ident["serial"], "the BMS reports no serial number"
    for role, driver in (("supply", supply), ("load", load)):
        idn = driver.identify()
        record_property(f"{role}.idn", f"{idn.make} {idn.model} {idn.serial} {idn.firmware}")
        assert idn.model, f"{role} did not identify"


def test_no_active_dtcs(bms):
    active = bms.active_dtcs()  # status testFailed: the fault is present now
    assert not active, "active DTCs: " + ", ".join(f"{d.code_hex} {d.name}" for d in active)


def test_cells_and_contactor_in_limits(bench, bms, record_property):
    bench.clock.sleep(2.0)  # let a fresh broadcast cycle arrive
    snap = bms.snapshot()
    assert snap.contactor_closed, "contactor open"
    cells = snap.cell_voltages_v
    assert cells is not None and len(cells) == CELLS
    record_property("cell_v_min", min(cells))
    record_property("cell_v_max", max(cells))
    assert min(cells) > CELL_V_MIN and max(cells) < CELL_V_MAX
    assert max(cells) - min(cells) < DIVERGENCE_MAX_V


def test_discharge_pulse_resistance(bench, load, record_property):
    """Pack DC resistance from a 10 s discharge pulse: R = ΔV / ΔI (IEC 61960-style DCIR)."""
    bench.clock.sleep(5.0)
    v_rest, i_rest = load.measure()
    # stay under the load's power rating (the simulated IT8514C+ has 1.2 kW: 46 A at 26 V)
    pulse_a = min(PULSE_A, 0.9 * load.ranges.p_max / v_rest)
    bench.discharge_cc(pulse_a, cutoff_v=bench.default_cutoff_v())
    bench.clock.sleep(PULSE_S)
    v_pulse, i_pulse = load.measure()
    bench.outputs_off()
    delta_i = abs(i_pulse - i_rest)
    assert delta_i == pytest.approx(pulse_a, rel=0.02), f"load drew {delta_i:.1f} A, not {pulse_a:.1f} A"
    r_mohm = 1000.0 * abs(v_rest - v_pulse) / delta_i
    record_property("pack_dcir_mohm", round(r_mohm, 3))
    low, high = PACK_DCIR_LIMITS_MOHM
    assert low <= r_mohm <= high, f"pack DCIR {r_mohm:.2f} mΩ outside [{low}, {high}] mΩ"
