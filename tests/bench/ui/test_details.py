"""The smaller points of issue 18 item 8, over plain HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.record import RunRecord
from bench.store import RunStore
from tests.bench.ui.conftest import wait_for
from tests.bench.ui.test_api import ORIGIN, client_for, logged_in, station_dir
from tests.synthetic import make_run_folder

SERIAL = "VS02P-25-004711"


def test_report_path_takes_run_ids_only(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    for bad in ("..", "...", "..%2F..%2Fetc", "bench.db", "20261129-151746-ZZZZZZ"):
        r = client.get(f"/runs/{bad}/report")
        assert r.status_code == 404, (bad, r.status_code)
    assert client.get("/runs/20261129-151746-a1b2c3/report").json()["detail"] == "no report for this run (yet)"


def test_runs_limit_is_bounded(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    assert client.get("/api/runs?limit=-1").status_code == 422
    assert client.get("/api/runs?limit=0").status_code == 422
    assert client.get("/api/runs?limit=100000").status_code == 422
    assert client.get("/api/runs?limit=5").status_code == 200


def test_pack_history_of_a_serial_with_a_slash(station_file: Callable[..., str], tmp_path: Path) -> None:
    client = logged_in(client_for([station_file("bay1")]))
    source = make_run_folder(tmp_path / "synthetic", hours=0.05)
    record = RunRecord.model_validate_json((source / "record.json").read_text())
    record.pack.serial = "LEGACY/2019/0042"  # written by an older bench, before serial patterns
    store = RunStore(f"sqlite:///{station_dir(client) / 'bench.db'}")
    store.migrate()
    store.finish_run(record)
    store.close()
    by_query = client.get("/api/packs/history", params={"serial": "LEGACY/2019/0042"})
    by_path = client.get("/api/packs/LEGACY/2019/0042/history")
    for response in (by_query, by_path):
        assert response.status_code == 200, response.text
        assert [v["run_id"] for v in response.json()["visits"]] == [record.run_id]


def test_remaining_time_in_bench_and_wall_time(station_file: Callable[..., str]) -> None:
    client = logged_in(client_for([station_file("bay1")]))

    def run_once(check_remaining: bool) -> dict[str, object]:
        client.post("/api/benches/bay1/start", json={"serial": SERIAL}, headers=ORIGIN)
        prompt = wait_for(lambda: client.get("/api/benches/bay1").json()["prompt"], 60, "the prompt")
        client.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "OK"},
                    headers=ORIGIN)
        seen: dict[str, object] = {}
        if check_remaining:
            seen = wait_for(lambda: (r := client.get("/api/benches/bay1").json()["run"])["remaining_s"]
                            and r["remaining_wall_s"] is not None and r, 60, "a remaining time")
        wait_for(lambda: client.get("/api/benches/bay1").json()["state"] == "finished", 120, "the end")
        return seen

    run_once(False)  # a passed run of the procedure: the next one knows how long it takes
    during = run_once(True)
    bench_s, wall_s = float(during["remaining_s"]), float(during["remaining_wall_s"])  # type: ignore[arg-type]
    # the in-process simulator runs as fast as it can: far less wall time than bench time
    assert bench_s > 60 and wall_s < bench_s / 5, (bench_s, wall_s)


ACTION_PROCEDURE = """\
procedure: gap
version: 1.0.0
steps:
  - id: measure
    prompt:
      message: "Terminal gap in mm?"
      input: {name: gap_mm, type: number}
  - id: judge
    check:
      - {id: gap, description: "terminal gap", value: gap_mm, unit: mm, low: 5, high: 6,
         action: "Re-seat the terminal cover and measure the gap again."}
"""


def test_fail_shows_the_procedures_action_for_the_failed_check(station_file: Callable[..., str],
                                                               tmp_path: Path) -> None:
    procedure = tmp_path / "gap.yaml"
    procedure.write_text(ACTION_PROCEDURE)
    client = logged_in(client_for([station_file("bay1")], procedures=[procedure]))
    client.post("/api/benches/bay1/start", json={"serial": SERIAL}, headers=ORIGIN)
    prompt = wait_for(lambda: client.get("/api/benches/bay1").json()["prompt"], 60, "the prompt")
    client.post("/api/benches/bay1/answer", json={"prompt_id": prompt["id"], "answer": "7,5"}, headers=ORIGIN)
    done = wait_for(lambda: (s := client.get("/api/benches/bay1").json())["state"] == "finished" and s,
                    60, "the verdict")
    assert done["run"]["verdict"] == "fail"
    assert done["run"]["next_action"] == "Re-seat the terminal cover and measure the gap again."
    assert any("measured 7.5 mm" in t for t in done["run"]["failed_checks"]), done["run"]["failed_checks"]


def test_station_start_up_marks_orphaned_runs(station_file: Callable[..., str], tmp_path: Path) -> None:
    """A run left 'running' by a station that died (SIGKILL, power cut) is aborted at the next start."""
    from tests.bench.ui.conftest import make_station

    station = make_station([station_file("bay1")])
    slot = station.slots["bay1"]
    runs = Path(slot.station.runs_dir)
    source = make_run_folder(tmp_path / "synthetic", hours=0.05)
    record = RunRecord.model_validate_json((source / "record.json").read_text())
    record = record.model_copy(update={"run_id": "20260101-000000-0abcde", "verdict": "running",
                                       "ended_at": None})
    record.station.name = "bay1"
    (runs / record.run_id).mkdir(parents=True)
    (runs / record.run_id / "record.json").write_text(record.model_dump_json())
    store = RunStore(f"sqlite:///{runs / 'bench.db'}")
    store.migrate()
    store.start_run(record)
    assert station.mark_orphans() == [record.run_id]
    (row,) = store.runs()
    store.close()
    assert row.verdict == "aborted" and row.abort_reason is not None and "orphaned" in row.abort_reason
