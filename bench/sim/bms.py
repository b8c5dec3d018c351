"""Simulated BMS firmware of the VS02 PRO pack: measurement front end, SOC gauge, balancing,
protections, DTC memory and the service operations the UDS server exposes.

The world calls :meth:`BmsModel.advance` once per simulated step, after ``pack.advance``, with
the true pack current. Each call takes one *sample*: measured current and cell voltages (with
the offsets, gain error, noise and resolution of battery.md §8) and measured temperatures; every
decision (SOC, syncs, balancing, protections) and every published value uses that sample only,
so reading values never draws random numbers and runs stay exactly repeatable.

Service operations raise :class:`BmsRefusal` with an ISO 14229 NRC when the firmware says no.
Helpers: :mod:`bench.sim.bms_gauge`, :mod:`bench.sim.bms_balancer`,
:mod:`bench.sim.bms_protection`, :mod:`bench.sim.bms_security`, :mod:`bench.sim.bms_types`.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from statistics import NormalDist

from bench.sim.bms_balancer import Balancer
from bench.sim.bms_gauge import FULL_SYNC_CELL_V, FULL_SYNC_CURRENT_A, SocGauge
from bench.sim.bms_protection import (
    CELL_OV_WARN_V,
    CELL_UV_WARN_V,
    HIGH_TEMP_WARN_C,
    LOW_TEMP_WARN_C,
    DtcMemory,
    Protection,
)
from bench.sim.bms_routines import Routines, routine_id
from bench.sim.bms_security import DEFAULT_SECRET, SecurityAccess
from bench.sim.bms_types import (
    DESIGN_CAPACITY_AH,
    DTC_SHORT_NAMES,
    N_CELLS,
    BalancingLogEntry,
    BmsAlarm,
    BmsRefusal,
    BmsScenarioLike,
    Dtc,
    DtcCode,
    GaugeFlags,
    LearnQualification,
    LearnReason,
    Nrc,
    PackLike,
    RoutineId,
)

__all__ = ["BmsModel", "BmsRefusal"]

# battery.md §8 measurement: cell voltage offset U(-2, +3) mV, 1 mV noise, 1 mV resolution.
CELL_OFFSET_MV = (-2.0, 3.0)
CELL_NOISE_MV = 1.0
# battery.md §8 current: noise 0.05 A, resolution 0.01 A, deadband 0.05 A (offset/gain: scenario).
CURRENT_NOISE_A = 0.05
CURRENT_RESOLUTION_A = 0.01
CURRENT_DEADBAND_A = 0.05
CURRENT_STEPS_PER_A = round(1.0 / CURRENT_RESOLUTION_A)
# battery.md §8 temperature: sensor offset Normal(sd 0.7 °C); 0.1 °C resolution [A].
TEMPERATURE_OFFSET_SD_C = 0.7
# battery.md §8 persistence: RAM state is snapshotted to EEPROM every 600 s.
EEPROM_SNAPSHOT_PERIOD_S = 600.0
# 0x351 limits: CVL 28.4 V, CCL 100 A, DCL 200 A, DVL 22.4 V (battery.md §2.2, §6.1 example).
CHARGE_VOLTAGE_LIMIT_V = 28.4
CHARGE_CURRENT_LIMIT_A = 100.0
DISCHARGE_CURRENT_LIMIT_A = 200.0
DISCHARGE_VOLTAGE_LIMIT_V = 22.4
COLD_CHARGE_LIMIT_A = 40.0  # battery.md §2.4: derate 0-10 °C to 0.2C
COLD_CHARGE_BELOW_C = 10.0
# CCL taper at the top of charge: full CCL up to 3.45 V on the highest cell, falling linearly to 0 A
# at the 3.60 V over-voltage warning (battery.md §2.4 warn level). Inverter-protocol BMSs derate CCL as
# the top cell nears its limit so a charger that obeys CCL never reaches the protection [A]; 3.45 V is
# the full-sync / balancing-start region of battery.md §4.3 and §3.2.
CCL_TAPER_START_CELL_V = 3.45
# Pre-charge of an over-discharged pack: below the 2.50 V UV trip (battery.md §2.4) the BMS allows
# only 0.05C so the cells recover gently (copper-dissolution risk of full current, battery.md §2.4) [A].
PRECHARGE_BELOW_CELL_V = 2.50
PRECHARGE_LIMIT_A = 0.05 * 200.0
# 0x351 carries CCL in 0.1 A steps (drivers/data/vs02.dbc).
CCL_RESOLUTION_A = 0.1
# Divergence condition tags (battery.md §1.6: divergence means something only at the knees).
REST_CURRENT_A = 1.0  # |I| at or below this is "rest" [A]
TOP_KNEE_CELL_V = 3.35  # §4.2: usable OCV anchors above ~98 % (3.35 V)
LOW_KNEE_CELL_V = 3.20  # §4.2: ... and below ~10 % (3.20 V)
IMBALANCE_WARN_V = 0.10  # calibration procedure: 0.10 V at full needs extended balancing
# "Long" routine starts the UDS server answers with NRC 0x78 first (EEPROM writes / arming).
ROUTINE_START_DELAY_S: dict[int, float] = {
    RoutineId.CAPACITY_LEARNING: 0.3,
    RoutineId.RESET_LEARNED_DATA: 0.2,
}
SESSIONS = ("default", "extended", "programming")
_FULLY_CHARGED = int(GaugeFlags.FULLY_CHARGED)
_GENERAL, _HIGH_VOLTAGE, _LOW_VOLTAGE, _HIGH_TEMPERATURE, _LOW_TEMPERATURE = (
    int(f) for f in (BmsAlarm.GENERAL, BmsAlarm.HIGH_VOLTAGE, BmsAlarm.LOW_VOLTAGE, BmsAlarm.HIGH_TEMPERATURE,
                     BmsAlarm.LOW_TEMPERATURE))
_CHARGE_HIGH_TEMPERATURE, _CHARGE_LOW_TEMPERATURE, _CELL_IMBALANCE = (
    int(f) for f in (BmsAlarm.CHARGE_HIGH_TEMPERATURE, BmsAlarm.CHARGE_LOW_TEMPERATURE, BmsAlarm.CELL_IMBALANCE))
#: Standard-normal quantiles at (k + 0.5) / 256: a random byte indexes one normal deviate.
_NORMAL_QUANTILES = tuple(NormalDist().inv_cdf((k + 0.5) / 256.0) for k in range(256))
#: ... scaled to the current and the cell-voltage noise once (the products the sample used to take)
_CURRENT_NOISE_A = tuple(CURRENT_NOISE_A * q for q in _NORMAL_QUANTILES)
_CELL_NOISE_MV = tuple(CELL_NOISE_MV * q for q in _NORMAL_QUANTILES)
DESIGN_CAPACITY_RANGE_AH = (50.0, 400.0)
CURRENT_CALIBRATION_RANGE_A = 5.0


class BmsModel:
    """The simulated BMS. Plain attributes only, so checkpoints can pickle it."""

    def __init__(self, pack: PackLike, config: BmsScenarioLike, rng: random.Random, epoch_s: float,
                 *, secret: bytes = DEFAULT_SECRET) -> None:
        self.pack = pack
        self._rng = rng
        self.epoch_s = epoch_s
        self.time_s = 0.0
        self.serial: str = config.serial
        self.sw_version: str = config.sw_version
        self.install_date: date = config.install_date
        self.hw_version: str = str(getattr(config, "hw_version", "VS02-BMS-HW-B"))
        self.manufacturing_date: str = str(getattr(
            config, "manufacturing_date", (config.install_date - timedelta(days=30)).isoformat()))
        # measurement front end
        self._current_offset_a = float(config.current_offset_a)
        self._current_gain = 1.0 + float(config.current_gain_error)
        self.current_offset_calibration_a = 0.0
        low, high = CELL_OFFSET_MV
        self._cell_offsets_mv = [rng.uniform(low, high) for _ in range(N_CELLS)]
        self._temp_offsets_c = [rng.gauss(0.0, TEMPERATURE_OFFSET_SD_C) for _ in range(N_CELLS + 1)]
        self.current_a = 0.0
        self.cell_voltages_v: list[float] = [0.0] * N_CELLS
        self._cell_temps_c: list[float] = [0.0] * N_CELLS
        self._vmin = self._vmax = self._tmin = self._tmax = 0.0
        self._sample(0.0)
        # firmware blocks
        soc_pct = config.soc_estimate_pct
        if soc_pct is None:
            soc_pct = pack.true_soc_pct()  # a calibrated BMS starts right
        learned = config.learned_capacity_ah
        self.gauge = SocGauge(soc_pct, DESIGN_CAPACITY_AH if learned is None else float(learned),
                              int(config.cycle_count),
                              learning_inhibited=bool(config.ignores_calibration_routine))
        self.balancer = Balancer(stuck=bool(config.balancing_stuck))
        self.protection = Protection()
        self.dtc_memory = DtcMemory()
        self._load_fault_history(config.fault_history)
        self.security = SecurityAccess(secret, rng)
        self.session = "default"
        self._eeprom = self.gauge.snapshot()
        self._next_snapshot_s = EEPROM_SNAPSHOT_PERIOD_S
        self.routines = Routines()

    # == time ===================================================================================
    def advance(self, dt_s: float, true_current_a: float) -> None:
        """One BMS sample after the pack moved ``dt_s`` at ``true_current_a`` (+ = charge)."""
        self.time_s += dt_s
        t = self.time_s
        raw_a = self._sample(true_current_a)
        i = self.current_a
        self.gauge.update(t, dt_s, i, vmax=self._vmax, vmin=self._vmin, tmin=self._tmin, tmax=self._tmax)
        self.balancer.update(t, self.epoch_s + t, dt_s, cells_v=self.cell_voltages_v, vmax=self._vmax,
                             vmin=self._vmin, current_a=i, fully_charged=bool(self.gauge.flags & _FULLY_CHARGED))
        protection = self.protection
        before = set(protection.latched) if protection.latched else None
        tripped = protection.update(dt_s, i, vmax=self._vmax, vmin=self._vmin, tmin=self._tmin,
                                    tmax=self._tmax)
        for code in tripped:
            self.dtc_memory.record(code, self.epoch_s + t, self._freeze_frame())
        if before:
            self.dtc_memory.set_passed(before - set(protection.latched))
        if self.routines.zero_cal_running:
            self.routines.zero_cal_step(self, dt_s, raw_a)
        if t >= self._next_snapshot_s:
            self._eeprom = self.gauge.snapshot()
            self._next_snapshot_s = t + EEPROM_SNAPSHOT_PERIOD_S

    def _sample(self, true_current_a: float) -> float:
        """Measure current, cells and temperatures; returns the raw (uncalibrated) current."""
        # One 72-bit draw gives 9 standard-normal deviates (8 cells + current) via the quantile
        # table: ~10x cheaper than 9 rng.gauss() calls, and still fully determined by the rng.
        noise = self._rng.getrandbits(72).to_bytes(9, "little")
        raw = true_current_a * self._current_gain + self._current_offset_a + _CURRENT_NOISE_A[noise[8]]
        i = raw - self.current_offset_calibration_a
        self.current_a = 0.0 if -CURRENT_DEADBAND_A < i < CURRENT_DEADBAND_A else \
            round(i / CURRENT_RESOLUTION_A) / CURRENT_STEPS_PER_A
        true_cells = self.pack.cell_voltages(true_current_a)
        table = _CELL_NOISE_MV
        cells = []  # a plain loop: cheaper than a comprehension's call on Python 3.11
        for v, off, n in zip(true_cells, self._cell_offsets_mv, noise, strict=False):
            cells.append(round(v * 1000.0 + off + table[n]) / 1000.0)
        self.cell_voltages_v = cells
        self._vmax, self._vmin = max(cells), min(cells)
        temps = list(map(operator.add, self.pack.cell_temperatures_c, self._temp_offsets_c))  # 8 cells, 9 offsets
        self._cell_temps_c = temps
        self._tmax, self._tmin = max(temps), min(temps)
        return raw

    @property
    def now_epoch_s(self) -> float:
        return self.epoch_s + self.time_s

    # == what the CAN broadcast and the DIDs publish ===========================================
    @property
    def contactor_closed(self) -> bool:
        return self.protection.contactor_closed

    def bleed_currents_a(self) -> list[float]:
        """Per-cell average bleed currents (A) for ``pack.advance``; do not mutate the list."""
        return self.balancer.bleed_a

    @property
    def soc_pct(self) -> float:
        return round(self.gauge.soc * 10000.0) / 100.0

    @property
    def learned_capacity_ah(self) -> float:
        return self.gauge.fcc_ah

    @property
    def design_capacity_ah(self) -> float:
        return self.gauge.design_capacity_ah

    @property
    def soh_pct(self) -> float:
        """Learned capacity / design capacity, capped at 100 %, 0.01 % resolution."""
        return min(100.0, round(self.gauge.fcc_ah / self.gauge.design_capacity_ah * 10000.0) / 100.0)

    @property
    def cycle_count(self) -> int:
        """Equivalent full cycles: discharged Ah / learned capacity, plus the scenario's history."""
        return self.gauge.cycle_count

    @property
    def flags(self) -> GaugeFlags:
        return GaugeFlags(self.gauge.flags)

    @property
    def flag_bits(self) -> int:
        """``flags`` as the plain int the gauge keeps: the broadcast reads it every cycle, and
        building the IntFlag only to take its int back cost more than the rest of the read."""
        return self.gauge.flags

    @property
    def pack_voltage_v(self) -> float:
        return round(sum(self.cell_voltages_v) * 100.0) / 100.0

    @property
    def temperatures_c(self) -> list[float]:
        """8 cell sensors then the enclosure sensor, 0.1 °C resolution."""
        enclosure = self.pack.enclosure_temperature_c + self._temp_offsets_c[N_CELLS]
        temps = []  # a plain loop: cheaper than a comprehension's call (read at every broadcast)
        for t in self._cell_temps_c:
            temps.append(round(t * 10.0) / 10.0)
        temps.append(round(enclosure * 10.0) / 10.0)
        return temps

    @property
    def divergence_v(self) -> float:
        return round((self._vmax - self._vmin) * 1000.0) / 1000.0

    @property
    def divergence_condition(self) -> str:
        """Where the divergence was sampled (battery.md §1.6, §8 diagnostics.divergence_condition)."""
        i = self.current_a
        if 0.0 < i < FULL_SYNC_CURRENT_A and self._vmax >= FULL_SYNC_CELL_V:
            return "end_of_cv"
        if abs(i) > REST_CURRENT_A:
            return "under_load"
        if self._vmax >= TOP_KNEE_CELL_V:
            return "full_rest"
        if self._vmin <= LOW_KNEE_CELL_V:
            return "low_soc"
        return "mid_plateau"

    @property
    def balancing_active_cells(self) -> int:
        """Bitmap of cells bleeding now (bit 0 = cell 1)."""
        return self.balancer.active_bitmap

    @property
    def balancing_log(self) -> list[BalancingLogEntry]:
        return self.balancer.log_entries(self.now_epoch_s)

    @property
    def dtcs(self) -> list[Dtc]:
        """Stored DTCs inside the 90-day history (active ones always), oldest first."""
        return self.dtc_memory.current(self.now_epoch_s)

    @property
    def charge_voltage_limit_v(self) -> float:
        return CHARGE_VOLTAGE_LIMIT_V

    @property
    def discharge_voltage_limit_v(self) -> float:
        return DISCHARGE_VOLTAGE_LIMIT_V

    @property
    def charge_current_limit_a(self) -> float:
        """0x351 CCL: 0 with the contactor open, at or above the OV warning or below 0 °C; else the
        least of the nominal limit, the cold derating, the top-of-charge taper and the pre-charge."""
        if not self.contactor_closed or self._tmin < 0.0 or self._vmax >= CELL_OV_WARN_V:
            return 0.0
        limit = CHARGE_CURRENT_LIMIT_A
        if self._tmin < COLD_CHARGE_BELOW_C:
            limit = COLD_CHARGE_LIMIT_A
        if self._vmax > CCL_TAPER_START_CELL_V:
            taper = (CELL_OV_WARN_V - self._vmax) / (CELL_OV_WARN_V - CCL_TAPER_START_CELL_V)
            limit = min(limit, CHARGE_CURRENT_LIMIT_A * taper)
        if self._vmin < PRECHARGE_BELOW_CELL_V:
            limit = min(limit, PRECHARGE_LIMIT_A)
        return round(limit / CCL_RESOLUTION_A) * CCL_RESOLUTION_A

    @property
    def discharge_current_limit_a(self) -> float:
        if not self.contactor_closed or self.protection.charge_only or self._vmin <= CELL_UV_WARN_V:
            return 0.0
        return DISCHARGE_CURRENT_LIMIT_A

    @property
    def alarms(self) -> BmsAlarm:
        """0x35A alarm fields: trips latched now."""
        return self.protection.alarms

    @property
    def alarm_bits(self) -> int:
        # read at every broadcast: no latched trip (the usual case) is no alarm, without enum arithmetic
        return int(self.alarms) if self.protection.latched else 0

    @property
    def warning_bits(self) -> int:
        """0x35A warning fields (battery.md §2.4 warn levels) as plain bits: read at every broadcast,
        where IntFlag arithmetic cost more than the tests."""
        warn = 0
        if self._vmax >= CELL_OV_WARN_V:
            warn |= _HIGH_VOLTAGE
        if self._vmin <= CELL_UV_WARN_V:
            warn |= _LOW_VOLTAGE
        charging = self.current_a > 0.0
        if self._tmax >= HIGH_TEMP_WARN_C:
            warn |= _HIGH_TEMPERATURE
            if charging:
                warn |= _CHARGE_HIGH_TEMPERATURE
        if self._tmin <= LOW_TEMP_WARN_C:
            warn |= _LOW_TEMPERATURE
            if charging:
                warn |= _CHARGE_LOW_TEMPERATURE
        if self.divergence_v >= IMBALANCE_WARN_V and self.divergence_condition in ("full_rest", "end_of_cv"):
            warn |= _CELL_IMBALANCE
        return warn | _GENERAL if warn else warn

    @property
    def warnings(self) -> BmsAlarm:
        """0x35A warning fields (battery.md §2.4 warn levels)."""
        return BmsAlarm(self.warning_bits)

    # == sessions and security ==================================================================
    def set_session(self, name: str) -> None:
        """DiagnosticSessionControl. Any session change relocks security (ISO 14229)."""
        if name not in SESSIONS:
            raise BmsRefusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"unknown session {name!r}")
        if name != self.session or name == "default":
            self.security.lock()
        self.session = name

    @property
    def security_unlocked(self) -> bool:
        return self.security.unlocked_level is not None

    def security_seed(self, level: int) -> bytes:
        """SecurityAccess requestSeed (odd ``level``); all-zero seed if already unlocked."""
        self._require_non_default_session()
        return self.security.request_seed(level, self.time_s)

    def security_send_key(self, level: int, key: bytes) -> None:
        """SecurityAccess sendKey; ``level`` may be the seed level (odd) or the sendKey value (even)."""
        self._require_non_default_session()
        self.security.send_key(level, key, self.time_s)

    def _require_non_default_session(self) -> None:
        if self.session == "default":
            raise BmsRefusal(Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION, "needs a non-default session")

    def _require_extended(self, *, unlocked: bool) -> None:
        if self.session != "extended":
            raise BmsRefusal(Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION, "needs the extended session")
        if unlocked and not self.security_unlocked:
            raise BmsRefusal(Nrc.SECURITY_ACCESS_DENIED, "security access required")

    # == routines ===============================================================================
    def routine_start_delay_s(self, rid: int) -> float:
        """How long a start takes; > 0 means the UDS server should answer NRC 0x78 first."""
        return ROUTINE_START_DELAY_S.get(rid, 0.0)

    def routine_start(self, rid: int, option: bytes) -> bytes:
        """RoutineControl start; returns the routine's status record (layouts: bms_routines)."""
        routine = routine_id(rid)
        # SOC sync only moves the estimate; everything else changes calibration: needs security.
        self._require_extended(unlocked=routine is not RoutineId.SOC_SYNC)
        self.routines.start(self, routine, option)
        return self.routines.results(self, routine)

    def routine_stop(self, rid: int) -> bytes:
        routine = routine_id(rid)
        self._require_extended(unlocked=True)
        self.routines.stop(self, routine)
        return self.routines.results(self, routine)

    def routine_results(self, rid: int) -> bytes:
        """Status byte (0 running, 1 done ok, 2 failed) + payload; allowed in any session."""
        return self.routines.results(self, routine_id(rid))

    # == writes, reset, DTCs ====================================================================
    def write_design_capacity(self, capacity_ah: float) -> None:
        """DID 0x0115 (u32 mAh): extended session + security; 50-400 Ah."""
        self._require_extended(unlocked=True)
        low, high = DESIGN_CAPACITY_RANGE_AH
        if not low <= capacity_ah <= high:
            raise BmsRefusal(Nrc.REQUEST_OUT_OF_RANGE, f"design capacity outside {low:g}-{high:g} Ah")
        self.gauge.design_capacity_ah = float(capacity_ah)

    def write_current_offset(self, offset_a: float) -> None:
        """DID 0x011B (s16 mA): the zero offset subtracted from every current sample."""
        self._require_extended(unlocked=True)
        if abs(offset_a) > CURRENT_CALIBRATION_RANGE_A:
            raise BmsRefusal(Nrc.REQUEST_OUT_OF_RANGE, "current offset beyond ±5 A")
        self.current_offset_calibration_a = float(offset_a)

    def ecu_reset(self, kind: int) -> None:
        """ECUReset 1 hard / 2 key-off-on / 3 soft: a reboot.

        Default session, security locked, coulomb counter and cycle counter restored from the last
        EEPROM snapshot (battery.md §8 persistence), armed routines lost, new DTC operation cycle.
        A hard reset also clears a stuck balancer (the calibration procedure's "BMS Reset" remedy).
        Protection latches survive: release rules, not reboots, reclose the contactor.
        """
        if kind not in (1, 2, 3):
            raise BmsRefusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"reset type {kind} not supported")
        self.session = "default"
        self.security.lock()
        self.gauge.restore(self._eeprom)
        self.gauge.abort_learning(LearnReason.ECU_RESET)
        self.balancer.stop_extended(self.now_epoch_s)
        self.routines.abort_on_reset()
        if kind == 1:
            self.balancer.stuck = False
        self.dtc_memory.new_operation_cycle()

    def clear_dtcs(self, group: int) -> None:
        """ClearDiagnosticInformation: 0xFFFFFF = all, else one DTC. Faults still present re-report."""
        if not self.dtc_memory.clear(group) and group not in DtcCode.__members__.values():
            raise BmsRefusal(Nrc.REQUEST_OUT_OF_RANGE, f"unknown DTC group 0x{group:06X}")
        for code in self.protection.latched:
            if code not in self.dtc_memory.entries:
                self.dtc_memory.record(code, self.now_epoch_s, self._freeze_frame())

    def _freeze_frame(self) -> dict[str, float]:
        return {"soc": self.soc_pct, "vmin": self._vmin, "vmax": self._vmax,
                "temp": round(self._tmax * 10.0) / 10.0, "current": self.current_a}

    def _load_fault_history(self, history: Sequence[object]) -> None:
        """Past DTC events from the scenario (objects or dicts).

        Reads ``code`` (scenario short name such as ``"cell_ov"``, DtcCode name, int or hex string)
        and ``days_ago``; optional ``occurrences`` (default 1) and ``value`` (the tripping reading,
        put in the freeze frame field that fits the code).
        """
        for event in history or ():
            fields = event if isinstance(event, Mapping) else vars(event)
            code = _dtc_code(fields["code"])
            epoch = self.epoch_s - float(fields["days_ago"]) * 86400.0
            snapshot: dict[str, float] = {}
            value = fields.get("value")
            if value is not None and code in _SNAPSHOT_FIELD_OF_CODE:
                snapshot[_SNAPSHOT_FIELD_OF_CODE[code]] = float(value)
            self.dtc_memory.record(code, epoch, snapshot, active=False,
                                   occurrences=int(fields.get("occurrences") or 1))

    @property
    def learning_state(self) -> LearnQualification:
        return self.gauge.learn_state


