"""Physics of the simulated 8S LFP pack: per-cell charge, OCV with hysteresis, 2-RC resistance, heat.

Sign convention everywhere: ``current_a`` > 0 charges the pack (flows INTO the pack).

Each cell carries: stored charge (Ah above empty, at 25 °C), a one-state hysteresis variable h,
two RC-pair voltages, a solid-diffusion depletion Δ and a temperature. Cell terminal voltage at
current I is

    V = OCV_pack(soc − Δ, h) + offset_cell + dU/dT·(T − 25 °C) + v_rc1 + v_rc2 + I·R0(soc, T)

OCV is thermodynamic: at rest (Δ relaxed) it depends on the stored charge only, plus an entropic
term (battery.md §8 ``entropic_dU_dT_V_per_K``: 0). The capacity a cold cell loses (§1.5, §8
``capacity_temp_factor``) is a *kinetic* loss: under load the particle surface runs ahead of the
bulk by Δ, which grows with current and with the diffusion time constant (slow in the cold), so the
terminal voltage reaches the cut-off early; at rest and on warming Δ relaxes and the charge left
behind comes back. ``OCV_pack`` is the simulator's §1.4 table as this pack's cells realise it: read
at a per-pack warped SOC near the two knees, plus a per-pack and a per-cell offset (the bench's
own table in ``bench/domain`` does not know them).

``advance`` holds the current constant over the step and integrates exactly where it can: RC
pairs with the exact exponential response, hysteresis with its exact exponential in Ah of travel,
charge with exact sums (so a 60 s step equals sixty 1 s steps up to the slow SOC/temperature
dependence of the parameters). The thermal network (``bench.sim.thermal``) is sub-stepped.

Ground truth for the verdicts: :meth:`Pack.true_capacity_ah` is the charge a pack brought to
full *at its fullest cell* can deliver until its *emptiest* cell is empty, at 25 °C, from the
cells' stored charge and 25 °C capacities (OCV 0..100 % of table §1.4, i.e. 2.50 V..3.60 V rest):

    true_capacity = min_i(q_i) + min_j(C_j - q_j)

which is the weakest cell's capacity for a perfectly top-balanced pack, and less when cells are
misaligned. :meth:`Pack.true_soc_pct` = min_i(q_i) / true_capacity · 100 (100 % exactly when the
fullest-relative cell is full, 0 % when the first cell is empty).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.sim.ocv import GRID_STEP, ocv_branch
from bench.sim.thermal import ThermalNetwork, ThermalParams

N_CELLS = 8
NAMEPLATE_CAPACITY_AH = 200.0  # battery.md §0 / §8 nameplate_capacity_Ah

# battery.md §8 cell.ecm (2-RC Thevenin at 25 °C, 50 % SOC) [A]
R0_OHM = 0.00025
R1_OHM = 0.00010
TAU1_S = 20.0
R2_OHM = 0.00015
TAU2_S = 600.0
# battery.md §8 cell.ecm.arrhenius_Ea_J_per_mol: R0 20 kJ/mol, R1/R2 35 kJ/mol (§1.5)
EA_OHMIC_J_PER_MOL = 20_000.0
EA_CHARGE_TRANSFER_J_PER_MOL = 35_000.0
GAS_CONSTANT = 8.314462618
T_REF_K = 298.15
# battery.md §8 cell.coulombic_efficiency [A]
COULOMBIC_EFFICIENCY = 0.9995
# battery.md §8 cell.hysteresis.decay_per_Ah: e-folding ~4 Ah of travel after a reversal [A]
HYSTERESIS_DECAY_PER_AH = 0.25
# battery.md §1.7 / §8: k %/month of capacity per 720 h, doubling per +10 K (Q10 = 2) [A]
SELF_DISCHARGE_PCT_PER_MONTH = 1.5
SELF_DISCHARGE_Q10 = 2.0
HOURS_PER_MONTH = 720.0
# battery.md §8 pack.interconnect_resistance_ohm (busbars + fuse + BMS FETs + shunt) [A]
INTERCONNECT_OHM = 0.0008

# battery.md §8 cell.ecm.soc_factor: resistance multiplier vs SOC (fraction), applied to R0..R2.
SOC_RESISTANCE_FACTOR = ((0.0, 1.8), (0.05, 1.4), (0.10, 1.15), (0.20, 1.05), (0.50, 1.0), (0.90, 1.05),
                         (1.0, 1.25))
# End-of-charge diffusion polarisation, multiplier on R2 while a cell is being CHARGED above 98 %.
# Not a §8 number: battery.md §1.4 notes that after a CC-CV charge to 3.55-3.65 V and a 0.05C tail
# the cell must relax onto the 99-99.5 % part of the OCV wall (3.37-3.42 V rested). With only the
# ~0.5 mΩ of §8 the CV taper would end at ~99.9 % and rest at ~3.55 V; tens of mΩ of slow
# (τ2 = 600 s) polarisation at the very top reproduce the observed rest voltage [assumption].
TOP_OF_CHARGE_R2_FACTOR = ((0.98, 1.0), (0.985, 10.0), (0.99, 100.0), (0.995, 250.0), (1.0, 600.0))
# battery.md §8 cell.entropic_dU_dT_V_per_K: 0 (§1.4: LFP's entropic term is small; PyBaMM's
# Prada set also uses 0). Rested OCV is thermodynamic: it does not move with temperature.
ENTROPIC_V_PER_K = 0.0
# Cold capacity loss as solid-diffusion depletion Δ (fraction of SOC; + = surface emptier than the
# bulk): dΔ/dt = g·(−I)/C − Δ/τ_d(T), so at constant current Δ settles at g·(−I/C)·τ_d. The cell
# reaches its cut-off when its *surface* is empty, i.e. Δ short of the bulk. The table gives the
# steady Δ at 0.2C vs cell temperature (τ_d = Δ/(g·0.2/h)), fitted [D] so that a 0.2C discharge
# from full to 2.5 V in an ambient of 0 / 10 °C delivers 80 / 92 % of its 25 °C charge (battery.md
# §8 capacity_temp_factor; §1.5: Victron 80 %, Lithink 80.2 % at 0 °C), with the cells' own heating
# (they run ~5 K above a 0 °C ambient) and the Arrhenius rise of R0/R1/R2 (§1.5) included. At
# −10 / −20 °C the self-heating limits the loss: the model delivers ~65 / ~58 % (§1.5: 60–66 % and
# 40–55 %). At and above 25 °C the loss is nil (§8 sanity target: a large prismatic cell gives
# 97–99 % of its C/20 capacity at 0.5C). tests/bench/sim/test_pack.py measures all of this.
DIFFUSION_GAIN = 1.0
DIFFUSION_LOSS_AT_0P2C = ((-20.0, 1.0), (-10.0, 0.68), (0.0, 0.272), (10.0, 0.104), (25.0, 0.0))
_REFERENCE_RATE_PER_H = 0.2


def _table_interp(table: Sequence[tuple[float, float]], x: float) -> float:
    """Piecewise-linear interpolation in a small sorted (x, y) table, constant outside it."""
    if x <= table[0][0]:
        return table[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(table):
        if x <= x1:
            return y0 + (x - x0) * (y1 - y0) / (x1 - x0)
    return table[-1][1]


def _grid(table: Sequence[tuple[float, float]], step: float) -> tuple[float, float, list[float]]:
    """Resample ``table`` on a uniform grid (x0, 1/step, values) for O(1) lookups."""
    x0 = table[0][0]
    n = round((table[-1][0] - x0) / step)
    return x0, 1.0 / step, [_table_interp(table, x0 + k * step) for k in range(n + 1)]


def _grid_lookup(grid: tuple[float, float, list[float]], x: float) -> float:
    x0, inv_step, values = grid
    pos = (x - x0) * inv_step
    if pos <= 0.0:
        return values[0]
    k = int(pos)
    if k >= len(values) - 1:
        return values[-1]
    return values[k] + (pos - k) * (values[k + 1] - values[k])


#: (e^(-dt/τ), 1 − e^(-dt/τ), 1 − e^(-2dt/τ), τ) of one RC pair for a step dt: its decay, and the
#: factors of the mean of v² over the step (see ``Pack.advance``).
_RcDecay = tuple[float, float, float, float]


def _rc_decay(dt: float, tau: float) -> _RcDecay:
    decay = math.exp(-dt / tau)
    return decay, 1.0 - decay, 1.0 - decay * decay, tau


def _segments(values: Sequence[float]) -> list[tuple[float, float]]:
    """(start, rise) of each interval of a grid's values: a lookup reads one entry (the same
    differences it would otherwise take at every lookup)."""
    return [(v0, v1 - v0) for v0, v1 in itertools.pairwise(values)]


# All breakpoints lie on these grids, so the lookups reproduce the tables exactly.
_SOC_R_GRID = _grid(SOC_RESISTANCE_FACTOR, 0.05)
_SOC_R_SEGMENTS = _segments(_SOC_R_GRID[2])
_TOP_R2_GRID = _grid(TOP_OF_CHARGE_R2_FACTOR, 0.005)
_DIFFUSION_GRID = _grid(DIFFUSION_LOSS_AT_0P2C, 5.0)
_DIFFUSION_END_C = DIFFUSION_LOSS_AT_0P2C[-1][0]
_DIFFUSION_LAST = _DIFFUSION_GRID[2][-1]
_OCV_N = round(1.0 / GRID_STEP)
# Widths (SOC fraction) of the knee regions a pack's curve may depart in: the low wall and its
# shoulder up to the plateau (§1.4: steep below ~10 %), and the top wall (§1.4: steep above ~97 %).
KNEE_WIDTH_LOW = 0.15
KNEE_WIDTH_HIGH = 0.06
# bump(x) = 27/4·x·(1−x)² peaks at 1 (x = 1/3) and has slope 27/4 at x = 0: a knee shift δ keeps
# the warped curve increasing while |δ| < width·4/27.
_BUMP_SLOPE = 27.0 / 4.0


def _bump(x: float) -> float:
    return _BUMP_SLOPE * x * (1.0 - x) ** 2 if 0.0 < x < 1.0 else 0.0


def knee_warp(soc: float, shift_low: float, shift_high: float) -> float:
    """The SOC at which a pack with these knee shifts reads the §1.4 table: identity on the plateau
    and at 0 and 100 %, moved by up to ``shift_low`` / ``shift_high`` inside the knee regions."""
    return (soc + shift_low * _bump(soc / KNEE_WIDTH_LOW)
            + shift_high * _bump((1.0 - soc) / KNEE_WIDTH_HIGH))


def max_knee_shift(width: float) -> float:
    """Largest |shift| that keeps the warped OCV curve strictly increasing."""
    return width / _BUMP_SLOPE


TEMPERATURE_FACTOR_RESOLUTION_K = 1e-3
_INV_T_REF_K = 1.0 / T_REF_K
_NO_BLEED = (0.0,) * N_CELLS


@dataclass
class CellParams:
    capacity_ah: float              # at 25 °C
    r0_ohm: float                   # ohmic resistance at 25 °C, 50 % SOC
    self_discharge_pct_per_month: float  # at 25 °C
    initial_soc: float              # 0..1 (true SOC)
    r1_ohm: float = R1_OHM
    tau1_s: float = TAU1_S
    r2_ohm: float = R2_OHM
    tau2_s: float = TAU2_S
    initial_hysteresis: float = 0.0  # h in [-1, 1]; 0 = between the branches (long rest)
    ocv_offset_v: float = 0.0        # this cell's departure from the pack's OCV curve (§1.8)


@dataclass
class PackParams:
    cells: list[CellParams]
    ambient_c: float = 25.0
    interconnect_ohm: float = INTERCONNECT_OHM
    coulombic_efficiency: float = COULOMBIC_EFFICIENCY
    hysteresis_decay_per_ah: float = HYSTERESIS_DECAY_PER_AH
    self_discharge_q10: float = SELF_DISCHARGE_Q10
    ea_ohmic_j_per_mol: float = EA_OHMIC_J_PER_MOL
    ea_charge_transfer_j_per_mol: float = EA_CHARGE_TRANSFER_J_PER_MOL
    thermal: ThermalParams = field(default_factory=ThermalParams)
    initial_temperature_c: float | None = None  # None: cells and enclosure start at ambient
    entropic_v_per_k: float = ENTROPIC_V_PER_K
    diffusion_gain: float = DIFFUSION_GAIN
    # This pack's departure from the §1.4 table (docs/simulator.md "OCV departures"): a common
    # offset and the knee positions, SOC fractions by which the table is read ahead (+) near 0 %
    # and near 100 %.
    ocv_offset_v: float = 0.0
    knee_shift_low: float = 0.0
    knee_shift_high: float = 0.0

    @classmethod
    def uniform(cls, soc: float = 0.5, capacity_ah: float = 203.0, **kwargs: Any) -> PackParams:
        """Eight identical nominal cells (battery.md §8 means) — handy for tests and tools."""
        cells = [CellParams(capacity_ah, R0_OHM, SELF_DISCHARGE_PCT_PER_MONTH, soc) for _ in range(N_CELLS)]
        return cls(cells=cells, **kwargs)


def _params_from_dict(data: dict[str, Any]) -> PackParams:
    d = dict(data)
    d["cells"] = [CellParams(**c) for c in d["cells"]]
    d["thermal"] = ThermalParams(**d["thermal"])
    return PackParams(**d)


class Pack:
    """The eight cells, their interconnect and their thermal environment."""

    def __init__(self, params: PackParams) -> None:
        if len(params.cells) != N_CELLS:
            raise ValueError(f"an 8S pack needs {N_CELLS} cells, got {len(params.cells)}")
        self.params = params
        cells = params.cells
        self._cap = [c.capacity_ah for c in cells]
        self._r0_base = [c.r0_ohm for c in cells]
        self._r1_base = [c.r1_ohm for c in cells]
        self._r2_base = [c.r2_ohm for c in cells]
        self._tau1 = [c.tau1_s for c in cells]
        self._tau2 = [c.tau2_s for c in cells]
        self._sd_pct = [c.self_discharge_pct_per_month for c in cells]
        self._q = [c.initial_soc * c.capacity_ah for c in cells]
        self._h = [max(-1.0, min(1.0, c.initial_hysteresis)) for c in cells]
        self._depletion = [0.0] * N_CELLS
        self._ocv_offset = [c.ocv_offset_v + params.ocv_offset_v for c in cells]
        self._grid_chg, self._grid_dis = self._pack_ocv_grids(params)
        self._v1 = [0.0] * N_CELLS
        self._v2 = [0.0] * N_CELLS
        # derived per cell by _refresh: OCV with hysteresis, R0, R1, R2, R2 while charging
        self._ocv, self._r0, self._r1 = [0.0] * N_CELLS, [0.0] * N_CELLS, [0.0] * N_CELLS
        self._r2, self._r2_chg = [0.0] * N_CELLS, [0.0] * N_CELLS
        self._ambient_c = params.ambient_c
        t0 = params.ambient_c if params.initial_temperature_c is None else params.initial_temperature_c
        self._thermal = ThermalNetwork(params.thermal, N_CELLS, [t0] * N_CELLS, t0)
        self._time_s = 0.0
        # Ledger (Ah). Pack-level terminal charge, and per-cell internal flows.
        self._ah_in = 0.0
        self._ah_out = 0.0
        self._q_initial = list(self._q)
        self._sd_ah = [0.0] * N_CELLS
        self._bleed_ah = [0.0] * N_CELLS
        self._external_ah = [0.0] * N_CELLS
        self._decay_cache: tuple[float, list[tuple[_RcDecay, _RcDecay]]] = (-1.0, [])
        self._tfactors: list[tuple[float, float, float, float]] = [(1.0, 1.0, 1.0, 0.0)] * N_CELLS
        self._cell_v_cache: tuple[float, list[float]] | None = None  # (current, cell voltages) now
        self._cell_constants_changed()
        self._refresh()

    # ------------------------------------------------------------------ derived state
    @staticmethod
    def _pack_ocv_grids(params: PackParams) -> tuple[list[float], list[float]]:
        """The charge and discharge branches as this pack's cells realise them, on the 0.25 % grid."""
        for name, shift, width in (("knee_shift_low", params.knee_shift_low, KNEE_WIDTH_LOW),
                                   ("knee_shift_high", params.knee_shift_high, KNEE_WIDTH_HIGH)):
            if abs(shift) >= max_knee_shift(width):
                raise ValueError(f"{name} {shift:g} would fold the OCV curve (|shift| < {max_knee_shift(width):.4f})")
        warped = [knee_warp(k * GRID_STEP, params.knee_shift_low, params.knee_shift_high)
                  for k in range(_OCV_N + 1)]
        return [ocv_branch(s, 1.0) for s in warped], [ocv_branch(s, -1.0) for s in warped]

    def _cell_constants_changed(self) -> None:
        """The cells' capacities or the parameters changed (construction, a weak-cell fault, a
        restore from plain data): rederive the hot path's constants, recompute every temperature factor."""
        self._derive_constants()
        self._invalidate_temperature_factors()

    def _derive_constants(self) -> None:
        """What the hot path reads from the parameters and the cells' capacities. Each is the same
        expression, evaluated in the same order, as the per-step code evaluated inline before."""
        p = self.params
        # this pack's charge and discharge OCV branches as (start, rise) per grid interval
        self._ocv_segments = [(c0, c_rise, d0, d_rise) for (c0, c_rise), (d0, d_rise)
                              in zip(_segments(self._grid_chg), _segments(self._grid_dis), strict=True)]
        self._ea_ohmic_per_r = p.ea_ohmic_j_per_mol / GAS_CONSTANT
        self._ea_ct_per_r = p.ea_charge_transfer_j_per_mol / GAS_CONSTANT
        self._diffusion_rate_per_h = p.diffusion_gain * _REFERENCE_RATE_PER_H
        # self-discharge current at 25 °C (A), before its Q10 temperature factor
        self._sd_a_25 = [sd / 100.0 * cap / HOURS_PER_MONTH for sd, cap in zip(self._sd_pct, self._cap, strict=True)]
        self._cap_as = [3600.0 * cap for cap in self._cap]  # capacity in A·s, divides the depletion target

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle (checkpoints pickle the pack): the derived constants and caches are rebuilt rather
        than trusted, so a checkpoint written by a version with other ones restores too. The
        temperature factors are state (they follow the temperature in 1 mK steps) and are kept."""
        self.__dict__.update(state)
        self._derive_constants()
        self._decay_cache = (-1.0, [])
        self._cell_v_cache = None

    def _temperature_factors(self, i: int, t: float) -> tuple[float, float, float, float]:
        """(R0 Arrhenius, R1/R2 Arrhenius, diffusion τ_d in s, self-discharge A) of cell i at t °C."""
        p = self.params
        inv = 1.0 / (t + 273.15) - _INV_T_REF_K
        # τ_d such that the steady depletion at the 0.2C reference rate is the table's loss
        # (a gain of 0 switches the diffusion limitation off)
        tau_d_s = 0.0
        if p.diffusion_gain > 0.0:
            # at and above the table's end (25 °C: no loss) the lookup is its last value
            loss = _DIFFUSION_LAST if t >= _DIFFUSION_END_C else _grid_lookup(_DIFFUSION_GRID, t)
            tau_d_s = loss / self._diffusion_rate_per_h * 3600.0
        return (
            math.exp(self._ea_ohmic_per_r * inv),
            math.exp(self._ea_ct_per_r * inv),
            tau_d_s,
            self._sd_a_25[i] * p.self_discharge_q10 ** ((t - 25.0) / 10.0),
        )

    def _refresh(self) -> None:
        """Recompute the state-dependent quantities (OCV, R, leakage) after any state change."""
        n = _OCV_N
        temps = self._thermal.cells_c
        tf, tf_at = self._tfactors, self._tf_at
        # rewritten in place: nothing outside the pack holds these lists (read-outs hand out copies)
        ocv, r0, r1, r2, r2_chg = self._ocv, self._r0, self._r1, self._r2, self._r2_chg
        # Hot path (runs after every step): module lookups inlined and bound to locals.
        q, cap, hyst, dep, offsets = self._q, self._cap, self._h, self._depletion, self._ocv_offset
        entropic = self.params.entropic_v_per_k
        r0_base, r1_base, r2_base = self._r0_base, self._r1_base, self._r2_base
        _, sr_inv, sr_values = _SOC_R_GRID  # grid starts at SOC 0
        sr_last = len(sr_values) - 1
        sr_segments = _SOC_R_SEGMENTS
        top_start = TOP_OF_CHARGE_R2_FACTOR[0][0]
        ocv_segments = self._ocv_segments
        for i in range(N_CELLS):
            t = temps[i]
            # Temperature factors move by < 0.003 % per mK; recomputing them only when a cell's
            # temperature has moved by 1 mK keeps the hot path cheap without visible error.
            moved = t - tf_at[i]
            if moved > TEMPERATURE_FACTOR_RESOLUTION_K or moved < -TEMPERATURE_FACTOR_RESOLUTION_K:
                tf[i] = self._temperature_factors(i, t)
                tf_at[i] = t
            arr0, arr_ct, _, _ = tf[i]
            # Resistances follow the stored charge; the OCV follows the particle surface, Δ short
            # of it under load (cold capacity loss, see DIFFUSION_LOSS_AT_0P2C), equal at rest.
            s_eff = q[i] / cap[i]
            pos = s_eff * sr_inv
            if pos <= 0.0:
                sf = sr_values[0]
            elif pos >= sr_last:
                sf = sr_values[sr_last]
            else:
                k = int(pos)
                sf0, sf_rise = sr_segments[k]
                sf = sf0 + (pos - k) * sf_rise
            r0[i] = r0_base[i] * sf * arr0
            r1[i] = r1_base[i] * sf * arr_ct
            r2_i = r2_base[i] * sf * arr_ct
            r2[i] = r2_i
            r2_chg[i] = r2_i * _grid_lookup(_TOP_R2_GRID, s_eff) if s_eff > top_start else r2_i
            # OCV with hysteresis (ocv.ocv_branch inlined on this pack's grid)
            x = (s_eff - dep[i]) * n
            k = 0 if x < 0.0 else (n - 1 if x >= n else int(x))
            fr = x - k
            vc0, vc_rise, vd0, vd_rise = ocv_segments[k]
            vc = vc0 + fr * vc_rise
            vd = vd0 + fr * vd_rise
            w = 0.5 * (1.0 + hyst[i])
            v = w * vc + (1.0 - w) * vd + offsets[i]
            if entropic:  # battery.md §8: 0 for this chemistry, and adding 0·ΔT changes no voltage
                v += entropic * (t - 25.0)
            ocv[i] = 0.0 if v < 0.0 else (5.0 if v > 5.0 else v)
        self._emf = sum(ocv) + sum(self._v1) + sum(self._v2)
        self._rs = sum(r0) + self.params.interconnect_ohm
        self._cell_v_cache = None

    def _invalidate_temperature_factors(self) -> None:
        self._tf_at = [math.inf] * N_CELLS

    # ------------------------------------------------------------------ electrical read-outs
    def open_circuit_emf(self) -> float:
        """Pack voltage at zero current now: Σ(OCV_i with hysteresis + v_rc1_i + v_rc2_i)."""
        return self._emf

    def series_resistance(self) -> float:
        """Instantaneous resistance Σ R0_i(soc, T) + interconnect; V_terminal = emf + I·R."""
        return self._rs

    def terminal_voltage(self, current_a: float) -> float:
        return self._emf + current_a * self._rs

    def cell_voltages(self, current_a: float) -> list[float]:
        """Each cell's terminal voltage at ``current_a`` (interconnect excluded), a new list."""
        # Each world step reads them twice at the same current (the BMS sample, the ground truth's
        # excursions): computed once per state and current, handed out as copies.
        cached = self._cell_v_cache
        if cached is None or cached[0] != current_a:
            cells = []
            for ocv, v1, v2, r0 in zip(self._ocv, self._v1, self._v2, self._r0, strict=True):
                cells.append(ocv + v1 + v2 + current_a * r0)
            self._cell_v_cache = cached = (current_a, cells)
        return list(cached[1])

    def cell_open_circuit_voltages(self) -> list[float]:
        """Cell voltages without RC polarisation now: OCV with hysteresis of the particle surface
        (equal to the stored charge's OCV once the diffusion depletion has relaxed)."""
        return list(self._ocv)

    # ------------------------------------------------------------------ integration
    def _decays(self, dt_s: float) -> list[tuple[_RcDecay, _RcDecay]]:
        """Per cell, :func:`_rc_decay` of its two RC pairs for a step of ``dt_s`` (the world's steps
        all have the same length, so these are computed once)."""
        cached_dt, decays = self._decay_cache
        if cached_dt != dt_s:
            decays = [(_rc_decay(dt_s, tau1), _rc_decay(dt_s, tau2))
                      for tau1, tau2 in zip(self._tau1, self._tau2, strict=True)]
            self._decay_cache = (dt_s, decays)
        return decays

    def advance(self, dt_s: float, current_a: float, bleed_a: Sequence[float] | None = None) -> None:
        """Hold ``current_a`` for ``dt_s`` seconds; ``bleed_a`` = per-cell balancing current (A, >= 0)
        drawn from each cell by the BMS. Applies self-discharge and the thermal update."""
        if dt_s <= 0.0:
            if dt_s == 0.0:
                return
            raise ValueError(f"advance: dt_s must be >= 0, got {dt_s}")
        if bleed_a is not None and len(bleed_a) != N_CELLS:
            raise ValueError(f"advance: bleed_a needs {N_CELLS} values, got {len(bleed_a)}")
        decays = self._decays(dt_s)
        hours = dt_s / 3600.0
        p = self.params
        eta = p.coulombic_efficiency
        stored_in = current_a * eta if current_a > 0.0 else current_a
        decay = p.hysteresis_decay_per_ah
        common_h_factor = math.exp(-decay * abs(current_a) * hours)
        if bleed_a is None:
            bleed: Sequence[float] = _NO_BLEED
        else:
            bleed = bleed_a
            if min(bleed) < 0.0:
                raise ValueError(f"advance: bleed currents must be >= 0 A, got {list(bleed)}")
        q, h, v1s, v2s, dep = self._q, self._h, self._v1, self._v2, self._depletion
        neg_gain = -p.diffusion_gain
        r0s, r1s, r2s, r2_chg, ocv = self._r0, self._r1, self._r2, self._r2_chg, self._ocv
        sd_ah, bleed_ah, tf, cap_as = self._sd_ah, self._bleed_ah, self._tfactors, self._cap_as
        heat = []
        for i in range(N_CELLS):
            b = bleed[i]
            ic = current_a - b
            r1 = r1s[i]
            r2 = r2_chg[i] if ic > 0.0 else r2s[i]
            (e1, rise1, rise1_sq, tau1), (e2, rise2, rise2_sq, tau2) = decays[i]
            end1 = ic * r1  # the RC pairs' end values I·R
            end2 = ic * r2
            d1 = v1s[i] - end1   # distance from the end values
            d2 = v2s[i] - end2
            v1s[i] = end1 + d1 * e1
            v2s[i] = end2 + d2 * e2
            # Joule heat in R0 and the RC resistors (exact mean of v²/R over the exponential), and
            # the balancing resistor's heat (bleed current x cell voltage) on the cell it drains.
            # The top-of-charge polarisation was built through the (large) charging R2; when the
            # current stops it relaxes through that same resistance. Judging its heat with the
            # small resting R2 would release energy the cell never stored (hundreds of W).
            if ic > 0.0:
                r2_heat = r2
            else:  # |d2| > 5·|ic|·r2 + 1 mV, with ic <= 0 (the abs() calls spelled out: same values)
                relaxing = 5.0 * -ic * r2 + 0.001
                r2_heat = r2_chg[i] if d2 > relaxing or -d2 > relaxing else r2
            # mean of v(t)² over the step where v(t) = end + d·e^(-t/τ): end² + transient·τ/dt,
            # transient = 2·end·d·(1 − e^(-dt/τ)) + ½·d²·(1 − e^(-2dt/τ)) (inlined: 16 calls a step)
            ms1 = end1 * end1 + (2.0 * end1 * d1 * rise1 + 0.5 * d1 * d1 * rise1_sq) * tau1 / dt_s
            ms2 = end2 * end2 + (2.0 * end2 * d2 * rise2 + 0.5 * d2 * d2 * rise2_sq) * tau2 / dt_s
            heat.append(ic * ic * r0s[i] + ms1 / r1 + ms2 / r2_heat + b * ocv[i])
            _, _, tau_d, isd = tf[i]
            # Δ → its steady value g·(−I/C)·τ_d with the exact exponential (current held constant)
            if tau_d > 0.0:
                target_dep = neg_gain * ic * tau_d / cap_as[i]
                dep[i] = target_dep + (dep[i] - target_dep) * math.exp(-dt_s / tau_d)
            else:
                dep[i] = 0.0
            q[i] += (stored_in - b - isd) * hours
            sd_ah[i] += isd * hours
            if b:
                bleed_ah[i] += b * hours
            if ic != 0.0:
                target = 1.0 if ic > 0.0 else -1.0
                hf = common_h_factor if b == 0.0 else math.exp(-decay * abs(ic) * hours)
                h[i] = target + (h[i] - target) * hf
        if current_a > 0.0:
            self._ah_in += current_a * hours
        else:
            self._ah_out -= current_a * hours
        enclosure_heat = current_a * current_a * p.interconnect_ohm
        self._thermal.step(dt_s, heat, enclosure_heat, self._ambient_c)
        self._time_s += dt_s
        self._refresh()

    # ------------------------------------------------------------------ environment and faults
    def set_ambient(self, ambient_c: float) -> None:
        self._ambient_c = float(ambient_c)

    def set_cell_soc(self, index: int, soc: float) -> None:
        """Set cell ``index`` (0-based) to ``soc``; the charge that appears or vanishes is booked
        as ``external_ah`` (fault injection: sense fault, charger runaway, internal short)."""
        new_q = soc * self._cap[index]
        self._external_ah[index] += new_q - self._q[index]
        self._q[index] = new_q
        self._refresh()

    def set_cell_rest_voltage(self, index: int, voltage_v: float) -> None:
        """Move cell ``index``'s charge until its open-circuit voltage reads ``voltage_v`` (fault
        injection: a charger runaway on one cell). Solved on this pack's own OCV, with the cell's
        offset, hysteresis and temperature, by bisection (the OCV rises with the charge, also
        where it extrapolates past the table): no second copy of the curve to drift apart."""
        lo, hi = -0.5, 2.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            self.set_cell_soc(index, mid)
            if self._ocv[index] < voltage_v:
                lo = mid
            else:
                hi = mid
        self.set_cell_soc(index, 0.5 * (lo + hi))

    def scale_cell(self, index: int, capacity_scale: float = 1.0, r_scale: float = 1.0) -> None:
        """Weak-cell fault: capacity x ``capacity_scale`` at unchanged SOC, R0/R1/R2 x ``r_scale``."""
        if capacity_scale <= 0.0 or r_scale <= 0.0:
            raise ValueError("scale_cell: scales must be positive")
        new_q = self._q[index] * capacity_scale
        self._external_ah[index] += new_q - self._q[index]
        self._q[index] = new_q
        self._cap[index] *= capacity_scale
        self._r0_base[index] *= r_scale
        self._r1_base[index] *= r_scale
        self._r2_base[index] *= r_scale
        self._cell_constants_changed()  # leakage and depletion scale with capacity
        self._refresh()

    def heat_cell(self, index: int, delta_c: float) -> None:
        """Raise cell ``index``'s temperature by ``delta_c`` at once (over-temperature fault)."""
        self._thermal.cells_c[index] += delta_c
        self._refresh()

    # ------------------------------------------------------------------ state read-outs
    @property
    def cell_soc(self) -> list[float]:
        return [q / c for q, c in zip(self._q, self._cap, strict=True)]

    @property
    def cell_charge_ah(self) -> list[float]:
        """Stored charge per cell (Ah above empty, 25 °C scale)."""
        return list(self._q)

    @property
    def cell_capacity_ah(self) -> list[float]:
        return list(self._cap)

    @property
    def cell_hysteresis(self) -> list[float]:
        return list(self._h)

    @property
    def cell_temperatures_c(self) -> list[float]:
        return list(self._thermal.cells_c)

    @property
    def enclosure_temperature_c(self) -> float:
        return self._thermal.enclosure_c

    @property
    def ambient_c(self) -> float:
        return self._ambient_c

    @property
    def time_s(self) -> float:
        """Simulated seconds integrated so far."""
        return self._time_s

    def true_capacity_ah(self) -> float:
        """Charge (Ah, 25 °C) a pack topped up until its first cell is full delivers until its
        first cell is empty: min_i(q_i) + min_j(C_j - q_j). See the module docstring."""
        return min(self._q) + min(c - q for c, q in zip(self._cap, self._q, strict=True))

    def true_soc_pct(self) -> float:
        """Deliverable charge to the first empty cell as a percentage of :meth:`true_capacity_ah`."""
        cap = self.true_capacity_ah()
        return 100.0 * min(self._q) / cap if cap > 0.0 else 0.0

    def charge_ledger(self) -> dict[str, float]:
        """Cumulative charge flows (Ah) since construction, per cell averaged over the 8 cells.

        The series current passes through every cell, so ``ah_in``/``ah_out`` (pack terminal) are
        also each cell's; internal flows are cell means. Balance, to rounding:
        ``stored_change_ah == ah_in - coulombic_loss_ah - ah_out - self_discharge_ah - bleed_ah
        + external_ah``.
        """
        n = float(N_CELLS)
        eta = self.params.coulombic_efficiency
        stored = sum(self._q) / n
        stored0 = sum(self._q_initial) / n
        return {
            "ah_in": self._ah_in,
            "ah_out": self._ah_out,
            "coulombic_loss_ah": self._ah_in * (1.0 - eta),
            "self_discharge_ah": sum(self._sd_ah) / n,
            "bleed_ah": sum(self._bleed_ah) / n,
            "external_ah": sum(self._external_ah) / n,
            "stored_initial_ah": stored0,
            "stored_ah": stored,
            "stored_change_ah": stored - stored0,
        }

    def cell_ledger(self) -> dict[str, list[float]]:
        """Per-cell internal flows (Ah): self_discharge_ah, bleed_ah, external_ah."""
        return {"self_discharge_ah": list(self._sd_ah), "bleed_ah": list(self._bleed_ah),
                "external_ah": list(self._external_ah)}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain data (lists, floats, dicts) that :meth:`from_state_dict` restores exactly."""
        return {
            "params": asdict(self.params),
            "capacity_ah": list(self._cap),
            "r_base": [list(self._r0_base), list(self._r1_base), list(self._r2_base)],
            "q": list(self._q), "h": list(self._h), "v1": list(self._v1), "v2": list(self._v2),
            "depletion": list(self._depletion),
            "cells_c": list(self._thermal.cells_c), "enclosure_c": self._thermal.enclosure_c,
            "ambient_c": self._ambient_c, "time_s": self._time_s,
            "ledger": {"ah_in": self._ah_in, "ah_out": self._ah_out, "q_initial": list(self._q_initial),
                       "sd_ah": list(self._sd_ah), "bleed_ah": list(self._bleed_ah),
                       "external_ah": list(self._external_ah)},
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Pack:
        pack = cls(_params_from_dict(state["params"]))
        pack._cap = list(state["capacity_ah"])
        pack._r0_base, pack._r1_base, pack._r2_base = (list(r) for r in state["r_base"])
        pack._q, pack._h = list(state["q"]), list(state["h"])
        pack._v1, pack._v2 = list(state["v1"]), list(state["v2"])
        pack._depletion = list(state.get("depletion", [0.0] * N_CELLS))  # absent before it existed
        pack._thermal.cells_c = list(state["cells_c"])
        pack._thermal.enclosure_c = state["enclosure_c"]
        pack._ambient_c = state["ambient_c"]
        pack._time_s = state["time_s"]
        ledger = state["ledger"]
        pack._ah_in, pack._ah_out = ledger["ah_in"], ledger["ah_out"]
        pack._q_initial = list(ledger["q_initial"])
        pack._sd_ah, pack._bleed_ah = list(ledger["sd_ah"]), list(ledger["bleed_ah"])
        pack._external_ah = list(ledger["external_ah"])
        pack._cell_constants_changed()
        pack._refresh()
        return pack
