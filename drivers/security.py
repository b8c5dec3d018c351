"""Pluggable UDS seed-to-key algorithms (SecurityAccess 0x27).

Real BMS vendors keep their algorithm and secret private, so the driver never hard-codes one:
an algorithm is looked up by name, first among the built-ins, then in the ``bench.seedkey``
entry-point group (a plug-in package registers ``name = module:factory``; the factory takes the
secret bytes). The secret comes from configuration or the environment, never from source.

Built-in ``hmac_sha256_4`` is the project's documented stand-in, used by the simulator:
key = first 4 bytes of HMAC-SHA256(secret, seed). It is not a vendor algorithm.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from bench.errors import ConfigError

ENTRY_POINT_GROUP = "bench.seedkey"
SECRET_ENV = "BENCH_SEEDKEY_SECRET"


@runtime_checkable
class SeedKeyAlgorithm(Protocol):
    """Computes the SecurityAccess key for a seed at a security level (the odd requestSeed level)."""

    name: str

    def key(self, level: int, seed: bytes) -> bytes: ...


class HmacSha256First4:
    """Stand-in algorithm: first 4 bytes of HMAC-SHA256(secret, seed), independent of the level."""

    name = "hmac_sha256_4"

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ConfigError("seed-to-key secret is empty")
        self._secret = secret

    def key(self, level: int, seed: bytes) -> bytes:
        return hmac.new(self._secret, seed, hashlib.sha256).digest()[:4]


BUILTIN_ALGORITHMS: dict[str, Callable[[bytes], SeedKeyAlgorithm]] = {
    HmacSha256First4.name: HmacSha256First4,
}


def resolve_secret(secret: str | bytes | None = None, secret_env: str = SECRET_ENV) -> bytes:
    """The explicit secret if given, else the environment variable ``secret_env``."""
    if secret is None:
        secret = os.environ.get(secret_env)
    if not secret:
        raise ConfigError(
            f"no seed-to-key secret: set it in the station file (adapter.seedkey.secret) "
            f"or in the environment variable {secret_env}"
        )
    return secret.encode() if isinstance(secret, str) else secret


def available_algorithms() -> list[str]:
    plugins = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(set(BUILTIN_ALGORITHMS) | plugins)


def load_seedkey(
    algorithm: str = HmacSha256First4.name, secret: str | bytes | None = None, secret_env: str = SECRET_ENV
) -> SeedKeyAlgorithm:
    """Instantiate algorithm ``algorithm`` with the resolved secret."""
    factory = BUILTIN_ALGORITHMS.get(algorithm)
    if factory is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == algorithm:
                factory = ep.load()
                break
    if factory is None:
        raise ConfigError(
            f"unknown seed-to-key algorithm {algorithm!r}; available: {', '.join(available_algorithms())}",
            field="seedkey.algorithm",
        )
    return factory(resolve_secret(secret, secret_env))
