"""Operator station API over FastAPI's TestClient, against the in-process simulated bench."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.errors import ConfigError
from bench.ui.app import create_app
from bench.ui.security import AccessPolicy
from tests.bench.ui.conftest import make_station, wait_for

BASE = "http://127.0.0.1:8470"
ORIGIN = {"Origin": BASE}


def client_for(stations: list[str | None], **kwargs: object) -> TestClient:
    return TestClient(create_app(make_station(stations, **kwargs)), base_url=BASE)  # type: ignore[arg-type]


def logged_in(client: TestClient, name: str = "alice", role: str = "operator") -> TestClient:
    r = client.post("/api/login", json={"name": name, "role": role}, headers=ORIGIN)
    assert r.status_code == 200, r.text
    return client


def test_eol_run_answer_prompt_and_record_who(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    r = client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    assert r.status_code == 200, r.text
    prompt = wait_for(lambda: client.get("/api/benches/bay1").json()["prompt"], 60, "the visual prompt")
    assert prompt["choices"] == ["OK", "Damaged"]
    assert client.get("/api/benches/bay1").json()["state"] == "waiting"
    bad = client.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "Maybe"},
                      headers=ORIGIN)
    assert bad.status_code == 409 and "not one of" in bad.json()["detail"]
    ok = client.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "OK"},
                     headers=ORIGIN)
    assert ok.status_code == 200
    done = wait_for(lambda: (s := client.get("/api/benches/bay1").json())["state"] == "finished" and s,
                    120, "the run to finish")
    assert done["run"]["verdict"] == "pass", done["run"]["failed_checks"]
    run_id = done["run"]["run_id"]
    record = json.loads((Path(done["run"]["report"] and station_dir(client)) / run_id / "record.json")
                        .read_text(encoding="utf-8"))
    assert record["operator"] == "alice (self-declared)"  # a loopback station without accounts
    answered = [e for e in record["events"] if "answered" in e["message"]]
    assert [(e["actor"], e["message"].endswith("answered: OK")) for e in answered] == [
        ("alice (self-declared) (operator)", True)]
    assert {c["id"] for c in record["checks"]} >= {"bms_current_charge", "pack_resistance_mohm",
                                                   "shipping_soc", "sw_version", "no_dtcs"}
    assert client.get(done["run"]["report"]).status_code == 200
    runs = client.get("/api/runs").json()
    assert runs[0]["run_id"] == run_id and runs[0]["pack_serial"] == "VS02P-25-004711"
    history = client.get("/api/packs/VS02P-25-004711/history").json()["visits"]
    assert [v["run_id"] for v in history] == [run_id]
    # second start of the same pack: it is a retest
    r = client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    assert r.json()["run"]["retest_count"] == 1
    client.post("/api/benches/bay1/stop", json={"confirm": True}, headers=ORIGIN)
    wait_for(lambda: client.get("/api/benches/bay1").json()["state"] == "finished", 60, "stop")


def station_dir(client: TestClient) -> Path:
    slot = next(iter(client.app.state.station.slots.values()))  # type: ignore[attr-defined]
    return Path(slot.station.runs_dir)


def test_stop_aborts_with_outputs_off_in_ground_truth(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]), "eve", "engineer")
    assert client.post("/api/benches/bay1/speed", json={"speed": 20}, headers=ORIGIN).status_code == 200
    client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    prompt = wait_for(lambda: client.get("/api/benches/bay1").json()["prompt"], 60, "prompt")
    client.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "OK"}, headers=ORIGIN)
    # paced at 20x: the charge pulse is running with the supply on
    wait_for(lambda: client.get("/api/benches/bay1/truth").json()["supply_output_on"], 60, "supply on")
    refused = client.post("/api/benches/bay1/stop", json={}, headers=ORIGIN)
    assert refused.status_code == 400  # stop asks for confirmation
    assert client.post("/api/benches/bay1/stop", json={"confirm": True}, headers=ORIGIN).status_code == 200
    done = wait_for(lambda: (s := client.get("/api/benches/bay1").json())["state"] == "finished" and s,
                    60, "abort")
    assert done["run"]["verdict"] == "aborted"
    assert "stopped by eve (self-declared) (engineer)" in done["run"]["abort_reason"]
    truth = client.get("/api/benches/bay1/truth").json()
    assert truth["supply_output_on"] is False and truth["load_input_on"] is False
    record = json.loads((station_dir(client) / done["run"]["run_id"] / "record.json").read_text())
    assert record["sim_truth"]["outputs_off_at_end"] is True


def test_fault_injection_is_logged_and_trips(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]), "eve", "engineer")
    client.post("/api/benches/bay1/speed", json={"speed": 20}, headers=ORIGIN)
    client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    prompt = wait_for(lambda: client.get("/api/benches/bay1").json()["prompt"], 60, "prompt")
    client.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "OK"}, headers=ORIGIN)
    bad = client.post("/api/benches/bay1/fault", json={"kind": "no_such_fault"}, headers=ORIGIN)
    assert bad.status_code == 422
    r = client.post("/api/benches/bay1/fault", json={"kind": "over_temperature", "cell": 3, "delta_c": 40},
                    headers=ORIGIN)
    assert r.status_code == 200, r.text
    done = wait_for(lambda: (s := client.get("/api/benches/bay1").json())["state"] == "finished" and s,
                    90, "trip")
    # 40 K over: the BMS opens its contactor (or the bench's over-temperature limit trips first)
    assert done["run"]["verdict"] == "aborted"
    assert "contactor" in done["run"]["abort_reason"] or "over-temperature" in done["run"]["abort_reason"]
    truth = client.get("/api/benches/bay1/truth").json()
    assert [f["kind"] for f in truth["faults_applied"]] == ["over_temperature"]
    record = json.loads((station_dir(client) / done["run"]["run_id"] / "record.json").read_text())
    assert any(e["kind"] == "operator" and e["actor"] == "eve (self-declared) (engineer)"
               and "over_temperature" in e["message"] for e in record["events"])


def test_output_not_confirmed_off_is_on_the_verdict_screen(station_file: Callable[..., str]) -> None:
    # the supply's link drops for good: the window and the off retries are short here
    station = station_file("bay1", supervision__reconnect_window_s=20, supervision__off_retry_s=30)
    client = logged_in(client_for([station]), "eve", "engineer")
    client.post("/api/benches/bay1/speed", json={"speed": 20}, headers=ORIGIN)
    client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    prompt = wait_for(lambda: client.get("/api/benches/bay1").json()["prompt"], 60, "prompt")
    client.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "OK"}, headers=ORIGIN)
    r = client.post("/api/benches/bay1/fault", json={"kind": "instrument_disconnect", "instrument": "supply",
                                                      "duration_s": 100000}, headers=ORIGIN)
    assert r.status_code == 200, r.text
    done = wait_for(lambda: (s := client.get("/api/benches/bay1").json())["state"] == "finished" and s,
                    90, "abort")
    assert done["run"]["verdict"] == "aborted" and "instrument_lost" in done["run"]["abort_reason"]
    assert "the supply output could NOT be confirmed OFF" in done["run"]["outputs_warning"]


def test_operator_cannot_use_engineer_powers(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    def post(path: str, body: dict[str, object]) -> int:
        return client.post(f"/api/benches/bay1/{path}", json=body, headers=ORIGIN).status_code

    assert post("fault", {"kind": "bms_reboot"}) == 403
    assert post("speed", {"speed": 1}) == 403
    assert post("start", {"serial": "X", "params": {"pulse_s": "10s"}}) == 403
    assert post("start", {"serial": "X", "scenario": "healthy"}) == 403
    r = client.post("/api/benches/bay1/start", json={"serial": "X", "procedure": "nope"}, headers=ORIGIN)
    assert r.status_code == 403
    assert client.get("/api/benches/bay1/truth").status_code == 403


def test_start_refused_when_store_unreachable(station_file: Callable[..., str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database folder should be")
    client = logged_in(client_for([station_file("bay1", database_url=f"sqlite:///{blocker}/sub/bench.db")]))
    r = client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    assert r.status_code == 409 and "records store unreachable" in r.json()["detail"]
    assert client.get("/api/benches/bay1").json()["state"] == "idle"


def test_start_refused_when_calibration_overdue_in_production(station_file: Callable[..., str]) -> None:
    past = (date.today() - timedelta(days=1)).isoformat()
    client = logged_in(client_for([station_file("bay1", production=True, supply__calibration_due=past)]))
    r = client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    assert r.status_code == 409 and f"supply calibration overdue since {past}" in r.json()["detail"]


def test_start_refused_when_instruments_do_not_answer(station_file: Callable[..., str]) -> None:
    # a real-hardware station whose instruments are on a port nobody listens on
    nowhere = "TCPIP::127.0.0.1::9::SOCKET"
    path = station_file("bay9", simulator=None, supply__resource=nowhere, supply__timeout_s=0.5,
                        load__resource=nowhere, load__timeout_s=0.5)
    client = logged_in(client_for([path]))
    r = client.post("/api/benches/bay9/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    assert r.status_code == 409 and "instruments not answering" in r.json()["detail"]


def test_two_starts_on_one_bench_refused(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    r = client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=ORIGIN)
    assert r.status_code == 409 and "already running" in r.json()["detail"]
    client.post("/api/benches/bay1/stop", json={"confirm": True}, headers=ORIGIN)
    wait_for(lambda: client.get("/api/benches/bay1").json()["state"] == "finished", 60, "stop")


def test_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        AccessPolicy("0.0.0.0", 8470)
    client = client_for([None], host="0.0.0.0", operator_secret="s3cret-op", engineer_secret="s3cret-eng")
    assert client.get("/api/benches").status_code == 401
    assert client.get("/api/benches", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/api/benches", headers={"Authorization": "Bearer s3cret-op"})
    assert r.status_code == 200 and r.json()[0]["state"] == "idle"
    # browsers need a person's account beyond loopback: a shared role password names nobody
    r = client.post("/api/login", json={"name": "bob", "role": "engineer", "password": "s3cret-eng"},
                    headers=ORIGIN)
    assert r.status_code == 403 and "no accounts" in r.json()["detail"]


def test_cross_origin_requests_refused(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    evil = {"Origin": "http://evil.example"}
    r = client.post("/api/benches/bay1/start", json={"serial": "VS02P-25-004711"}, headers=evil)
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    assert client.get("/api/benches/bay1/events", headers=evil).status_code == 403
    pre = client.options("/api/benches/bay1/start", headers={**evil, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    assert client.get("/api/benches", headers={"Host": "evil.example"}).status_code == 421
    assert client.get("/api/benches/bay1").json()["state"] == "idle"


def test_cli_refuses_public_bind_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bench.ui.cli import app

    monkeypatch.delenv("BENCH_STATION_TOKEN", raising=False)
    monkeypatch.delenv("BENCH_STATION_ENGINEER_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8471"])
    assert result.exit_code == 2 and "needs a token" in result.output
