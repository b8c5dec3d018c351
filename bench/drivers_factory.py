"""Open the drivers a station file names. The only place that turns configuration into drivers.

``resources`` maps the station file's ``sim:`` names to where the in-process simulator serves
them. An instrument named ``sim:...`` is reached through ``sim_visa_backend`` (the embedded
bench passes ``@inprocess``: no socket, see drivers.visa_inprocess); every other resource string
goes to pyvisa-py, as on a real bench.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.clock import Clock
from bench.config import AdapterConfig, ScpiInstrumentConfig
from bench.errors import ConfigError
from drivers.registry import open_instrument
from drivers.scpi import ReconnectPolicy
from drivers.security import load_seedkey

#: the VISA backend of real instruments (and of the standalone simulator's sockets)
DEFAULT_VISA_BACKEND = "@py"


def _resource(cfg: ScpiInstrumentConfig, resources: dict[str, str], sim_backend: str) -> tuple[str, str]:
    """The VISA resource string and backend of ``cfg``."""
    if cfg.resource.startswith("sim:"):
        if cfg.resource not in resources:
            raise ConfigError(f"{cfg.resource!r} needs the in-process simulator (simulator.mode: in_process)",
                              field="resource")
        return resources[cfg.resource], sim_backend
    return cfg.resource, DEFAULT_VISA_BACKEND


def _open_power(role: str, cfg: ScpiInstrumentConfig, resources: dict[str, str], family: str | None,
                sim_backend: str) -> Any:
    attempts = cfg.reconnect.attempts
    policy = ReconnectPolicy(attempts, cfg.reconnect.delay_s) if attempts else None
    resource, backend = _resource(cfg, resources, sim_backend)
    return open_instrument(family or cfg.family, resource, name=role, timeout_s=cfg.timeout_s,
                           backend=backend, reconnect=policy, model=cfg.model)


def open_supply(cfg: ScpiInstrumentConfig, resources: dict[str, str], family: str | None,
                sim_visa_backend: str = DEFAULT_VISA_BACKEND) -> Any:
    return _open_power("supply", cfg, resources, family, sim_visa_backend)


def open_load(cfg: ScpiInstrumentConfig, resources: dict[str, str], family: str | None,
              sim_visa_backend: str = DEFAULT_VISA_BACKEND) -> Any:
    return _open_power("load", cfg, resources, family, sim_visa_backend)


def seedkey_from_config(cfg: AdapterConfig) -> Any:
    secret = cfg.seedkey.secret or os.environ.get(cfg.seedkey.secret_env)
    if not secret:
        return None  # security access then fails with a message naming the variable
    return load_seedkey(cfg.seedkey.algorithm, secret)


def open_adapter(cfg: AdapterConfig, resources: dict[str, str], clock: Clock,
                 log_path: Path | None = None, *, bus: Any | None = None) -> Any:
    """``bus``: an open bus of the in-process simulator (drivers.can_inprocess) to use instead of
    opening ``cfg``'s. The adapter then reads it polled, with no listener thread: the lockstep
    clock's settle hook delivers each step's frames with ``poll()`` after every advance."""
    # lazy: the watchdog process opens only the supply and the load; python-can, cantools and
    # udsoncan (~0.2 s) would delay the 'ready' that every `bench run` waits for
    from drivers.vs02_adapter import CanConfig, Vs02Adapter

    channel = resources.get(cfg.channel, cfg.channel) if cfg.channel.startswith("sim:") else cfg.channel
    if cfg.channel.startswith("sim:") and cfg.channel not in resources:
        raise ConfigError(f"{cfg.channel!r} needs the in-process simulator", field="adapter.channel")
    adapter = Vs02Adapter(
        CanConfig(interface=cfg.interface, channel=channel, bitrate=cfg.bitrate,
                  request_id=cfg.request_id, response_id=cfg.response_id, extra=dict(cfg.extra)),
        name="adapter", seedkey=seedkey_from_config(cfg), log_path=log_path,
        stale_after_s=cfg.stale_after_s, clock=clock.now, polled=bus is not None, bus=bus,
    )
    adapter.open()
    return adapter
