"""The simulated BMS firmware driven by the real pack model and a small CC/CV charger / CC load.

Every expectation is checked against the pack's true state (charge per cell, true capacity), never
against values the BMS computed itself.
"""

from __future__ import annotations

import itertools
import pickle
import random
import statistics

import pytest

from bench.sim.bms import BmsModel, BmsRefusal
from bench.sim.bms_balancer import BALANCE_CURRENT_A, BALANCE_DUTY, BALANCE_STOP_DELTA_V
from bench.sim.bms_protection import CELL_OV_WARN_V, CELL_UV_WARN_V, HIGH_TEMP_WARN_C, LOW_TEMP_WARN_C
from bench.sim.bms_security import DEFAULT_SECRET, key_for_seed
from bench.sim.bms_types import (
    BmsAlarm,
    DtcCode,
    DtcStatus,
    GaugeFlags,
    LearnQualification,
    LearnReason,
    Nrc,
    RoutineId,
    RoutineStatus,
)
from bench.sim.pack import Pack, PackParams
from bench.sim.scenario import BmsScenario

EPOCH = 1_780_000_000.0
# A little spread in cell capacity (battery.md §1.8) so "true capacity" is the weakest-cell figure.
CELL_CAPACITIES_AH = [203.0, 202.2, 204.1, 203.5, 201.8, 203.9, 202.7, 203.3]


class Rig:
    """Pack + BMS wired the way the world wires them: the contactor gates the current."""

    def __init__(self, pack: Pack, bms: BmsModel) -> None:
        self.pack, self.bms, self.t = pack, bms, 0.0

    def step(self, dt: float, *, charge_a: float = 0.0, cv_v: float | None = None,
             discharge_a: float = 0.0) -> float:
        pack, bms = self.pack, self.bms
        current = 0.0
        if bms.contactor_closed:
            if charge_a:
                current = charge_a
                if cv_v is not None:  # CC/CV supply: current limited so the terminals sit at cv_v
                    cv_limit = (cv_v - pack.open_circuit_emf()) / pack.series_resistance()
                    current = max(0.0, min(current, cv_limit))
            elif discharge_a:
                current = -discharge_a
        pack.advance(dt, current, bms.bleed_currents_a())
        bms.advance(dt, current)
        self.t += dt
        return current

    def charge_cccv(self, cc_a: float, cv_v: float, *, taper_a: float, hold_s: float,
                    dt: float = 2.0) -> None:
        below = 0.0
        while below < hold_s:
            current = self.step(dt, charge_a=cc_a, cv_v=cv_v)
            below = below + dt if current < taper_a else 0.0
            assert self.t < 12 * 3600, "charge did not taper"

    def rest(self, seconds: float, dt: float = 5.0) -> None:
        end = self.t + seconds
        while self.t < end:
            self.step(dt)


def make_rig(soc: float, *, capacities: list[float] | None = None, seed: int = 1,
             **bms_fields: object) -> Rig:
    params = PackParams.uniform(soc=soc)
    for cell, capacity in zip(params.cells, capacities or CELL_CAPACITIES_AH, strict=True):
        cell.capacity_ah = capacity
        cell.initial_soc = 1.0 - (1.0 - soc) * 203.0 / capacity  # top-balanced: same Ah to full
    pack = Pack(params)
    bms = BmsModel(pack, BmsScenario(**bms_fields), random.Random(seed), EPOCH)  # type: ignore[arg-type]
    return Rig(pack, bms)


def unlock(bms: BmsModel, secret: bytes = DEFAULT_SECRET) -> None:
    bms.set_session("extended")
    seed = bms.security_seed(1)
    bms.security_send_key(2, key_for_seed(secret, seed))


# -- SOC synchronisation ---------------------------------------------------------------------------

def test_full_sync_sets_100_pct_after_the_cv_taper() -> None:
    rig = make_rig(0.90, soc_estimate_pct=55.0)
    bms = rig.bms
    rig.charge_cccv(100.0, 28.4, taper_a=4.0, hold_s=100.0)
    assert bms.soc_pct == 100.0
    assert bms.flags & GaugeFlags.FULLY_CHARGED
    assert rig.pack.true_soc_pct() > 99.0  # the sync happened at a really full pack


