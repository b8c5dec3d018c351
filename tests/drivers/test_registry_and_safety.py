"""Registry lookup and the never-raising safe state."""

from __future__ import annotations

import pytest

from bench.errors import ConfigError, ConnectionLost
from drivers.bk_8600 import BK8600
from drivers.keysight_n8700 import KeysightN8700
from drivers.registry import driver_class, families
from drivers.scpi import ScpiInstrument


def test_builtin_families_resolve() -> None:
    assert {"keysight_n8700", "itech_it6500c", "bk_8600", "itech_it8500plus"} <= set(families())
    assert driver_class("keysight_n8700") is KeysightN8700
    with pytest.raises(ConfigError, match="bk_8600"):
        driver_class("no_such_family")


class DeadTransport:
    """A transport whose link is gone: every operation fails as a dropped socket does."""

    timeout = 1000

    def __init__(self) -> None:
        self.sent: list[str] = []

    def write(self, message: str) -> int:
        self.sent.append(message)
        raise ConnectionResetError("peer reset")

    def read(self) -> str:
        raise ConnectionResetError("peer reset")

    def query(self, message: str) -> str:
        self.write(message)
        return ""

    def close(self) -> None:
        pass


@pytest.mark.parametrize("cls", [KeysightN8700, BK8600])
def test_safe_state_never_raises_and_tries_every_step(cls) -> None:
    transport = DeadTransport()
    driver = cls(ScpiInstrument(transport, "dead"), model=next(iter(cls.family.models)))
    problems = driver.safe_state()
    assert len(problems) == 3 and all("dead" in p for p in problems)
    assert len(transport.sent) == 3  # every step was attempted despite the failures
    with pytest.raises(ConnectionLost, match="dead: MEAS:VOLT"):
        driver.measure()
