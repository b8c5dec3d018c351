"""What ``bench diag`` reads and concludes, as data (``--json`` prints :class:`DiagReport`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

DivergenceClass = Literal["normal", "balancing", "extended_balancing", "replacement"]
Warranty = Literal["in_warranty", "out_of_warranty", "unknown"]
Condition = Literal["auto", "as_is", "full"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DtcEntry(_Model):
    code: str                      # "0x911002"
    name: str                      # UDS map name (cell_undervoltage, ...)
    status_bits: list[str]
    active: bool                   # testFailed: the fault is present now
    occurrences: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    snapshot: dict[str, float] | None = None  # freeze frame at the latest occurrence


class BalancingEntry(_Model):
    start: datetime
    end: datetime
    cells: list[int]               # 1-based cell numbers bled in that session
    ah_bled: float


class PackReading(_Model):
    """One read-out of the BMS over UDS (DIDs of drivers/data/vs02_uds.yaml)."""

    taken_at: datetime
    soc_pct: float
    soh_pct: float
    cycle_count: int
    pack_voltage_v: float
    current_a: float               # + = charge
    cell_voltages_v: list[float]
    temperatures_c: list[float]    # 8 cells, then the enclosure
    divergence_v: float            # max - min cell, as the BMS computes it
    divergence_condition: str      # where it was sampled: end_of_cv, full_rest, mid_plateau, ...
    balancing_active_cells: list[int]
    balancing_time_s: float
    balancing_log: list[BalancingEntry]
    dtcs: list[DtcEntry]

    @property
    def cell_v_mean(self) -> float:
        return sum(self.cell_voltages_v) / len(self.cell_voltages_v)


class PackIdentity(_Model):
    serial: str
    sw_version: str
    manufacturing_date: str
    install_date: date | None
    install_date_source: str       # "--install-date", "DID install_date" or "unknown"


class Action(_Model):
    id: str                        # soc_calibration, bms_reset, extended_balancing, replace_under_warranty, ...
    text: str
    reason: str
    procedure: str | None = None   # the bench procedure that does it


class Assessment(_Model):
    divergence_v: float
    divergence_condition: str
    divergence_class: DivergenceClass
    divergence_at_defined_condition: bool  # end of CV absorption (battery.md §1.6)
    balancing_engaging: bool | None        # judged only in the 0.05-0.10 V class
    soc_consistent: bool | None            # None: could not be judged (under load, no rest)
    soc_window_pct: tuple[float, float] | None
    deep_discharge_suspected: bool
    recent_dtcs: list[str]
    cells_within_band: bool
    warranty: Warranty
    warranty_until: date | None
    healthy: bool
    findings: list[str]            # why it is not healthy, and notes
    actions: list[Action]

    @property
    def exit_code(self) -> int:
        """0 healthy / normal, 1 action recommended."""
        return 1 if self.actions else 0


class DiagReport(_Model):
    identity: PackIdentity
    condition: Condition
    brought_to_full: bool
    as_received: PackReading
    measured: PackReading          # the reading the divergence is judged on (= as_received without a charge)
    assessment: Assessment
