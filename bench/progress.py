"""Terminal progress for ``bench run``: a live status line on a terminal, plain log lines otherwise."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.prompt import Prompt

from bench.engine.events import ProgressEvent
from bench.engine.runner import Prompter


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressPrinter:
    """Prints step changes, checks, warnings and a status line per ``sample`` event it receives:
    subscribe it with ``sample_every_s=printer.every_s`` (the event bus spaces them, and the
    engine builds no sample event in between)."""

    def __init__(self, console: Console, procedure: Any, clock: Any, every_s: float = 600.0) -> None:
        self.console = console
        self.procedure = procedure
        self.every_s = every_s
        self._step = ""

    def __call__(self, ev: ProgressEvent) -> None:
        d = ev.data
        c = self.console
        if ev.kind == "run_started":
            c.print(f"[bold]{d['procedure']}[/] run {ev.run_id} pack {d.get('serial', '?')}"
                    + (" (resumed)" if d.get("resumed") else ""))
        elif ev.kind == "step_started":
            self._step = d["step"]
            c.print(f"{_hms(ev.t_s)} step {d['index'] + 1}/{d['count']} [cyan]{d['step']}[/] ({d['kind']})"
                    + (f": {d['description']}" if d.get("description") else ""))
        elif ev.kind == "step_ended":
            # round, then + 0.0: a rest's -0.0001 Ah prints as +0.00, not -0.00
            c.print(f"{_hms(ev.t_s)}   ended: {d['reason']}  {round(d['ah'], 2) + 0.0:+.2f} Ah  "
                    f"{round(d['wh'], 1) + 0.0:+.1f} Wh"
                    f"  {_hms(d['duration_s'])}", markup=False)
        elif ev.kind == "sample":  # one per every_s: subscribe(printer, sample_every_s=printer.every_s)
            soc = d.get("bms_soc")
            ref = d.get("ref_soc")
            c.print(f"{_hms(ev.t_s)}   {d['pack_v']:.2f} V {d['current']:+.1f} A  BMS SOC "
                    f"{soc if soc is None else f'{soc:.1f}'} %  ref SOC "
                    f"{'-' if ref is None else f'{ref:.1f}'} %", markup=False)
        elif ev.kind == "check":
            mark = "[green]PASS[/]" if d["passed"] else "[red]FAIL[/]"
            c.print(f"{_hms(ev.t_s)}   {mark} {d['message']}", highlight=False)
        elif ev.kind in ("warning", "trip", "pause", "resume"):
            c.print(f"{_hms(ev.t_s)}   [yellow]{ev.kind}[/]: {d.get('message', d)}")
        elif ev.kind == "run_ended":
            colour = {"pass": "green", "fail": "red"}.get(d["verdict"], "yellow")
            c.print(f"[bold {colour}]{d['verdict'].upper()}[/]"
                    + (f": {d['abort_reason']}" if d.get("abort_reason") else ""))
            for message in d.get("failed_checks", []):
                c.print(f"  failed: {message}", markup=False)


class TerminalPrompter(Prompter):
    def __init__(self, console: Console) -> None:
        self.console = console

    def ask(self, message: str, choices: list[str], input_spec: Any | None) -> str | float:
        if input_spec is not None:
            while True:
                text = Prompt.ask(message, console=self.console)
                if getattr(input_spec, "type", "text") != "number":
                    return text
                try:
                    return float(text)
                except ValueError:
                    self.console.print("please enter a number")
        return Prompt.ask(message, choices=choices, default=choices[0], console=self.console)
