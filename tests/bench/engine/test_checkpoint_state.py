"""What a checkpoint hands on is a faithful copy, made the cheap way (issue 17): the engine state's
JSON is the JSON of ``asdict``. (The records store's copy of the record: tests/bench/store/test_writer.py.)"""

from __future__ import annotations

import json
from dataclasses import asdict

from bench.engine.checkpoint import EngineState
from bench.engine.throughput import ReferenceSoc, Throughput


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