def test_flag_bits_are_the_flags_as_an_int() -> None:
    """The broadcast's plain-int read-out of the gauge flags is int(flags) through a full sync
    (0, then FC set) and the arming of a learning cycle."""
    rig = make_rig(0.90, soc_estimate_pct=55.0)
    bms = rig.bms
    assert bms.flag_bits == int(bms.flags) and type(bms.flag_bits) is int
    rig.charge_cccv(100.0, 28.4, taper_a=4.0, hold_s=100.0)
    assert bms.flag_bits & int(GaugeFlags.FULLY_CHARGED)
    assert bms.flag_bits == int(bms.flags)


def test_no_full_sync_while_still_charging_hard() -> None:
    rig = make_rig(0.90, soc_estimate_pct=55.0)
    for _ in range(300):  # 100 A CC, well above the 10 A taper criterion
        rig.step(1.0, charge_a=100.0)
    assert not rig.bms.flags & GaugeFlags.FULLY_CHARGED
    assert rig.bms.soc_pct < 80.0  # counted from the wrong 55 %, not synced


def test_empty_sync_sets_5_pct_at_the_low_knee() -> None:
    rig = make_rig(0.12, soc_estimate_pct=40.0)
    bms = rig.bms
    while not bms.flags & GaugeFlags.FULLY_DISCHARGED:
        rig.step(1.0, discharge_a=40.0)
        assert rig.t < 4 * 3600
    assert bms.soc_pct == pytest.approx(5.0, abs=0.02)
    # rate-compensated EDV2 (battery.md §4.3): 3.080 V rested minus 40 A x 0.7 mOhm = 3.052 V
    assert min(bms.cell_voltages_v) <= 3.052 + 0.002
    # the compensation puts the sync close to the true 5 % it declares
    assert 3.5 < rig.pack.true_soc_pct() < 6.5


# -- capacity learning ------------------------------------------------------------------------------

def run_calibration_cycle(rig: Rig) -> float:
    """Charge, rest, arm 0x0202, discharge at 0.2C to the empty sync; returns the true capacity."""
    bms = rig.bms
    rig.charge_cccv(100.0, 28.4, taper_a=4.0, hold_s=100.0)
    rig.rest(1800.0)
    true_capacity = rig.pack.true_capacity_ah()
    unlock(bms)
    started = bms.routine_start(RoutineId.CAPACITY_LEARNING, b"")
    assert started[0] == RoutineStatus.RUNNING
    assert bms.flags & GaugeFlags.LEARNING_ARMED
    while not bms.flags & GaugeFlags.EDV2:
        rig.step(2.0, discharge_a=40.0)
        assert bms.contactor_closed, "cell UV tripped before the empty sync"
    return true_capacity


def parse_learning_results(record: bytes) -> tuple[int, float, int, int]:
    assert len(record) == 7
    return record[0], int.from_bytes(record[1:5], "big") / 1000.0, record[5], record[6]


def test_qualified_learning_corrects_a_wrong_capacity() -> None:
    rig = make_rig(0.30, soc_estimate_pct=70.0, learned_capacity_ah=160.0,
                   current_offset_a=0.03, current_gain_error=0.003)
    bms = rig.bms
    true_capacity = run_calibration_cycle(rig)
    status, fcc_ah, qualification, reason = parse_learning_results(
        bms.routine_results(RoutineId.CAPACITY_LEARNING))
    assert (status, qualification, reason) == (
        RoutineStatus.DONE_OK, LearnQualification.LEARNED, LearnReason.NONE)
    assert fcc_ah == pytest.approx(true_capacity, rel=0.03)
    assert bms.learned_capacity_ah == pytest.approx(fcc_ah, abs=0.001)
    assert bms.soh_pct == pytest.approx(min(100.0, fcc_ah / 2.0), abs=0.01)
    assert bms.flags & GaugeFlags.LEARN_OK
    # From now on SOC counts against the learned capacity: recharge 1 h and compare with the truth.
    for _ in range(1800):
        rig.step(2.0, charge_a=100.0)
    assert bms.soc_pct == pytest.approx(rig.pack.true_soc_pct(), abs=3.0)


