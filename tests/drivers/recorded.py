"""A recorded-protocol transport: the exact (sent, reply) sequence a driver must produce.

Like PyMeasure's ``expected_protocol``: strict order, any difference fails at once, and the
test fails if the driver stops before the transcript ends. Transcript files hold one line per
message: ``> command`` for what the driver writes, ``< reply`` for the instrument's answer to
the preceding query; ``#`` starts a comment (manual references).
"""

from __future__ import annotations

from pathlib import Path

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def load_transcript(name: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for number, line in enumerate((TRANSCRIPTS / name).read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("> "):
            pairs.append((text[2:], None))
        elif text.startswith("< ") and pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], text[2:])
        else:
            raise ValueError(f"{name}:{number}: expected '> cmd' or '< reply' after a query: {line!r}")
    return pairs


class RecordedTransport:
    def __init__(self, pairs: list[tuple[str, str | None]]) -> None:
        self.pairs = list(pairs)
        self.position = 0
        self.timeout = 2000
        self._pending: str | None = None

    def _expect(self, sent: str) -> str | None:
        assert self._pending is None, f"wrote {sent!r} while reply {self._pending!r} was unread"
        assert self.position < len(self.pairs), f"unexpected extra message {sent!r}"
        expected, reply = self.pairs[self.position]
        assert sent == expected, f"message #{self.position + 1}: sent {sent!r}, transcript has {expected!r}"
        self.position += 1
        return reply

    def write(self, message: str) -> int:
        self._pending = self._expect(message)
        return len(message)

    def read(self) -> str:
        assert self._pending is not None, "read with no reply pending"
        reply, self._pending = self._pending, None
        return reply

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def close(self) -> None:
        pass

    def assert_done(self) -> None:
        assert self._pending is None, f"reply {self._pending!r} never read"
        assert self.position == len(self.pairs), (
            f"driver stopped at message #{self.position + 1} of {len(self.pairs)}: "
            f"{self.pairs[self.position][0]!r}"
        )
