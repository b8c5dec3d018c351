"""The simulated bench: pack + BMS + supply + load + calibration adapter, wired together.

One :class:`SimulatedBench` owns the physics and the instrument models and serves them over
real transports (SCPI on TCP sockets, CAN on a python-can bus). Time only moves through
:meth:`SimulatedBench.advance`: in-process that is called by the controller's
:class:`~bench.clock.LockstepClock`; standalone (``bench sim serve``) by a pacing thread at
``speed`` x real time.

Electrically the supply, the load and the pack (through the BMS contactor) share one
terminal node. Each step we solve the node voltage V such that the currents balance:
``I_supply(V) + I_load(V) = I_pack(V)`` with ``I_pack = (V - emf) / R`` (positive = charging).
Instrument characteristics are monotonic, so a bracketed false-position solve converges in
a handful of evaluations.
"""

from __future__ import annotations

import pickle
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import can

from bench.sim.bms import BmsModel
from bench.sim.can_adapter import SimAdapter
from bench.sim.faults import apply_fault
from bench.sim.instruments import SimInstrument, make_instrument
from bench.sim.pack import Pack
from bench.sim.scenario import Fault, Scenario
from bench.sim.scpi_server import ScpiServer

#: Largest internal integration step; the pack model is exact for constant current, so
#: 1 s keeps CC/CV crossover and protection timing faithful without costing speed.
MAX_SUBSTEP_S = 1.0
#: Instruments' combined input impedance across the terminals, so an open node has a defined voltage.
TERMINAL_LEAK_OHM = 100e3
DEFAULT_SUPPLY_FAMILY = "keysight_n8700"
DEFAULT_LOAD_FAMILY = "bk_8600"


@dataclass(frozen=True)
class SimEndpoints:
    """Where the running simulator can be reached."""

    supply_resource: str
    load_resource: str
    can_interface: str
    can_channel: str
    supply_family: str
    load_family: str


