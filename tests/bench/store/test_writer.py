"""The records store's writer process (bench.store.writer), against SQLite and a real PostgreSQL:
calls applied in order from copies taken at submit time; failures reported back; a hung database
does not outlive ``close``; Ctrl-C does not stop it; the engine's death does not lose what it
had handed over."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bench.errors import InputError, StoreError
from bench.record import RunRecord, StepRecord
from bench.store import RunStore
from bench.store.writer import StoreWriter, open_run_store
from tests.synthetic import make_run_folder

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecord, list[str]]:
    run_dir = make_run_folder(tmp_path_factory.mktemp("runs"), hours=0.2)
    record = RunRecord.model_validate_json((run_dir / "record.json").read_text())
    with (run_dir / "samples.csv").open(newline="") as stream:
        lines = stream.readlines()[1:]  # as the sample log hands them over: CRLF-terminated
    return record, lines


@pytest.fixture
def migrated(db_url: str) -> str:
    store = RunStore(db_url)
    store.migrate()
    store.close()
    return db_url


def _read(url: str, run_id: str) -> tuple[RunRecord | None, list[tuple[object, ...]]]:
    store = RunStore(url)
    try:
        return store.get_record(run_id), store.sample_rows(run_id)
    finally:
        store.close()


def test_calls_apply_in_order_from_copies_taken_at_submit(migrated: str, synthetic_run) -> None:
    record, lines = synthetic_run
    record = record.model_copy(deep=True)
    record.verdict, record.ended_at = "running", None
    steps_at_start = len(record.steps)
    writer = StoreWriter(migrated)
    writer.submit("start_run", record)
    # the engine goes on changing its record right away: the store gets the state at submit time
    record.steps.append(StepRecord(id="later", kind="rest", start_s=1e6, started_at=record.started_at))
    record.pack.serial = "CHANGED-AFTER-SUBMIT"
    start, size = 0, 1
    while start < len(lines):  # batches of 1, 2, .. 40 lines: every multi-row INSERT size (32 .. 1)
        writer.submit("add_sample_lines", record.run_id, lines[start:start + size])
        start, size = start + size, size % 40 + 1
    assert writer.close(60.0)
    assert writer.failures() == []
    stored, rows = _read(migrated, record.run_id)
    assert stored is not None and stored.verdict == "running"
    assert len(stored.steps) == steps_at_start and stored.pack.serial != "CHANGED-AFTER-SUBMIT"
    expected = list(csv.reader(lines))
    assert len(rows) == len(expected) > 700
    for got, want in zip(rows, expected, strict=True):
        assert [float(got[0]), got[1]] == [float(want[0]), want[1]]
        assert [None if v is None else float(v) for v in got[2:]] == [None if v == "" else float(v) for v in want[2:]]


def test_a_failing_call_is_reported_and_the_next_ones_still_run(migrated: str, synthetic_run) -> None:
    record, _ = synthetic_run
    writer = StoreWriter(migrated)
    writer.submit("add_sample_lines", record.run_id, ["1.0,charge,too,few\r\n"])
    writer.submit("start_run", record)
    assert writer.close(60.0)
    failures = writer.failures()
    assert len(failures) == 1 and failures[0].startswith("add_sample_lines failed: ") and "expected" in failures[0]
    assert _read(migrated, record.run_id)[0] is not None


def _silent_server() -> tuple[socket.socket, list[socket.socket]]:
    """A TCP port that accepts and never answers (a hung PostgreSQL)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, accepted


def test_a_hung_database_does_not_outlive_close(synthetic_run) -> None:
    record, _ = synthetic_run
    server, accepted = _silent_server()
    try:
        url = f"postgresql+psycopg://bench@127.0.0.1:{server.getsockname()[1]}/bench"
        writer = StoreWriter(url, timeout_s=30.0)
        writer.submit("start_run", record)
        writer.submit("update_run", record)
        started = time.monotonic()
        assert writer.close(2.0) is False  # still connecting when the time was up
        assert time.monotonic() - started < 10.0
        assert writer._process.poll() is not None  # killed, not left behind
        assert accepted, "the writer never reached the database"
    finally:
        server.close()