_SNAPSHOT_FIELD_OF_CODE: dict[int, str] = {
    DtcCode.CELL_OVERVOLTAGE: "vmax", DtcCode.PACK_OVERVOLTAGE: "vmax",
    DtcCode.CELL_UNDERVOLTAGE: "vmin", DtcCode.PACK_UNDERVOLTAGE: "vmin",
    DtcCode.CHARGE_OVERTEMPERATURE: "temp", DtcCode.DISCHARGE_OVERTEMPERATURE: "temp",
    DtcCode.CHARGE_UNDERTEMPERATURE: "temp", DtcCode.DISCHARGE_UNDERTEMPERATURE: "temp",
    DtcCode.CHARGE_OVERCURRENT: "current", DtcCode.DISCHARGE_OVERCURRENT: "current",
    DtcCode.SHORT_CIRCUIT: "current",
}


def _dtc_code(value: object) -> int:
    """Accept "cell_ov" (scenario names), "CELL_OVERVOLTAGE", 0x911001, "0x911001" or "911001"."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lower() in DTC_SHORT_NAMES:
        return int(DTC_SHORT_NAMES[text.lower()])
    if text.upper() in DtcCode.__members__:
        return int(DtcCode[text.upper()])
    try:
        return int(text, 16)
    except ValueError:
        raise ValueError(f"fault history: unknown DTC {value!r}") from None
