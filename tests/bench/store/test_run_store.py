"""RunStore against SQLite and a real PostgreSQL (same tests, both backends)."""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from bench.errors import StoreError
from bench.record import SAMPLE_COLUMNS, RunRecord
from bench.store import RunStore, resolve_db_url
from bench.store.models import Base
from bench.store.store import MIGRATIONS_DIR, migrations_head
from tests.synthetic import make_run_folder

BATCH = 5  # the engine flushes about every 5 s of bench time, 1 sample per second


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecord, list[list[str]]]:
    run_dir = make_run_folder(tmp_path_factory.mktemp("runs"), hours=0.3)
    record = RunRecord.model_validate_json((run_dir / "record.json").read_text())
    with (run_dir / "samples.csv").open() as stream:
        rows = list(csv.reader(stream))[1:]
    return record, rows


@pytest.fixture
def store(db_url: str):
    run_store = RunStore(db_url)
    run_store.migrate()
    yield run_store
    run_store.close()


def _running(record: RunRecord, run_id: str, **changes) -> RunRecord:
    """The record as the engine has it at the start: no steps, checks or verdict yet."""
    return record.model_copy(update={"run_id": run_id, "verdict": "running", "steps": [], "checks": [],
                                     "events": [], "ended_at": None, **changes})


def _write_whole_run(store: RunStore, record: RunRecord, rows: list[list[str]], run_id: str) -> None:
    """What the engine does: start, flush samples in batches while steps complete, finish."""
    store.start_run(_running(record, run_id))
    steps_done = 0
    for start in range(0, len(rows), BATCH):
        store.add_samples(run_id, rows[start : start + BATCH])
        t_now = float(rows[min(start + BATCH, len(rows)) - 1][0])
        done = [s for s in record.steps if s.end_s is not None and s.end_s <= t_now]
        if len(done) != steps_done:
            steps_done = len(done)
            store.update_run(_running(record, run_id, steps=done))
    store.finish_run(record.model_copy(update={"run_id": run_id}))


def test_migrate_creates_every_table_and_is_repeatable(store: RunStore):
    store.migrate()  # second time: nothing to do, no error
    tables = set(inspect(store.engine).get_table_names())
    assert {"stations", "instruments", "packs", "runs", "run_instruments", "steps", "checks", "events",
            "run_files", "samples", "alembic_version"} <= tables
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"


def test_the_head_read_from_the_scripts_is_alembics():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert [migrations_head()] == ScriptDirectory.from_config(config).get_heads()


def test_a_database_behind_the_head_is_upgraded_and_one_at_it_skips_alembic(db_url: str):
    """migrate() at head does not load Alembic (issue 17: ~0.25 s per run); behind it, it upgrades."""
    store = RunStore(db_url)
    try:
        assert not store.at_head()  # empty database
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        assert not store.at_head()
        store.migrate()
        assert store.at_head()
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
    finally:
        store.close()
    probe = ("import sys; from bench.store import RunStore; s = RunStore(sys.argv[1]); s.migrate(); "
             "print(s.at_head(), 'alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, db_url], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[3], timeout=60)
    assert done.stdout.split() == ["True", "False"]


def test_the_migrations_build_exactly_the_models(store: RunStore):
    # models.py and migrations/versions must change together: a column added to one only is a
    # store that works on a fresh SQLite file and breaks on a factory database
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_check_rows_hold_every_field_of_the_check_record(store: RunStore, synthetic_run):
    record, _ = synthetic_run
    first = record.checks[0]
    check = first.model_copy(update={"action": "extended balancing, about 40 h", "retried": True,
                                     "description": "BMS SOC within 3 % of the reference",
                                     "reference": 50.0, "tolerance": 3.0, "tolerance_kind": "pct"})
    store.start_run(_running(record, "run-c", checks=[check]))
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT description, reference, tolerance, tolerance_kind, action, retried "
                                "FROM checks WHERE run_id = 'run-c'")).one()
    assert tuple(row) == ("BMS SOC within 3 % of the reference", 50.0, 3.0, "pct",
                          "extended balancing, about 40 h", True)


def test_a_whole_run_round_trips(store: RunStore, synthetic_run):
    record, rows = synthetic_run
    _write_whole_run(store, record, rows, "run-a")

    assert store.get_record("run-a") == record.model_copy(update={"run_id": "run-a"})
    assert store.sample_count("run-a") == len(rows)
    stored = store.sample_rows("run-a")
    middle = len(rows) // 2
    assert stored[middle][0] == pytest.approx(float(rows[middle][0]))
    assert stored[middle][1] == rows[middle][1]  # step id stays text
    cell5 = SAMPLE_COLUMNS.index("cell5_v")
    assert stored[middle][cell5] == pytest.approx(float(rows[middle][cell5]))
    [summary] = store.runs()
    assert (summary.run_id, summary.verdict, summary.pack_serial) == (
        "run-a", record.verdict, record.pack.serial)
    with store.engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t} WHERE run_id = 'run-a'")).scalar_one()
                  for t in ("steps", "checks", "events", "run_files", "run_instruments")}
    assert counts == {"steps": len(record.steps), "checks": len(record.checks), "events": len(record.events),
                      "run_files": len(record.files), "run_instruments": len(record.instruments)}


