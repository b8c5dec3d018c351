"""Run ``bench sim serve --json`` as a separate process for tests (another process, real sockets).

``served_bench(...)`` starts it, parses the one JSON line it prints, and on exit stops it with
SIGTERM and asserts it exits cleanly (code 0, no traceback on stderr).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0  # import + server start on a slow shared 2-core machine


def bench_command(*args: str) -> list[str]:
    """The ``bench`` CLI run by this interpreter (what the console script calls: bench.cli:main)."""
    return [sys.executable, "-c", "from bench.cli import main; main()", *args]


def run_bench(*args: str, timeout: float = 120.0, cwd: Path | None = None,
              ) -> subprocess.CompletedProcess[str]:
    """``bench ARGS`` with stdout/stderr captured (not a tty, default terminal width)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    return subprocess.run(bench_command(*args), check=False, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or REPO, env=env, stdin=subprocess.DEVNULL)


class ServedBench:
    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info
        self.exit_code: int | None = None
        self.stderr = ""

    @property
    def supply(self) -> str:
        return str(self.info["supply"]["resource"])

    @property
    def load(self) -> str:
        return str(self.info["load"]["resource"])

    @property
    def can_url(self) -> str:
        return str(self.info["adapter"]["channel"])

    @property
    def pty(self) -> str:
        return str(self.info["adapter"]["pty"])

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.exit_code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                _, self.stderr = self.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, self.stderr = self.proc.communicate()
                raise AssertionError("bench sim serve did not stop within 20 s of SIGTERM") from None
            self.exit_code = self.proc.returncode
        return self.exit_code


def _read_json_line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            return dict(json.loads(line))
        if proc.poll() is not None:
            break
    proc.kill()
    _, err = proc.communicate()
    raise AssertionError(f"bench sim serve printed no endpoints (exit {proc.returncode}): {err}")


@contextmanager
def served_bench(*args: str) -> Iterator[ServedBench]:
    proc = subprocess.Popen(bench_command("sim", "serve", "--json", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO)
    served = ServedBench(proc, _read_json_line(proc))
    try:
        yield served
    finally:
        if served.exit_code is None:
            code = served.stop()
            assert code == 0, f"bench sim serve exited {code} on SIGTERM: {served.stderr}"
            assert "Traceback" not in served.stderr, served.stderr