#: the start of an engine script: a writer for argv's database, handed the run of argv's folder
_ENGINE = """
import os, signal, sys, time
from bench.record import RunRecord
from bench.store import RunStore
from bench.store.writer import StoreWriter
url, record_path, samples_path = sys.argv[1:]
record = RunRecord.model_validate_json(open(record_path).read())
lines = open(samples_path, newline="").readlines()[1:]
writer = StoreWriter(url)
writer.submit("start_run", record)
print(writer.pid, flush=True)
"""

_CTRL_C = _ENGINE + textwrap.dedent("""
    try:
        time.sleep(60)
    except KeyboardInterrupt:  # the engine ends the run after a Ctrl-C, and still writes its copy
        writer.submit("add_sample_lines", record.run_id, lines)
        print("closed", writer.close(60.0), writer.failures(), flush=True)
""")


def _engine_args(script: str, url: str, run_dir: Path) -> list[str]:
    return [sys.executable, "-c", script, url, str(run_dir / "record.json"), str(run_dir / "samples.csv")]


def _assert_every_sample_stored(url: str, run_dir: Path) -> None:
    record = RunRecord.model_validate_json((run_dir / "record.json").read_text())
    with (run_dir / "samples.csv").open(newline="") as stream:
        expected = len(stream.readlines()) - 1
    stored, rows = _read(url, record.run_id)
    assert stored is not None and len(rows) == expected > 700


