"""The service procedure's rules as pure functions (bench/diagnostics/rules.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bench.diagnostics.model import BalancingEntry, DtcEntry, PackIdentity, PackReading
from bench.diagnostics.rules import (
    assess,
    balancing_engaging,
    cells_within_band,
    classify_divergence,
    recent_dtcs,
    soc_window_from_ocv,
    warranty_status,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("divergence", "expected"), [
    (0.0, "normal"), (0.049, "normal"), (0.05, "balancing"), (0.099, "balancing"), (0.10, "extended_balancing"),
    (0.15, "extended_balancing"), (0.151, "replacement"),
])
def test_divergence_bands_follow_the_source(divergence: float, expected: str) -> None:
    assert classify_divergence(divergence) == expected


def test_cells_band_is_around_the_mean() -> None:
    assert cells_within_band([3.30] * 7 + [3.32])
    assert not cells_within_band([3.30] * 7 + [3.33])


def test_ocv_window_is_narrow_on_the_low_wall_and_wide_on_the_plateau() -> None:
    low, high = soc_window_from_ocv(3.10)
    assert high - low < 3 and low < 8
    low, high = soc_window_from_ocv(3.30)
    assert high - low > 20


def _identity(install: date | None, made: str = "2020-01-01") -> PackIdentity:
    return PackIdentity(serial="S", sw_version="1", manufacturing_date=made, install_date=install,
                        install_date_source="test")


def test_warranty_window_from_install_date_or_manufacturing_date() -> None:
    assert warranty_status(_identity(date(2022, 10, 5)), NOW.date()) == ("in_warranty", date(2027, 10, 5))
    assert warranty_status(_identity(date(2020, 2, 29)), NOW.date()) == ("out_of_warranty", date(2025, 2, 28))
    assert warranty_status(_identity(None, "2023-01-01"), NOW.date())[0] == "in_warranty"
    assert warranty_status(_identity(None, "2019-01-01"), NOW.date()) == ("unknown", None)


def _dtc(name: str, days_ago: float, active: bool = False) -> DtcEntry:
    return DtcEntry(code="0x911004", name=name, status_bits=[], active=active,
                    last_seen=NOW - timedelta(days=days_ago))


def test_recent_dtcs_keep_90_days_and_active_ones() -> None:
    names = [d.name for d in recent_dtcs([_dtc("a", 10), _dtc("b", 120), _dtc("c", 200, active=True)], NOW)]
    assert names == ["a", "c"]


def test_balancing_engaging_needs_activity_since() -> None:
    entry = BalancingEntry(start=NOW - timedelta(hours=2), end=NOW - timedelta(hours=1), cells=[3], ah_bled=0.01)
    assert balancing_engaging([], [entry], NOW - timedelta(hours=3))
    assert not balancing_engaging([], [entry], NOW - timedelta(minutes=30))
    assert balancing_engaging([3], [], NOW)


def _reading(cells: list[float], *, soc: float = 100.0, condition: str = "end_of_cv", current: float = 5.0,
             soh: float = 99.0, dtcs: list[DtcEntry] | None = None, active: list[int] | None = None) -> PackReading:
    return PackReading(taken_at=NOW, soc_pct=soc, soh_pct=soh, cycle_count=1, pack_voltage_v=sum(cells),
                       current_a=current, cell_voltages_v=cells, temperatures_c=[25.0] * 9,
                       divergence_v=round(max(cells) - min(cells), 3), divergence_condition=condition,
                       balancing_active_cells=active or [], balancing_time_s=0, balancing_log=[],
                       dtcs=dtcs or [])


REST = _reading([3.300] * 8, soc=55.0, condition="mid_plateau", current=0.0)


def test_healthy_pack_needs_no_action() -> None:
    a = assess(_identity(date(2025, 1, 1)), REST, _reading([3.55] * 7 + [3.58]), brought_to_full=True, now=NOW)
    assert a.healthy and a.actions == [] and a.exit_code == 0


def test_mid_plateau_reading_recommends_the_full_charge_measurement() -> None:
    a = assess(_identity(date(2025, 1, 1)), REST, REST, brought_to_full=False, now=NOW)
    assert not a.healthy and [x.id for x in a.actions] == ["measure_at_full"]


def test_stuck_balancing_recommends_a_bms_reset_and_engaging_needs_none() -> None:
    full = [3.53] * 7 + [3.61]
    stuck = assess(_identity(date(2025, 1, 1)), REST, _reading(full), brought_to_full=True, now=NOW,
                   balancing_since=NOW - timedelta(hours=1))
    assert stuck.divergence_class == "balancing" and [x.id for x in stuck.actions] == ["bms_reset"]
    engaged = assess(_identity(date(2025, 1, 1)), REST, _reading(full, active=[8]), brought_to_full=True, now=NOW)
    assert engaged.balancing_engaging and engaged.actions == []


def test_replacement_uses_the_warranty_window() -> None:
    full = [3.55] * 7 + [3.37]
    inside = assess(_identity(date(2024, 1, 1)), REST, _reading(full), brought_to_full=True, now=NOW)
    outside = assess(_identity(date(2020, 1, 1)), REST, _reading(full), brought_to_full=True, now=NOW)
    assert [x.id for x in inside.actions] == ["replace_under_warranty"]
    assert [x.id for x in outside.actions] == ["replace_scheduled"]


def test_deep_discharge_from_soc_gap_or_pack_uv() -> None:
    low_wall = _reading([3.10] * 8, soc=80.0, condition="low_soc", current=0.0)
    a = assess(_identity(date(2025, 1, 1)), low_wall, low_wall, brought_to_full=False, now=NOW)
    assert a.deep_discharge_suspected and a.actions[0].id == "soc_calibration"
    uv = _reading([3.55] * 8, dtcs=[_dtc("pack_undervoltage", 12)])
    b = assess(_identity(date(2025, 1, 1)), REST, uv, brought_to_full=True, now=NOW)
    assert b.deep_discharge_suspected and not b.healthy
