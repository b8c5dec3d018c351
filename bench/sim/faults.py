"""Scenario faults applied to the simulated world.

Each fault kind of the scenario schema (``bench.sim.scenario``) maps to one change of the
simulated hardware. Faults that concern the controller (its own death, the watchdog's) are
handed to ``world.queue_controller_fault`` for whoever runs the controller to act on.
Cells are numbered 1..8 in scenario files and 0..7 in the pack model.

Faults act on the world only through :class:`FaultTarget`, the public surface
``bench.sim.world.SimulatedBench`` implements; this module does not import the world (the world
imports it), so the two are not an import circle.
"""

from __future__ import annotations

from typing import Protocol

from bench.sim.bms import BmsModel
from bench.sim.can_adapter import SimAdapter
from bench.sim.instruments import SimInstrument
from bench.sim.pack import Pack
from bench.sim.scenario import Fault
from bench.sim.scpi_server import ScpiServer


class FaultTarget(Protocol):
    """What a scenario fault may touch in the simulated world."""

    @property
    def pack(self) -> Pack: ...
    @property
    def bms(self) -> BmsModel: ...
    @property
    def supply(self) -> SimInstrument: ...
    @property
    def load(self) -> SimInstrument: ...
    @property
    def adapter(self) -> SimAdapter | None: ...
    @property
    def supply_server(self) -> ScpiServer | None: ...
    @property
    def load_server(self) -> ScpiServer | None: ...

    def queue_controller_fault(self, kind: str) -> None:
        """Hand a fault that concerns the controller (its death, the watchdog's) to its runner."""


def _instrument(world: FaultTarget, name: str) -> SimInstrument:
    return world.supply if name == "supply" else world.load


def _server(world: FaultTarget, name: str) -> ScpiServer | None:
    return world.supply_server if name == "supply" else world.load_server


def apply_fault(world: FaultTarget, fault: Fault) -> None:
    # each branch tests fault.kind itself, so mypy narrows the Fault union to that fault's model;
    # `kind` keeps the plain string for the last branches (a shared one, and the error)
    kind = fault.kind
    if fault.kind == "instrument_disconnect":
        server = _server(world, fault.instrument)
        if server is not None:
            server.disconnect(fault.duration_s)
    elif fault.kind == "can_silence":
        if world.adapter is not None:
            world.adapter.silence(fault.duration_s)
    elif fault.kind == "bus_off":
        if world.adapter is not None:
            world.adapter.bus_off(fault.duration_s)
    elif fault.kind == "cell_over_voltage":
        # a charger runaway on one cell: its charge jumps to where its rested OCV is voltage_v
        world.pack.set_cell_rest_voltage(fault.cell - 1, fault.voltage_v)
    elif fault.kind == "over_temperature":
        world.pack.heat_cell(fault.cell - 1, fault.delta_c)
    elif fault.kind == "bms_reboot":
        world.bms.ecu_reset(1)
    elif fault.kind == "contactor_open":
        world.bms.protection.force_open(fault.duration_s)
    elif fault.kind == "shunt_gain_error":
        _instrument(world, fault.instrument).shunt_gain_error(fault.gain)
    elif fault.kind == "sense_lead_off":
        _instrument(world, fault.instrument).sense_lead_off()
    elif fault.kind == "setpoint_ignored":
        _instrument(world, fault.instrument).ignore_setpoints(True)
    elif fault.kind == "weak_cell":
        world.pack.scale_cell(fault.cell - 1, fault.capacity_scale, fault.r_scale)
    elif kind in ("controller_death", "watchdog_death"):
        world.queue_controller_fault(kind)
    else:  # the scenario model's union is closed; a new kind needs a line here
        raise ValueError(f"fault kind {kind!r} has no effect defined in bench.sim.faults")