class SimulatedBench:
    """Physics and instruments of one simulated bench, driven in simulated time."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        supply_family: str | None = None,
        load_family: str | None = None,
        epoch_s: float | None = None,
    ) -> None:
        self.scenario = scenario
        seed = scenario.seed
        self.epoch_s = time.time() if epoch_s is None else epoch_s
        instruments = scenario.instruments
        self.supply_family = supply_family or (instruments.supply_family if instruments else None) \
            or DEFAULT_SUPPLY_FAMILY
        self.load_family = load_family or (instruments.load_family if instruments else None) \
            or DEFAULT_LOAD_FAMILY
        self.pack = Pack(scenario.pack_params())
        self.bms = BmsModel(self.pack, scenario.bms, random.Random(seed + 1), self.epoch_s)
        self.supply: SimInstrument = make_instrument(self.supply_family, random.Random(seed + 2))
        self.load: SimInstrument = make_instrument(self.load_family, random.Random(seed + 3))
        self.lock = threading.RLock()
        self.time_s = 0.0
        self.terminal_v = self.pack.terminal_voltage(0.0)
        self.pack_current_a = 0.0
        self._faults = sorted(scenario.faults, key=lambda f: f.at_s)
        self._next_fault = 0
        self.applied_faults: list[dict[str, Any]] = []
        self._servers: list[ScpiServer] = []
        self._bus: can.BusABC | None = None
        self.adapter: SimAdapter | None = None
        self.endpoints: SimEndpoints | None = None
        #: Faults that concern the controller rather than the simulated hardware (controller or
        #: watchdog death); the engine polls this list.
        self.controller_faults: list[str] = []
        self._skip_controller_faults: list[str] = []
        #: ground truth: every change of an instrument's output state, with the simulated time it
        #: took effect (commands act between steps, so at the start of the next one)
        self.output_transitions: list[dict[str, Any]] = []
        self._outputs_seen = (self.supply.output_on, self.load.output_on)
        self.excursions = CellExcursions()
        self._observe(0.0)

    # -- serving ---------------------------------------------------------------------------
    def start(self, *, can_channel: str | None = None, host: str = "127.0.0.1",
              supply_port: int = 0, load_port: int = 0, can_bus: can.BusABC | None = None) -> SimEndpoints:
        """Serve the instruments on TCP (their servers also take in-process sessions,
        :meth:`ScpiServer.connect`) and the BMS on a new python-can virtual bus, or on ``can_bus``
        (the embedded bench passes one end of an in-process channel; closed with the simulator)."""
        if self.endpoints is not None:
            return self.endpoints
        # a link drop (scenario fault instrument_disconnect) lasts its duration in world time
        supply_server = ScpiServer(self.supply, self.lock, host=host, port=supply_port, now=self._now)
        load_server = ScpiServer(self.load, self.lock, host=host, port=load_port, now=self._now)
        sport = supply_server.start()
        lport = load_server.start()
        self._servers = [supply_server, load_server]
        channel = can_channel or f"vs02-sim-{uuid.uuid4().hex[:8]}"
        self._bus = can_bus or can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        self.adapter = SimAdapter(self.bms, self._bus, lock=self.lock)
        self.adapter.start_uds()
        self.endpoints = SimEndpoints(
            supply_resource=f"TCPIP::{host}::{sport}::SOCKET",
            load_resource=f"TCPIP::{host}::{lport}::SOCKET",
            can_interface="virtual" if can_bus is None else "in-process",
            can_channel=channel,
            supply_family=self.supply_family,
            load_family=self.load_family,
        )
        return self.endpoints

    def close(self) -> None:
        # every thread told to end before any is waited for: their 50 ms polls run out together
        # (closed one by one, the run's teardown waited ~100 ms; issue 17)
        for server in self._servers:
            server.stop()
        if self.adapter is not None:
            self.adapter.close()  # its threads' polls run out while the servers' do too
            self.adapter = None
        for server in self._servers:
            server.close()
        self._servers = []
        if self._bus is not None:
            self._bus.shutdown()
            self._bus = None
        self.endpoints = None

    @property
    def supply_server(self) -> ScpiServer | None:
        return self._servers[0] if self._servers else None

    @property
    def load_server(self) -> ScpiServer | None:
        return self._servers[1] if self._servers else None

    # -- time ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.time_s

    def advance(self, dt_s: float) -> None:
        """Advance the simulated world by ``dt_s`` seconds."""
        with self.lock:
            remaining = dt_s
            while remaining > 1e-12:
                step = min(MAX_SUBSTEP_S, remaining)
                self._substep(step)
                remaining -= step
            if self.adapter is not None:
                self.adapter.emit_due(self.time_s)
            for server in self._servers:  # a dropped link comes back on world time
                server.relisten_if_due()

    def _note_output_changes(self) -> None:
        now = (self.supply.output_on, self.load.output_on)
        if now != self._outputs_seen:
            for name, before, after in zip(("supply", "load"), self._outputs_seen, now, strict=True):
                if before != after:
                    self.output_transitions.append({"t_s": self.time_s, "instrument": name, "on": after})
            self._outputs_seen = now

    def _substep(self, dt: float) -> None:
        self._note_output_changes()
        self._apply_due_faults()
        pack, bms, supply, load = self.pack, self.bms, self.supply, self.load
        # The instruments' settings stay fixed through the step (commands and faults act between
        # steps): their curves are read once, for the node solve and for what they then observe.
        supply_curve, load_curve = supply.node_current_curve(), load.node_current_curve()
        v, i_pack = self._solve_node(supply_curve, load_curve)
        self.terminal_v = v
        self.pack_current_a = i_pack
        pack.advance(dt, i_pack, bms.bleed_currents_a())
        bms.advance(dt, i_pack)
        self.excursions.observe(self.time_s + dt, pack.cell_voltages(i_pack), bms.contactor_closed,
                                supply.output_on or load.output_on)
        supply.observe(v, supply_curve(v), dt)
        load.observe(v, -load_curve(v), dt)
        self.time_s += dt

    def _observe(self, dt: float) -> None:
        """Let the instruments see the present terminal state (at start-up and after a restore)."""
        supply_curve, load_curve = self.supply.node_current_curve(), self.load.node_current_curve()
        v, i_pack = self._solve_node(supply_curve, load_curve)
        self.terminal_v, self.pack_current_a = v, i_pack
        self.supply.observe(v, supply_curve(v), dt)
        self.load.observe(v, -load_curve(v), dt)

    def _solve_node(self, supply: Callable[[float], float], load: Callable[[float], float]) -> tuple[float, float]:
        """Terminal voltage and pack current with the instruments' node-current curves ``supply``
        and ``load`` (:meth:`SimInstrument.node_current_curve`)."""
        emf = self.pack.open_circuit_emf()
        r = self.pack.series_resistance()
        leak = TERMINAL_LEAK_OHM
        if not self.bms.contactor_closed:
            def imbalance(v: float) -> float:
                return supply(v) + load(v) - v / leak  # no pack current

            return _solve_decreasing(imbalance, 0.0, 120.0), 0.0

        def closed_imbalance(v: float) -> float:
            return supply(v) + load(v) - (v - emf) / r - v / leak

        v = _solve_decreasing(closed_imbalance, 0.0, 120.0)
        return v, (v - emf) / r

    # -- faults ----------------------------------------------------------------------------
    def _apply_due_faults(self) -> None:
        while self._next_fault < len(self._faults) and self._faults[self._next_fault].at_s <= self.time_s:
            fault = self._faults[self._next_fault]
            self._next_fault += 1
            self.apply_fault(fault)

    def skip_controller_faults(self, kinds: list[str]) -> None:
        """A resumed run: controller faults already carried out before the checkpoint's time."""
        self._skip_controller_faults = list(kinds)

    def queue_controller_fault(self, kind: str) -> None:
        """A controller fault came due: queue it, unless it was carried out before a resume."""
        if kind in self._skip_controller_faults:
            self._skip_controller_faults.remove(kind)
        else:
            self.controller_faults.append(kind)

    def apply_fault(self, fault: Fault) -> None:
        """Inject one scenario fault now (also used by the operator station's engineer page)."""
        apply_fault(self, fault)
        self.applied_faults.append({"t_s": self.time_s, **fault.model_dump(mode="json")})

    # -- ground truth ----------------------------------------------------------------------
    def truth(self) -> dict[str, Any]:
        """Ground truth for tests and audits; never used by controller logic."""
        with self.lock:
            self._note_output_changes()
            return {
                "t_s": self.time_s,
                "capacity_ah": self.pack.true_capacity_ah(),
                "soc_pct": self.pack.true_soc_pct(),
                "cell_soc_pct": [100.0 * s for s in self.pack.cell_soc],
                "cell_capacity_ah": list(self.pack.cell_capacity_ah),
                "cell_voltages_v": self.pack.cell_voltages(self.pack_current_a),
                "cell_temperatures_c": list(self.pack.cell_temperatures_c),
                "terminal_v": self.terminal_v,
                "pack_current_a": self.pack_current_a,
                "contactor_closed": self.bms.contactor_closed,
                "bms_soc_pct": self.bms.soc_pct,
                "bms_learned_capacity_ah": self.bms.learned_capacity_ah,
                "supply_output_on": self.supply.output_on,
                "load_input_on": self.load.output_on,
                "supply": self.supply.safe_state_truth(),
                "load": self.load.safe_state_truth(),
                "faults_applied": list(self.applied_faults),
                "output_transitions": list(self.output_transitions),
                "excursions": self.excursions.as_dict(),
            }

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint(self) -> bytes:
        """The simulated hardware's state, so a resumed run continues on the same pack."""
        with self.lock:
            return pickle.dumps(
                {
                    "time_s": self.time_s,
                    "pack": self.pack,
                    "bms": self.bms,
                    "supply": _instrument_state(self.supply),
                    "load": _instrument_state(self.load),
                    "next_fault": self._next_fault,
                    "applied_faults": self.applied_faults,
                    "output_transitions": self.output_transitions,
                    "excursions": self.excursions,
                }
            )

    def restore(self, blob: bytes) -> None:
        state = pickle.loads(blob)  # our own checkpoint file, written by checkpoint()
        with self.lock:
            self.time_s = state["time_s"]
            self.pack = state["pack"]
            self.bms = state["bms"]
            self.supply.__dict__.update(state["supply"])
            self.load.__dict__.update(state["load"])
            self._next_fault = state["next_fault"]
            self.applied_faults = state["applied_faults"]
            self.output_transitions = state["output_transitions"]
            self.excursions = state.get("excursions", CellExcursions())
            self._outputs_seen = (self.supply.output_on, self.load.output_on)
            self._observe(0.0)
            if self.adapter is not None:
                self.adapter.bms = self.bms