def test_bms_that_ignores_the_routine_does_not_learn() -> None:
    rig = make_rig(0.30, soc_estimate_pct=70.0, learned_capacity_ah=160.0, ignores_calibration_routine=True)
    run_calibration_cycle(rig)
    status, _, qualification, reason = parse_learning_results(
        rig.bms.routine_results(RoutineId.CAPACITY_LEARNING))
    assert (status, qualification, reason) == (
        RoutineStatus.FAILED, LearnQualification.DISQUALIFIED, LearnReason.LEARNING_INHIBITED)
    assert rig.bms.learned_capacity_ah == 160.0
    assert rig.bms.flags & GaugeFlags.LEARN_FAILED


def test_learning_without_a_recent_full_sync_is_not_qualified() -> None:
    rig = make_rig(0.60)
    unlock(rig.bms)
    status, _, qualification, reason = parse_learning_results(
        rig.bms.routine_start(RoutineId.CAPACITY_LEARNING, b""))
    assert (status, qualification, reason) == (
        RoutineStatus.FAILED, LearnQualification.DISQUALIFIED, LearnReason.NO_RECENT_FULL_SYNC)


def test_charge_during_the_armed_discharge_disqualifies() -> None:
    rig = make_rig(0.95)
    bms = rig.bms
    rig.charge_cccv(50.0, 28.4, taper_a=4.0, hold_s=100.0)
    unlock(bms)
    bms.routine_start(RoutineId.CAPACITY_LEARNING, b"")
    for _ in range(600):
        rig.step(1.0, discharge_a=40.0)
    assert bms.flags & GaugeFlags.DISCHARGE_QUALIFIED
    for _ in range(10):  # 10 s at 10 A = 0.028 Ah > 0.01 Ah
        rig.step(1.0, charge_a=10.0)
    status, _, _, reason = parse_learning_results(bms.routine_results(RoutineId.CAPACITY_LEARNING))
    assert (status, reason) == (RoutineStatus.FAILED, LearnReason.CHARGE_DURING_DISCHARGE)


# -- balancing --------------------------------------------------------------------------------------

def top_imbalance_ah(pack: Pack) -> float:
    """Charge cell 1 holds above the fullest of the others."""
    charge = pack.cell_charge_ah
    return charge[0] - max(charge[1:])


def test_balancing_time_matches_charge_over_bleed_current() -> None:
    dq_ah = 1.0
    rig = make_rig(0.96, capacities=[203.0] * 8)
    rig.pack.set_cell_soc(0, 0.96 + dq_ah / 203.0)
    bms = rig.bms
    start_t = start_imbalance = None
    while True:  # 10 A CC into a 27.6 V CV hold (3.45 V/cell, the procedure's balance hold)
        rig.step(5.0, charge_a=10.0, cv_v=27.6)
        if start_t is None and bms.balancing_active_cells:
            start_t, start_imbalance = rig.t, top_imbalance_ah(rig.pack)
            assert bms.balancing_active_cells == 0b1  # only the high cell bleeds
        if start_t is not None and not bms.balancing_active_cells:
            break
        assert rig.t < 40 * 3600
    assert start_imbalance is not None
    hours = (rig.t - start_t) / 3600.0
    removed_ah = start_imbalance - top_imbalance_ah(rig.pack)
    assert bms.divergence_v <= BALANCE_STOP_DELTA_V
    # The stop at 20 mV leaves what 20 mV is worth on the top knee (~0.1 % SOC, battery.md §1.6).
    assert top_imbalance_ah(rig.pack) < 0.3
    assert hours == pytest.approx(removed_ah / (BALANCE_CURRENT_A * BALANCE_DUTY), rel=0.10)
    [entry] = bms.balancing_log
    assert entry.cells_bitmap == 0b1
    assert entry.end_epoch - entry.start_epoch == pytest.approx(hours * 3600.0, abs=10.0)
    assert entry.ah_bled == pytest.approx(removed_ah, rel=0.10)


