"""The one table of quantities: every name the engine provides to a procedure, declared once.

Each entry says what the quantity is (unit, kind), where its value comes from (``source``) and
what it means. Everything else is derived from this table and checked against it:

* the validator accepts exactly the sample quantities as runtime names in expressions, limits
  and end conditions (:data:`SAMPLE_UNITS`, bench.procedure.validate);
* the JSON Schema offers them for a limit's ``quantity`` (bench.procedure.schema);
* docs/procedures.md's quantity table is generated from it (bench.procedure.quantity_doc, run
  ``python -m bench.procedure.quantity_doc``; tests/bench/procedure/test_quantities.py fails on a
  stale doc);
* the engine's sampler (bench.engine.sampler) produces exactly the sample quantities on every
  sample, by these names (the same test runs it against the simulated bench, both ways);
* a ``set`` step assigning a ``settable`` quantity moves the bench's reference
  (bench.engine.throughput.ReferenceSoc), the routine results listed here land under their
  names (bench.engine.bms_actions), and the entries with a ``record_field`` fill that field of
  the run record (bench.engine.runner).

This module imports nothing of the engine: the engine depends on the procedure layer, never the
other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: Where a quantity's value comes from.
Source = Literal["clock", "supply/load", "bms", "bench-count", "bench-reference", "control", "station",
                 "bms-routine"]
#: What kind of value it is: a number in ``unit``, a boolean, or a 1-based cell number.
Kind = Literal["number", "bool", "cell"]

#: One line per source, for the documentation.
SOURCES: dict[Source, str] = {
    "clock": "the bench clock",
    "supply/load": "the bench's instruments: the supply while its output is on, else the load",
    "bms": "the BMS's CAN broadcast (battery.md §6.1), as last received",
    "bench-count": "integrated by the engine from the bench's own current and voltage (trapezoidal)",
    "bench-reference": "the bench's reference SOC: its own coulomb count from the last anchor over "
                       "the reference capacity; a `set` step may assign it",
    "control": "the charge control of a charge or balance step (bench.engine.charge_control); false "
               "in every other step",
    "station": "the station file and the instrument drivers; constant during a run",
    "bms-routine": "a `bms` routine's results (UDS RoutineControl); a run variable once produced, "
                   "not on every sample",
}


@dataclass(frozen=True, slots=True)
class Quantity:
    """One declared quantity."""

    name: str
    #: base unit, which is also its dimension for the unit checks (bench.procedure.units); None
    #: for booleans and cell numbers
    unit: str | None
    source: Source
    description: str
    kind: Kind = "number"
    #: a ``set`` step may assign it (a bench-reference quantity: the reference moves)
    settable: bool = False
    #: the field of a routine's results this quantity is taken from (source bms-routine)
    routine_result: str | None = None
    #: the RunRecord field filled from the run variable of this name at every record write
    record_field: str | None = None

    @property
    def on_sample(self) -> bool:
        """True when the engine provides it on every sample (an expression may name it)."""
        return self.source != "bms-routine"


QUANTITY_TABLE: tuple[Quantity, ...] = (
    Quantity("t", "s", "clock", "bench seconds since the run started"),
    Quantity("step_time", "s", "clock", "seconds since the current step started"),
    Quantity("pack_v", "V", "supply/load", "pack voltage as the bench measures it"),
    Quantity("current", "A", "supply/load", "bench current, + = into the pack (charge); unknown (NaN) while an "
             "instrument does not answer"),
    Quantity("abs_current", "A", "supply/load", "absolute value of current"),
    Quantity("power", "W", "supply/load", "pack_v x current, + = into the pack"),
    Quantity("cell_v_max", "V", "bms", "highest cell voltage"),
    Quantity("cell_v_min", "V", "bms", "lowest cell voltage"),
    Quantity("cell_v_mean", "V", "bms", "mean cell voltage"),
    Quantity("divergence", "V", "bms", "cell_v_max - cell_v_min"),
    Quantity("temp_max", "degC", "bms", "highest pack temperature"),
    Quantity("temp_min", "degC", "bms", "lowest pack temperature"),
    Quantity("bms_soc", "%", "bms", "the BMS's SOC"),
    Quantity("bms_soh", "%", "bms", "the BMS's SOH"),
    Quantity("bms_current", "A", "bms", "pack current as the BMS measures it"),
    Quantity("bms_pack_v", "V", "bms", "pack voltage as the BMS measures it"),
    Quantity("ref_soc", "%", "bench-reference", "the bench's reference SOC (no value until anchored: a step's "
             "`record: {ref_soc_anchor: ...}` or `set: {ref_soc: ...}`)", settable=True),
    Quantity("ref_capacity_ah", "Ah", "bench-reference", "the reference capacity the reference SOC counts "
             "against (nominal until set; `set` rescales keeping ref_soc continuous)", settable=True,
             record_field="reference_capacity_ah"),
    Quantity("ah", "Ah", "bench-count", "net Ah since the run started, + = into the pack"),
    Quantity("ah_charged", "Ah", "bench-count", "Ah into the pack since the run started"),
    Quantity("ah_discharged", "Ah", "bench-count", "Ah out of the pack since the run started"),
    Quantity("wh", "Wh", "bench-count", "net Wh since the run started, + = into the pack"),
    Quantity("step_ah", "Ah", "bench-count", "net Ah in the current step"),
    Quantity("step_ah_charged", "Ah", "bench-count", "Ah into the pack in the current step"),
    Quantity("step_ah_discharged", "Ah", "bench-count", "Ah out of the pack in the current step"),
    Quantity("step_wh", "Wh", "bench-count", "net Wh in the current step"),
    Quantity("bms_ccl", "A", "bms", "the BMS's charge-current limit (0x351 CCL)"),
    Quantity("bms_cvl", "V", "bms", "the BMS's charge-voltage limit (0x351 CVL)"),
    Quantity("bms_dcl", "A", "bms", "the BMS's discharge-current limit (0x351 DCL)"),
    Quantity("cell_sum_v", "V", "bms", "sum of the cell voltages"),
    Quantity("cell_v_max_cell", None, "bms", "number (1-8) of the highest cell", kind="cell"),
    Quantity("cell_v_min_cell", None, "bms", "number (1-8) of the lowest cell", kind="cell"),
    Quantity("bms_full", None, "bms", "gauge status: full charge", kind="bool"),
    Quantity("bms_empty", None, "bms", "gauge status: fully discharged", kind="bool"),
    Quantity("bms_learning", None, "bms", "gauge status: capacity learning armed", kind="bool"),
    Quantity("bms_learn_ok", None, "bms", "gauge status: capacity learned", kind="bool"),
    Quantity("contactor_closed", None, "bms", "the contactor is closed (true until the BMS says otherwise)",
             kind="bool"),
    Quantity("can_age", "s", "bms", "seconds since the last BMS broadcast frame"),
    Quantity("charge_cv", None, "control", "the step is in its constant-voltage part (pack or cell limit)",
             kind="bool"),
    Quantity("charge_paused", None, "control", "the step is paused because the BMS allows no charge current",
             kind="bool"),
    Quantity("capacity_nominal", "Ah", "station", "the pack's nominal capacity (what 1C means)"),
    Quantity("supply.voltage_max", "V", "station", "the supply's voltage range"),
    Quantity("supply.current_max", "A", "station", "the supply's current range"),
    Quantity("supply.power_max", "W", "station", "the supply's power range"),
    Quantity("load.voltage_max", "V", "station", "the load's voltage range"),
    Quantity("load.current_max", "A", "station", "the load's current range"),
    Quantity("load.power_max", "W", "station", "the load's power range"),
    Quantity("bms_learned_capacity_ah", "Ah", "bms-routine", "the capacity the BMS learned, from a routine's "
             "`learned_capacity` result", routine_result="learned_capacity", record_field="bms_learned_capacity_ah"),
)

#: Every declared quantity by name.
QUANTITY: Mapping[str, Quantity] = {q.name: q for q in QUANTITY_TABLE}
#: Names the engine provides on every sample, in table order.
SAMPLE_QUANTITIES: tuple[str, ...] = tuple(q.name for q in QUANTITY_TABLE if q.on_sample)
#: Sample quantity -> dimension (None: boolean or cell number): the runtime names the validator knows.
SAMPLE_UNITS: Mapping[str, str | None] = {q.name: q.unit for q in QUANTITY_TABLE if q.on_sample}
#: Quantities a ``set`` step may assign.
#: What a parameter default may name besides earlier parameters: the run has not sampled yet
#: when the defaults are evaluated, only the station's constants exist.
STATION_UNITS: Mapping[str, str | None] = {q.name: q.unit for q in QUANTITY_TABLE if q.source == "station"}
SETTABLE: frozenset[str] = frozenset(q.name for q in QUANTITY_TABLE if q.settable)
#: (quantity, result field) for the quantities taken from a ``bms`` routine's results.
ROUTINE_RESULTS: tuple[tuple[str, str], ...] = tuple(
    (q.name, q.routine_result) for q in QUANTITY_TABLE if q.routine_result is not None)
#: (quantity, RunRecord field) for the quantities the run record keeps.
RECORDED: tuple[tuple[str, str], ...] = tuple(
    (q.name, q.record_field) for q in QUANTITY_TABLE if q.record_field is not None)