def test_repeated_calls_leave_a_consistent_resumable_row_set(store: RunStore, synthetic_run):
    record, rows = synthetic_run
    partial = _running(record, "run-r", steps=record.steps[:2], checks=record.checks[:1])
    store.start_run(partial)
    store.add_samples("run-r", rows[:100])
    # the engine crashed after sending the next batch; on resume it re-sends the batch and the record
    store.add_samples("run-r", rows[90:120])
    store.start_run(partial)
    store.update_run(partial)
    assert store.sample_count("run-r") == 120
    assert store.get_record("run-r") == partial
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM steps WHERE run_id = 'run-r'")).scalar_one() == 2
    store.finish_run(record.model_copy(update={"run_id": "run-r"}))
    assert store.get_record("run-r").steps == record.steps


def test_history_filters_and_retest_count(store: RunStore, synthetic_run):
    record, _ = synthetic_run
    base = record.started_at
    visits = [("v1", 0, "fail", 180.0), ("v2", 30, "pass", 176.0), ("v3", 60, "aborted", None)]
    for run_id, days, verdict, capacity in visits:
        checks = [] if capacity is None else [c for c in record.checks if c.id != "soh_pct"]
        store.finish_run(record.model_copy(update={
            "run_id": run_id, "started_at": base + timedelta(days=days), "verdict": verdict,
            "reference_capacity_ah": capacity, "checks": checks}))
    other_pack = record.pack.model_copy(update={"serial": "VS02P-OTHER"})
    store.finish_run(record.model_copy(update={"run_id": "x1", "pack": other_pack,
                                               "started_at": base + timedelta(days=90)}))

    assert [r.run_id for r in store.runs()] == ["x1", "v3", "v2", "v1"]
    assert [r.run_id for r in store.runs(serial=record.pack.serial)] == ["v3", "v2", "v1"]
    assert [r.run_id for r in store.runs(verdict="pass")] == ["v2"]
    window = store.runs(since=base + timedelta(days=10), until=base + timedelta(days=70))
    assert [r.run_id for r in window] == ["v3", "v2"]
    assert store.runs(station="no-such-station") == []
    history = store.pack_history(record.pack.serial)
    assert [v.run_id for v in history] == ["v1", "v2", "v3"]
    assert [v.soh_pct for v in history] == [pytest.approx(90.0), pytest.approx(88.0), None]
    divergence = next(c.value for c in record.checks if c.id == "divergence_end_of_charge")
    assert history[0].divergence_v == pytest.approx(divergence)
    assert store.retest_count(record.pack.serial, record.procedure.name) == 3
    assert store.retest_count(record.pack.serial, "another-procedure") == 0


def test_runs_written_concurrently_both_complete(db_url: str, synthetic_run):
    """Two benches, same station/pack/instrument rows, writing at the same time."""
    record, rows = synthetic_run
    RunStore(db_url).migrate()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def bench(run_id: str) -> None:
        store = RunStore(db_url)
        try:
            barrier.wait()
            _write_whole_run(store, record, rows, run_id)
        except BaseException as exc:  # reported below, with the thread's own error
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=bench, args=(name,)) for name in ("bench-1", "bench-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    store = RunStore(db_url)
    for run_id in ("bench-1", "bench-2"):
        assert store.sample_count(run_id) == len(rows)
        assert store.get_record(run_id).checks == record.checks
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM packs")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM instruments")).scalar_one() == len(record.instruments)
    store.close()


def test_finish_requires_a_verdict_and_rows_need_every_column(store: RunStore, synthetic_run):
    record, rows = synthetic_run
    with pytest.raises(StoreError, match="still 'running'"):
        store.finish_run(_running(record, "run-x"))
    with pytest.raises(StoreError, match="expected"):
        store.add_samples("run-x", [rows[0][:-1]])


def test_unreachable_database_raises_store_error(tmp_path: Path):
    with pytest.raises(StoreError, match="ping"):
        RunStore("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2").ping()
    blocker = tmp_path / "file"
    blocker.write_text("this is a text file, not a SQLite database\n" * 20)
    with pytest.raises(StoreError):
        RunStore(f"sqlite:///{blocker}").ping()  # a text file is not a database


