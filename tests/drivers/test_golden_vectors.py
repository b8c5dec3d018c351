"""Golden byte vectors (tests/data/vs02_golden.yaml, written from the specification) against BOTH
ends: the simulated ECU's encoders and the driver's decoders. Each side was written on its own
(bench/sim/uds_codec.py vs drivers/uds_map.py), so a scaling or layout error on either side fails
here instead of round-tripping unseen (issue 14.3)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bench.sim.can_adapter import BroadcastEncoder, broadcast_values, load_broadcast_dbc
from bench.sim.uds_codec import DIDS, encode_did
from drivers.uds_map import default_uds_map
from drivers.vs02_broadcast import BroadcastState
from drivers.vs02_dbc import load_dbc

GOLDEN = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "vs02_golden.yaml").read_text())


def hex_bytes(text: str) -> bytes:
    out = b""
    for token in text.split():
        byte, _, repeat = token.partition("*")
        out += bytes.fromhex(byte) * int(repeat or 1)
    return out


def approx(value: Any) -> Any:
    """pytest.approx through dicts and lists (floats to 1e-9 relative)."""
    if isinstance(value, dict):
        return {k: approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx(v) for v in value]
    return pytest.approx(value) if isinstance(value, float) else value


DID_VECTORS = GOLDEN["dids"]
FRAME_VECTORS = GOLDEN["frames"]


def test_every_did_and_every_broadcast_frame_has_a_vector():
    assert {v["id"] for v in DID_VECTORS} == {d.id for d in default_uds_map().dids} == set(DIDS)
    assert {v["id"] for v in FRAME_VECTORS} == {m.frame_id for m in load_dbc().messages}


@pytest.mark.parametrize("vector", DID_VECTORS, ids=lambda v: v["name"])
def test_simulated_ecu_encodes_the_golden_bytes(vector):
    assert DIDS[vector["id"]].name == vector["name"]
    assert encode_did(vector["id"], vector.get("sim_value", vector["value"])) == hex_bytes(vector["data"])


@pytest.mark.parametrize("vector", DID_VECTORS, ids=lambda v: v["name"])
def test_driver_decodes_the_golden_bytes(vector):
    spec = default_uds_map().did(vector["id"])
    assert spec.name == vector["name"]
    assert spec.decode(hex_bytes(vector["data"])) == approx(vector["value"])


@pytest.mark.parametrize("vector", [v for v in DID_VECTORS if DIDS[v["id"]].decode is not None],
                         ids=lambda v: v["name"])
def test_writable_dids_agree_in_the_other_direction(vector):
    # the tester encodes a write, the firmware decodes it
    data = hex_bytes(vector["data"])
    assert default_uds_map().did(vector["id"]).encode(vector["value"]) == data
    decode = DIDS[vector["id"]].decode
    assert decode is not None and decode(data) == pytest.approx(vector["value"])


def _golden_bms() -> SimpleNamespace:
    # the BMS API's flags also as the plain int the broadcast reads (BmsModel.flag_bits)
    return SimpleNamespace(**GOLDEN["bms"], flag_bits=int(GOLDEN["bms"]["flags"]))


def test_simulated_broadcast_encodes_the_golden_frames():
    values = broadcast_values(_golden_bms(), GOLDEN["counter"], GOLDEN["uptime_s"])
    frames = {f.arbitration_id: bytes(f.data) for f in BroadcastEncoder(load_broadcast_dbc()).encode(values)}
    for vector in FRAME_VECTORS:
        assert values[vector["name"]] == approx(vector["signals"]), vector["name"]
        assert frames[vector["id"]] == hex_bytes(vector["data"]), f"0x{vector['id']:03X} {vector['name']}"


@pytest.mark.parametrize("vector", FRAME_VECTORS, ids=lambda v: v["name"])
def test_driver_decodes_the_golden_frames(vector):
    decoded = load_dbc().decode_message(vector["id"], hex_bytes(vector["data"]), decode_choices=False)
    assert decoded == approx(vector["signals"])


def test_driver_snapshot_of_the_golden_cycle():
    state = BroadcastState(clock=lambda: 0.0)
    for vector in FRAME_VECTORS:
        assert state.update(vector["id"], hex_bytes(vector["data"]))
    snapshot = dataclasses.asdict(state.snapshot())
    expected = dict(GOLDEN["snapshot"])
    expected["limits"] = dict(zip(["charge_voltage_v", "charge_current_a", "discharge_current_a",
                                   "discharge_voltage_v"], expected["limits"], strict=True))
    assert {k: snapshot[k] for k in expected} == approx(expected)