def test_extended_balancing_works_below_the_normal_start_delta() -> None:
    rig = make_rig(0.96, capacities=[203.0] * 8)
    rig.pack.set_cell_soc(0, 0.96 + 0.3 / 203.0)  # ~40 mV at the 27.6 V hold: under the 50 mV start
    bms = rig.bms
    for _ in range(1000):
        rig.step(5.0, charge_a=10.0, cv_v=27.6)
    assert 0.02 < bms.divergence_v < 0.05 and bms.balancing_log == []
    imbalance_before = top_imbalance_ah(rig.pack)
    unlock(bms)
    target_and_timeout = (10).to_bytes(2, "big") + (600).to_bytes(2, "big")
    assert bms.routine_start(RoutineId.EXTENDED_BALANCING, target_and_timeout)[0] == RoutineStatus.RUNNING
    while (result := bms.routine_results(RoutineId.EXTENDED_BALANCING))[0] == RoutineStatus.RUNNING:
        rig.step(5.0, charge_a=10.0, cv_v=27.6)
        assert rig.t < 20 * 3600
    assert result[0] == RoutineStatus.DONE_OK and result[1] == 0b1
    bled_mah = [int.from_bytes(result[2 + 2 * i:4 + 2 * i], "big") for i in range(8)]
    true_bled_ah = rig.pack.cell_ledger()["bleed_ah"]
    assert bled_mah[0] == pytest.approx(true_bled_ah[0] * 1000.0, abs=1.0)
    assert bled_mah[1:] == [0] * 7 and true_bled_ah[1:] == [0.0] * 7
    assert imbalance_before - top_imbalance_ah(rig.pack) == pytest.approx(true_bled_ah[0], rel=0.05)


def test_stuck_balancer_never_engages() -> None:
    rig = make_rig(0.96, capacities=[203.0] * 8, balancing_stuck=True)
    rig.pack.set_cell_soc(0, 0.97)
    for _ in range(1500):
        rig.step(4.0, charge_a=10.0, cv_v=27.6)
    assert bms_divergence_large(rig.bms)
    assert rig.bms.balancing_log == []
    assert rig.pack.cell_ledger()["bleed_ah"] == [0.0] * 8


def bms_divergence_large(bms: BmsModel) -> bool:
    return bms.divergence_v > 0.05 and bms.divergence_condition in ("end_of_cv", "full_rest")


# -- protections ------------------------------------------------------------------------------------

def test_cell_overvoltage_opens_the_contactor_within_2_s_and_records_a_dtc() -> None:
    rig = make_rig(0.97, capacities=[203.0] * 8)
    rig.pack.set_cell_soc(2, 0.995)
    bms = rig.bms
    first_over = None
    while bms.contactor_closed:
        rig.step(0.5, charge_a=30.0)
        if first_over is None and max(rig.pack.cell_voltages(30.0)) >= 3.65:
            first_over = rig.t
        assert rig.t < 3600
    assert first_over is not None
    assert rig.t - first_over <= 2.5
    [dtc] = bms.dtcs
    assert dtc.code == DtcCode.CELL_OVERVOLTAGE
    assert dtc.status & DtcStatus.TEST_FAILED and dtc.status & DtcStatus.CONFIRMED
    assert dtc.first_epoch == pytest.approx(EPOCH + rig.t)
    assert dtc.snapshot["vmax"] >= 3.65
    assert dtc.snapshot["current"] == pytest.approx(30.0, abs=0.5)
    # The charger is cut off; the cell relaxes (RC tau 600 s) under 3.60 V and the contactor recloses.
    while not bms.contactor_closed:
        rig.step(1.0)
        assert rig.t < 3600
    assert max(bms.cell_voltages_v) < 3.60
    assert not bms.dtcs[0].status & DtcStatus.TEST_FAILED
    assert bms.dtcs[0].status & DtcStatus.CONFIRMED


def test_overtemperature_opens_the_contactor_until_the_cell_cools() -> None:
    rig = make_rig(0.5)
    bms = rig.bms
    rig.step(1.0, discharge_a=40.0)
    rig.pack.heat_cell(4, 37.0)  # ~62 °C: above the 60 °C discharge trip
    steps = 0
    while bms.contactor_closed:
        rig.step(1.0, discharge_a=40.0)
        steps += 1
        assert steps <= 3
    [dtc] = bms.dtcs
    assert dtc.code == DtcCode.DISCHARGE_OVERTEMPERATURE
    assert dtc.snapshot["temp"] > 60.0
    rig.rest(60.0, dt=1.0)
    assert not bms.contactor_closed  # still hot: stays open
    rig.pack.heat_cell(4, -20.0)  # below the 50 °C release
    rig.rest(10.0, dt=1.0)
    assert bms.contactor_closed


