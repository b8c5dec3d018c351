"""Reading the pack's health over the VS02-CAL-24 adapter (UDS DIDs and DTCs), and bringing a pack
to the defined divergence condition (end of CV absorption) with the Bench API."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from bench.clock import Clock
from bench.diagnostics.model import BalancingEntry, DtcEntry, PackIdentity, PackReading
from bench.engine.charge_control import ChargeController, ChargeFeedback, ChargeRequest
from bench.errors import SafetyTrip

if TYPE_CHECKING:
    from bench.station import Bench
    from drivers.vs02_adapter import Vs02Adapter

# DIDs of drivers/data/vs02_uds.yaml, read in two requests (each response fits one ISO-TP message)
STATE_DIDS = ["soc", "soh", "cycle_count", "pack_voltage", "pack_current", "cell_voltages", "temperatures",
              "divergence"]
BALANCING_DIDS = ["balancing", "balancing_log"]
# battery.md §6.2: mask 0xFF = every stored DTC (the BMS keeps the last 90 days, active ones always)
ALL_DTCS_MASK = 0xFF
# DID the lead is asked to add (0xF19D); used as soon as the UDS map has it
INSTALL_DATE_DID = "install_date"

# battery.md §2.1-§2.2, §9.2: CC 0.5C, CV 3.55 V/cell = 28.4 V; end of absorption at 0.05C
# (docs/simulator.md "Built-in scenarios": the divergence thresholds are tuned at that point)
CHARGE_VOLTAGE_V = 28.4
CHARGE_C_RATE = 0.5
TAPER_C_RATE = 0.05
TAPER_HOLD_S = 30.0
CHARGE_TIMEOUT_S = 8 * 3600.0
# battery.md §2.4: cell over-voltage 3.65 V, charge over-temperature 55 °C
CELL_V_TRIP = 3.65
TEMP_TRIP_C = 55.0
CONTROL_INTERVAL_S = 5.0


def _utc(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def _bits(bitmap: int) -> list[int]:
    return [i + 1 for i in range(8) if bitmap >> i & 1]


def read_identity(adapter: Vs02Adapter, install_date: date | None = None) -> PackIdentity:
    """Serial, software, manufacturing date and install date (option > DID > unknown)."""
    ident = adapter.read_identity()
    source = "--install-date" if install_date is not None else "unknown"
    if install_date is None and any(d.name == INSTALL_DATE_DID for d in adapter.uds_map.dids):
        install_date = date.fromisoformat(str(adapter.read_did(INSTALL_DATE_DID)))
        source = f"DID {INSTALL_DATE_DID}"
    return PackIdentity(serial=ident["serial"], sw_version=ident["sw_version"],
                        manufacturing_date=ident["manufacturing_date"], install_date=install_date,
                        install_date_source=source)


def read_pack(adapter: Vs02Adapter, now: datetime) -> PackReading:
    """One health read-out: state DIDs, balancing DIDs, and every stored DTC with its data."""
    state = adapter.read_dids(STATE_DIDS)
    balancing = adapter.read_dids(BALANCING_DIDS)
    log = balancing["balancing_log"]
    entries = [BalancingEntry(start=_utc(r["start_epoch"]) or now, end=_utc(r["end_epoch"]) or now,
                              cells=_bits(int(r["cells"])), ah_bled=float(r["ah_bled"]))
               for r in log["records"][: int(log["entries"])]]
    dtcs = [DtcEntry(code=d.code_hex, name=d.name, status_bits=d.status_bits, active=bool(d.status & 0x01),
                     occurrences=d.occurrences, first_seen=_utc(d.first_epoch), last_seen=_utc(d.last_epoch),
                     snapshot={k: float(v) for k, v in (d.snapshot or {}).items()} or None)
            for d in adapter.read_dtcs(ALL_DTCS_MASK)]
    return PackReading(
        taken_at=now, soc_pct=float(state["soc"]), soh_pct=float(state["soh"]),
        cycle_count=int(state["cycle_count"]), pack_voltage_v=float(state["pack_voltage"]),
        current_a=float(state["pack_current"]),
        cell_voltages_v=[round(float(v), 4) for v in state["cell_voltages"]],
        temperatures_c=[round(float(t), 2) for t in state["temperatures"]],
        divergence_v=round(float(state["divergence"]["divergence"]), 4),
        divergence_condition=str(state["divergence"]["condition"]),
        balancing_active_cells=_bits(int(balancing["balancing"]["active_cells"])),
        balancing_time_s=float(balancing["balancing"]["active_time"]),
        balancing_log=entries, dtcs=dtcs)


class BmsTime:
    """The BMS's wall-clock time as the bench sees it: wall time at connection plus bench time since
    (on the simulator, bench time is simulated time, which the BMS's clock follows)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._wall0 = time.time()
        self._bench0 = float(clock.now())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall0 + float(self._clock.now()) - self._bench0, UTC)


