"""Serials at the operator station (issue 18 item 5): refused when they cannot be a pack's, and
checked against the serial the BMS reports over UDS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bench.ui.conftest import wait_for
from tests.bench.ui.test_api import ORIGIN, client_for, logged_in

BMS_SERIAL = "VS02P-25-004711"  # the simulated BMS (bench/sim/scenarios/healthy.yaml)


@pytest.mark.parametrize(("serial", "words"), [
    ("VS02P-24-" + "1" * 200_000, "too long"),
    ("<img src=x onerror=alert(1)>", "not a pack serial"),
    ("VS02P-24-\u202e100000", "U+202E"),               # right-to-left override: shows as another serial
    ("VS02P-24-00\x000001", "U+0000"),
    ("VS02P-24-0000\x1b01", "U+001B"),
    ("VS02P-24-00\u200b0001", "U+200B"),               # zero-width space
    ("VS02P-2024-1", "expected pattern"),
])
def test_bad_serials_refused_before_anything_starts(station_file: Callable[..., str], serial: str,
                                                    words: str) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    r = client.post("/api/benches/bay1/start", json={"serial": serial}, headers=ORIGIN)
    assert r.status_code == 422 and words in r.json()["detail"], r.text[:300]
    assert len(r.text) < 1000  # the refusal does not echo a 200,000-character serial back
    assert client.get("/api/benches/bay1").json()["state"] == "idle"


def test_station_file_sets_the_serial_pattern(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1", pack__serial_pattern="PK-[0-9]{4}")]))
    assert client.post("/api/benches/bay1/start", json={"serial": BMS_SERIAL},
                       headers=ORIGIN).status_code == 422


def test_wrong_pack_on_the_bench_fails_never_passes(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    scanned = "VS02P-24-000002"  # a well-formed serial, but not the pack that is connected
    r = client.post("/api/benches/bay1/start", json={"serial": scanned}, headers=ORIGIN)
    assert r.status_code == 200, r.text
    done = wait_for(lambda: (s := client.get("/api/benches/bay1").json())["state"] == "finished" and s,
                    60, "the run to end")
    assert done["run"]["verdict"] == "fail"
    assert any("wrong pack on the bench: scanned VS02P-24-000002, the BMS reports VS02P-25-004711" in t
               for t in done["run"]["failed_checks"]), done["run"]["failed_checks"]
    slot = next(iter(client.app.state.station.slots.values()))  # type: ignore[attr-defined]
    record = json.loads((Path(slot.station.runs_dir) / done["run"]["run_id"] / "record.json").read_text())
    check = next(c for c in record["checks"] if c["id"] == "pack_serial_matches_bms")
    assert check["passed"] is False and check["value"] == BMS_SERIAL
    assert record["verdict"] == "fail" and record["ah_charged"] == 0 and record["ah_discharged"] == 0


def test_matching_pack_is_recorded_as_a_passed_check(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    client.post("/api/benches/bay1/start", json={"serial": BMS_SERIAL}, headers=ORIGIN)
    wait_for(lambda: any(c["id"] == "pack_serial_matches_bms"
                         for c in client.get("/api/benches/bay1").json()["run"]["checks"]), 60, "the check")
    checks = client.get("/api/benches/bay1").json()["run"]["checks"]
    assert [c["passed"] for c in checks if c["id"] == "pack_serial_matches_bms"] == [True]
    client.post("/api/benches/bay1/stop", json={"confirm": True}, headers=ORIGIN)
    wait_for(lambda: client.get("/api/benches/bay1").json()["state"] == "finished", 60, "stop")