def test_cell_undervoltage_allows_charge_only() -> None:
    rig = make_rig(0.02, capacities=[203.0] * 8)
    bms = rig.bms
    while bms.contactor_closed:
        rig.step(1.0, discharge_a=100.0)
        assert rig.t < 3600
    assert bms.dtcs[-1].code == DtcCode.CELL_UNDERVOLTAGE
    rig.rest(10.0, dt=1.0)
    assert bms.contactor_closed and bms.discharge_current_limit_a == 0.0  # charge-only mode
    rig.step(1.0, discharge_a=10.0)
    assert not bms.contactor_closed  # a discharge reopens at once
    rig.rest(10.0, dt=1.0)
    for _ in range(600):
        rig.step(1.0, charge_a=50.0)
    assert bms.contactor_closed and bms.discharge_current_limit_a > 0.0


# -- measurement errors -----------------------------------------------------------------------------

def test_current_offset_and_gain_are_visible_and_zero_calibration_removes_the_offset() -> None:
    rig = make_rig(0.5, current_offset_a=0.4, current_gain_error=0.01)
    bms = rig.bms

    def mean_reading(true_a: float, n: int = 200) -> float:
        readings = []
        for _ in range(n):
            rig.step(1.0, charge_a=true_a) if true_a > 0 else rig.step(1.0)
            readings.append(bms.current_a)
        return statistics.fmean(readings)

    assert mean_reading(0.0) == pytest.approx(0.4, abs=0.02)
    assert mean_reading(100.0) == pytest.approx(100.0 * 1.01 + 0.4, abs=0.02)
    unlock(bms)
    bms.routine_start(RoutineId.CURRENT_ZERO_CALIBRATION, b"")
    rig.rest(40.0, dt=1.0)
    result = bms.routine_results(RoutineId.CURRENT_ZERO_CALIBRATION)
    assert result[0] == RoutineStatus.DONE_OK
    assert int.from_bytes(result[1:3], "big", signed=True) == pytest.approx(400, abs=25)
    assert abs(mean_reading(0.0)) < 0.02
    assert mean_reading(100.0) == pytest.approx(101.0, abs=0.05)


def test_cell_voltage_errors_stay_within_the_front_end_spec() -> None:
    rig = make_rig(0.5)
    errors: list[list[float]] = [[] for _ in range(8)]
    for _ in range(300):
        rig.step(1.0)
        for cell, (measured, true) in enumerate(zip(rig.bms.cell_voltages_v, rig.pack.cell_voltages(0.0),
                                                    strict=True)):
            errors[cell].append((measured - true) * 1000.0)
    for cell_errors in errors:
        assert -2.3 <= statistics.fmean(cell_errors) <= 3.3  # offset U(-2, +3) mV, battery.md §8
        assert 0.7 <= statistics.stdev(cell_errors) <= 1.4  # 1 mV noise + 1 mV quantisation
    assert len({round(statistics.fmean(e), 1) for e in errors}) > 1  # offsets differ per channel


# -- service access ---------------------------------------------------------------------------------

def test_security_access_seed_key() -> None:
    bms = make_rig(0.5).bms
    with pytest.raises(BmsRefusal) as refused:
        bms.security_seed(1)
    assert refused.value.nrc == Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION
    bms.set_session("extended")
    with pytest.raises(BmsRefusal) as refused:
        bms.security_send_key(2, b"\x00\x00\x00\x00")
    assert refused.value.nrc == Nrc.REQUEST_SEQUENCE_ERROR
    seed = bms.security_seed(1)
    with pytest.raises(BmsRefusal) as refused:
        bms.security_send_key(2, key_for_seed(b"wrong secret", seed))
    assert refused.value.nrc == Nrc.INVALID_KEY
    assert not bms.security_unlocked
    bms.security_send_key(2, key_for_seed(DEFAULT_SECRET, bms.security_seed(1)))
    assert bms.security_unlocked
    assert bms.security_seed(1) == bytes(4)  # already unlocked
    bms.set_session("default")
    assert not bms.security_unlocked


def test_three_invalid_keys_lock_out() -> None:
    rig = make_rig(0.5)
    bms = rig.bms
    bms.set_session("extended")
    nrcs = []
    for _ in range(3):
        bms.security_seed(1)
        with pytest.raises(BmsRefusal) as refused:
            bms.security_send_key(2, b"\x01\x02\x03\x04")
        nrcs.append(refused.value.nrc)
    assert nrcs == [Nrc.INVALID_KEY, Nrc.INVALID_KEY, Nrc.EXCEEDED_NUMBER_OF_ATTEMPTS]
    with pytest.raises(BmsRefusal) as refused:
        bms.security_seed(1)
    assert refused.value.nrc == Nrc.REQUIRED_TIME_DELAY_NOT_EXPIRED
    rig.rest(15.0, dt=1.0)
    bms.security_send_key(2, key_for_seed(DEFAULT_SECRET, bms.security_seed(1)))
    assert bms.security_unlocked


