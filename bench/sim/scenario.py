"""Scenario files: the simulated pack, its BMS's state and the faults to inject, as YAML.

A scenario only *describes* a world; the simulator's world model builds the pack from
:meth:`Scenario.pack_params`, hands :class:`BmsScenario` to the BMS firmware model and applies
the faults at their times. Built-in scenarios live in ``bench/sim/scenarios/*.yaml``.
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.errors import ConfigError, InputErrors
from bench.sim.pack import (
    KNEE_WIDTH_HIGH,
    KNEE_WIDTH_LOW,
    N_CELLS,
    R0_OHM,
    SELF_DISCHARGE_PCT_PER_MONTH,
    CellParams,
    PackParams,
    max_knee_shift,
)
from bench.yamlio import load_model

SCENARIO_DIR = Path(__file__).with_name("scenarios")

# battery.md §1.8 / §8: new-cell capacity Normal(203 Ah, 1.0 Ah) truncated at ±3σ [A]
CAPACITY_MEAN_AH = 203.0
CAPACITY_SD_AH = 1.0
CLIP_SIGMA = 3.0
# battery.md §1.8 / §8: DC resistance σ 3 % of mean; initial SOC σ 0.3 % [A]
R0_SD_REL = 0.03
SOC_SD_PCT_UNBALANCED = 0.3
# A pack whose BMS top-balances to a 20 mV stop delta (battery.md §3.1 TI default / §8 balancing)
# is left with a charge spread of a few hundredths of a percent at the top [assumption].
SOC_SD_PCT_TOP_BALANCED = 0.02
# battery.md §1.7 / §8 self_discharge_pct_per_month_25C: Normal(1.5, 0.5), min 0.2 [A]
SELF_DISCHARGE_SD_PCT = 0.5
SELF_DISCHARGE_MIN_PCT = 0.2
# How a pack's cells depart from the §1.4 table (docs/simulator.md "OCV departures"). Offsets: the
# spread of rested OCV between cells of one type (battery.md §1.8: OCV at matching ±5–20 mV, which
# also holds the SOC spread) and between production lots: σ 3 mV each [A]. Knee positions: cells
# differ in capacity by ±1–3 % (§1.8), i.e. in electrode balance, which moves where the walls begin;
# per pack (one lot) σ 0.5 % SOC at the low knee and 0.2 % at the top wall [A]. All clipped at ±3σ.
OCV_OFFSET_SD_MV = 3.0
KNEE_SHIFT_LOW_SD_PCT = 0.5
KNEE_SHIFT_HIGH_SD_PCT = 0.2

CellList = Annotated[list[float], Field(min_length=N_CELLS, max_length=N_CELLS)]
CellNumber = Annotated[int, Field(ge=1, le=N_CELLS)]
InstrumentName = Literal["supply", "load"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(_Strict):
    mean: float
    sd: float = Field(ge=0.0)


class CellsScenario(_Strict):
    """Per-cell properties: 8 explicit values, or a distribution drawn with the scenario seed."""

    capacity_ah: CellList | Distribution = Field(
        default_factory=lambda: Distribution(mean=CAPACITY_MEAN_AH, sd=CAPACITY_SD_AH))
    # One value = pack SOC (then ``alignment`` says how the cells sit); 8 values = each cell's SOC.
    soc_pct: CellList | Annotated[float, Field(ge=0.0, le=100.0)] = 50.0
    # "top": cells share the same Ah-to-full (a pack its BMS has top-balanced), and soc_pct is the
    # pack's true SOC; "soc": each cell is at soc_pct of its own capacity (an unbalanced new pack).
    alignment: Literal["top", "soc"] | None = None
    # Random per-cell spread (σ, % of capacity) around the alignment; default by alignment.
    spread_sd_pct: float | None = Field(default=None, ge=0.0)
    # Extra charge per cell (Ah, + = ahead) added after alignment: the imbalance a scenario is about.
    imbalance_ah: CellList | None = None
    r0_scale: CellList | None = None
    self_discharge_pct_per_month: CellList | Distribution | Annotated[float, Field(ge=0.0)] = Field(
        default_factory=lambda: Distribution(mean=SELF_DISCHARGE_PCT_PER_MONTH, sd=SELF_DISCHARGE_SD_PCT))
    # Hysteresis state at the start: -1 last moved on discharge, +1 on charge, 0 long rest.
    hysteresis: float = Field(default=0.0, ge=-1.0, le=1.0)

    @model_validator(mode="after")
    def _per_cell_soc_is_not_aligned(self) -> CellsScenario:
        if isinstance(self.soc_pct, list) and self.alignment is not None:
            raise ValueError("alignment applies to a single pack soc_pct, not to 8 per-cell values")
        for v in self.soc_pct if isinstance(self.soc_pct, list) else []:
            if not 0.0 <= v <= 100.0:
                raise ValueError(f"per-cell soc_pct must be within 0..100, got {v}")
        return self


class OcvScenario(_Strict):
    """How this pack's cells depart from the OCV table the bench knows: a value, or a distribution
    drawn with the scenario seed (defaults: zero mean, σ as in the constants above)."""

    pack_offset_mv: Distribution | float = Field(
        default_factory=lambda: Distribution(mean=0.0, sd=OCV_OFFSET_SD_MV))
    cell_offset_mv: CellList | Distribution = Field(
        default_factory=lambda: Distribution(mean=0.0, sd=OCV_OFFSET_SD_MV))
    # SOC (%) by which the table is read ahead (+) near 0 % / near 100 %: the knee sits earlier
    knee_shift_low_pct: Distribution | float = Field(
        default_factory=lambda: Distribution(mean=0.0, sd=KNEE_SHIFT_LOW_SD_PCT))
    knee_shift_high_pct: Distribution | float = Field(
        default_factory=lambda: Distribution(mean=0.0, sd=KNEE_SHIFT_HIGH_SD_PCT))

    @model_validator(mode="after")
    def _knees_keep_the_curve_rising(self) -> OcvScenario:
        for name, width in (("knee_shift_low_pct", KNEE_WIDTH_LOW), ("knee_shift_high_pct", KNEE_WIDTH_HIGH)):
            value = getattr(self, name)
            limit = 100.0 * max_knee_shift(width)
            extreme = abs(value) if isinstance(value, float) else abs(value.mean) + CLIP_SIGMA * value.sd
            if extreme >= limit:
                raise ValueError(f"{name}: |shift| (or |mean| + 3 sd) must stay below {limit:.2f} % "
                                 "or the OCV curve would fold back")
        return self


DtcName = Literal[
    "cell_ov", "cell_uv", "pack_ov", "pack_uv", "charge_ot", "discharge_ot", "charge_ut", "discharge_ut",
    "overcurrent_charge", "overcurrent_discharge", "short_circuit", "cell_imbalance",
    "sensor_fault", "comms_timeout", "learning_invalidated",
]


class FaultHistoryEvent(_Strict):
    """A DTC the BMS already holds when the scenario starts (battery.md §6.2 project DTC list)."""

    code: DtcName
    days_ago: float = Field(ge=0.0)
    cell: CellNumber | None = None
    value: float | None = None          # the measured value that tripped (V, °C or A)
    occurrences: int = Field(default=1, ge=1)


class BmsScenario(_Strict):
    """The BMS's own state and defects at scenario start (consumed by the BMS firmware model)."""

    soc_estimate_pct: float | None = Field(default=None, ge=0.0, le=100.0)  # None: = true SOC
    learned_capacity_ah: float | None = Field(default=None, gt=0.0)  # None: design capacity 200 Ah
    current_offset_a: float = 0.0
    current_gain_error: float = 0.0      # fraction: 0.01 = reads 1 % high
    install_date: date = date(2025, 1, 15)
    serial: str = "VS02P-24-000001"
    sw_version: str = "2.3.1"
    ignores_calibration_routine: bool = False   # a BMS that cannot learn
    cycle_count: int = Field(default=0, ge=0)
    fault_history: list[FaultHistoryEvent] = Field(default_factory=list)
    balancing_stuck: bool = False


