"""The report of a real run, as a user sees it in Chromium (issue 15, point 7): a passing check's
message is not printed like a failure, the as-received SOC/SOH read at the start are shown, and
no two step labels of the divergence plot overlap. Measured in the browser (computed styles and
the layout boxes of the SVG text), not on the template's source."""

from __future__ import annotations

import json
import re
import subprocess
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from bench.record import RunRecord
from bench.run import RunRequest, execute_run
from reports.pdf import find_browser

REPO = Path(__file__).resolve().parents[2]
SHORT = REPO / "tests" / "bench" / "engine" / "procedures" / "short_cycle.yaml"
HEALTHY_SOC_PCT = 60.0  # bench/sim/scenarios/healthy.yaml: the pack as delivered

pytestmark = pytest.mark.skipif(find_browser() is None, reason="no Chromium on PATH (apt-get install chromium)")

# Runs in the page once it is laid out; the result is written into the DOM that --dump-dom prints.
_MEASURE = """
<script>
(() => {
  const box = el => { const b = el.getBBox(); return [b.x, b.y, b.width, b.height]; };
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => ({
    title: svg.getAttribute('aria-label'), width: svg.viewBox.baseVal.width,
    labels: [...svg.querySelectorAll('text.vlabel')].map(t => ({text: t.textContent, box: box(t)}))}));
  const rows = [...document.querySelectorAll('#results-table tr')].slice(1).map(tr => {
    const cells = tr.querySelectorAll('td');
    return {result: cells[4].textContent.trim(), texts: [...cells[0].querySelectorAll('span')].map(s => {
      const style = getComputedStyle(s);
      return {text: s.textContent, color: style.color, weight: parseInt(style.fontWeight, 10)};
    })};
  });
  const received = {};
  document.querySelectorAll('#uut dt').forEach(dt => { received[dt.textContent] = dt.nextElementSibling.textContent; });
  const failColor = getComputedStyle(document.querySelector('td.fail, .verdict-fail') || document.body).backgroundColor;
  const out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify({charts, rows, received, failColor});
  document.body.appendChild(out);
})();
</script>
"""


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecord, dict[str, Any]]:
    """A real failing run of the short cycle (one check passes, one fails), measured in Chromium."""
    root = tmp_path_factory.mktemp("seen")
    record = execute_run(RunRequest(procedure=SHORT, params={"discharge_current_a": "30A"}, out_dir=root / "run",
                                    yes=True, watchdog=False, db=f"sqlite:///{root / 'bench.db'}"), console=None)
    assert record.verdict == "fail"
    html = (root / "run" / "report.html").read_text(encoding="utf-8")
    page = root / "measured.html"
    page.write_text(html.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    browser = find_browser()
    assert browser is not None
    dumped = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={root / 'profile'}", "--window-size=1280,4000", "--dump-dom",
                             page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    match = re.search(r'<pre id="measured">(.*?)</pre>', dumped, re.S)
    assert match, dumped[-2000:]
    text = match[1].replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return record, json.loads(text)


def test_a_passing_checks_message_is_not_printed_like_a_failure(seen) -> None:
    _, page = seen
    rows = {row["result"]: row for row in page["rows"]}
    assert set(rows) == {"PASS", "FAIL"}
    fail_color = page["failColor"]
    passing = rows["PASS"]["texts"]
    assert any("in [5, 100]" in t["text"] for t in passing)  # the judgement is still shown
    for text in passing:
        assert text["color"] != fail_color and text["weight"] < 600, text
    # a failing check's message stays red and bold
    failing = [t for t in rows["FAIL"]["texts"] if "out of limits" in t["text"]]
    assert failing and all(t["color"] == fail_color and t["weight"] >= 700 for t in failing)


def test_the_as_received_soc_and_soh_are_shown(seen) -> None:
    record, page = seen
    received = record.pack.as_received
    assert received.soc_pct is not None and abs(received.soc_pct - HEALTHY_SOC_PCT) < 0.5
    assert received.soh_pct is not None and 0 < received.soh_pct <= 100
    assert page["received"]["As received SOC"] == f"{received.soc_pct:.1f} %"
    assert page["received"]["As received SOH"] == f"{received.soh_pct:.1f} %"


def test_no_two_step_labels_of_the_divergence_plot_overlap(seen) -> None:
    _, page = seen
    (chart,) = [c for c in page["charts"] if c["title"].startswith("Cell divergence")]
    labels = chart["labels"]
    assert {"rest", "discharge", "verify"} <= {label["text"] for label in labels}
    for a, b in combinations(labels, 2):
        (ax, ay, aw, ah), (bx, by, bw, bh) = a["box"], b["box"]
        overlap = ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
        assert not overlap, (a, b)
    for label in labels:  # and none is cut off at the chart's edges
        x, _, w, _ = label["box"]
        assert x >= 0 and x + w <= chart["width"], label