def test_routines_need_extended_session_and_security() -> None:
    bms = make_rig(0.5).bms
    with pytest.raises(BmsRefusal) as refused:
        bms.routine_start(RoutineId.CAPACITY_LEARNING, b"")
    assert refused.value.nrc == Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION
    bms.set_session("extended")
    for rid in (RoutineId.EXTENDED_BALANCING, RoutineId.CAPACITY_LEARNING,
                RoutineId.CURRENT_ZERO_CALIBRATION, RoutineId.RESET_LEARNED_DATA):
        with pytest.raises(BmsRefusal) as refused:
            bms.routine_start(rid, b"\x00\x14\x00\x3c")
        assert refused.value.nrc == Nrc.SECURITY_ACCESS_DENIED
    with pytest.raises(BmsRefusal) as refused:
        bms.routine_start(0x0299, b"")
    assert refused.value.nrc == Nrc.REQUEST_OUT_OF_RANGE
    assert bms.routine_start_delay_s(RoutineId.CAPACITY_LEARNING) > 0.0


def test_reset_learned_data_and_soc_sync() -> None:
    bms = make_rig(0.5, learned_capacity_ah=150.0, soc_estimate_pct=20.0).bms
    unlock(bms)
    assert bms.routine_start(RoutineId.SOC_SYNC, (5000).to_bytes(2, "big"))[0] == RoutineStatus.DONE_OK
    assert bms.soc_pct == 50.0
    bms.routine_start(RoutineId.RESET_LEARNED_DATA, b"")
    assert bms.learned_capacity_ah == 200.0 and bms.soh_pct == 100.0


# -- persistence, history, determinism --------------------------------------------------------------

def test_ecu_reset_restores_the_last_eeprom_snapshot() -> None:
    rig = make_rig(0.8, soc_estimate_pct=80.0)
    bms = rig.bms
    unlock(bms)
    soc_at_snapshot = None
    for _ in range(900):
        rig.step(1.0, discharge_a=100.0)
        if rig.t == 600.0:
            soc_at_snapshot = bms.soc_pct
    assert soc_at_snapshot is not None and bms.soc_pct < soc_at_snapshot - 3.0
    bms.ecu_reset(1)
    assert bms.soc_pct == pytest.approx(soc_at_snapshot, abs=0.01)
    assert bms.session == "default" and not bms.security_unlocked


def test_fault_history_keeps_90_days() -> None:
    rig = make_rig(0.5, fault_history=[
        {"code": "cell_uv", "days_ago": 30, "value": 2.48, "occurrences": 2},
        {"code": "charge_ot", "days_ago": 120},
    ])
    [dtc] = rig.bms.dtcs
    assert dtc.code == DtcCode.CELL_UNDERVOLTAGE
    assert dtc.occurrences == 2
    assert dtc.last_epoch == pytest.approx(EPOCH - 30 * 86400)
    assert dtc.snapshot["vmin"] == 2.48
    assert not dtc.status & DtcStatus.TEST_FAILED and dtc.status & DtcStatus.CONFIRMED
    rig.bms.clear_dtcs(0xFFFFFF)
    assert rig.bms.dtcs == []


def test_same_seed_same_run_and_pickle_round_trip() -> None:
    def run(rig: Rig, n: int) -> list[float]:
        out = []
        for k in range(n):
            rig.step(1.0, discharge_a=40.0 if k % 50 < 25 else 0.0)
            out.append(rig.bms.current_a + sum(rig.bms.cell_voltages_v))
        return out

    a, b = make_rig(0.5, seed=9), make_rig(0.5, seed=9)
    assert run(a, 200) == run(b, 200)
    clone = pickle.loads(pickle.dumps(a))
    assert run(clone, 100) == run(a, 100)


# -- charge-current limit (0x351 CCL) -----------------------------------------------------------------