def bring_to_end_of_cv(bench: Bench, *, progress: Callable[[str], None] | None = None) -> float:
    """CC-CV charge to 28.4 V until the current tapers to 0.05C (held 30 s); leaves the supply ON so
    the BMS reads the divergence at the end of CV. Returns the Ah charged.

    The charge obeys the same control law as a procedure's charge step
    (:mod:`bench.engine.charge_control`): never above the BMS's CCL/CVL, the highest cell held at
    3.55 V, paused with the output off while CCL is 0.

    Safety (battery.md §2.4): any cell at 3.65 V or a temperature at 55 °C turns the outputs off and
    raises :class:`SafetyTrip`, as does a timeout. The caller turns the outputs off afterwards.
    """
    c = bench.nominal_capacity_ah
    current = min(CHARGE_C_RATE * c, bench.ranges["supply"].current_max_a)  # the station's (derated) range
    taper_a = TAPER_C_RATE * c
    clock = bench.clock
    start = clock.now()
    controller = ChargeController(ChargeRequest(voltage_v=CHARGE_VOLTAGE_V, current_a=current))
    limits = bench.adapter.snapshot().limits
    first = controller.first(limits.charge_current_a if limits else None,
                             limits.charge_voltage_v if limits else None)
    bench.charge(first.voltage_v, first.current_a, up_to_a=current)  # protections for the ramp's top
    ah = 0.0
    tapered_since: float | None = None
    last_report = start
    while True:
        clock.sleep(CONTROL_INTERVAL_S)
        volts, amps = bench.supply.measure()
        ah += max(amps, 0.0) * CONTROL_INTERVAL_S / 3600.0
        snap = bench.adapter.snapshot()
        cells = snap.cell_voltages_v or []
        temps = snap.temperatures_c or []
        elapsed = clock.now() - start
        problem = None
        if cells and max(cells) >= CELL_V_TRIP:
            problem = f"cell over-voltage {max(cells):.3f} V"
        elif temps and max(temps) >= TEMP_TRIP_C:
            problem = f"over-temperature {max(temps):.1f} °C"
        elif elapsed > CHARGE_TIMEOUT_S:
            problem = f"no taper after {CHARGE_TIMEOUT_S / 3600:.0f} h"
        if problem is not None:
            bench.safe_state()
            raise SafetyTrip(f"charge to the end of CV stopped: {problem}")
        limits = snap.limits
        setpoint = controller.update(ChargeFeedback(
            current_a=amps if bench.outputs.supply_on else 0.0, pack_v=volts,
            cell_v_max=max(cells) if cells else None,
            ccl_a=limits.charge_current_a if limits else None, cvl_v=limits.charge_voltage_v if limits else None))
        if not setpoint.output_on:
            bench.outputs_off()
        else:
            bench.adjust_charge(setpoint.voltage_v, setpoint.current_a,  # switches back on after a pause
                                up_to_a=current)
        if amps < taper_a and setpoint.cv_phase:
            tapered_since = clock.now() if tapered_since is None else tapered_since
            if clock.now() - tapered_since >= TAPER_HOLD_S:
                return ah
        else:
            tapered_since = None
        if progress is not None and clock.now() - last_report >= 600.0:
            last_report = clock.now()
            progress(f"charging: {elapsed / 3600:.2f} h, {volts:.2f} V, {amps:.1f} A, {ah:.1f} Ah")
