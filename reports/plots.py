"""Small inline-SVG line charts for the reports (no plotting library needed).

Long series are reduced with min/max decimation (each bucket keeps its lowest and highest
point, in time order), so a 24-hour run at 1 s draws ~2000 points per series and still shows
every spike. Colours are fixed per series so a rendered page can be checked pixel by pixel.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

MAX_POINTS = 2000
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 64, 16, 30, 58
# Labels of vertical lines (.vlabel: 9 px): an upper bound of the width of one character, and
# the height of one row of labels.
_VLABEL_CHAR_W, _VLABEL_ROW = 5.8, 11


@dataclass
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    color: str
    width: float = 1.6
    dash: str = ""
    points: bool = False  # draw a dot per point (sparse series such as a pack's visits)


@dataclass
class Band:
    """A shaded region between ``low`` and ``high`` over ``x`` (e.g. the ±3 % SOC window)."""

    label: str
    x: np.ndarray
    low: np.ndarray
    high: np.ndarray
    color: str
    opacity: float = 0.18


@dataclass
class VLine:
    x: float
    label: str = ""
    color: str = "#9a9a9a"
    dash: str = "4 3"


@dataclass
class HLine:
    y: float
    label: str = ""
    color: str = "#c0392b"
    dash: str = "6 3"


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    bands: list[Band] = field(default_factory=list)
    vlines: list[VLine] = field(default_factory=list)
    hlines: list[HLine] = field(default_factory=list)
    width: int = 940
    height: int = 300


def decimate_minmax(
    x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most ~``max_points`` points keeping each bucket's min and max (NaN points dropped)."""
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    n = len(x)
    if n <= max_points:
        return x, y
    bucket = math.ceil(n / (max_points // 2))
    n_full = (n // bucket) * bucket
    blocks = y[:n_full].reshape(-1, bucket)
    base = np.arange(0, n_full, bucket)
    lows = base + blocks.argmin(axis=1)
    highs = base + blocks.argmax(axis=1)
    keep = np.concatenate([lows, highs, np.arange(n_full, n)])
    keep = np.unique(keep)  # sorted: time order is preserved
    return x[keep], y[keep]


def _nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _range(arrays: Sequence[np.ndarray], extra: Sequence[float] = ()) -> tuple[float, float]:
    finite = [a[np.isfinite(a)] for a in arrays if len(a)]
    values = [float(a.min()) for a in finite if len(a)] + [float(a.max()) for a in finite if len(a)]
    values += [v for v in extra if math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = 0.04 * (high - low)
    return low - pad, high + pad


def render_svg(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (a string to embed in HTML)."""
    series = [Series(s.label, *decimate_minmax(np.asarray(s.x, float), np.asarray(s.y, float)), s.color,
                     s.width, s.dash, s.points) for s in chart.series]
    bands = []
    for band in chart.bands:
        # a band is smooth: even thinning keeps its shape and keeps low/high on the same x
        bx, low, high = (np.asarray(a, float) for a in (band.x, band.low, band.high))
        finite = np.isfinite(bx) & np.isfinite(low) & np.isfinite(high)
        bx, low, high = bx[finite], low[finite], high[finite]
        stride = max(1, math.ceil(len(bx) / MAX_POINTS))
        bands.append(Band(band.label, bx[::stride], low[::stride], high[::stride], band.color, band.opacity))
    x_low, x_high = _range([s.x for s in series] + [b.x for b in bands], [v.x for v in chart.vlines])
    if series and all(len(s.x) for s in series):
        x_low = min(float(s.x.min()) for s in series)
        x_high = max(*(float(s.x.max()) for s in series), x_low + 1e-9)
    y_low, y_high = _range([s.y for s in series] + [b.low for b in bands] + [b.high for b in bands],
                           [h.y for h in chart.hlines])
    plot_w = chart.width - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_h = chart.height - _MARGIN_TOP - _MARGIN_BOTTOM

    def sx(value: np.ndarray | float) -> np.ndarray:
        return _MARGIN_LEFT + (np.asarray(value, float) - x_low) / (x_high - x_low) * plot_w

    # labels of vertical lines: rows of their own between the title and the plot, so that they
    # overlap neither one another nor the data, and the chart grows by those rows
    labelled = [(float(sx(v.x)), v) for v in chart.vlines if v.label]
    placement = _label_rows([(x, len(v.label)) for x, v in labelled], _MARGIN_LEFT, _MARGIN_LEFT + plot_w)
    rows = max((row + 1 for _, _, row in placement), default=0)
    top = _MARGIN_TOP + rows * _VLABEL_ROW
    height = chart.height + rows * _VLABEL_ROW

    def sy(value: np.ndarray | float) -> np.ndarray:
        return top + (y_high - np.asarray(value, float)) / (y_high - y_low) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {chart.width} {height}" '
        f'width="{chart.width}" height="{height}" role="img" aria-label="{escape(chart.title)}">',
        f'<text x="{_MARGIN_LEFT}" y="18" class="chart-title">{escape(chart.title)}</text>',
        f'<rect x="{_MARGIN_LEFT}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#ffffff" '
        'stroke="#444" stroke-width="1"/>',
    ]
    bottom = top + plot_h
    for tick in _nice_ticks(y_low, y_high):
        y = float(sy(tick))
        out.append(f'<line x1="{_MARGIN_LEFT}" x2="{_MARGIN_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#e4e4e4"/>')
        out.append(f'<text x="{_MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    for tick in _nice_ticks(x_low, x_high, 10):
        x = float(sx(tick))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 5}" stroke="#444"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{_fmt(tick)}</text>')
    out.append(f'<text x="{_MARGIN_LEFT + plot_w / 2:.0f}" y="{bottom + 34}" text-anchor="middle">'
               f'{escape(chart.x_label)}</text>')
    out.append(f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(chart.y_label)}</text>')
    # the id from what the clip is, not id(chart): the same run renders the same page byte for byte
    # (an equal id on another chart of the page names an equal rectangle)
    rect = f'<rect x="{_MARGIN_LEFT}" y="{top}" width="{plot_w}" height="{plot_h}"/>'
    clip = f"clip-{zlib.crc32(rect.encode()):08x}"
    out.append(f'<clipPath id="{clip}">{rect}</clipPath><g clip-path="url(#{clip})">')
    for band in bands:
        xs = sx(band.x).tolist()
        upper = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, sy(band.high).tolist(), strict=True))
        lower = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs[::-1], sy(band.low)[::-1].tolist(), strict=True))
        out.append(f'<polygon points="{upper} {lower}" fill="{band.color}" fill-opacity="{band.opacity}"/>')
    for hline in chart.hlines:
        y = float(sy(hline.y))
        out.append(f'<line x1="{_MARGIN_LEFT}" x2="{_MARGIN_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{hline.color}" stroke-dasharray="{hline.dash}"/>')
        if hline.label:
            out.append(f'<text x="{_MARGIN_LEFT + plot_w - 4}" y="{y - 4:.1f}" text-anchor="end" '
                       f'fill="{hline.color}">{escape(hline.label)}</text>')
    for vline in chart.vlines:
        x = float(sx(vline.x))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="{vline.color}" '
                   f'stroke-dasharray="{vline.dash}"/>')
    for s in series:
        if not len(s.x):
            continue
        # Python floats: formatting one is ~2x faster than a numpy scalar, with the same text
        coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(sx(s.x).tolist(), sy(s.y).tolist(), strict=True))
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<polyline points="{coords}" fill="none" stroke="{s.color}" stroke-width="{s.width}" '
                   f'stroke-linejoin="round"{dash}/>')
        if s.points:
            out.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{s.color}"/>'
                       for a, b in zip(sx(s.x).tolist(), sy(s.y).tolist(), strict=True))
    out.append("</g>")
    for (x, vline), (text_x, anchor, row) in zip(labelled, placement, strict=True):  # outside the clip
        baseline = _MARGIN_TOP + (row + 1) * _VLABEL_ROW - 3
        # the line carried up to its label's row
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{baseline - 8}" y2="{top}" stroke="{vline.color}" '
                   f'stroke-dasharray="1 2"/>')
        out.append(f'<text x="{text_x:.1f}" y="{baseline}" class="vlabel" text-anchor="{anchor}" '
                   f'fill="{vline.color}" stroke="#fff" stroke-width="3" paint-order="stroke">'
                   f'{escape(vline.label)}</text>')
    out.extend(_legend(series, bands, chart.width, height))
    out.append("</svg>")
    return "\n".join(out)


def _label_rows(labels: list[tuple[float, int]], left: float, right: float) -> list[tuple[float, str, int]]:
    """Place labels of vertical lines (x of the line, characters) so that none overlaps another.

    Steps often start within minutes of each other (or at the same instant), so their labels
    would print on top of one another on a single row. Each label goes right of its line, or
    left of it near the plot's right edge, on the first row where it has room; returns
    (text x, text-anchor, row) for each label, in the order given.
    """
    gap = 4.0
    row_ends: list[float] = []  # right end of the last label placed on each row
    result: dict[int, tuple[float, str, int]] = {}
    for i in sorted(range(len(labels)), key=lambda i: labels[i][0]):
        x, chars = labels[i]
        width = chars * _VLABEL_CHAR_W
        start, anchor, text_x = x + 3, "start", x + 3
        if start + width > right:
            start, anchor, text_x = x - 3 - width, "end", x - 3
        start = max(start, left)
        row = next((r for r, end in enumerate(row_ends) if start >= end + gap), len(row_ends))
        if row == len(row_ends):
            row_ends.append(0.0)
        row_ends[row] = start + width
        result[i] = (text_x, anchor, row)
    return [result[i] for i in range(len(labels))]


def _legend(series: list[Series], bands: list[Band], width: int, height: int) -> list[str]:
    entries = [(s.label, s.color, 1.0) for s in series] + [(b.label, b.color, b.opacity) for b in bands]
    out, x, y = [], float(_MARGIN_LEFT), float(height - 10)
    for label, color, opacity in entries:
        span = 22 + 6.5 * len(label)
        if x + span > width - _MARGIN_RIGHT:
            break
        out.append(f'<rect x="{x:.0f}" y="{y - 7:.0f}" width="14" height="4" fill="{color}" '
                   f'fill-opacity="{opacity}"/>')
        out.append(f'<text x="{x + 18:.0f}" y="{y:.0f}">{escape(label)}</text>')
        x += span + 10
    return out
