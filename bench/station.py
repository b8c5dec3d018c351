"""A connected bench: the station's instruments, its clock and (on the simulator) the simulated world.

This is the layer between the engine and the drivers (labgrid's resource/driver/strategy
split): the station file says *where* instruments are; :class:`Bench` opens the drivers,
knows the bench's output state (off, charging, discharging) and how to reach it, and puts
everything in the safe state in reverse order of activation. The engine asks it to
"charge at 28.4 V / 100 A"; only the drivers know SCPI.

:class:`Bench` is the backend of the engine's port (:class:`bench.engine.port.BenchPort`): the
engine drives that interface and never imports this module.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.clock import Clock, LockstepClock, WallClock
from bench.config import InstrumentRanges, StationConfig, derated_ranges
from bench.domain.ocv import soc_from_ocv
from bench.drivers_factory import DEFAULT_VISA_BACKEND, open_adapter, open_load, open_supply
from bench.engine.port import BenchPort, Commanded, OutputState
from bench.errors import BenchError, SetpointOutOfRange
from bench.procedure.model import Procedure
from bench.record import (
    AsReceived,
    InstrumentIdentity,
    PackIdentity,
    ProcedureIdentity,
    RunRecord,
    SimTruth,
    SocCheckpoint,
    StationIdentity,
)
from drivers.can_inprocess import InProcessCanChannel
from drivers.power import ElectronicLoad, PowerSupply, ProtectionSettings, program_and_verify
from drivers.scpi import Identity
from drivers.visa_inprocess import BACKEND, register
from drivers.vs02_adapter import Vs02Adapter

log = logging.getLogger(__name__)

#: battery.md §2.2: end-of-discharge 2.8 V/cell (Victron 25.6 V/200 Ah: 22.4 V)
OPERATIONAL_CELL_V_MIN = 2.8
#: longest load timer the families accept (drivers.power: 99,999 s)
LOAD_TIMER_MAX_S = 99999.0


class Bench(BenchPort):
    """Connected instruments + clock. Build with :func:`connect_bench`."""

    supply: PowerSupply
    load: ElectronicLoad
    adapter: Vs02Adapter

    def __init__(self, station: StationConfig, clock: Clock, supply: PowerSupply, load: ElectronicLoad,
                 adapter: Vs02Adapter, sim: Any | None = None, scenario_name: str | None = None) -> None:
        self.station = station
        self.clock = clock
        self.supply = supply
        self.load = load
        self.adapter = adapter
        self.sim = sim
        self.scenario_name = scenario_name
        self.outputs = OutputState()
        #: instrument-side limits as read back from the instruments, per role
        self.protections: dict[str, ProtectionSettings] = {}
        #: what the bench last told its instruments to do (judged against measurements by the
        #: engine's supervision: an instrument that ignores a setpoint is a fault)
        self.commanded: Commanded = Commanded("off")
        self._soc_checkpoints: list[SocCheckpoint] = []
        #: each instrument's ranges: the connected model's, derated by the station file; the same
        #: rule validation checked the procedure with (bench.config.derated_ranges)
        self.ranges: dict[str, InstrumentRanges] = {
            "supply": derated_ranges(station.supply, supply.ranges),
            "load": derated_ranges(station.load, load.ranges)}

    # ------------------------------------------------------------------ facts
    @property
    def simulated(self) -> bool:
        return self.sim is not None

    def default_cutoff_v(self) -> float:
        """Instrument-side discharge cut-off when a step names none: the operational end of
        discharge, 2.8 V/cell (battery.md §2.2: 22.4 V for 8S). The absolute 2.5 V/cell x 8 is
        not enough: with a weak cell the load keeps trickling at 20 V while that cell is far
        below 2.5 V (measured in tests/bench/test_defence.py)."""
        pack = self.station.pack
        return float(OPERATIONAL_CELL_V_MIN * pack.cells_in_series)

    def range_variables(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, ranges in self.ranges.items():
            out[f"{role}.voltage_max"] = ranges.voltage_max_v
            out[f"{role}.current_max"] = ranges.current_max_a
            out[f"{role}.power_max"] = ranges.power_max_w
        return out

    def expression_functions(self) -> dict[str, Callable[[float], float]]:
        def ocv_soc(cell_v: float) -> float:
            # The bench's own table (bench/domain, battery.md §1.4), never the simulator's cells:
            # rested OCV -> SOC; only meaningful on the steep ends of the curve (§4.2), which is
            # where procedures use it.
            return 100.0 * soc_from_ocv(float(cell_v))

        return {"ocv_soc": ocv_soc}

    # ------------------------------------------------------------------ outputs
    def outputs_off(self) -> None:
        self.commanded = Commanded("off")
        if self.outputs.load_on:
            self.load.input(False)
            self.outputs.load_on = False
        if self.outputs.supply_on:
            self.supply.output(False)
            self.outputs.supply_on = False

    def charge(self, voltage_v: float, current_a: float, up_to_a: float | None = None) -> None:
        """Supply on at ``voltage_v`` / ``current_a`` (CC until the voltage is reached, then CV).

        ``up_to_a``: the highest current this charge will be set to (the step's request, which the
        charge control ramps up to from a soft start): range-checked now, before the output is on,
        and the base of the over-current protection, so neither stops at the first setpoint."""
        ranges = self.ranges["supply"]
        ceiling_a = max(current_a, up_to_a if up_to_a is not None else current_a)
        self._in_range("supply", "voltage", voltage_v, ranges.voltage_max_v, "V")
        self._in_range("supply", "current", ceiling_a, ranges.current_max_a, "A")
        if self.outputs.load_on:
            self.load.input(False)
            self.outputs.load_on = False
        caps = self.supply.capabilities
        # OCP only where the family has a separate trip level; on families whose OCP trips on
        # entering CC (Keysight N8700) it would end every CC charge.
        ocp = (min(ceiling_a * 1.1 + 1.0, ranges.current_max_a)
               if caps.can("ocp") and not caps.ocp_is_cc_trip else None)
        self.protections["supply"] = program_and_verify(
            self.supply, ProtectionSettings(ovp=self.supply_ovp_v(voltage_v), ocp=ocp))
        self.supply.set_voltage(voltage_v)
        self.supply.set_current(current_a)
        if not self.outputs.supply_on:
            self.supply.output(True)
            self.outputs.supply_on = True
        self.commanded = Commanded("charge", current_a=current_a, voltage_v=voltage_v)

    def adjust_charge(self, voltage_v: float, current_a: float, up_to_a: float | None = None) -> None:
        """New setpoints for a charge already running (the charge control law, every interval):
        only the values that changed are written; protections stay as programmed at the start.
        With no charge running (after a pause) it is a full :meth:`charge`."""
        old = self.commanded
        if old.kind != "charge" or not self.outputs.supply_on:
            self.charge(voltage_v, current_a, up_to_a)
            return
        ranges = self.ranges["supply"]  # a setpoint is never written beyond the station's range
        self._in_range("supply", "voltage", voltage_v, ranges.voltage_max_v, "V")
        self._in_range("supply", "current", current_a, ranges.current_max_a, "A")
        if abs(voltage_v - old.voltage_v) > 1e-3:
            self.supply.set_voltage(voltage_v)
        # writes only when the change matters (0.05 A or 0.5 %): fewer round trips, same control
        if abs(current_a - old.current_a) > max(0.05, 0.005 * old.current_a) or current_a == 0.0:
            self.supply.set_current(current_a)
        else:
            current_a = old.current_a
        if current_a != old.current_a or voltage_v != old.voltage_v:  # most intervals change nothing
            self.commanded = Commanded("charge", current_a=current_a, voltage_v=voltage_v)

    def supply_ovp_v(self, voltage_v: float) -> float:
        """OVP for a charge: the pack's absolute maximum (battery.md §2, §8: 3.65 V/cell) plus a
        margin for the supply's own regulation, never below the setpoint."""
        pack = self.station.pack
        return max(voltage_v + 0.2, pack.cell_v_max_abs * pack.cells_in_series + 0.2)

    def discharge_cc(self, current_a: float, cutoff_v: float) -> None:
        self._in_range("load", "current", current_a, self.ranges["load"].current_max_a, "A")
        self._prepare_load(cutoff_v, current_a, current_a * cutoff_v * 2.0,
                           self.discharge_timer_s(current_a))
        self.load.set_mode("CC")
        self.load.set_current(current_a)
        self._load_on()
        self.commanded = Commanded("discharge_cc", current_a=current_a, cutoff_v=cutoff_v)

    def discharge_cp(self, power_w: float, cutoff_v: float) -> None:
        self._in_range("load", "power", power_w, self.ranges["load"].power_max_w, "W")
        self._prepare_load(cutoff_v, power_w / max(cutoff_v, 1.0) * 1.2, power_w * 1.1,
                           self.discharge_timer_s(power_w / self.station.pack.cells_in_series / 3.2))
        self.load.set_mode("CP")
        self.load.set_power(power_w)
        self._load_on()
        self.commanded = Commanded("discharge_cp", power_w=power_w, cutoff_v=cutoff_v)

    def discharge_timer_s(self, current_a: float) -> float:
        """The load's own timer for a discharge: no constant-current discharge of this pack can
        legitimately outlast emptying its nameplate capacity at that current, plus 25 % and
        10 minutes. Caps an abandoned discharge where the family has a timer (BK 8600)."""
        hours = self.nominal_capacity_ah / max(current_a, 1e-3)
        return min(LOAD_TIMER_MAX_S, hours * 3600.0 * 1.25 + 600.0)

    def _prepare_load(self, cutoff_v: float, current_limit_a: float, power_limit_w: float,
                      timer_s: float | None = None) -> None:
        if self.outputs.supply_on:
            self.supply.output(False)
            self.outputs.supply_on = False
        ranges = self.ranges["load"]
        caps = self.load.capabilities
        wanted = ProtectionSettings(
            uvp=cutoff_v if caps.can("uvp") else None,
            ocp=min(current_limit_a * 1.1 + 1.0, ranges.current_max_a) if caps.can("ocp") else None,
            opp=min(power_limit_w, ranges.power_max_w) if caps.can("opp") else None,
            timer=round(timer_s) if timer_s is not None and caps.can("timer") else None,
        )
        self.protections["load"] = program_and_verify(self.load, wanted)

    def _load_on(self) -> None:
        if not self.outputs.load_on:
            self.load.input(True)
            self.outputs.load_on = True

    def _in_range(self, role: str, what: str, value: float, high: float, unit: str) -> None:
        """Refuse a setpoint beyond the station's (derated) range before anything is sent; the
        driver itself only knows the model's range."""
        if not value <= high:
            raise SetpointOutOfRange(role, f"set {what} {value:g} {unit}",
                                     f"outside the station's {role} range 0..{high:g} {unit}")

    def safe_state(self, skip: Collection[str] = ()) -> list[str]:
        """Load off, then supply off (reverse of activation); never raises.

        ``skip``: instruments known unreachable (their link dropped): not tried now, where each
        command would wait out the driver's retries; reported as a problem instead."""
        problems: list[str] = []
        for name, drv in (("load", self.load), ("supply", self.supply)):
            if name in skip:
                problems.append(f"{name}: unreachable: off command not confirmed")
                continue
            try:
                problems.extend(f"{name}: {p}" for p in (drv.safe_state() or []))
            except Exception as exc:  # safe_state must not raise, but be sure
                problems.append(f"{name}: {exc}")
        self.outputs.supply_on = False
        self.outputs.load_on = False
        self.commanded = Commanded("off")
        return problems

    # ------------------------------------------------------------------ record
    def instrument_identities(self) -> list[InstrumentIdentity]:
        out = []
        today = date.today()
        for role, drv, cfg in (("supply", self.supply, self.station.supply),
                               ("load", self.load, self.station.load)):
            try:
                ident = drv.identify()
            except BenchError as exc:
                log.warning("%s identity: %s", role, exc)
                ident = Identity("?", "?", "?", "?")
            due = cfg.calibration_due
            out.append(InstrumentIdentity(
                name=role, role=role, family=cfg.family, resource=str(cfg.resource),  # type: ignore[arg-type]
                make=ident.make, model=ident.model, serial=ident.serial, firmware=ident.firmware,
                calibration_due=due, calibration_overdue=bool(due and due < today)))
        ad = self.station.adapter
        out.append(InstrumentIdentity(name="adapter", role="adapter", family="vs02-cal-24",
                                      resource=f"{ad.interface}:{ad.channel}",
                                      make="Vethy", model="VS02-CAL-24"))
        return out

    def new_record(self, *, run_id: str, procedure: Procedure, procedure_path: str, procedure_sha256: str,
                   operator: str, serial: str | None, software_version: str) -> RunRecord:
        ident: dict[str, str] = {}
        as_received = AsReceived()
        try:
            ident = self.adapter.read_identity()
            snap = self.adapter.snapshot()
            as_received = AsReceived(soc_pct=snap.soc_pct, soh_pct=snap.soh_pct)
            # SOC and SOH asked over UDS too, as a procedure's precheck reads them: at the start of
            # a run the broadcast carrying them may not have arrived yet (the report showed "—")
            extra = self.adapter.read_dids(["cycle_count", "learned_capacity", "soc", "soh"])
            as_received.soc_pct = _number(extra.get("soc"), as_received.soc_pct)
            as_received.soh_pct = _number(extra.get("soh"), as_received.soh_pct)
            as_received.cycle_count = int(extra.get("cycle_count") or 0)
            lc = extra.get("learned_capacity")
            as_received.learned_capacity_ah = float(lc) if lc is not None else None
            as_received.dtcs = [f"{d.code:06X}" for d in self.adapter.read_dtcs(0x09)]
        except BenchError as exc:
            log.warning("as-received read-out incomplete: %s", exc)
        bms_serial = ident.get("serial", "")
        return RunRecord(
            run_id=run_id,
            procedure=ProcedureIdentity(name=procedure.procedure, version=str(procedure.version),
                                        sha256=procedure_sha256, path=procedure_path),
            station=StationIdentity(name=self.station.name, location=self.station.location,
                                    simulated=self.simulated, production=self.station.production,
                                    scenario=self.scenario_name),
            software_version=software_version,
            operator=operator,
            started_at=datetime.now(UTC),
            instruments=self.instrument_identities(),
            pack=PackIdentity(serial=serial or bms_serial or "unknown",
                              part_number=self.station.pack.part_number,
                              bms_serial=bms_serial, bms_sw_version=ident.get("sw_version", ""),
                              bms_hw_version=ident.get("hw_version", ""),
                              nominal_capacity_ah=self.nominal_capacity_ah, as_received=as_received),
        )

    def finish_record(self, record: RunRecord) -> None:
        """On the simulator, add the ground truth the verdict can be audited against."""
        if self.sim is None:
            return
        truth = self.sim.truth()
        record.sim_truth = SimTruth(
            capacity_ah=truth["capacity_ah"], scenario=self.scenario_name or "",
            soc_checkpoints=list(self._soc_checkpoints),
            outputs_off_at_end=not (truth["supply_output_on"] or truth["load_input_on"]),
            output_transitions=truth["output_transitions"], faults_applied=truth["faults_applied"],
            cell_v_max=truth["excursions"]["cell_v_max"],
            cell_v_min_after_recovery=truth["excursions"]["cell_v_min_after_recovery"],
            contactor_openings=truth["excursions"]["contactor_openings"])

    def note_soc_checkpoint(self, t_s: float, ref_soc: float | None) -> None:
        if self.sim is None:
            return
        truth = self.sim.truth()
        self._soc_checkpoints.append(SocCheckpoint(
            t_s=t_s, true_soc_pct=truth["soc_pct"], bms_soc_pct=truth["bms_soc_pct"],
            reference_soc_pct=ref_soc))

    def simulator_checkpoint(self) -> bytes | None:
        return self.sim.checkpoint() if self.sim is not None else None

    # ------------------------------------------------------------------ teardown
    def close(self, skip: Collection[str] = ()) -> None:
        """Outputs off (but ``skip``: instruments the run's end could not reach) and every session closed."""
        self.safe_state(skip)
        for drv in (self.adapter, self.load, self.supply):
            try:
                drv.close()
            except Exception as exc:
                log.warning("closing %s: %s", drv, exc)
        if self.sim is not None:
            self.sim.close()

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _number(value: Any, fallback: float | None) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback


def _start_in_process(sim: Any) -> tuple[Any, Any, str]:
    """Start ``sim`` for a controller in this process: the BMS on one end of an in-process CAN
    channel (the adapter gets another), the instruments' servers registered with the
    ``@inprocess`` VISA backend under their socket's resource name. Returns the endpoints, the
    channel and the VISA backend to open the instruments with."""
    channel = InProcessCanChannel(f"vs02-sim-{uuid.uuid4().hex[:8]}")
    endpoints = sim.start(can_channel=channel.name, can_bus=channel.bus())
    for server in (sim.supply_server, sim.load_server):
        register(server.resource, server)
    return endpoints, channel, BACKEND


def connect_bench(station: StationConfig, *, scenario: str | None = None,
                  sim_state: bytes | None = None, can_log: Path | None = None) -> Bench:
    """Open every instrument of ``station``; on a simulated station start the simulator first."""
    sim = None
    scenario_name = None
    # the embedded bench reaches its instruments with no socket and no listener thread
    # (drivers.visa_inprocess, Vs02Adapter.poll): same drivers, SCPI strings and CAN frames
    direct = station.simulator is not None and station.simulator.transport == "direct"
    visa_backend = DEFAULT_VISA_BACKEND
    if station.simulator is not None and station.simulator.mode == "in_process":
        # lazy: only a simulated station loads the simulator
        from bench.sim.scenario import load_scenario
        from bench.sim.world import SimulatedBench

        scenario_name = scenario or station.simulator.scenario
        scen = load_scenario(scenario_name)
        sim = SimulatedBench(scen, supply_family=station.simulator.supply_family or None,
                             load_family=station.simulator.load_family or None)
        if sim_state is not None:
            sim.restore(sim_state)
        if direct:
            endpoints, can_channel, visa_backend = _start_in_process(sim)
        else:
            endpoints, can_channel = sim.start(), None
        clock: Clock = LockstepClock(sim.advance, start=sim.time_s)
        resources = {"sim:supply": endpoints.supply_resource, "sim:load": endpoints.load_resource,
                     "sim:can": endpoints.can_channel}
        families = {"supply": endpoints.supply_family, "load": endpoints.load_family}
    else:
        can_channel = None
        if scenario is not None:
            raise BenchError("--scenario only applies to a simulated station")
        speed = station.simulator.speed if station.simulator is not None else 1.0
        clock = WallClock(speed=speed)
        resources = {}
        families = {}
    opened: list[Any] = []
    try:
        supply = open_supply(station.supply, resources, families.get("supply"), visa_backend)
        opened.append(supply)
        load = open_load(station.load, resources, families.get("load"), visa_backend)
        opened.append(load)
        adapter = open_adapter(station.adapter, resources, clock, can_log,
                               bus=can_channel.bus() if can_channel is not None else None)
        opened.append(adapter)
    except BaseException:
        for drv in reversed(opened):
            try:
                drv.safe_state() if hasattr(drv, "safe_state") else None
                drv.close()
            except Exception as exc:
                log.warning("cleanup after failed connect: %s", exc)
        if sim is not None:
            sim.close()
        raise
    bench = Bench(station, clock, supply, load, adapter, sim=sim, scenario_name=scenario_name)
    if isinstance(clock, LockstepClock) and sim is not None:
        sim_ref = sim

        def settle() -> None:
            # lockstep: the controller looks only after the adapter has decoded every frame
            # the simulator emitted for this step (polled: decoded here, in this thread)
            if adapter.polled:
                adapter.poll()
            elif sim_ref.adapter is not None:
                adapter.wait_frames(sim_ref.adapter.frames_sent, timeout_s=10.0)

        clock.add_settle_hook(settle)
        settle()
    # a fresh connection starts from a known state: outputs off
    problems = bench.safe_state()
    if problems:
        log.warning("initial safe state: %s", problems)
    return bench
