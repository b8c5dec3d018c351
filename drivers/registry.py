"""Instrument family registry: family name -> driver class.

Built-in families are listed here; plug-ins register more under the entry point group
``bench.instruments`` (``name = package.module:Class``) and need no edit of this module.
Entry points win over nothing: a plug-in cannot silently replace a built-in family.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from bench.errors import ConfigError
from drivers.scpi import ReconnectPolicy
from drivers.scpi_power import ScpiPowerBase

ENTRY_POINT_GROUP = "bench.instruments"

BUILTIN_FAMILIES: dict[str, str] = {
    "keysight_n8700": "drivers.keysight_n8700:KeysightN8700",
    "itech_it6500c": "drivers.itech_it6500c:ItechIT6500C",
    "bk_8600": "drivers.bk_8600:BK8600",
    "itech_it8500plus": "drivers.itech_it8500plus:ItechIT8500Plus",
}


def _plugin_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def families() -> list[str]:
    return sorted({*BUILTIN_FAMILIES, *_plugin_targets()})


def driver_class(family: str) -> type[ScpiPowerBase]:
    target = BUILTIN_FAMILIES.get(family) or _plugin_targets().get(family)
    if target is None:
        raise ConfigError(f"unknown instrument family {family!r}; known: {', '.join(families())}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ScpiPowerBase)):
        raise ConfigError(f"instrument family {family!r}: {target} is not a driver class")
    return cls


def open_instrument(
    family: str,
    resource: str,
    *,
    name: str | None = None,
    timeout_s: float = 2.0,
    backend: str = "@py",
    reconnect: ReconnectPolicy | None = None,
    model: str | None = None,
) -> ScpiPowerBase:
    """Open ``resource`` with the driver of ``family`` (identifies the model unless given)."""
    return driver_class(family).open(
        resource, name=name, timeout_s=timeout_s, backend=backend, reconnect=reconnect, model=model
    )
