"""The charts of a run report, built from the run's samples and step list."""

from __future__ import annotations

import numpy as np

from bench.record import N_CELLS, RunRecord
from reports.plots import Band, Chart, HLine, Series, VLine
from reports.rundir import Samples

# Fixed colours: the screenshot test looks for them in the rendered page.
PACK_V_COLOR = "#1f5fbf"
BMS_PACK_V_COLOR = "#8fb3e8"
PACK_I_COLOR = "#e8590c"
BMS_I_COLOR = "#f5b183"
CELL_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#0c8599")
TEMP_MAX_COLOR = "#c92a2a"
TEMP_MIN_COLOR = "#1971c2"
BMS_SOC_COLOR = "#7b2cbf"
REF_SOC_COLOR = "#2b8a3e"
DIVERGENCE_COLOR = "#c2185b"
ABORT_COLOR = "#e03131"
#: battery.md §4.5: the BMS SOC must stay within ±3 % of the reference SOC.
SOC_BAND_PCT = 3.0
#: battery.md §8: divergence threshold at the defined condition (end of CV), 0.05 V.
DIVERGENCE_LIMIT_V = 0.05
HOURS = 1.0 / 3600.0
#: The ``samples.csv`` columns the charts draw: the report converts only these (reports.rundir).
CHART_COLUMNS = ("t_s", "pack_v", "bms_pack_v", "pack_i", "bms_i", *(f"cell{c + 1}_v" for c in range(N_CELLS)),
                 "temp_max_c", "temp_min_c", "bms_soc_pct", "ref_soc_pct", "divergence_v")


def _markers(record: RunRecord, *, labelled: bool) -> list[VLine]:
    lines = [VLine(step.start_s * HOURS, step.id if labelled else "") for step in record.steps[1:]]
    if record.verdict == "aborted" and record.steps:
        end = record.steps[-1].end_s
        if end is not None:
            lines.append(VLine(end * HOURS, "abort", ABORT_COLOR, ""))
    return lines


def end_of_charge_divergence(record: RunRecord, samples: Samples) -> list[tuple[str, float, float]]:
    """(step id, t_s, divergence V) at the last sample of every charge step."""
    if not len(samples):
        return []
    t = samples["t_s"]
    result = []
    for step in record.steps:
        if step.kind != "charge" or step.end_s is None:
            continue
        inside = np.nonzero((t >= step.start_s) & (t <= step.end_s))[0]
        if len(inside):
            last = int(inside[-1])
            result.append((step.id, float(t[last]), float(samples["divergence_v"][last])))
    return result


def run_charts(record: RunRecord, samples: Samples) -> list[Chart]:
    hours = samples["t_s"] * HOURS
    markers = _markers(record, labelled=False)
    col = samples.columns
    charts = [
        Chart("Pack voltage", "time (h)", "V",
              [Series("bench pack V", hours, col["pack_v"], PACK_V_COLOR, 2.0),
               Series("BMS pack V", hours, col["bms_pack_v"], BMS_PACK_V_COLOR, 1.0, "3 2")], vlines=markers),
        Chart("Pack current (+ = charge)", "time (h)", "A",
              [Series("bench current", hours, col["pack_i"], PACK_I_COLOR, 2.0),
               Series("BMS current", hours, col["bms_i"], BMS_I_COLOR, 1.0, "3 2")], vlines=markers),
        Chart("Cell voltages (BMS)", "time (h)", "V",
              [Series(f"cell {c + 1}", hours, col[f"cell{c + 1}_v"], CELL_COLORS[c], 1.2)
               for c in range(N_CELLS)], vlines=markers),
        Chart("Temperatures", "time (h)", "°C",
              [Series("max", hours, col["temp_max_c"], TEMP_MAX_COLOR, 2.0),
               Series("min", hours, col["temp_min_c"], TEMP_MIN_COLOR, 2.0)], vlines=markers),
        Chart("BMS SOC against reference SOC", "time (h)", "SOC (%)",
              [Series("BMS SOC", hours, col["bms_soc_pct"], BMS_SOC_COLOR, 2.0),
               Series("reference SOC", hours, col["ref_soc_pct"], REF_SOC_COLOR, 1.4, "5 3")],
              bands=[Band(f"reference ±{SOC_BAND_PCT:g} %", hours, col["ref_soc_pct"] - SOC_BAND_PCT,
                          col["ref_soc_pct"] + SOC_BAND_PCT, REF_SOC_COLOR)],
              vlines=markers),
    ]
    divergence_markers = _markers(record, labelled=True) + [
        VLine(t_s * HOURS, f"end of charge: {value * 1000:.0f} mV", DIVERGENCE_COLOR, "2 2")
        for _, t_s, value in end_of_charge_divergence(record, samples)
    ]
    charts.append(Chart("Cell divergence (max − min cell voltage), step boundaries marked", "time (h)", "V",
                        [Series("divergence", hours, col["divergence_v"], DIVERGENCE_COLOR, 2.0)],
                        vlines=divergence_markers,
                        hlines=[HLine(DIVERGENCE_LIMIT_V, f"{DIVERGENCE_LIMIT_V:g} V threshold")]))
    return charts