def test_db_url_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("BENCH_DB", raising=False)
    assert resolve_db_url(None, None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/bench.db"
    assert resolve_db_url(None, "postgresql://station", tmp_path) == "postgresql://station"
    monkeypatch.setenv("BENCH_DB", "postgresql://env")
    assert resolve_db_url(None, "postgresql://station", tmp_path) == "postgresql://env"
    assert resolve_db_url("sqlite:///cli.db", "postgresql://station", tmp_path) == "sqlite:///cli.db"


def test_a_database_from_newer_software_is_a_clear_store_error(store: RunStore):
    # a factory database migrated by a newer bench: this bench must say so, not crash in Alembic
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(StoreError, match=r"'0099'.*newer bench software.*revision 0002"):
        store.migrate()


def _table_rows(store: RunStore, run_id: str) -> dict[str, list[tuple]]:
    tables = ("runs", "run_instruments", "steps", "checks", "events", "run_files")
    with store.engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} WHERE run_id = :r ORDER BY 1, 2"),
                                                     {"r": run_id})] for t in tables}


def test_unchanged_rows_are_not_rewritten_and_the_database_ends_the_same(db_url: str, synthetic_run):
    """update_run skips the shared rows and child tables it committed already (issue 17: the
    engine rewrites the record every checkpoint), and the rows stored are exactly those a store
    writing everything every time leaves."""
    from sqlalchemy import event

    record, _rows = synthetic_run
    store = RunStore(db_url)
    store.migrate()
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *rest: statements.append(sql.split()[0] + " " + sql.split()[2]))
    partial = _running(record, "run-c", steps=record.steps[:2])
    store.start_run(partial)
    statements.clear()
    store.update_run(partial)
    assert statements == ["INSERT runs"]  # only the run row (its record JSON and figures)
    statements.clear()
    store.update_run(_running(record, "run-c", steps=record.steps[:3]))
    assert statements == ["INSERT runs", "DELETE steps", "INSERT steps"]
    store.finish_run(record.model_copy(update={"run_id": "run-c"}))
    cached = _table_rows(store, "run-c")
    store.close()

    # a fresh store each call writes everything every time: the same rows
    for write in [lambda s: s.start_run(partial), lambda s: s.update_run(partial),
                  lambda s: s.finish_run(record.model_copy(update={"run_id": "run-c"}))]:
        fresh = RunStore(db_url)
        write(fresh)
        fresh.close()
    assert _table_rows(RunStore(db_url), "run-c") == cached


def test_a_failed_write_is_not_remembered_as_written(db_url: str, synthetic_run):
    from sqlalchemy import event

    record, _ = synthetic_run
    store = RunStore(db_url)
    store.migrate()
    first = _running(record, "run-f", steps=record.steps[:1])
    store.start_run(first)
    second = _running(record, "run-f", steps=record.steps[:2])

    def fail_on_steps(conn, cursor, sql, *rest):
        if sql.startswith("INSERT INTO steps"):
            raise RuntimeError("disk full")

    event.listen(store.engine, "before_cursor_execute", fail_on_steps)
    with pytest.raises(RuntimeError):
        store.update_run(second)
    event.remove(store.engine, "before_cursor_execute", fail_on_steps)
    store.update_run(second)  # must write the steps: the failed transaction left the first one
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM steps WHERE run_id = 'run-f'")).scalar_one() == 2
    store.close()


@pytest.mark.parametrize(("values", "expected"), [
    (["3.25", "1", "-0.5"], [3.25, 1.0, -0.5]),                 # text rows, as samples.csv syncs them
    ([3.25, True, 0], [3.25, 1.0, 0.0]),                       # values, bools as 0/1
    (["3.25", "", "nan"], [3.25, None, None]),                 # empty and NaN: not measured
    ([1.0, float("nan"), None], [1.0, None, None]),
])
def test_a_sample_column_converts_to_floats_with_none_where_not_measured(values, expected) -> None:
    from bench.store.store import _float_column

    assert _float_column(values) == expected


def test_a_shared_row_written_a_b_a_holds_a_at_the_end(store: RunStore, synthetic_run) -> None:
    """The store skips rewriting a shared row only when the last values it wrote for that row are
    the same: a pack's part number A, then B, then A again ends as A (across runs and in one)."""
    from sqlalchemy import text

    record, _ = synthetic_run
    other = record.pack.model_copy(update={"part_number": "OTHER-PN"})

    def part_number() -> str:
        with store.engine.connect() as conn:
            return str(conn.execute(text("SELECT part_number FROM packs")).scalar_one())

    store.start_run(_running(record, "run-a"))
    store.start_run(_running(record, "run-b", pack=other))
    store.start_run(_running(record, "run-c"))
    assert part_number() == record.pack.part_number
    store.update_run(_running(record, "run-c", pack=other))
    store.update_run(_running(record, "run-c"))
    assert part_number() == record.pack.part_number
