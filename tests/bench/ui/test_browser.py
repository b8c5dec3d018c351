"""Acceptance (issue 10): the operator station in a real headless Chromium, on the simulated bench.

Screenshots of every state are kept under test-artifacts/ui/ and the verdict banner's colour is
sampled from the screenshot pixels (what the operator sees), not only read from the page source.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.bench.ui.conftest import ARTIFACTS, login, png_mean_rgb, wait_prompt

SERIAL = "VS02P-25-004711"  # what the simulated BMS reports (bench/sim/scenarios/healthy.yaml)
GREEN, RED, ORANGE = (0x1B, 0x7F, 0x3A), (0xC6, 0x28, 0x28), (0xE6, 0x51, 0x00)


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def banner_colour(page: Any) -> tuple[float, float, float]:
    """Mean colour of a patch of the verdict banner, away from its text."""
    box = page.locator("#verdict").bounding_box()
    assert box is not None and box["width"] > 1000 and box["height"] > 800  # full screen
    clip = {"x": box["x"] + 10, "y": box["y"] + 10, "width": 24, "height": 24}
    return png_mean_rgb(page.screenshot(clip=clip))


def assert_colour(actual: tuple[float, float, float], expected: tuple[int, int, int]) -> None:
    assert all(abs(a - e) < 12 for a, e in zip(actual, expected, strict=True)), (actual, expected)


def start_from_scanner(page: Any, serial: str) -> None:
    page.focus("#serial")
    page.keyboard.type(serial)      # a barcode scanner is a keyboard...
    page.keyboard.press("Enter")    # ...that ends with Enter


def record_of(server: Any, bench: str) -> dict[str, Any]:
    slot = server.station.slots[bench]
    run_id = slot.view.run_id
    return json.loads((slot.run_dirs[run_id] / "record.json").read_text(encoding="utf-8"))


def test_scan_start_answer_prompt_see_pass(live_server: Callable[..., Any], station_file: Callable[..., str],
                                          page: Any) -> None:
    server = live_server([station_file("bay1")])
    login(page, server.url, "alice")
    shot(page, "01-operator-idle")
    start_from_scanner(page, "VS02P-25-004711")
    wait_prompt(page)
    assert page.locator("#state").inner_text() == "waiting"
    shot(page, "02-prompt")
    page.locator("#prompt-choices button", has_text="OK").click()
    page.wait_for_selector("#verdict.pass", state="visible", timeout=120_000)
    shot(page, "03-pass")
    assert page.locator("#verdict-word").inner_text() == "PASS"
    assert_colour(banner_colour(page), GREEN)
    assert "first test" in page.locator("#verdict-serial").inner_text()
    # the report is one click away
    with page.expect_popup() as popup:
        page.click("#verdict-report")
    report = popup.value
    report.wait_for_load_state()
    assert "VS02P-25-004711" in report.content()
    record = record_of(server, "bay1")
    assert record["verdict"] == "pass" and record["operator"] == "alice (self-declared)"
    assert any(e["kind"] == "operator" and e["actor"] == "alice (self-declared) (operator)" for e in record["events"])


def test_bms_that_cannot_learn_fails_with_the_checks_words(
        live_server: Callable[..., Any], station_file: Callable[..., str], page: Any) -> None:
    server = live_server([station_file("bay2", simulator__scenario="bms_cannot_learn")])
    login(page, server.url, "bob")
    start_from_scanner(page, "VS02P-24-003390")  # that scenario's BMS
    wait_prompt(page)
    page.keyboard.press("Enter")  # no choice has the focus: a stray Enter answers nothing
    page.wait_for_timeout(300)
    assert page.locator("#prompt-choices button").count() == 2
    page.focus("#prompt-choices button >> nth=0")  # a deliberate choice: Tab to OK (or click), Enter
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict.fail", state="visible", timeout=120_000)
    shot(page, "04-fail")
    assert_colour(banner_colour(page), RED)
    failed = page.locator("#verdict-checks li").all_inner_texts()
    assert any("BMS learned capacity matches the rated capacity" in t and "measured 183 Ah" in t
               for t in failed), failed
    # the version check names the version the BMS reported, and FAIL says what to do next
    assert any("software version" in t and "the BMS reports software" in t for t in failed), failed
    assert "quarantine" in page.locator("#verdict-action").inner_text()
    assert record_of(server, "bay2")["verdict"] == "fail"


def test_stop_shows_aborted_with_outputs_off(live_server: Callable[..., Any],
                                             station_file: Callable[..., str], page: Any) -> None:
    server = live_server([station_file("bay3")])
    slot = server.station.slots["bay3"]
    slot.speed = 20.0  # paced: the run is still going when the operator reaches for stop
    login(page, server.url, "carol")
    start_from_scanner(page, "VS02P-25-004711")
    wait_prompt(page)
    page.locator("#prompt-choices button", has_text="OK").click()
    # the shipping discharge lasts tens of bench minutes: at 20x the load is surely still on
    page.wait_for_selector("#step:has-text('discharge_to_shipping')", timeout=120_000)
    truth = slot.truth()
    assert truth is not None and (truth["supply_output_on"] or truth["load_input_on"])
    page.click("#stop")
    page.keyboard.press("Escape")  # Escape = "continue", never abort
    page.wait_for_timeout(300)
    assert slot.busy and page.locator("#verdict").is_hidden()
    page.click("#stop")
    shot(page, "05-stop-confirm")
    page.click("#stop-confirm")
    page.wait_for_selector("#verdict.aborted", state="visible", timeout=60_000)
    shot(page, "06-aborted")
    assert_colour(banner_colour(page), ORANGE)
    assert "stopped by carol" in page.locator("#verdict-reason").inner_text()
    end_truth = slot.truth()
    assert end_truth is not None
    assert end_truth["supply_output_on"] is False and end_truth["load_input_on"] is False
    record = record_of(server, "bay3")
    assert record["verdict"] == "aborted" and record["sim_truth"]["outputs_off_at_end"] is True


def test_refusals_on_screen(live_server: Callable[..., Any], station_file: Callable[..., str], page: Any,
                            tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    past = (date.today() - timedelta(days=3)).isoformat()
    server = live_server([station_file("nodb", database_url=f"sqlite:///{blocker}/x/bench.db"),
                          station_file("overdue", production=True, load__calibration_due=past)])
    login(page, server.url, "dave")
    page.goto(f"{server.url}/?bench=nodb")
    start_from_scanner(page, "VS02P-25-004711")
    page.wait_for_selector("#refusal:not(.hidden)")
    assert "records store unreachable" in page.locator("#refusal").inner_text()
    shot(page, "07-refused-store")
    page.goto(f"{server.url}/?bench=overdue")
    start_from_scanner(page, "VS02P-25-004711")
    page.wait_for_selector("#refusal:not(.hidden)")
    assert f"load calibration overdue since {past}" in page.locator("#refusal").inner_text()
    shot(page, "08-refused-calibration")
    assert all(not s.busy and s.view.run_id is None for s in server.station.slots.values())


def test_two_benches_at_once_each_with_its_live_view(
        live_server: Callable[..., Any], station_file: Callable[..., str], chromium: Any) -> None:
    server = live_server([station_file("left"), station_file("right")])
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    pages = [context.new_page(), context.new_page()]
    login(pages[0], server.url, "erin")
    for bench, page, serial in zip(("left", "right"), pages, (SERIAL, SERIAL), strict=True):
        page.goto(f"{server.url}/?bench={bench}")
        start_from_scanner(page, serial)
    for page in pages:
        wait_prompt(page)
        page.locator("#prompt-choices button", has_text="OK").click()
    for page, serial in zip(pages, (SERIAL, SERIAL), strict=True):
        page.wait_for_selector("#verdict.pass", state="visible", timeout=180_000)
        assert serial in page.locator("#verdict-serial").inner_text()
    shot(pages[1], "09-two-benches-right")
    for bench, serial in (("left", SERIAL), ("right", SERIAL)):
        record = record_of(server, bench)
        assert record["verdict"] == "pass" and record["pack"]["serial"] == serial
        assert record["ended_at"] and record["sample_count"] > 100 and record["files"]
    depot = context.new_page()
    depot.goto(f"{server.url}/depot")
    depot.wait_for_selector("#runs tr:nth-child(3)")
    shot(depot, "10-depot")
    assert depot.locator("#bench-left .state").inner_text() == "finished"
    context.close()
