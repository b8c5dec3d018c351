"""One sample of the bench: every instrument read once, as the quantities procedures use.

The engine never speaks SCPI or CAN: it calls the drivers' typed methods. A sample holds
exactly the sample quantities of the one table, by its names (``bench.procedure.quantities``,
checked against the simulated bench in tests/bench/procedure/test_quantities.py), grouped here
by their source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bench.engine.links import LinkSupervisor
from bench.engine.port import BenchPort
from bench.engine.throughput import ReferenceSoc, Throughput
from bench.engine.values import Env

if TYPE_CHECKING:
    from drivers.vs02_broadcast import BmsSnapshot


@dataclass
class RawReading:
    t_s: float
    supply_v: float
    supply_i: float
    load_v: float
    load_i: float
    supply_on: bool
    load_on: bool
    bms: BmsSnapshot
    #: instruments that did not answer (their readings are NaN; bench.engine.links)
    lost: tuple[str, ...] = ()

    @property
    def pack_v(self) -> float:
        """Terminal voltage as the bench sees it: from the instrument driving the pack."""
        return self.supply_v if self.supply_on else self.load_v

    @property
    def current(self) -> float:
        """Bench current, + = into the pack; unknown (NaN) while an instrument does not answer:
        its output may still be on."""
        if self.lost:
            return math.nan
        return (self.supply_i if self.supply_on else 0.0) - (self.load_i if self.load_on else 0.0)


def read_bench(bench: BenchPort, t_s: float, links: LinkSupervisor | None = None) -> RawReading:
    """Read every instrument, one round trip each: an idle instrument is read too, so a lost
    connection is noticed in the interval it happens, not when the instrument is next needed.

    With ``links`` (bench.engine.links.LinkSupervisor) a lost connection gives NaN readings and
    is noted there; without, it raises ConnectionLost."""
    supply_on, load_on = bench.outputs.supply_on, bench.outputs.load_on
    if links is None:
        supply_v, supply_i = bench.supply.measure()
        load_v, load_i = bench.load.measure()
    else:
        supply_v, supply_i = links.measure("supply", bench.supply, t_s)
        load_v, load_i = links.measure("load", bench.load, t_s)
    # positional, in the field order (t_s, supply V/A, load V/A, outputs, bms, lost): every interval
    return RawReading(t_s, supply_v, supply_i, load_v, load_i, supply_on, load_on, bench.adapter.snapshot(),
                      tuple(sorted(links.lost)) if links is not None and links.lost else ())


def quantities(reading: RawReading, can_age_s: float, into: Env | None = None) -> Env:
    """The quantities of one reading: sources supply/load, bms, and control (its defaults).

    ``into``: the dict to fill (the engine's environment of this sample) instead of a new one."""
    bms = reading.bms
    cells = bms.cell_voltages_v
    temps = bms.temperatures_c
    current = reading.current
    pack_v = reading.pack_v
    limits = bms.limits
    # each statistic once: this runs every control interval (issue 17)
    high: float | None = None
    low: float | None = None
    total: float | None = None
    mean: float | None = None
    spread: float | None = None
    high_cell: int | None = None
    low_cell: int | None = None
    if cells:
        high, low, total = max(cells), min(cells), sum(cells)
        mean, spread = total / len(cells), high - low
        high_cell, low_cell = cells.index(high) + 1, cells.index(low) + 1
    full, empty, armed, learn_ok = _gauge_bits(bms)
    # stored one by one into the environment being built: a dict literal merged with update()
    # costs a temporary dict of 28 entries every control interval (issue 17)
    q: Env = {} if into is None else into
    q["pack_v"] = pack_v
    q["current"] = current
    q["abs_current"] = abs(current)
    q["power"] = pack_v * current
    q["cell_v_max"] = high
    q["cell_v_min"] = low
    q["cell_v_mean"] = mean
    q["divergence"] = spread
    q["temp_max"] = max(temps) if temps else None
    q["temp_min"] = min(temps) if temps else None
    q["bms_soc"] = bms.soc_pct
    q["bms_soh"] = bms.soh_pct
    q["bms_current"] = bms.current_a
    q["bms_pack_v"] = bms.pack_voltage_v
    q["bms_full"] = full
    q["bms_empty"] = empty
    q["bms_learning"] = armed
    q["bms_learn_ok"] = learn_ok
    q["contactor_closed"] = bms.contactor_closed is not False
    q["can_age"] = can_age_s
    q["cell_sum_v"] = total
    q["cell_v_max_cell"] = high_cell
    q["cell_v_min_cell"] = low_cell
    q["bms_ccl"] = limits.charge_current_a if limits is not None else None
    q["bms_cvl"] = limits.charge_voltage_v if limits is not None else None
    q["bms_dcl"] = limits.discharge_current_a if limits is not None else None
    # set by charge and balance steps (bench.engine.charge_control); false elsewhere
    q["charge_cv"] = False
    q["charge_paused"] = False
    return q


#: the snapshot's four gauge flags per typed status word seen (a few distinct words per run)
_GAUGE_BITS: dict[object, tuple[bool, bool, bool, bool]] = {}


def _gauge_bits(bms: BmsSnapshot) -> tuple[bool, bool, bool, bool]:
    """(full, empty, learning armed, learn ok) of the snapshot. Each of the snapshot's flag
    properties builds its typed status word and tests one bit in Python (~1 us); all four depend
    on that word alone, which changes a few times per run: the word is built once per sample, the
    four asked once per distinct word (issue 17). The bits stay the driver's knowledge."""
    word = bms.gauge_status
    bits = _GAUGE_BITS.get(word)
    if bits is None:
        bits = _GAUGE_BITS[word] = (bms.full_charge, bms.fully_discharged, bms.learning_armed, bms.learn_ok)
    return bits


class StationFacts(Protocol):
    """What the sampler asks the bench for the station's quantities."""

    @property
    def nominal_capacity_ah(self) -> float: ...

    def range_variables(self) -> dict[str, float]: ...


class Sampler:
    """Every sample quantity of one sample: the reading's (:func:`quantities`), the clock's, the
    bench's counts and reference, and the station's. The station's are constant during a run:
    read from the bench once, at the first sample."""

    def __init__(self, bench: StationFacts) -> None:
        self._bench = bench
        self._station: dict[str, float] | None = None

    def values(self, reading: RawReading, can_age_s: float, step_started_at: float | None,
               total: Throughput, step: Throughput, reference: ReferenceSoc, into: Env | None = None) -> Env:
        """The sample quantities; ``into``: filled in place (the engine passes a copy of its
        variables, so that the environment is built in one dict, not merged from three)."""
        q = quantities(reading, can_age_s, into)
        t = reading.t_s
        q["t"] = t
        q["step_time"] = t - (t if step_started_at is None else step_started_at)
        ah = total.ah
        q["ah"] = ah
        q["ah_charged"] = total.ah_charged
        q["ah_discharged"] = total.ah_discharged
        q["wh"] = total.wh
        q["step_ah"] = step.ah
        q["step_ah_charged"] = step.ah_charged
        q["step_ah_discharged"] = step.ah_discharged
        q["step_wh"] = step.wh
        q["ref_soc"] = reference.value(ah)
        q["ref_capacity_ah"] = reference.capacity_ah
        if self._station is None:
            self._station = {"capacity_nominal": self._bench.nominal_capacity_ah,
                             **self._bench.range_variables()}
        q.update(self._station)
        return q