#: Parts of a simulated instrument that are code (its SCPI command tree of bound handlers, and the
#: message plans made of them), rebuilt by its constructor rather than pickled.
_INSTRUMENT_CODE_ATTRS = frozenset({"tree", "_common", "_plans"})


def _instrument_state(instrument: SimInstrument) -> dict[str, Any]:
    return {k: v for k, v in instrument.__dict__.items() if k not in _INSTRUMENT_CODE_ATTRS}


def _solve_decreasing(f: Any, lo: float, hi: float, tol: float = 1e-7) -> float:
    """Root of a continuous non-increasing ``f`` on [lo, hi] (Illinois false position)."""
    f_lo, f_hi = f(lo), f(hi)
    if f_lo <= 0.0:
        return lo
    if f_hi >= 0.0:
        return hi
    side = 0
    for _ in range(100):
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        fx = f(x)
        if -1e-9 < fx < 1e-9 or hi - lo < tol:  # |fx| < 1e-9 (no abs() call: ~6 iterations a step)
            return x
        if fx > 0:
            lo, f_lo = x, fx
            if side == 1:
                f_hi *= 0.5
            side = 1
        else:
            hi, f_hi = x, fx
            if side == -1:
                f_lo *= 0.5
            side = -1
    return 0.5 * (lo + hi)


