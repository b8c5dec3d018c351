"""Operator station benchmark (issue 10): first page load and live-update latency.

    python benchmarks/bench_ui.py

* first load: navigation start -> load event of the operator screen, logged in, in headless
  Chromium (median of 5 cold contexts); target < 1 s;
* live update: wall time from the engine publishing a sample (stamped by the station when its
  EventBus subscriber receives it) to the page's EventSource handler, over an EOL run paced at
  60x real time; target < 200 ms (p95).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright

from tests.bench.ui.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServer, _free_port, make_station


def main() -> int:
    import yaml

    from bench.config import SIM_STATION

    with tempfile.TemporaryDirectory() as tmp:
        data = yaml.safe_load(SIM_STATION.read_text(encoding="utf-8"))
        data.update(name="bench1", runs_dir=f"{tmp}/runs", database_url=f"sqlite:///{tmp}/runs/bench.db")
        station_path = Path(tmp) / "bench1.yaml"
        station_path.write_text(yaml.safe_dump(data), encoding="utf-8")
        port = _free_port()
        server = LiveServer(make_station([str(station_path)], port=port), port).__enter__()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                loads = []
                for _ in range(5):
                    context = browser.new_context(bypass_csp=True)
                    page = context.new_page()
                    page.goto(f"{server.url}/login")
                    page.fill("#name", "bench")
                    page.click("#login-button")
                    page.wait_for_url(f"{server.url}/")
                    page.wait_for_selector("#state")
                    t0 = time.perf_counter()
                    page.reload(wait_until="load")
                    loads.append(time.perf_counter() - t0)
                    context.close()
                context = browser.new_context(bypass_csp=True)
                page = context.new_page()
                page.goto(f"{server.url}/login")
                page.fill("#name", "bench")
                page.click("#login-button")
                page.wait_for_url(f"{server.url}/")
                server.station.slots["bench1"].speed = 60.0
                page.fill("#serial", "VS02P-BENCH-1")
                page.keyboard.press("Enter")
                page.wait_for_selector("#prompt-choices button", timeout=60_000)
                page.locator("#prompt-choices button", has_text="OK").click()
                page.wait_for_timeout(20_000)
                latencies = page.evaluate("window.__latencies.slice(5)")
                context.close()
                browser.close()
        finally:
            server.__exit__()
    median_load = statistics.median(loads)
    p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
    print(f"first load (reload, logged in): median {median_load * 1000:.0f} ms, "
          f"max {max(loads) * 1000:.0f} ms (target < 1000 ms)")
    print(f"live update engine sample -> browser: n={len(latencies)} "
          f"median {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, "
          f"max {max(latencies):.0f} ms (target < 200 ms)")
    return 0 if median_load < 1.0 and p95 < 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
