"""Station configuration: which instruments, which CAN adapter, which pack, where records go.

A station file is YAML validated by :class:`StationConfig` (unknown keys are errors, every
error located as ``file:line:column``). ``load_station(None)`` gives the embedded default
station, ``bench/stations/sim.yaml``: the whole bench simulated in-process.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bench.errors import BenchError
from bench.yamlio import load_model

#: The embedded default station (package data).
SIM_STATION = Path(__file__).with_name("stations") / "sim.yaml"

#: Resource strings that mean "the in-process simulator's instrument", resolved at connect time.
SIM_RESOURCES = frozenset({"sim:supply", "sim:load"})
SIM_CAN_CHANNEL = "sim:can"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReconnectConfig(_Model):
    attempts: int = Field(default=0, ge=0)
    delay_s: float = Field(default=1.0, ge=0)


class InstrumentRanges(_Model):
    """An instrument's output/input range. In a station file: a derating of the model's ranges
    (each maximum the smaller of the two, :func:`derated_ranges`)."""

    voltage_max_v: float = Field(gt=0)
    current_max_a: float = Field(gt=0)
    power_max_w: float = Field(gt=0)


class ScpiInstrumentConfig(_Model):
    family: str = Field(description="driver family name from drivers.registry")
    model: str | None = None
    resource: str = Field(description='VISA resource string, or "sim:supply"/"sim:load" for the '
                                      "in-process simulator's instrument")
    timeout_s: float = Field(default=2.0, gt=0)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    calibration_due: date | None = None
    calibration_certificate: str = ""
    serial_expected: str | None = Field(default=None,
                                        description="refuse to run if *IDN? reports another serial")
    ranges: InstrumentRanges | None = None

    @property
    def simulated(self) -> bool:
        return self.resource in SIM_RESOURCES


class SeedKeyConfig(_Model):
    algorithm: str = "hmac_sha256_4"
    secret: str | None = Field(default=None, description="prefer secret_env: keep secrets out of files")
    secret_env: str = "BENCH_SEEDKEY_SECRET"


class AdapterConfig(_Model):
    interface: str = Field(description="python-can interface: virtual, slcan, socketcan, pcan, kvaser, ...")
    channel: str = Field(description='python-can channel, or "sim:can" for the in-process simulator bus')
    bitrate: int = Field(default=500000, gt=0)          # battery.md §6.1: 500 kbit/s
    request_id: int = Field(default=0x7E4, ge=0, le=0x7FF)   # battery.md §6.2: UDS 0x7E4 / 0x7EC
    response_id: int = Field(default=0x7EC, ge=0, le=0x7FF)
    seedkey: SeedKeyConfig = Field(default_factory=SeedKeyConfig)
    stale_after_s: float = Field(default=3.0, gt=0)     # §6.1: inverters stop if 0x351 is missing for 3 s
    extra: dict[str, Any] = Field(default_factory=dict, description="extra python-can Bus kwargs")


class SimulatorConfig(_Model):
    mode: Literal["in_process", "external"] = "in_process"
    # in_process: how the drivers reach the simulated instruments. "direct": the @inprocess VISA
    # backend and a CAN bus polled after each simulator step (no socket, no listener thread);
    # "sockets": the TCP SCPI servers and a CAN listener thread, as from another process
    transport: Literal["direct", "sockets"] = "direct"
    scenario: str = "healthy"
    speed: float = Field(default=1.0, gt=0, description="external: the speed `bench sim serve` runs at")
    supply_family: str | None = None
    load_family: str | None = None
    # external: the standalone simulator's control port (`bench sim serve --control-port`), through
    # which scenario faults aimed at the controller (controller_death, watchdog_death) reach it
    control_port: int | None = Field(default=None, ge=1, le=65535)
    control_host: str = "127.0.0.1"

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, value: str) -> str:
        """A scenario is a built-in name or an existing file: say so at load time, located."""
        # lazy: only a station that names a scenario loads the simulator's scenario list
        from bench.sim.scenario import builtin_scenarios

        names = builtin_scenarios()
        if value in names or Path(value).is_file():
            return value
        raise ValueError(f"unknown scenario {value!r}: neither a file nor a built-in ({', '.join(names)})")


class PackConfig(_Model):
    part_number: str = "VS02-PRO-200"
    #: the pack label's serial number (regular expression, whole string); VS02 PRO: VS02P-YY-NNNNNN.
    #: The operator station refuses a scan that does not match (issue 18 item 5).
    serial_pattern: str = r"VS02P-[0-9]{2}-[0-9]{6}"
    nominal_capacity_ah: float = Field(default=200.0, gt=0)
    cells_in_series: int = Field(default=8, ge=1)
    cell_v_max_abs: float = Field(default=3.65, gt=0)          # battery.md §2.1/§8: 3.65 V absolute max
    cell_v_min_abs: float = Field(default=2.50, gt=0)          # battery.md §2.1/§8: 2.50 V absolute min
    max_charge_current_a: float = Field(default=100.0, gt=0)   # battery.md §2.2: <= 100 A charge
    max_discharge_current_a: float = Field(default=200.0, gt=0)  # battery.md §2.2: <= 200 A discharge

    @field_validator("serial_pattern")
    @classmethod
    def _serial_pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @property
    def pack_v_max(self) -> float:
        return self.cells_in_series * self.cell_v_max_abs

    @property
    def pack_v_min(self) -> float:
        return self.cells_in_series * self.cell_v_min_abs


class WatchdogConfig(_Model):
    enabled: bool = True
    missed_intervals: int = Field(default=3, ge=1)


class SupervisionConfig(_Model):
    """Per-sample supervision of the bench against the BMS (bench.engine.supervision).

    Tolerances depend on the station's instruments and wiring, so they live here, not in the
    procedure. Every check has two levels: a warning as soon as the tolerance is exceeded, a
    trip when it stays exceeded for ``*_hold_s``.
    """

    current_tolerance_a: float = Field(default=0.5, ge=0)       # bench vs BMS current: max(A, % of reading)
    current_tolerance_pct: float = Field(default=2.0, ge=0)
    current_hold_s: float = Field(default=10.0, ge=0)
    voltage_tolerance_v: float = Field(default=0.3, ge=0)       # bench pack V vs BMS pack V / cell sum
    voltage_hold_s: float = Field(default=10.0, ge=0)
    can_stale_s: float = Field(default=5.0, gt=0)               # no BMS frame for this long = silent BMS
    can_action: Literal["pause", "abort"] = "pause"
    can_abort_after_s: float = Field(default=600.0, gt=0)       # still silent after this long: abort
    # terminals below this x the pack minimum = contactor open (or a power lead off)
    collapse_fraction: float = Field(default=0.5, gt=0, lt=1)
    # an instrument that does not follow what it was told (ignored setpoint, stuck output):
    # measured bench current vs the commanded one, beyond max(A, % of setpoint) for hold_s.
    # Coarser and slower than the bench/BMS cross-check on purpose: a measurement error (wrong
    # shunt) must be reported as the two disagreeing sensors, not as a disobeying instrument.
    setpoint_tolerance_a: float = Field(default=2.0, ge=0)
    setpoint_tolerance_pct: float = Field(default=10.0, ge=0)
    setpoint_hold_s: float = Field(default=15.0, ge=0)
    # a supply or load whose link dropped (LAN blip, cable): pause with every reachable output
    # off, reconnect with back-off for this long (bench s), then continue; abort after it
    reconnect_window_s: float = Field(default=600.0, gt=0)
    # after any abort: keep sending the off command to an instrument whose output is not
    # confirmed off (unreachable) until it is confirmed or this long has passed (bench s); the
    # watchdog takes the duty over when the engine must exit first
    off_retry_s: float = Field(default=600.0, gt=0)


class StationConfig(_Model):
    name: str
    location: str = ""
    production: bool = False
    supply: ScpiInstrumentConfig
    load: ScpiInstrumentConfig
    adapter: AdapterConfig
    simulator: SimulatorConfig | None = Field(default=None, description="absent = real hardware")
    pack: PackConfig = Field(default_factory=PackConfig)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    supervision: SupervisionConfig = Field(default_factory=SupervisionConfig)
    database_url: str | None = None
    runs_dir: str = "runs"

    @property
    def simulated(self) -> bool:
        return self.simulator is not None


def load_station(path: str | Path | None) -> StationConfig:
    """Load a station file; ``None`` -> the embedded simulator station. Located InputErrors."""
    return load_model(StationConfig, SIM_STATION if path is None else path)


class RatedRanges(Protocol):
    """A driver model's maxima (``drivers.power.Ranges``), as far as ranges go here."""

    @property
    def v_max(self) -> float: ...
    @property
    def i_max(self) -> float: ...
    @property
    def p_max(self) -> float: ...