class InstrumentsScenario(_Strict):
    supply_family: str | None = None
    load_family: str | None = None


class _Fault(_Strict):
    at_s: float = Field(ge=0.0)


class InstrumentDisconnect(_Fault):
    kind: Literal["instrument_disconnect"]
    instrument: InstrumentName
    duration_s: float = Field(gt=0.0)


class CanSilence(_Fault):
    kind: Literal["can_silence"]
    duration_s: float = Field(gt=0.0)


class BusOff(_Fault):
    kind: Literal["bus_off"]
    duration_s: float = Field(gt=0.0)


class CellOverVoltage(_Fault):
    """Realised as charge appearing in that cell (sense fault / charger runaway): the cell's SOC
    jumps so its open-circuit voltage is ``voltage_v`` (Pack.set_cell_soc; booked as external_ah)."""

    kind: Literal["cell_over_voltage"]
    cell: CellNumber
    voltage_v: float = Field(default=3.80, gt=3.6, le=5.0)


class OverTemperature(_Fault):
    kind: Literal["over_temperature"]
    cell: CellNumber
    delta_c: float = Field(gt=0.0)


class BmsReboot(_Fault):
    kind: Literal["bms_reboot"]


class ContactorOpen(_Fault):
    kind: Literal["contactor_open"]
    duration_s: float | None = Field(default=None, gt=0.0)  # None: until the BMS is reset