#: battery.md §2.4 protection levels the ground truth is judged against: cell OV warning 3.60 V (a
#: charger that obeys the BMS never goes above it) and cell UV trip 2.50 V.
TRUTH_CELL_V_HIGH = 3.60
TRUTH_CELL_V_LOW = 2.50


class CellExcursions:
    """Ground truth of what the run did to the cells: the highest and lowest true cell voltage, and
    every opening of the BMS contactor. A pack that arrives over-discharged starts below 2.5 V and its
    BMS opens on under-voltage by itself: the low side counts only once every cell has been at or
    above 2.5 V (after its recovery), and an opening only while an instrument drives the pack or
    after that recovery."""

    def __init__(self) -> None:
        self.cell_v_max = 0.0
        self.cell_v_min: float | None = None
        self.recovered = False
        self.contactor_openings: list[float] = []
        self._closed: bool | None = None

    def observe(self, t_s: float, cells: list[float], contactor_closed: bool, driven: bool) -> None:
        high, low = max(cells), min(cells)
        self.cell_v_max = max(self.cell_v_max, high)
        if not self.recovered and low >= TRUTH_CELL_V_LOW:
            self.recovered = True
        if self.recovered:
            self.cell_v_min = low if self.cell_v_min is None else min(self.cell_v_min, low)
        if self._closed and not contactor_closed and (driven or self.recovered):
            self.contactor_openings.append(t_s)
        self._closed = contactor_closed

    def as_dict(self) -> dict[str, Any]:
        return {"cell_v_max": self.cell_v_max, "cell_v_min_after_recovery": self.cell_v_min,
                "contactor_openings": list(self.contactor_openings)}
