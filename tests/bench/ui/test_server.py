"""The station server as a line supervisor must certify it (issue 18 items 1-3): real sockets,
a real uvicorn process, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.errors import ConfigError
from bench.store import RunStore
from bench.ui.security import AccessPolicy, bind_sockets, bound_addresses
from tests.bench.ui.conftest import _free_port, wait_for

SERIAL = "VS02P-25-004711"  # the simulated BMS's serial (bench/sim/scenarios/healthy.yaml)


# ---------------------------------------------------------------------------------- item 1
def test_empty_host_binds_every_interface_and_needs_a_token() -> None:
    port = _free_port()
    sockets = bind_sockets("", port)
    try:
        addresses = bound_addresses(sockets)
        assert "0.0.0.0" in addresses  # what "" really binds
        with pytest.raises(ConfigError, match="needs a token"):
            AccessPolicy("", port, bound=addresses)
    finally:
        for sock in sockets:
            sock.close()
    with pytest.raises(ConfigError, match="needs a token"):
        AccessPolicy("", port)  # decided from the resolved addresses, never from the string
    assert AccessPolicy("localhost", port).loopback  # a name that resolves to loopback only


def test_cli_refuses_empty_host_without_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_STATION_")}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bench.cli", "station", "serve", "--host", "",
                             "--port", str(_free_port())], env=env, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs a token" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


def test_beyond_loopback_host_header_is_checked() -> None:
    from fastapi.testclient import TestClient

    from bench.ui.app import build_station, create_app

    port = _free_port()
    policy = AccessPolicy("0.0.0.0", port, operator_secret="op-token", bound=["0.0.0.0"],
                          extra_hosts=("bench-line-3.example",))
    client = TestClient(create_app(build_station([None], policy)))
    auth = {"Authorization": "Bearer op-token"}
    assert client.get("/api/benches", headers={**auth, "Host": f"bench-line-3.example:{port}"}).status_code == 200
    assert client.get("/api/benches", headers={**auth, "Host": f"127.0.0.1:{port}"}).status_code == 200
    # a rebinding DNS name pointing at this machine is refused even with the token
    assert client.get("/api/benches", headers={**auth, "Host": "evil.example"}).status_code == 421
    assert client.post("/api/login", json={"name": "intruder", "role": "engineer"},
                       headers={"Host": f"127.0.0.1:{port}"}).status_code == 403


# ---------------------------------------------------------------------------------- item 2
@pytest.fixture
def silent_postgres() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word: a hung PostgreSQL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    server.close()


def test_hung_database_refuses_in_under_2_s_and_never_freezes_the_station(
        live_server: Callable[..., Any], station_file: Callable[..., str], silent_postgres: int) -> None:
    import psycopg  # noqa: F401  (the driver's one-off import is not what this test measures)

    url = f"postgresql+psycopg://bench:secret@127.0.0.1:{silent_postgres}/bench"
    server = live_server([station_file("bay1", database_url=url)])
    base, origin = server.url, {"Origin": server.url}
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.post("/api/login", json={"name": "alice"}, headers=origin).status_code == 200
        result: dict[str, Any] = {}

        def start() -> None:
            t0 = time.monotonic()
            result["response"] = client.post("/api/benches/bay1/start", json={"serial": SERIAL},
                                             headers=origin)
            result["seconds"] = time.monotonic() - t0

        starter = threading.Thread(target=start)
        starter.start()
        time.sleep(0.3)  # the start is now waiting on the silent database
        with httpx.Client(base_url=base, timeout=5, cookies=client.cookies) as other:
            t0 = time.monotonic()
            page = other.get("/api/benches/bay1")
            assert page.status_code == 200 and time.monotonic() - t0 < 1.0  # not frozen (it was 55 s)
            with other.stream("GET", "/api/benches/bay1/events", headers=origin) as stream:
                first = next(line for line in stream.iter_lines() if line.startswith("data:"))
            assert json.loads(first[5:])["id"] == "bay1" and time.monotonic() - t0 < 1.0
        starter.join(10)
        response = result["response"]
        assert response.status_code == 409 and "records store unreachable" in response.json()["detail"]
        assert result["seconds"] < 2.0, result["seconds"]
        t0 = time.monotonic()
        runs = client.get("/api/runs")
        assert runs.status_code == 503 and time.monotonic() - t0 < 2.0
        assert client.get("/api/benches/bay1").json()["state"] == "idle"


def test_store_connect_timeout_bounds_a_hung_postgresql(silent_postgres: int) -> None:
    from bench.errors import StoreError

    store = RunStore(f"postgresql+psycopg://bench:x@127.0.0.1:{silent_postgres}/bench", timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="ping"):
        store.ping()
    assert time.monotonic() - t0 < 6  # libpq's 2 s minimum connect timeout, not for ever
    store.close()


# ---------------------------------------------------------------------------------- item 3
def _serve(station: str, port: int, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "station", "serve", "--station", station,
                             "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/login", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None
    wait_for(up, 60, "the station server")
    assert proc.poll() is None, proc.communicate()
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_stops_safely_records_aborted_and_exits(
        station_file: Callable[..., str], tmp_path: Path, sig: signal.Signals) -> None:
    path = station_file("bay1")
    port = _free_port()
    proc = _serve(path, port, tmp_path)
    base, origin = f"http://127.0.0.1:{port}", {"Origin": f"http://127.0.0.1:{port}"}
    stream_lines: list[str] = []
    try:
        client = httpx.Client(base_url=base, timeout=10)
        assert client.post("/api/login", json={"name": "eve", "role": "engineer"},
                           headers=origin).status_code == 200
        assert client.post("/api/benches/bay1/speed", json={"speed": 20}, headers=origin).status_code == 200
        r = client.post("/api/benches/bay1/start", json={"serial": SERIAL}, headers=origin)
        assert r.status_code == 200, r.text
        prompt = wait_for(lambda: client.get("/api/benches/bay1").json()["prompt"], 60, "prompt")
        client.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "OK"},
                    headers=origin)
        wait_for(lambda: (t := client.get("/api/benches/bay1/truth").json())["supply_output_on"]
                 or t["load_input_on"], 60, "an output on")

        def watch() -> None:  # a browser with the live view open
            with httpx.Client(base_url=base, timeout=60, cookies=client.cookies) as viewer, \
                    viewer.stream("GET", "/api/benches/bay1/events", headers=origin) as stream:
                for line in stream.iter_lines():
                    stream_lines.append(line)

        viewer = threading.Thread(target=watch, daemon=True)
        viewer.start()
        wait_for(lambda: stream_lines, 10, "the live stream")
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(45)
        elapsed = time.monotonic() - t0
        viewer.join(5)
        assert not viewer.is_alive(), "the live stream was not closed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert elapsed < 40, elapsed
    runs_dir = tmp_path / "runs"
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["verdict"] == "aborted"
    assert record["abort_reason"] == f"station shut down by {sig.name}"
    assert record["sim_truth"]["outputs_off_at_end"] is True
    store = RunStore(f"sqlite:///{runs_dir / 'bench.db'}")
    try:
        assert [r.verdict for r in store.runs()] == ["aborted"]
    finally:
        store.close()