class ShuntGainError(_Fault):
    kind: Literal["shunt_gain_error"]
    instrument: InstrumentName
    gain: float = Field(gt=0.0)  # multiplier on the instrument's current read-back


class SenseLeadOff(_Fault):
    kind: Literal["sense_lead_off"]
    instrument: InstrumentName


class SetpointIgnored(_Fault):
    kind: Literal["setpoint_ignored"]
    instrument: InstrumentName
    duration_s: float | None = Field(default=None, gt=0.0)  # None: for the rest of the run


class ControllerDeath(_Fault):
    kind: Literal["controller_death"]


class WatchdogDeath(_Fault):
    kind: Literal["watchdog_death"]


class WeakCell(_Fault):
    """battery.md §1.8: -5…-20 % capacity, +20…+100 % resistance (Pack.scale_cell)."""

    kind: Literal["weak_cell"]
    cell: CellNumber
    capacity_scale: float = Field(gt=0.0, le=1.0)
    r_scale: float = Field(default=1.0, gt=0.0)


Fault = Annotated[
    InstrumentDisconnect | CanSilence | BusOff | CellOverVoltage | OverTemperature | BmsReboot
    | ContactorOpen | ShuntGainError | SenseLeadOff | SetpointIgnored | ControllerDeath | WatchdogDeath
    | WeakCell,
    Field(discriminator="kind"),
]


