"""What a checkpoint hands on is a faithful copy, made the cheap way (issue 17): the engine state's
JSON is the JSON of ``asdict``, and the records store's copy of the record equals the record and
shares nothing the engine goes on changing."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.engine.checkpoint import EngineState
from bench.engine.runner import _store_copy
from bench.engine.throughput import ReferenceSoc, Throughput
from bench.record import (
    CheckRecord,
    EventRecord,
    PackIdentity,
    ProcedureIdentity,
    RunRecord,
    StationIdentity,
    StepRecord,
)


def test_engine_state_json_is_the_json_of_asdict() -> None:
    state = EngineState.new("run-1")
    state.step_pos, state.step_started_at, state.t_s = 3, 120.0, 845.0
    state.throughput = Throughput(12.5, 3.25, 320.0, 80.125)
    state.step_throughput = Throughput(0.0, 3.25, 0.0, 80.125)
    state.reference = ReferenceSoc(capacity_ah=201.5, anchor_soc_pct=100.0, anchor_ah=12.5)
    state.vars = {"charge.ah": 12.5, "before.serial": "VS02-1", "cells": [3.31, 3.32], "pair": (1.0, 2.0),
                  "flag": True, "count": 3, "missing": None}
    state.repeat_counts = {"retry:charge": 1}
    state.hold_since = {"discharge#0": 800.0}
    state.last_sample = [845.0, -40.0, 25.1]
    assert state.to_json() == json.dumps(asdict(state), indent=1)
    assert EngineState.from_json(state.to_json()).to_json() == state.to_json()


def _record() -> RunRecord:
    now = datetime.now(UTC)
    record = RunRecord(run_id="run-1", procedure=ProcedureIdentity(name="p", version="1", sha256="", path=""),
                       station=StationIdentity(name="sim", simulated=True), software_version="0",
                       operator="", started_at=now, pack=PackIdentity(serial="VS02-1"))
    record.steps.append(StepRecord(id="charge", kind="charge", start_s=0.0, started_at=now))
    record.checks.append(CheckRecord(id="c1", step_id="charge", description="d", t_s=1.0, value=3.3, unit="V",
                                     passed=True, decision_rule="r", message="m"))
    record.events.append(EventRecord(t_s=1.0, at=now, kind="info", message="m", data={"values": [1, 2]}))
    record.variables = {"charge.ah": 1.5}
    return record


def test_store_copy_equals_the_record_and_shares_nothing_mutable() -> None:
    record = _record()
    copy = _store_copy(record)
    assert copy == record and copy is not record
    # the engine goes on changing its record: the copy handed to the store's thread does not follow
    record.steps[-1].end_s = 10.0
    record.checks[0].retried = True
    record.events[0].data["values"].append(3)
    record.variables["charge.ah"] = 2.0
    record.steps.append(StepRecord(id="rest", kind="rest", start_s=10.0, started_at=datetime.now(UTC)))
    assert copy.steps[-1].end_s is None and len(copy.steps) == 1
    assert copy.checks[0].retried is False
    assert copy.events[0].data["values"] == [1, 2]
    assert copy.variables == {"charge.ah": 1.5}


def test_store_copy_of_a_record_that_does_not_validate_is_a_deep_copy(tmp_path: Path) -> None:
    record = _record()
    record.sample_count = "many"  # type: ignore[assignment]  # assigned past its type: no validation on assignment
    with pytest.warns(UserWarning, match="sample_count"):  # pydantic's, dumping the odd value
        copy = _store_copy(record)
    assert copy.sample_count == "many" and copy.steps == record.steps and copy.steps is not record.steps
