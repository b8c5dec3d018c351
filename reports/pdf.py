"""PDF of the HTML report, printed by headless Chromium (the most faithful renderer available).

Optional: without a Chromium/Chrome binary :func:`html_to_pdf` raises a :class:`BenchError`
that says what to install; the HTML report is complete on its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.errors import BenchError

#: Environment variable naming the browser binary, when it is not on PATH under a usual name.
BROWSER_ENV_VAR = "BENCH_CHROMIUM"
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_QUIET_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
)
BROWSER_TIMEOUT_S = 120.0


def find_browser() -> str | None:
    configured = os.environ.get(BROWSER_ENV_VAR)
    if configured:
        return configured
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def run_browser(args: list[str], output: Path) -> None:
    """Run headless Chromium with ``args`` in a throwaway profile; ``output`` must appear."""
    browser = find_browser()
    if browser is None:
        raise BenchError(
            "report PDF/screenshot: no Chromium found (install it, e.g. `apt-get install chromium`, "
            f"or set {BROWSER_ENV_VAR}); the HTML report is unaffected"
        )
    output.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        try:
            result = subprocess.run(
                [browser, *_QUIET_FLAGS, f"--user-data-dir={profile}", *args],
                capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{browser}: no result after {BROWSER_TIMEOUT_S:.0f} s") from exc
    if not output.is_file() or output.stat().st_size == 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"{browser} exited {result.returncode} without writing {output}: {detail}")


def html_to_pdf(html: Path, pdf: Path) -> Path:
    """Print ``html`` to ``pdf`` (A4, print CSS, no browser header/footer)."""
    run_browser(["--no-pdf-header-footer", f"--print-to-pdf={pdf.resolve()}", html.resolve().as_uri()], pdf)
    return pdf


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 4000) -> Path:
    run_browser([f"--screenshot={png.resolve()}", f"--window-size={width},{height}", "--hide-scrollbars",
                 html.resolve().as_uri()], png)
    return png