class Scenario(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    ambient_c: float = Field(default=25.0, ge=-40.0, le=80.0)
    cells: CellsScenario = Field(default_factory=CellsScenario)
    ocv: OcvScenario = Field(default_factory=OcvScenario)
    bms: BmsScenario = Field(default_factory=BmsScenario)
    instruments: InstrumentsScenario = Field(default_factory=InstrumentsScenario)
    faults: list[Fault] = Field(default_factory=list)

    def _rng(self, quantity: str) -> random.Random:
        # One independent stream per quantity: giving one quantity explicitly does not shift the
        # random draws of the others.
        return random.Random(f"{self.seed}/{quantity}")

    def pack_params(self) -> PackParams:
        """Per-cell parameters for :class:`bench.sim.pack.Pack`, drawn deterministically from ``seed``."""
        c = self.cells
        capacities = _draw(c.capacity_ah, self._rng("capacity"), clip_sigma=CLIP_SIGMA)
        socs = self._initial_socs(capacities)
        if c.r0_scale is not None:
            r0 = [R0_OHM * s for s in c.r0_scale]
        else:
            r0_spec = Distribution(mean=R0_OHM, sd=R0_OHM * R0_SD_REL)
            r0 = _draw(r0_spec, self._rng("r0"), clip_sigma=CLIP_SIGMA)
        sd = c.self_discharge_pct_per_month
        if isinstance(sd, Distribution):
            leak = [max(SELF_DISCHARGE_MIN_PCT, v) for v in _draw(sd, self._rng("self_discharge"))]
        else:
            leak = [float(sd)] * N_CELLS if isinstance(sd, (int, float)) else list(sd)
        o = self.ocv
        cell_offsets = _draw(o.cell_offset_mv, self._rng("ocv_cell_offset"), clip_sigma=CLIP_SIGMA)
        cells = [
            CellParams(capacity_ah=capacities[i], r0_ohm=r0[i], self_discharge_pct_per_month=leak[i],
                       initial_soc=socs[i], initial_hysteresis=c.hysteresis,
                       ocv_offset_v=cell_offsets[i] / 1000.0)
            for i in range(N_CELLS)
        ]
        return PackParams(
            cells=cells, ambient_c=self.ambient_c,
            ocv_offset_v=self._draw_one(o.pack_offset_mv, "ocv_pack_offset") / 1000.0,
            knee_shift_low=self._draw_one(o.knee_shift_low_pct, "ocv_knee_low") / 100.0,
            knee_shift_high=self._draw_one(o.knee_shift_high_pct, "ocv_knee_high") / 100.0,
        )

    def _draw_one(self, spec: Distribution | float, quantity: str) -> float:
        """One pack-level value: as given, or drawn (clipped at ±3σ) from its own seeded stream."""
        if not isinstance(spec, Distribution):
            return float(spec)
        v = self._rng(quantity).gauss(spec.mean, spec.sd)
        return min(max(v, spec.mean - CLIP_SIGMA * spec.sd), spec.mean + CLIP_SIGMA * spec.sd)

    def _initial_socs(self, capacities: list[float]) -> list[float]:
        c = self.cells
        if isinstance(c.soc_pct, list):
            charges = [s / 100.0 * cap for s, cap in zip(c.soc_pct, capacities, strict=True)]
        else:
            alignment = c.alignment or "top"
            default_sd = SOC_SD_PCT_TOP_BALANCED if alignment == "top" else SOC_SD_PCT_UNBALANCED
            spread = default_sd if c.spread_sd_pct is None else c.spread_sd_pct
            rng = self._rng("soc")
            jitter = [rng.gauss(0.0, spread / 100.0) if spread > 0 else 0.0 for _ in range(N_CELLS)]
            s = c.soc_pct / 100.0
            if alignment == "top":
                # Same Ah-to-full for every cell, sized on the smallest cell so the pack's true SOC
                # (Pack.true_soc_pct) equals soc_pct before jitter.
                to_full = (1.0 - s) * min(capacities)
                charges = [cap - to_full + j * cap for cap, j in zip(capacities, jitter, strict=True)]
            else:
                charges = [(s + j) * cap for cap, j in zip(capacities, jitter, strict=True)]
        if c.imbalance_ah is not None:
            charges = [q + d for q, d in zip(charges, c.imbalance_ah, strict=True)]
        return [q / cap for q, cap in zip(charges, capacities, strict=True)]


def _draw(spec: list[float] | Distribution, rng: random.Random,
          clip_sigma: float | None = None) -> list[float]:
    if isinstance(spec, list):
        return [float(v) for v in spec]
    values = []
    for _ in range(N_CELLS):
        v = rng.gauss(spec.mean, spec.sd)
        if clip_sigma is not None:
            v = min(max(v, spec.mean - clip_sigma * spec.sd), spec.mean + clip_sigma * spec.sd)
        values.append(v)
    return values


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``bench/sim/scenarios``."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path.

    Raises :class:`ConfigError` for an unknown name (listing the built-ins) or an invalid file
    (located ``file:line:column: key: message``; all problems, one per line).
    """
    path = Path(name_or_path)
    looks_like_path = path.suffix in {".yaml", ".yml"} or len(path.parts) > 1
    if not looks_like_path:
        candidate = SCENARIO_DIR / f"{name_or_path}.yaml"
        if not candidate.is_file():
            raise ConfigError(
                f"unknown scenario {name_or_path!r}; built-in scenarios: {', '.join(builtin_scenarios())}"
                " (or give a path to a .yaml file)")
        path = candidate
    try:
        return load_model(Scenario, path)
    except ConfigError:
        raise
    except InputErrors as exc:
        first, rest = exc.errors[0], exc.errors[1:]
        message = "\n".join([first.message, *(e.format() for e in rest)])
        raise ConfigError(message, file=first.file, line=first.line, column=first.column,
                          field=first.field) from None
