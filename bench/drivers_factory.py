"""Open the drivers a station file names. The only place that turns configuration into drivers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.clock import Clock
from bench.config import AdapterConfig, ScpiInstrumentConfig
from bench.errors import ConfigError


def _resource(cfg: ScpiInstrumentConfig, resources: dict[str, str]) -> str:
    if cfg.resource.startswith("sim:"):
        if cfg.resource not in resources:
            raise ConfigError(f"{cfg.resource!r} needs the in-process simulator (simulator.mode: in_process)",
                              field="resource")
        return resources[cfg.resource]
    return cfg.resource


def _open_power(role: str, cfg: ScpiInstrumentConfig, resources: dict[str, str], family: str | None) -> Any:
    from drivers.registry import open_instrument
    from drivers.scpi import ReconnectPolicy

    attempts = cfg.reconnect.attempts
    policy = ReconnectPolicy(attempts, cfg.reconnect.delay_s) if attempts else None
    return open_instrument(family or cfg.family, _resource(cfg, resources), name=role,
                           timeout_s=cfg.timeout_s, reconnect=policy, model=cfg.model)


def open_supply(cfg: ScpiInstrumentConfig, resources: dict[str, str], family: str | None) -> Any:
    return _open_power("supply", cfg, resources, family)


def open_load(cfg: ScpiInstrumentConfig, resources: dict[str, str], family: str | None) -> Any:
    return _open_power("load", cfg, resources, family)


def seedkey_from_config(cfg: AdapterConfig) -> Any:
    from drivers.security import load_seedkey

    secret = cfg.seedkey.secret or os.environ.get(cfg.seedkey.secret_env)
    if not secret:
        return None  # security access then fails with a message naming the variable
    return load_seedkey(cfg.seedkey.algorithm, secret)


def open_adapter(cfg: AdapterConfig, resources: dict[str, str], clock: Clock,
                 log_path: Path | None = None) -> Any:
    from drivers.vs02_adapter import CanConfig, Vs02Adapter

    channel = resources.get(cfg.channel, cfg.channel) if cfg.channel.startswith("sim:") else cfg.channel
    if cfg.channel.startswith("sim:") and cfg.channel not in resources:
        raise ConfigError(f"{cfg.channel!r} needs the in-process simulator", field="adapter.channel")
    adapter = Vs02Adapter(
        CanConfig(interface=cfg.interface, channel=channel, bitrate=cfg.bitrate,
                  request_id=cfg.request_id, response_id=cfg.response_id, extra=dict(cfg.extra)),
        name="adapter", seedkey=seedkey_from_config(cfg), log_path=log_path,
        stale_after_s=cfg.stale_after_s, clock=clock.now,
    )
    adapter.open()
    return adapter
