"""Lumped thermal network of the pack: one node per cell, one enclosure node, ambient.

Cells sit in a row (cell i touches cells i-1 and i+1), each cell exchanges heat with the
enclosure (air + case + busbars), and the enclosure with ambient (battery.md §1.9 / §8).

Integration is explicit Euler, sub-stepped so no sub-step exceeds a quarter of the network's
fastest time constant: unconditionally stable for any caller step (a 60 s step with the §8
numbers is a single sub-step; time constants are ~9 min) and accurate to well under 0.01 K for
the slow heating this pack sees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class ThermalParams:
    # battery.md §1.9: 3.95 kg x 1100 J/kg·K per 202 Ah cell
    cell_heat_capacity_j_per_k: float = 3.95 * 1100.0
    # battery.md §8 pack.thermal.extra_heat_capacity_J_per_K (enclosure/busbars) [A]
    enclosure_heat_capacity_j_per_k: float = 10_000.0
    # battery.md §8 pack.thermal.cell_to_cell_W_per_K (neighbouring faces) [A]
    cell_to_cell_w_per_k: float = 3.0
    # Not in battery.md: each cell to the enclosure air/case. 1 W/K per cell (0.113 m² free
    # surface x ~9 W/m²K natural convection, §1.9 dimensions) [assumption]
    cell_to_enclosure_w_per_k: float = 1.0
    # battery.md §8 pack.thermal.pack_to_ambient_W_per_K (closed box, natural convection) [A]
    enclosure_to_ambient_w_per_k: float = 2.0


class ThermalNetwork:
    """Temperatures (°C) of ``n_cells`` cell nodes and the enclosure node."""

    #: (dt_s, sub-steps, k_cell, k_enc) of the last step length (a class default: checkpoints
    #: pickled before it existed restore without it)
    _substeps_cache: tuple[float, int, float, float] | None = None

    def __init__(self, params: ThermalParams, n_cells: int, initial_c: Sequence[float],
                 enclosure_c: float) -> None:
        self.params = params
        self.cells_c = [float(t) for t in initial_c]
        if len(self.cells_c) != n_cells:
            raise ValueError(f"expected {n_cells} initial cell temperatures, got {len(self.cells_c)}")
        self.enclosure_c = float(enclosure_c)
        p = params
        # Fastest time constant = smallest heat capacity / largest total conductance at a node.
        g_cell = 2.0 * p.cell_to_cell_w_per_k + p.cell_to_enclosure_w_per_k
        g_enc = n_cells * p.cell_to_enclosure_w_per_k + p.enclosure_to_ambient_w_per_k
        tau_min = min(p.cell_heat_capacity_j_per_k / g_cell, p.enclosure_heat_capacity_j_per_k / g_enc)
        self.max_substep_s = 0.25 * tau_min

    def _substeps(self, dt_s: float) -> tuple[int, float, float]:
        """(sub-steps, their length / cell heat capacity, / enclosure heat capacity) for a step of
        ``dt_s``; kept for the last ``dt_s`` (the world's steps all have the same length)."""
        cached = self._substeps_cache
        if cached is None or cached[0] != dt_s:
            p = self.params
            n_sub = max(1, math.ceil(dt_s / self.max_substep_s))
            h = dt_s / n_sub
            cached = self._substeps_cache = (dt_s, n_sub, h / p.cell_heat_capacity_j_per_k,
                                             h / p.enclosure_heat_capacity_j_per_k)
        return cached[1], cached[2], cached[3]

    def step(self, dt_s: float, cell_heat_w: Sequence[float], enclosure_heat_w: float,
             ambient_c: float) -> None:
        """Advance by ``dt_s`` with constant heat inputs (W) into each cell and the enclosure."""
        p = self.params
        n_sub, k_cell, k_enc = self._substeps(dt_s)
        g_cc = p.cell_to_cell_w_per_k
        g_ce = p.cell_to_enclosure_w_per_k
        g_ea = p.enclosure_to_ambient_w_per_k
        temps = self.cells_c
        last = len(temps) - 1
        t_enc = self.enclosure_c
        for _ in range(n_sub):
            new = []
            to_enclosure = 0.0
            t_left = 0.0  # (no left neighbour for cell 0)
            for i, t in enumerate(temps):
                from_enclosure = g_ce * (t_enc - t)
                flow = cell_heat_w[i] + from_enclosure
                to_enclosure -= from_enclosure
                if i:
                    flow += g_cc * (t_left - t)
                if i < last:
                    flow += g_cc * (temps[i + 1] - t)
                new.append(t + k_cell * flow)
                t_left = t
            t_enc += k_enc * (enclosure_heat_w + to_enclosure + g_ea * (ambient_c - t_enc))
            temps = new
        self.cells_c = temps
        self.enclosure_c = t_enc