def test_ccl_tapers_as_the_highest_cell_fills_and_is_zero_at_the_ov_warning() -> None:
    """Issue: real BMSs with this CAN protocol derate CCL as the top cell nears its limit; the
    simulated one jumped from 100 A to 0 A at 3.60 V. Judged on the cell voltages it measured."""
    rig = make_rig(0.97)
    bms = rig.bms
    seen: list[tuple[float, float]] = []
    while max(bms.cell_voltages_v) < 3.61 and rig.t < 3600:
        rig.step(1.0, charge_a=20.0)  # a charger that ignores CCL, to see the whole curve
        seen.append((max(bms.cell_voltages_v), bms.charge_current_limit_a))
    assert [ccl for v, ccl in seen if v <= 3.45] and all(ccl == 100.0 for v, ccl in seen if v <= 3.45)
    middle = [ccl for v, ccl in seen if 3.50 <= v <= 3.55]
    assert middle and all(25.0 <= ccl <= 70.0 for ccl in middle), middle
    assert all(ccl == 0.0 for v, ccl in seen if v >= 3.60)
    # monotonic in the highest cell's voltage
    ordered = sorted(seen)
    assert all(b[1] <= a[1] + 0.1 for a, b in zip(ordered, ordered[1:], strict=False))


def test_ccl_precharge_for_an_over_discharged_cell_and_cold_derating() -> None:
    rig = make_rig(0.5)
    rig.pack.set_cell_soc(3, -0.01)  # below empty: rests under 2.5 V
    rig.rest(10.0, dt=1.0)
    assert min(rig.bms.cell_voltages_v) < 2.5
    assert rig.bms.contactor_closed  # charge-only mode after the UV trip
    assert rig.bms.charge_current_limit_a == pytest.approx(10.0)  # 0.05C pre-charge
    cold = make_rig(0.5)
    cold.pack.set_ambient(5.0)
    for cell in range(8):
        cold.pack.heat_cell(cell, -20.0)
    cold.rest(5.0, dt=1.0)
    assert cold.bms.charge_current_limit_a == pytest.approx(40.0)  # 0-10 °C: 0.2C (battery.md §2.4)


def _warnings_by_flags(bms: BmsModel) -> BmsAlarm:
    """0x35A warnings composed with IntFlag arithmetic, as first written: the oracle for
    ``warning_bits``, which composes the same bits as plain ints (read at every broadcast)."""
    warn = BmsAlarm(0)
    if bms._vmax >= CELL_OV_WARN_V:
        warn |= BmsAlarm.HIGH_VOLTAGE
    if bms._vmin <= CELL_UV_WARN_V:
        warn |= BmsAlarm.LOW_VOLTAGE
    if bms._tmax >= HIGH_TEMP_WARN_C:
        warn |= BmsAlarm.HIGH_TEMPERATURE
        if bms.current_a > 0.0:
            warn |= BmsAlarm.CHARGE_HIGH_TEMPERATURE
    if bms._tmin <= LOW_TEMP_WARN_C:
        warn |= BmsAlarm.LOW_TEMPERATURE
        if bms.current_a > 0.0:
            warn |= BmsAlarm.CHARGE_LOW_TEMPERATURE
    if bms.divergence_v >= 0.10 and bms.divergence_condition in ("full_rest", "end_of_cv"):
        warn |= BmsAlarm.CELL_IMBALANCE
    return warn | BmsAlarm.GENERAL if warn else warn


def test_warning_and_alarm_bits_equal_the_flag_arithmetic() -> None:
    bms = make_rig(0.5).bms
    states = itertools.product((3.30, 3.40, 3.60, 3.70), (2.80, 2.90, 3.25, 3.35), (25.0, 50.0, 61.0),
                               (-25.0, 2.0, 20.0), (-30.0, 0.0, 5.0))
    for vmax, vmin, tmax, tmin, current in states:
        bms._vmax, bms._vmin, bms._tmax, bms._tmin, bms.current_a = vmax, vmin, tmax, tmin, current
        assert bms.warning_bits == int(_warnings_by_flags(bms))
        assert bms.warnings == _warnings_by_flags(bms)
    assert bms.alarm_bits == 0 == int(bms.alarms)
    bms.protection.latched[DtcCode.CELL_OVERVOLTAGE] = 0.0
    assert bms.alarm_bits == int(BmsAlarm.HIGH_VOLTAGE | BmsAlarm.GENERAL) == int(bms.alarms)
