"""Fixtures for the operator station tests: station files, a live uvicorn server, Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.config import SIM_STATION
from bench.ui.app import Station, build_station, create_app
from bench.ui.security import AccessPolicy

CHROMIUM = os.environ.get("BENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui"


@pytest.fixture
def station_file(tmp_path: Path) -> Callable[..., str]:
    """Write a copy of the embedded simulated station with changes; records go under tmp_path."""

    def make(name: str = "bay1", **changes: Any) -> str:
        data = yaml.safe_load(SIM_STATION.read_text(encoding="utf-8"))
        data["name"] = name
        data["runs_dir"] = str(tmp_path / "runs")
        data["database_url"] = f"sqlite:///{tmp_path / 'runs' / 'bench.db'}"
        for key, value in changes.items():
            target = data
            *parents, leaf = key.split("__")
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = value
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return str(path)

    return make


def make_station(stations: list[str | None], *, host: str = "127.0.0.1", port: int = 8470,
                 operator_secret: str | None = None, engineer_secret: str | None = None,
                 procedures: list[Path] | None = None) -> Station:
    policy = AccessPolicy(host, port, operator_secret=operator_secret, engineer_secret=engineer_secret,
                          extra_hosts=("testserver",))
    return build_station(stations, policy, procedures=procedures)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, station: Station, port: int) -> None:
        import uvicorn

        self.station = station
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(create_app(station), host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for(lambda: self.server.started, 20, "uvicorn start")
        return self

    def __exit__(self, *exc: object) -> None:
        for slot in self.station.slots.values():
            if slot.busy:
                with contextlib.suppress(ValueError):  # it may have ended meanwhile
                    slot.stop(_TEST_USER)
            slot.join(30)
        self.server.should_exit = True
        self.thread.join(10)


from bench.ui.security import User  # noqa: E402

_TEST_USER = User("pytest", "engineer")


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(stations: list[str | None], **kwargs: Any) -> LiveServer:
        port = _free_port()
        server = LiveServer(make_station(stations, port=port, **kwargs), port)
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium binary at {CHROMIUM} (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    if errors:  # a script error silently freezes the screen: it fails the test that caused it
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"error-{request.node.name}.png"))
    context.close()
    assert not errors, errors


def login(page: Any, base: str, name: str = "alice", role: str = "operator") -> None:
    page.goto(f"{base}/login")
    page.fill("#name", name)
    page.select_option("#role", role)
    page.click("#login-button")
    page.wait_for_url(f"{base}/")


def wait_prompt(page: Any, selector: str = "#prompt-choices button", timeout_s: float = 60.0) -> None:
    """Wait for the prompt on screen; a refusal or a stuck screen fails with what the page shows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.locator(selector).count() and page.locator(selector).first.is_visible():
            return
        refusal = page.locator("#refusal")
        if refusal.is_visible():
            raise AssertionError(f"no prompt, the screen says: {refusal.inner_text()}")
        page.wait_for_timeout(100)
    shown = {name: page.locator(name).text_content() for name in ("#state", "#step", "#refusal")}
    raise AssertionError(f"no prompt within {timeout_s:.0f} s; screen: {shown}")


def png_mean_rgb(png: bytes) -> tuple[float, float, float]:
    """Mean colour of a small 8-bit RGB(A) PNG (a clipped screenshot): no imaging library needed."""
    import struct
    import zlib

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), "8-bit RGB/RGBA expected"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    prev, total = bytearray(stride), [0, 0, 0]
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], (prev[i - channels] if i >= channels else 0)
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(width):
            for k in range(3):
                total[k] += line[x * channels + k]
        prev = line
    n = width * height
    return (total[0] / n, total[1] / n, total[2] / n)
