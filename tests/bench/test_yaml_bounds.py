"""Every YAML input is bounded: aliases, nodes after alias expansion, nesting and file size (issue 15,
point 3). A hostile file is answered with exit 2 and its location, fast and in little memory."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import yamlio
from bench.errors import InputError
from bench.yamlio import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, load_yaml

REPO = Path(__file__).resolve().parents[2]


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Each level a list of ``width`` references to the level before: width**levels nodes."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


# `bench ARGS...` with the address space capped at 1 GiB, so that a loader without bounds fails
# fast instead of taking the machine's memory. At exit the child writes its own peak resident size
# (VmHWM of its address space after exec): wait4's ru_maxrss would also count the pages of the
# forked test process, hundreds of MB late in a suite.
_CAPPED_BENCH = ("import atexit, os, resource, runpy; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
                 "atexit.register(lambda: open(os.environ['BENCH_HWM_FILE'], 'w').write("
                 "next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')))); "
                 "runpy.run_module('bench.cli', run_name='__main__')")


def _bench_measured(args: list[str], cwd: Path, limit_s: float = 30.0) -> tuple[int, str, float, float, int]:
    """Run ``bench ARGS``; (exit code, stderr, wall s, CPU s, peak RSS bytes) of that child alone
    (``wait4``: not the maximum over every child this test process ever had). A timer kills a
    child that hangs."""
    hwm_file = cwd / "vmhwm.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_HWM_FILE": str(hwm_file)}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _CAPPED_BENCH, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(limit_s, proc.kill)
    killer.start()
    try:
        stderr = proc.stderr.read() if proc.stderr else ""
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    peak_kb = int(hwm_file.read_text(encoding="utf-8").split()[1]) if hwm_file.exists() else usage.ru_maxrss
    return proc.returncode, stderr, wall, usage.ru_utime + usage.ru_stime, peak_kb * 1024


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The bounded loader on libyaml's parser (what runs when PyYAML has it) and on PyYAML's own."""
    if request.param == "python":
        monkeypatch.setattr(yamlio, "_BoundedLoader", yamlio._loader_class(yamlio._PythonEvents))
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml")
    return str(request.param)


def test_bench_validate_answers_an_alias_bomb_fast_with_its_location(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(), encoding="utf-8")
    code, stderr, wall, cpu, rss = _bench_measured(["validate", str(bomb)], tmp_path)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    # located at the alias whose expansion crosses the bound (line 6: a5 = 9**5 nodes > 100 000)
    assert f"{bomb}:6:" in stderr and "aliases are expanded" in stderr
    # the whole command, interpreter start and imports included: well under 1 s of CPU when the
    # machine is idle; wall time only guards against a hang (2 cores shared by many jobs)
    assert cpu < 1.0, f"{cpu:.2f} s CPU"
    assert wall < 10.0
    assert rss < 200 * 1024 * 1024, f"{rss / 2**20:.0f} MB"


def _load_station(path: Path) -> Any:
    from bench.config import load_station

    return load_station(path)


def _load_scenario(path: Path) -> Any:
    from bench.sim.scenario import load_scenario

    return load_scenario(str(path))


def _load_uds_map(path: Path) -> Any:
    from drivers.uds_map import load_uds_map

    return load_uds_map(path)


def _parse_procedure(path: Path) -> Any:
    from bench.procedure.model import parse_procedure

    return parse_procedure(path)


@pytest.mark.parametrize("loader", [_load_station, _load_scenario, _load_uds_map, _parse_procedure],
                         ids=["station", "scenario", "uds_map", "procedure"])
def test_every_yaml_input_refuses_an_alias_bomb(tmp_path: Path, loader: Callable[[Path], Any]) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(levels=20, width=2), encoding="utf-8")  # 2**20 nodes
    started = time.process_time()
    with pytest.raises(InputError) as info:
        loader(bomb)
    assert time.process_time() - started < 0.5
    assert info.value.file == str(bomb) and info.value.line is not None
    assert "aliases are expanded" in info.value.format()


@pytest.mark.parametrize(("text", "line", "words"), [
    ("a: &a [x, *a]\n", 1, "refers to a node that contains it"),
    ("a: " + "[" * (MAX_DEPTH + 10) + "]" * (MAX_DEPTH + 10) + "\n", 1, f"deeper than {MAX_DEPTH}"),
    ("x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(MAX_ALIASES + 1)), MAX_ALIASES + 2,
     f"more than {MAX_ALIASES} YAML aliases"),
    # nesting reached only through aliases: each anchor 40 levels deep, used inside the next
    ("a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n", 2, "deeper than"),
])
def test_hostile_shapes_are_located_errors(tmp_path: Path, text: str, line: int, words: str, parser: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_yaml(path)
    assert info.value.line == line and words in info.value.message


def test_a_file_larger_than_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "large.yaml"
    path.write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1), encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_yaml(path)
    assert info.value.file == str(path) and "larger than" in info.value.message


def test_ordinary_anchors_still_work(tmp_path: Path, parser: str) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {v: 3.65, unit: V}\nlimits: [*b, *b]\n", encoding="utf-8")
    located = load_yaml(path)
    assert located.data["limits"] == [{"v": 3.65, "unit": "V"}] * 2


def test_a_character_yaml_refuses_is_one_located_error(tmp_path: Path, parser: str) -> None:
    """A control character gave a traceback (PyYAML's reader refused it outside the handled part)."""
    path = tmp_path / "control.yaml"
    path.write_text('name: x\ndescription: "a\x07b"\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_yaml(path)
    assert (info.value.line, info.value.column) == (2, 16)
    assert "#x0007" in info.value.message and "\n" not in info.value.format()


def test_a_refused_character_after_non_ascii_text_is_located_in_characters(tmp_path: Path, parser: str) -> None:
    """libyaml counts its reader position in UTF-8 bytes: umlauts before the character moved the
    reported line and column (here to line 4 of a 3-line file)."""
    path = tmp_path / "control.yaml"
    path.write_text("name: Prüfung ääääää öööööö üüüüüü\ndescription: Kalibrierung\nsteps: \x07\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_yaml(path)
    assert (info.value.line, info.value.column) == (3, 8)


def test_both_parsers_give_the_same_data_and_positions() -> None:
    """libyaml's events are composed exactly as PyYAML's: every repository input, same data, same
    line and column for every path."""
    python_loader = yamlio._loader_class(yamlio._PythonEvents)
    files = [p for pattern in ("procedures/*.yaml", "stations/*.yaml", "bench/sim/scenarios/*.yaml",
                               "drivers/data/*.yaml") for p in sorted(REPO.glob(pattern))]
    assert len(files) > 10
    for path in files:
        fast = load_yaml(path)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(yamlio, "_BoundedLoader", python_loader)
            plain = load_yaml(path)
        assert (fast.data, fast.positions) == (plain.data, plain.positions), path


def test_the_repository_inputs_load_within_the_bounds() -> None:
    for pattern in ("procedures/*.yaml", "stations/*.yaml", "bench/stations/*.yaml",
                    "bench/sim/scenarios/*.yaml", "drivers/data/*.yaml", "examples/**/*.yaml"):
        for path in REPO.glob(pattern):
            load_yaml(path)


def test_pytest_collection_does_not_hang_on_an_alias_bomb(tmp_path: Path) -> None:
    from bench.pytest_plugin import _looks_like_procedure

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(levels=20, width=2), encoding="utf-8")
    started = time.process_time()
    assert _looks_like_procedure(bomb)  # collected, so that the item reports the located error
    assert time.process_time() - started < 0.5
