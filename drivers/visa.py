"""Open VISA resources with the settings each transport needs.

Termination: SCPI instruments end messages with LF. On raw sockets (``TCPIP::…::SOCKET``) and
serial ports (``ASRL…``) VISA has no END indicator, so the read termination MUST be set or every
read waits for the time-out; VXI-11/HiSLIP/USBTMC/GPIB mark the end themselves, but setting LF
is harmless there. Serial ports also need the line settings of the instrument (baud etc.).

A resource manager per backend is shared: creating one per instrument is slow with pyvisa-py.
Backend ``@inprocess`` (:mod:`drivers.visa_inprocess`) reaches instruments served inside this
process (the embedded simulator) with no socket; every other name goes to pyvisa as is.
"""

from __future__ import annotations

from typing import Any

import pyvisa

from bench.errors import ConnectionLost
from drivers.visa_inprocess import BACKEND, InProcessVisaLibrary

_MANAGERS: dict[str, pyvisa.ResourceManager] = {}


def resource_manager(backend: str = "@py") -> pyvisa.ResourceManager:
    manager = _MANAGERS.get(backend)
    if manager is not None:
        # pyvisa hands every caller the same manager per library: if anyone closed it, every
        # session through it is gone and a new one must be made
        try:
            _ = manager.session
        except pyvisa.errors.InvalidSession:
            manager = None
    if manager is None:
        manager = pyvisa.ResourceManager(_library(backend))
        _MANAGERS[backend] = manager
    return manager


def _library(backend: str) -> str | pyvisa.highlevel.VisaLibraryBase:
    # pyvisa takes a library instance as well as a "@name" (which it would import as a
    # top-level module pyvisa_<name>): the in-process backend lives in this package
    return InProcessVisaLibrary() if backend == BACKEND else backend


def open_resource(
    resource: str,
    timeout_s: float,
    backend: str = "@py",
    *,
    baud_rate: int = 9600,
    termination: str = "\n",
) -> Any:
    """Open ``resource`` with LF termination and ``timeout_s``; raise ConnectionLost if it cannot.

    ``baud_rate`` applies to ``ASRL`` resources only (set it to the instrument's menu setting).
    """
    kwargs: dict[str, Any] = {
        "read_termination": termination,
        "write_termination": termination,
        "timeout": max(1, round(timeout_s * 1000)),
    }
    if resource.upper().startswith("ASRL"):
        kwargs["baud_rate"] = baud_rate
    try:
        return resource_manager(backend).open_resource(resource, **kwargs)
    except (pyvisa.errors.VisaIOError, OSError, ValueError) as error:
        raise ConnectionLost(resource, "open", str(error)) from error
