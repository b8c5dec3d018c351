"""Scenario faults applied to the simulated world.

Each fault kind of the scenario schema (``bench.sim.scenario``) maps to one change of the
simulated hardware. Faults that concern the controller (its own death, the watchdog's) are
queued on ``world.controller_faults`` for whoever runs the controller to act on.
Cells are numbered 1..8 in scenario files and 0..7 in the pack model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.sim.ocv import soc_from_ocv_mean

if TYPE_CHECKING:
    from bench.sim.world import SimulatedBench


def _instrument(world: SimulatedBench, name: str) -> Any:
    return world.supply if name == "supply" else world.load


def _server(world: SimulatedBench, name: str) -> Any:
    return world.supply_server if name == "supply" else world.load_server


def apply_fault(world: SimulatedBench, fault: Any) -> None:
    kind = fault.kind
    if kind == "instrument_disconnect":
        server = _server(world, fault.instrument)
        if server is not None:
            server.disconnect(fault.duration_s)
    elif kind == "can_silence":
        if world.adapter is not None:
            world.adapter.silence(fault.duration_s)
    elif kind == "bus_off":
        if world.adapter is not None:
            world.adapter.bus_off(fault.duration_s)
    elif kind == "cell_over_voltage":
        # a charger runaway on one cell: its charge jumps to where its rested OCV is voltage_v
        world.pack.set_cell_soc(fault.cell - 1, soc_from_ocv_mean(fault.voltage_v))
    elif kind == "over_temperature":
        world.pack.heat_cell(fault.cell - 1, fault.delta_c)
    elif kind == "bms_reboot":
        world.bms.ecu_reset(1)
    elif kind == "contactor_open":
        world.bms.protection.force_open(fault.duration_s)
    elif kind == "shunt_gain_error":
        _instrument(world, fault.instrument).shunt_gain_error(fault.gain)
    elif kind == "sense_lead_off":
        _instrument(world, fault.instrument).sense_lead_off()
    elif kind == "setpoint_ignored":
        _instrument(world, fault.instrument).ignore_setpoints(True)
    elif kind == "weak_cell":
        world.pack.scale_cell(fault.cell - 1, fault.capacity_scale, fault.r_scale)
    elif kind in ("controller_death", "watchdog_death"):
        skip = getattr(world, "_skip_controller_faults", [])
        if kind in skip:
            skip.remove(kind)  # carried out before the run was resumed
        else:
            world.controller_faults.append(kind)
    else:  # the scenario model's union is closed; a new kind needs a line here
        raise ValueError(f"fault kind {kind!r} has no effect defined in bench.sim.faults")
