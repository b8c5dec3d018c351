"""The web Prompter: ``ask()`` blocks the engine thread until the operator answers or stops."""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.errors import RunAborted

_ids = itertools.count(1)


@dataclass
class PendingPrompt:
    prompt_id: int
    message: str
    choices: list[str]
    input_name: str | None
    input_type: str | None

    def public(self) -> dict[str, Any]:
        return {"id": self.prompt_id, "message": self.message, "choices": self.choices,
                "input": None if self.input_name is None else
                {"name": self.input_name, "type": self.input_type}}


_NUMBER = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?")


def parse_number(raw: str) -> float:
    """A typed number, either decimal mark; ValueError in words when it is not one, or ambiguous.

    "5,2" is 5.2 (a comma is the decimal mark on many a line's keyboard), never 52; "1,234" could be
    either 1.234 or 1234, so it is refused rather than guessed (issue 18 item 8).
    """
    text = raw.strip()
    if not text:
        raise ValueError("type a number")
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is not a number (write it like 5.2 or 5,2, no thousands separators)")
    if "," in text and len(text.split(",")[1]) == 3:
        raise ValueError(f"{text!r} is ambiguous: write {text.replace(',', '')} or {text.replace(',', '.')}")
    value = float(text.replace(",", "."))
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a number")
    return value


class WebPrompter:
    """Implements :class:`bench.engine.runner.Prompter` for the station (duck-typed)."""

    def __init__(self, *, on_change: Callable[[], None], stop_reason: Callable[[], str | None],
                 on_answered: Callable[[PendingPrompt, str | float, str], None]) -> None:
        self._on_change = on_change
        self._stop_reason = stop_reason
        self._on_answered = on_answered
        self._cond = threading.Condition()
        self.pending: PendingPrompt | None = None
        self._answer: tuple[str | float, str] | None = None

    def ask(self, message: str, choices: list[str], input_spec: Any | None) -> str | float:
        prompt = PendingPrompt(next(_ids), message, list(choices),
                               getattr(input_spec, "name", None), getattr(input_spec, "type", None))
        with self._cond:
            self.pending, self._answer = prompt, None
        self._on_change()
        try:
            with self._cond:
                while self._answer is None:
                    reason = self._stop_reason()
                    if reason:
                        raise RunAborted(reason)
                    self._cond.wait(timeout=0.2)
                answer, actor = self._answer
        finally:
            with self._cond:
                self.pending = None
            self._on_change()
        self._on_answered(prompt, answer, actor)  # engine thread: safe to write the record
        return answer

    def answer(self, prompt_id: int, raw: str, actor: str) -> None:
        """From a request thread. ValueError with the reason when the answer does not fit."""
        with self._cond:
            prompt = self.pending
            if prompt is None or prompt.prompt_id != prompt_id:
                raise ValueError("this prompt is no longer open")
            value: str | float
            if prompt.input_name is not None and prompt.input_type == "number":
                value = parse_number(raw)
            elif prompt.input_name is not None:
                value = raw.strip()
                if not value:
                    raise ValueError("type an answer")
            elif raw in prompt.choices:
                value = raw
            else:
                raise ValueError(f"{raw!r} is not one of {', '.join(prompt.choices)}")
            self._answer = (value, actor)
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
