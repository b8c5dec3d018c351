"""A barcode scanner at the operator screen (issue 18 items 4 and 8), in Debian's Chromium.

A scanner is a keyboard that types a burst of characters (a few ms apart) and ends with Enter
(or CR+LF): ``scan`` plays one inside the page; a person is typed with Playwright's keyboard at
``delay=120`` ms and clicks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench.ui.conftest import login, wait_for, wait_prompt
from tests.bench.ui.test_browser import SERIAL, record_of, shot

NEXT_PACK = "VS02P-25-004712"
NUMBER_PROCEDURE = """\
procedure: counted
version: 1.0.0
steps:
  - id: count
    description: the operator counts the screws
    prompt:
      message: "How many mm is the terminal gap?"
      input: {name: gap_mm, type: number}
  - id: judge
    check:
      - {id: gap, description: "terminal gap", value: gap_mm, unit: mm, low: 5, high: 6}
"""


# A scanner inside the page: key events a few ms apart at most, whatever the load on the test machine
# (Playwright's keyboard.type is one round trip per key, 50+ ms apart on a loaded CI machine, which
# reads as a fast typist). Each key goes to the focused element, with the browser's default action
# reproduced: a character is typed into an input, Enter on a button presses it, unless prevented.
_SCANNER_JS = """([text, trailer]) => {
  const keys = [...text, ...trailer];
  for (const key of keys) {
    const target = document.activeElement || document.body;
    const down = new KeyboardEvent("keydown", {key, bubbles: true, cancelable: true});
    const go = target.dispatchEvent(down);
    if (go && key.length === 1 && "value" in target) {
      target.value += key;
      target.dispatchEvent(new Event("input", {bubbles: true}));
    } else if (go && key === "Enter" && target.tagName === "BUTTON") {
      target.click();
    }
    target.dispatchEvent(new KeyboardEvent("keyup", {key, bubbles: true}));
  }
}"""


def scan(page: Any, text: str, trailer: str = "Enter") -> None:
    page.evaluate(_SCANNER_JS, [text, trailer.split("+")])


def assert_chart_drawn_at_its_pixel_width(page: Any) -> None:
    """The SOC chart's user unit is one pixel at any window width: its axis labels are not
    stretched sideways (a fixed 600-unit viewBox with preserveAspectRatio="none" stretched them)."""
    for width in (1280, 760):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)
        box, view = page.evaluate("() => { const s = document.querySelector('#chart');"
                                  " return [s.clientWidth, s.viewBox.baseVal.width]; }")
        assert box > 0 and abs(box - view) <= 1, (width, box, view)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_scan_never_answers_a_prompt(live_server: Callable[..., Any], station_file: Callable[..., str],
                                       page: Any) -> None:
    server = live_server([station_file("bay1")])
    slot = server.station.slots["bay1"]
    login(page, server.url, "alice")
    page.focus("#serial")
    scan(page, SERIAL)
    wait_prompt(page)
    assert_chart_drawn_at_its_pixel_width(page)
    # the worst case: the "OK" button has the focus when the next pack's label is scanned
    page.focus("#prompt-choices button:has-text('OK')")
    scan(page, NEXT_PACK)
    page.wait_for_timeout(800)
    assert slot.prompter is not None and slot.prompter.pending is not None, "the scan answered the prompt"
    assert slot.state == "waiting"
    assert page.locator("#serial").input_value() == NEXT_PACK
    assert NEXT_PACK in page.locator("#scan-note").inner_text()
    assert page.locator("#refusal").is_hidden()
    shot(page, "11-scan-during-prompt")
    page.locator("#prompt-choices button", has_text="OK").click()  # the deliberate answer
    page.wait_for_selector("#verdict.pass", state="visible", timeout=120_000)
    answered = [e for e in record_of(server, "bay1")["events"] if "answered" in e["message"]]
    assert len(answered) == 1 and answered[0]["actor"] == "alice (self-declared) (operator)", answered  # logged once


def test_scan_while_verdict_shown_starts_next_pack_and_crlf_is_not_a_refusal(
        live_server: Callable[..., Any], station_file: Callable[..., str], page: Any) -> None:
    server = live_server([station_file("bay1")])
    slot = server.station.slots["bay1"]
    login(page, server.url, "alice")
    page.focus("#serial")
    scan(page, SERIAL, "Enter+Enter")  # CR+LF, as many scanners send
    wait_prompt(page)
    page.wait_for_timeout(300)
    assert page.locator("#refusal").is_hidden(), page.locator("#refusal").inner_text()
    first = slot.view.run_id
    page.locator("#prompt-choices button", has_text="OK").click()
    page.wait_for_selector("#verdict.pass", state="visible", timeout=120_000)
    # the chart streamed to the browser is the station's whole-run history, with labelled axes
    page.wait_for_timeout(300)
    assert page.evaluate("chart") == slot.view.chart.points()
    texts = page.locator("#chart text").all_text_contents()
    assert {"SOC (%)", "bench time (h:mm)", "0:00", "100"} <= set(texts), texts
    # disabled buttons look disabled: Stop is no longer red once the run has ended
    stop_bg = page.eval_on_selector("#stop", "b => getComputedStyle(b).backgroundColor")
    assert page.locator("#stop").is_disabled() and stop_bg == "rgb(213, 216, 220)", stop_bg
    scan(page, SERIAL)  # the same pack again, straight from the verdict screen: a retest
    wait_for(lambda: slot.view.run_id not in (None, first), 30, "the next run")
    page.wait_for_selector("#verdict", state="hidden", timeout=10_000)
    assert page.locator("#refusal").is_hidden()
    assert slot.view.retest_count == 1
    start_bg = page.eval_on_selector("#start", "b => getComputedStyle(b).backgroundColor")
    assert page.locator("#start").is_disabled() and start_bg == "rgb(213, 216, 220)", start_bg
    # a person's double Enter in the serial field: no refusal either
    page.focus("#serial")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert page.locator("#refusal").is_hidden(), page.locator("#refusal").inner_text()


def test_number_prompt_scan_locale_and_error_next_to_the_field(
        live_server: Callable[..., Any], station_file: Callable[..., str], page: Any,
        tmp_path: Path) -> None:
    procedure = tmp_path / "counted.yaml"
    procedure.write_text(NUMBER_PROCEDURE)
    server = live_server([station_file("bay1")], procedures=[procedure])
    slot = server.station.slots["bay1"]
    login(page, server.url, "bob")
    page.focus("#serial")
    scan(page, SERIAL)
    wait_prompt(page, "#prompt-value")
    assert page.evaluate("document.activeElement.id") == "prompt-value"
    scan(page, NEXT_PACK)  # into the number field: must neither answer nor stay in the field
    page.wait_for_timeout(500)
    assert slot.prompter is not None and slot.prompter.pending is not None
    assert page.locator("#prompt-value").input_value() == ""
    page.click("#prompt-send")  # empty: the reason appears next to the field
    page.wait_for_selector("#prompt-error:not(.hidden)")
    assert "type a number" in page.locator("#prompt-error").inner_text()
    page.fill("#prompt-value", "")
    page.type("#prompt-value", "1,234", delay=120)
    page.click("#prompt-send")
    page.wait_for_selector("#prompt-error:has-text('ambiguous')")
    page.fill("#prompt-value", "")
    page.type("#prompt-value", "5,2", delay=120)  # a comma decimal mark: 5.2, never 52
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict.pass", state="visible", timeout=60_000)
    record = record_of(server, "bay1")
    assert [c["value"] for c in record["checks"] if c["id"] == "gap"] == [5.2]
    assert page.locator("#prompt-error").is_hidden()