def derated_ranges(instrument: ScpiInstrumentConfig, rated: RatedRanges) -> InstrumentRanges:
    """THE range rule: the model's ``rated`` maxima, derated by the station's ``ranges:``.

    Each maximum is the smaller of the two, so a station file can only narrow what the model
    can do (derated cabling, a fuse), never widen it. Validation (:func:`instrument_ranges`) and
    the connected bench (``bench.station.Bench.ranges``, with the identified model's ranges)
    both go through here, so a procedure runs against the figures it was validated against.
    """
    model = InstrumentRanges(voltage_max_v=float(rated.v_max), current_max_a=float(rated.i_max),
                             power_max_w=float(rated.p_max))
    station = instrument.ranges
    if station is None:
        return model
    return InstrumentRanges(voltage_max_v=min(model.voltage_max_v, station.voltage_max_v),
                            current_max_a=min(model.current_max_a, station.current_max_a),
                            power_max_w=min(model.power_max_w, station.power_max_w))


def instrument_ranges(instrument: ScpiInstrumentConfig) -> InstrumentRanges | None:
    """Max voltage/current/power of a station instrument before it is connected, or None when unknown.

    The driver registry's family table gives the model's ranges
    (``drivers.registry.driver_class(family).family.models[model]``; a family with a single model
    needs no ``model:``), derated by the station's ``ranges`` (:func:`derated_ranges`). With the
    model unknown the station's ``ranges`` alone stand; with neither, None.
    """
    try:
        # lazy: a station file loads without the drivers (pyvisa); only a range lookup needs the
        # family tables
        from drivers.registry import driver_class

        models: dict[str, Any] = driver_class(instrument.family).family.models
    except (ImportError, AttributeError, BenchError):
        models = {}
    if instrument.model is not None:
        found = models.get(instrument.model)
    else:
        found = next(iter(models.values())) if len(models) == 1 else None
    if found is None:
        return instrument.ranges
    return derated_ranges(instrument, found)