def test_ctrl_c_to_the_engines_process_group_does_not_stop_the_writer(migrated: str, tmp_path: Path) -> None:
    run_dir = make_run_folder(tmp_path, hours=0.2)
    engine = subprocess.Popen(_engine_args(_CTRL_C, migrated, run_dir), cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)  # a process group of its own, as a terminal gives
    try:
        child = int(engine.stdout.readline())
        time.sleep(1.0)  # the writer is up and has stored the run
        os.killpg(engine.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        out, _ = engine.communicate(timeout=90)
    finally:
        engine.kill()
    assert out.strip() == "closed True []"
    assert not _alive(child)
    _assert_every_sample_stored(migrated, run_dir)


_DIES = _ENGINE + textwrap.dedent("""
    reader = RunStore(url)
    while reader.get_record(record.run_id) is None:  # the writer is up and reading its pipe
        time.sleep(0.05)
    writer.submit("add_sample_lines", record.run_id, lines)
    time.sleep(0.3)  # the feeder has written the call into the pipe
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_the_engine_killed_the_writer_applies_what_it_had_and_ends(migrated: str, tmp_path: Path) -> None:
    run_dir = make_run_folder(tmp_path, hours=0.2)
    engine = subprocess.run(_engine_args(_DIES, migrated, run_dir), cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert engine.returncode == -signal.SIGKILL, engine.stderr
    child = int(engine.stdout.split()[0])
    deadline = time.monotonic() + 60.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the writer outlived its engine"
    _assert_every_sample_stored(migrated, run_dir)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_writer_that_dies_is_a_failure_and_close_answers_again_the_same(migrated: str, synthetic_run) -> None:
    record, lines = synthetic_run
    writer = StoreWriter(migrated)
    writer.submit("start_run", record)
    os.kill(writer.pid, signal.SIGKILL)  # out of memory, killed by hand
    writer.submit("add_sample_lines", record.run_id, lines)
    assert writer.close(30.0) is True  # it answered: it is gone
    failures = writer.failures()
    assert any("exit code -9" in f for f in failures), failures
    assert writer.close(30.0) is True and writer.failures() == []


_ORPHAN = textwrap.dedent("""
    import os, signal, sys, time
    from bench.record import RunRecord
    from bench.store.writer import StoreWriter
    url, record_path = sys.argv[1:]
    writer = StoreWriter(url, timeout_s=300.0, orphan_grace_s=1.0)
    writer.submit("start_run", RunRecord.model_validate_json(open(record_path).read()))
    print(writer.pid, flush=True)
    time.sleep(1.0)  # the writer is stuck connecting to the database
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_writer_stuck_on_a_hung_database_ends_soon_after_its_engine(synthetic_run, tmp_path: Path) -> None:
    record, _ = synthetic_run
    (tmp_path / "record.json").write_text(record.model_dump_json())
    server, accepted = _silent_server()
    try:
        url = f"postgresql+psycopg://bench@127.0.0.1:{server.getsockname()[1]}/bench"
        engine = subprocess.run([sys.executable, "-c", _ORPHAN, url, str(tmp_path / "record.json")], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert engine.returncode == -signal.SIGKILL, engine.stderr
        child = int(engine.stdout.split()[0])
        deadline = time.monotonic() + 30.0
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert accepted and not _alive(child), "the orphaned writer outlived its grace"
    finally:
        server.close()


def test_the_writer_opens_and_migrates_a_new_database_before_the_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'bench.db'}"
    writer = StoreWriter(url)
    writer.wait_ready(120.0)
    assert writer.close(30.0) and writer.failures() == []
    store = RunStore(url)
    try:
        assert store.at_head()
    finally:
        store.close()


@pytest.mark.parametrize(("url", "error", "text"), [
    ("not a url", InputError, "db: not a database URL"),
    ("mysql://bench@localhost/bench", InputError, "db: unsupported database"),
    ("postgresql+psycopg://bench@127.0.0.1:1/bench", StoreError, "migrate: connection failed"),
    ("sqlite:////proc/no-such-folder/bench.db", StoreError, "cannot create its folder"),
])
def test_a_database_the_writer_cannot_open_stops_the_run_before_it_starts(url: str, error: type, text: str) -> None:
    writer = StoreWriter(url)
    with pytest.raises(error, match=text) as raised:
        writer.wait_ready(120.0)
    assert type(raised.value) is error
    assert writer.close(30.0)


def test_a_run_leaves_the_database_to_the_writer() -> None:
    """What the engine's process imports for a run holds no SQLAlchemy (~0.2 s at every start)."""
    probe = subprocess.run([sys.executable, "-c", "import sys, bench.run, bench.cli; "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')))"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "[]", probe.stderr


def test_close_reads_the_failures_while_the_writer_drains(migrated: str) -> None:
    """More failure lines than a pipe holds: close() must read them as they come, not let the
    child block on its stdout until the time-out kills it."""
    writer = StoreWriter(migrated)
    writer.wait_ready(120.0)
    for i in range(1500):
        writer.submit("add_sample_lines", "run-x", [f"{i}.0,charge,too,few\r\n"])
    assert writer.close(60.0) is True
    failures = writer.failures()
    assert len(failures) == 1500 and all(f.startswith("add_sample_lines failed: ") for f in failures)


def test_the_database_url_is_not_on_the_writers_command_line(tmp_path: Path) -> None:
    """A PostgreSQL URL may hold a password: the command line is readable by every user (ps)."""
    writer = StoreWriter("postgresql+psycopg://bench:S3cretPassw0rd@127.0.0.1:1/bench")
    try:
        command_line = Path(f"/proc/{writer.pid}/cmdline").read_bytes()
        assert b"S3cretPassw0rd" not in command_line and b"bench.store.writer" in command_line
    finally:
        writer.close(30.0)


def test_an_interrupted_wait_for_the_database_ends_the_writer_at_once(synthetic_run) -> None:
    server, _ = _silent_server()
    try:
        writer = StoreWriter(f"postgresql+psycopg://bench@127.0.0.1:{server.getsockname()[1]}/bench",
                             timeout_s=60.0)
        with pytest.raises(StoreError, match="did not answer within 1 s"):
            writer.wait_ready(1.0)  # what Ctrl-C during the wait leaves behind, too
        started = time.monotonic()
        writer.close(30.0)
        assert time.monotonic() - started < 5.0 and writer._process.poll() is not None
    finally:
        server.close()


@pytest.mark.parametrize(("db", "text"), [
    ("not a url", "db: not a database URL: 'not a url'"),
    ("mysql://bench:S3cret@localhost/bench", "db: unsupported database mysql://bench:***@localhost/bench"),
])
def test_a_url_that_cannot_be_a_database_is_refused_before_a_writer_starts(db: str, text: str,
                                                                          tmp_path: Path) -> None:
    before = set(os.listdir("/proc"))
    with pytest.raises(InputError) as raised:
        open_run_store(db, None, tmp_path)
    assert str(raised.value).startswith(text)
    started = [pid for pid in set(os.listdir("/proc")) - before if pid.isdigit() and _alive(int(pid))
               and b"bench.store.writer" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert started == [] and list(tmp_path.iterdir()) == []
