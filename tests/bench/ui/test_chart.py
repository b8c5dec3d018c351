"""The live chart keeps the whole run, bounded (issue 18 item 7)."""

from __future__ import annotations

import math

from bench.ui.chart import CHART_BUCKETS, ChartHistory


def _calibration_soc(t: float) -> float:
    """A calibration's shape: 100 % down to 5 % over 30,000 s, then a full charge."""
    return 100 - 95 * t / 30_000 if t <= 30_000 else min(100.0, 5 + 95 * (t - 30_000) / 20_000)


def test_a_long_run_stays_bounded_and_keeps_every_extreme() -> None:
    chart = ChartHistory()
    samples = []
    for k in range(0, 60_000, 2):  # 30,000 samples, 2 s apart: 16.7 h of bench time
        t = float(k)
        bms = _calibration_soc(t) + (-4.5 if k == 12_346 else 0.3 * math.sin(k / 50))  # one dip
        ref = _calibration_soc(t)
        samples.append((t, bms))
        chart.add(t, bms, ref)
    points = chart.points()
    assert len(points) <= CHART_BUCKETS
    assert min(p[1] for p in points if p[1] is not None) == min(b for _t, b in samples)  # the 5 % floor
    early = [p for p in points if p[0] < 30_000]
    assert len(early) >= CHART_BUCKETS // 3  # the discharge is drawn, not one point
    width = chart.width
    for t, bms in samples:  # faithful: every sample lies within its bucket's min..max
        bucket = next(p for p in points if abs(p[0] - t) <= width / 2 + 1e-9)
        assert bucket[1] is not None and bucket[2] is not None
        assert bucket[1] - 1e-9 <= bms <= bucket[2] + 1e-9
    dip_bucket = next(p for p in points if abs(p[0] - 12_346) <= width / 2)
    assert dip_bucket[1] is not None and dip_bucket[1] < _calibration_soc(12_346) - 4  # a one-sample dip


def test_merging_is_signalled_and_gaps_in_a_series_stay_empty() -> None:
    chart = ChartHistory(buckets=4, initial_span_s=4.0)
    chart.add(0.5, None, 50.0)
    assert chart.epoch == 0
    chart.add(5.0, 40.0, None)
    assert chart.epoch == 1 and len(chart) == 2
    assert chart.points() == [[1.0, None, None, 50.0, 50.0], [5.0, 40.0, 40.0, None, None]]
