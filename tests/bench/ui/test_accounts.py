"""Per-person accounts (issue 18 item 6): salted hashes, roles per account, badges, expiring
sessions, throttled log-ins, and a record that names the person who proved who they are."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bench.ui.accounts import Accounts, hash_secret, verify_secret
from bench.ui.app import build_station, create_app
from bench.ui.cli import app as station_cli
from bench.ui.security import AccessPolicy
from tests.bench.ui.conftest import wait_for

BASE = "http://127.0.0.1:8470"
ORIGIN = {"Origin": BASE}
SERIAL = "VS02P-25-004711"


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    people = Accounts(tmp_path / "accounts.yaml", [])
    people.set("alice", ["operator"], "4711", badge="0004417823")
    people.set("bob", ["operator"], "correct horse")
    people.set("eve", ["operator", "engineer"], "s3cret-eng")
    people.save()
    return Accounts.load(people.path)


def station_client(accounts: Accounts, stations: list[str | None], *, host: str = "127.0.0.1",
                   **policy: float) -> TestClient:
    access = AccessPolicy(host, 8470, bound=[host], accounts=accounts, extra_hosts=("testserver",),
                          **policy)  # type: ignore[arg-type]
    return TestClient(create_app(build_station(stations, access)), base_url=BASE)


def login(client: TestClient, name: str, password: str, role: str | None = None) -> int:
    body = {"name": name, "password": password, **({"role": role} if role else {})}
    return client.post("/api/login", json=body, headers=ORIGIN).status_code


def test_secrets_are_salted_scrypt_hashes(accounts: Accounts) -> None:
    one, two = hash_secret("4711"), hash_secret("4711")
    assert one != two and one.startswith("scrypt$16384$8$1$")  # a fresh salt each time
    assert verify_secret("4711", one) and not verify_secret("4712", one)
    text = accounts.path.read_text()
    assert "4711" not in text and "correct horse" not in text and "0004417823" not in text
    assert accounts.path.stat().st_mode & 0o077 == 0  # readable by the station's owner only


def test_cli_adds_an_account_asking_for_the_pin_twice(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    result = CliRunner().invoke(station_cli, ["account", "add", "carol", "--file", str(path), "--role",
                                              "operator", "--badge"], input="2468\n2468\n99887766\n")
    assert result.exit_code == 0, result.output
    people = Accounts.load(path)
    assert people.authenticate("carol", "2468") is not None
    assert people.authenticate("99887766", "2468").name == "carol"  # type: ignore[union-attr]
    bad = CliRunner().invoke(station_cli, ["account", "add", "dan", "--file", str(path)], input="12\n12\n")
    assert bad.exit_code == 2 and "at least 4" in bad.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"accounts": [{"name": "x", "roles": ["operator"], "secret": "plain"}]}))
    with pytest.raises(Exception, match="not a salted hash"):
        Accounts.load(broken)


def test_login_checks_password_role_and_badge(accounts: Accounts) -> None:
    client = station_client(accounts, [None], host="0.0.0.0")
    assert login(client, "alice", "wrong") == 403
    assert login(client, "mallory", "4711") == 403           # self-declared names are gone
    assert login(client, "alice", "4711", role="engineer") == 403  # not alice's role
    assert login(client, "0004417823", "4711") == 200        # badge scan + PIN
    me = client.get("/api/whoami").json()
    assert me == {"name": "alice", "role": "operator", "secured": True, "authenticated": True,
                  "loopback": False}
    assert login(client, "eve", "s3cret-eng", role="engineer") == 200
    assert client.get("/api/whoami").json()["role"] == "engineer"


def test_logins_are_rate_limited(accounts: Accounts) -> None:
    client = station_client(accounts, [None])
    for _ in range(5):
        assert login(client, "bob", "guess") == 403
    r = client.post("/api/login", json={"name": "bob", "password": "correct horse"}, headers=ORIGIN)
    assert r.status_code == 429 and "too many failed log-ins" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) > 200
    # the same client guessing other names is throttled too
    assert login(client, "alice", "4711") == 429


def test_sessions_expire(accounts: Accounts) -> None:
    client = station_client(accounts, [None], session_idle_s=0.5)
    assert login(client, "bob", "correct horse") == 200
    assert client.get("/api/whoami").status_code == 200
    time.sleep(0.8)
    assert client.get("/api/whoami").status_code == 401


def test_record_names_the_authenticated_people(accounts: Accounts, station_file: Callable[..., str]) -> None:
    starter = station_client(accounts, [station_file("bay1")])
    assert login(starter, "0004417823", "4711") == 200  # alice by badge
    assert starter.post("/api/benches/bay1/start", json={"serial": SERIAL}, headers=ORIGIN).status_code == 200
    prompt = wait_for(lambda: starter.get("/api/benches/bay1").json()["prompt"], 60, "the prompt")
    answerer = TestClient(starter.app, base_url=BASE)
    assert login(answerer, "bob", "correct horse") == 200
    assert answerer.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "OK"},
                         headers=ORIGIN).status_code == 200
    assert answerer.post("/api/benches/bay1/stop", json={"confirm": True}, headers=ORIGIN).status_code == 200
    done = wait_for(lambda: (s := starter.get("/api/benches/bay1").json())["state"] == "finished" and s,
                    60, "the stop")
    slot = starter.app.state.station.slots["bay1"]  # type: ignore[attr-defined]
    record = json.loads((Path(slot.station.runs_dir) / done["run"]["run_id"] / "record.json").read_text())
    assert record["operator"] == "alice"
    answered = [e for e in record["events"] if "answered" in e["message"]]
    assert [e["actor"] for e in answered] == ["bob (operator)"]
    assert record["abort_reason"].startswith("stopped by bob (operator)")


def test_a_name_nobody_proved_is_recorded_as_self_declared() -> None:
    """Issue 18 point 6: without an accounts file a loopback station takes any typed name; the
    record must not pass it off as a person."""
    from bench.ui.security import AccessPolicy

    policy = AccessPolicy("127.0.0.1", 8477)
    user = policy.login("carol", "operator", "")
    assert not user.authenticated
    assert user.recorded_name == "carol (self-declared)"
    assert user.label == "carol (self-declared) (operator)"
    token_policy = AccessPolicy("127.0.0.1", 8477, operator_secret="s3cret")
    script = token_policy.bearer("s3cret", "bob")
    assert script is not None and script.recorded_name == "operator token (claims bob)"
