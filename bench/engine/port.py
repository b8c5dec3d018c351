"""The bench as the engine drives it: a small typed port, filled by a backend.

In the spirit of python-can's ``BusABC``: a backend (:class:`bench.station.Bench`, the connected
station) implements a handful of abstract methods -- outputs, safe state, the run record's
identity -- and sets the instruments it drives; this base adds what is the same for every backend
once. The engine imports this module, never the backend: the bench layer sits below the engine's
interface, not above the engine.

What the engine asks of the instruments themselves is named by two protocols,
:class:`PowerStage` (a supply or a load) and :class:`BmsAdapter`; the drivers fill them
(``drivers.power.PowerInstrument``, ``drivers.vs02_adapter.Vs02Adapter``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from bench.clock import Clock
from bench.config import StationConfig
from bench.procedure.model import Procedure
from bench.record import RunRecord

if TYPE_CHECKING:  # driver value types only: the engine never opens a driver
    from drivers.uds_map import UdsMap
    from drivers.vs02_adapter import DtcRecord, RoutineResult
    from drivers.vs02_broadcast import BmsSnapshot

Role = Literal["supply", "load"]
CommandKind = Literal["off", "charge", "discharge_cc", "discharge_cp"]


class PowerStage(Protocol):
    """A supply or a load, as far as the engine reads it and gets it back after a dropped link."""

    @property
    def name(self) -> str: ...

    def measure(self) -> tuple[float, float]:
        """(volts, amps) at the terminals; raises ConnectionLost when the link is gone."""
        ...

    def safe_state(self) -> list[str]: ...

    def reconnect(self) -> None: ...

    def output_is_on(self) -> bool: ...


class BmsAdapter(Protocol):
    """The CAN adapter to the BMS: the broadcast it decodes, and the UDS services steps call."""

    @property
    def uds_map(self) -> UdsMap: ...

    def snapshot(self) -> BmsSnapshot: ...

    def bus_state(self) -> str: ...

    def session(self, kind: str, /) -> None: ...

    def unlock(self, level: int, /) -> None: ...

    def ecu_reset(self, kind: str, /) -> None: ...

    def routine(self, name_or_id: str, action: str, option: bytes, /) -> RoutineResult: ...

    def read_dids(self, names: Iterable[str], /) -> Mapping[str, object]: ...

    def read_dtcs(self, status_mask: int, /) -> list[DtcRecord]: ...

    def active_dtcs(self) -> list[DtcRecord]: ...

    def clear_dtcs(self, group: int, /) -> None: ...


@dataclass(frozen=True)
class Commanded:
    """The bench's last command: ``off``, ``charge`` (CC limit ``current_a`` up to ``voltage_v``),
    ``discharge_cc`` (``current_a``) or ``discharge_cp`` (``power_w``), with the load cut-off."""

    kind: CommandKind
    current_a: float = 0.0
    voltage_v: float = 0.0
    power_w: float = 0.0
    cutoff_v: float = 0.0


@dataclass
class OutputState:
    supply_on: bool = False
    load_on: bool = False


class BenchPort(ABC):
    """What the engine drives. A backend sets the attributes and fills the abstract methods."""

    station: StationConfig
    clock: Clock
    supply: PowerStage
    load: PowerStage
    adapter: BmsAdapter
    #: the outputs as the bench last switched them
    outputs: OutputState
    #: what the bench last told its instruments to do (judged against measurements by the
    #: engine's supervision: an instrument that ignores a setpoint is a fault)
    commanded: Commanded

    # ------------------------------------------------------------------ outputs
    @abstractmethod
    def outputs_off(self) -> None:
        """Supply output and load input off (no protections touched): a rest, a pause."""

    @abstractmethod
    def charge(self, voltage_v: float, current_a: float, up_to_a: float | None = None) -> None:
        """Load off, supply on at ``voltage_v`` / ``current_a`` with its protections programmed
        for ``up_to_a``, the highest current the charge may be set to (checked against the range
        before the output goes on)."""

    @abstractmethod
    def adjust_charge(self, voltage_v: float, current_a: float, up_to_a: float | None = None) -> None:
        """New setpoints for a charge already running; a full :meth:`charge` when none runs."""

    @abstractmethod
    def discharge_cc(self, current_a: float, cutoff_v: float) -> None:
        """Supply off, load on in constant current down to the instrument-side ``cutoff_v``."""

    @abstractmethod
    def discharge_cp(self, power_w: float, cutoff_v: float) -> None:
        """Supply off, load on in constant power down to the instrument-side ``cutoff_v``."""

    @abstractmethod
    def default_cutoff_v(self) -> float:
        """The load's cut-off when a discharge step names none."""

    # ------------------------------------------------------------------ safe state
    @abstractmethod
    def safe_state(self, skip: Collection[str] = ()) -> list[str]:
        """Every output off in reverse order of activation; never raises; returns the problems.
        ``skip``: instruments known unreachable, reported instead of tried."""

    # ------------------------------------------------------------------ what procedures read
    @abstractmethod
    def range_variables(self) -> dict[str, float]:
        """``supply.voltage_max`` and the like: the instruments' ranges as expression values."""

    @abstractmethod
    def expression_functions(self) -> dict[str, Callable[[float], float]]:
        """Functions procedure expressions may call (``ocv_soc``)."""

    # ------------------------------------------------------------------ the run record
    @abstractmethod
    def new_record(self, *, run_id: str, procedure: Procedure, procedure_path: str,
                   procedure_sha256: str, operator: str, serial: str | None,
                   software_version: str) -> RunRecord:
        """The run's record with the station's, instruments' and pack's identity read now."""

    def finish_record(self, record: RunRecord) -> None:  # noqa: B027  (optional hook: no-op by default)
        """Add what only the backend knows at the end of a run (the simulator's ground truth)."""

    def note_soc_checkpoint(self, t_s: float, ref_soc: float | None) -> None:  # noqa: B027  (optional hook)
        """The procedure anchored its reference SOC: a backend that knows the truth notes it."""

    def simulator_checkpoint(self) -> bytes | None:
        """The simulated world's state to store with an engine checkpoint (None on hardware)."""
        return None

    # ------------------------------------------------------------------ built on the above
    @property
    def simulated(self) -> bool:
        return False

    @property
    def nominal_capacity_ah(self) -> float:
        return float(self.station.pack.nominal_capacity_ah)

    def instrument(self, role: Role) -> PowerStage:
        return self.supply if role == "supply" else self.load

    def adapter_age_s(self, snapshot: BmsSnapshot | None = None) -> float:
        """Bench seconds since the last broadcast frame of any kind from the BMS (of ``snapshot``,
        the sample's own, when given)."""
        snap = snapshot if snapshot is not None else self.adapter.snapshot()
        if not snap.timestamps:
            return 1e9
        return max(0.0, snap.taken_at - max(snap.timestamps.values()))
