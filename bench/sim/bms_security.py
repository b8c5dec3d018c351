"""UDS SecurityAccess (0x27) of the simulated BMS.

Seed-to-key is a *stand-in*, not any vendor's algorithm: key = first 4 bytes of
HMAC-SHA256(secret, seed). The default secret ``b"VS02-SIM-SECRET"`` is the simulator's test secret.
"""

from __future__ import annotations

import hashlib
import hmac
import random

from bench.sim.bms_types import BmsRefusal, Nrc

DEFAULT_SECRET = b"VS02-SIM-SECRET"
SEED_LENGTH = 4
KEY_LENGTH = 4
#: Security levels (requestSeed sub-function values) the firmware supports.
SUPPORTED_LEVELS = (1,)
MAX_FAILED_ATTEMPTS = 3
#: After too many invalid keys, seeds are refused for this long (NRC 0x37) [A].
LOCKOUT_S = 10.0


def key_for_seed(secret: bytes, seed: bytes) -> bytes:
    """The key the firmware expects for ``seed`` (what a tester computes with the same secret)."""
    return hmac.new(secret, seed, hashlib.sha256).digest()[:KEY_LENGTH]


class SecurityAccess:
    """Seed/key state machine: one outstanding seed, 3 attempts, then a time lock-out."""

    def __init__(self, secret: bytes, rng: random.Random) -> None:
        self._secret = secret
        self._rng = rng
        self.unlocked_level: int | None = None
        self._seed: bytes | None = None
        self._seed_level: int | None = None
        self._failed_attempts = 0
        self._locked_out_until_s = -1.0

    @staticmethod
    def _seed_level_of(level: int) -> int:
        """Accept either the requestSeed (odd) or the sendKey (even) sub-function value."""
        seed_level = level if level % 2 else level - 1
        if seed_level not in SUPPORTED_LEVELS:
            raise BmsRefusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"security level 0x{level:02X} not supported")
        return seed_level

    def request_seed(self, level: int, now_s: float) -> bytes:
        seed_level = self._seed_level_of(level)
        if now_s < self._locked_out_until_s:
            raise BmsRefusal(Nrc.REQUIRED_TIME_DELAY_NOT_EXPIRED, "security lock-out after invalid keys")
        if self.unlocked_level == seed_level:
            return bytes(SEED_LENGTH)  # ISO 14229: already unlocked -> all-zero seed
        self._seed = bytes(self._rng.getrandbits(8) for _ in range(SEED_LENGTH))
        self._seed_level = seed_level
        return self._seed

    def send_key(self, level: int, key: bytes, now_s: float) -> None:
        seed_level = self._seed_level_of(level)
        if self._seed is None or self._seed_level != seed_level:
            raise BmsRefusal(Nrc.REQUEST_SEQUENCE_ERROR, "no seed requested for this level")
        expected = key_for_seed(self._secret, self._seed)
        self._seed = None  # a seed is good for one attempt
        if hmac.compare_digest(expected, bytes(key)):
            self._failed_attempts = 0
            self.unlocked_level = seed_level
            return
        self._failed_attempts += 1
        if self._failed_attempts >= MAX_FAILED_ATTEMPTS:
            self._failed_attempts = 0
            self._locked_out_until_s = now_s + LOCKOUT_S
            raise BmsRefusal(Nrc.EXCEEDED_NUMBER_OF_ATTEMPTS, "too many invalid keys")
        raise BmsRefusal(Nrc.INVALID_KEY, "invalid key")

    def lock(self) -> None:
        self.unlocked_level = None
        self._seed = None
        self._seed_level = None
