"""The live SOC chart's history: bounded, yet faithful to the whole run (issue 18 item 7).

A calibration lasts tens of hours of bench time; a browser should not receive every sample,
but dropping points hides exactly what matters (the discharge to 5 % is the key evidence). So
the run's time axis is cut into at most ``buckets`` equal buckets and each keeps the minimum and
maximum of every series over its span: every sample is accounted for, extremes included. When a
sample falls beyond the last bucket, the bucket width doubles and neighbours merge (min of mins,
max of maxes) -- memory and data sent stay bounded whatever the run's length.
"""

from __future__ import annotations

#: buckets of the chart (the SVG is 600 px wide: two pixels per bucket)
CHART_BUCKETS = 300
#: bench seconds covered at first; doubles as the run goes on
INITIAL_SPAN_S = 60.0
#: one point sent to the browser: [bucket middle (s from the run's start), bms_min, bms_max, ref_min, ref_max]
Point = list[float | None]


def _lo(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class ChartHistory:
    def __init__(self, buckets: int = CHART_BUCKETS, initial_span_s: float = INITIAL_SPAN_S) -> None:
        self.size = buckets
        self.width = initial_span_s / buckets
        self.epoch = 0  # bumped when buckets merge: the browser must take the chart whole
        self._buckets: list[list[float | None]] = []  # [index, bms_min, bms_max, ref_min, ref_max]

    def add(self, t_s: float, bms: float | None, ref: float | None) -> None:
        index = max(0, int(t_s // self.width))
        while index >= self.size:
            self._coarsen()
            index = int(t_s // self.width)
        last = self._buckets[-1] if self._buckets else None
        if last is not None and last[0] == index:
            last[1], last[2] = _lo(last[1], bms), _hi(last[2], bms)
            last[3], last[4] = _lo(last[3], ref), _hi(last[4], ref)
        else:
            self._buckets.append([float(index), bms, bms, ref, ref])

    def _coarsen(self) -> None:
        self.width *= 2
        self.epoch += 1
        merged: list[list[float | None]] = []
        for bucket in self._buckets:
            index = float(int(bucket[0] or 0) // 2)
            if merged and merged[-1][0] == index:
                m = merged[-1]
                m[1], m[2] = _lo(m[1], bucket[1]), _hi(m[2], bucket[2])
                m[3], m[4] = _lo(m[3], bucket[3]), _hi(m[4], bucket[4])
            else:
                merged.append([index, *bucket[1:]])
        self._buckets = merged

    def __len__(self) -> int:
        return len(self._buckets)

    def points(self, start: int = 0) -> list[Point]:
        return [[((b[0] or 0.0) + 0.5) * self.width, *b[1:]] for b in self._buckets[start:]]
