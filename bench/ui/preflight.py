"""Refusals that protect a run (issue 10 item 4): checked before a start touches the pack.

Each check returns the reason in words the operator can act on, or None.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from bench.config import StationConfig
from bench.station import connect_bench
from bench.store import RunStore, resolve_db_url
from bench.store.deadline import call_with_deadline

log = logging.getLogger(__name__)
T = TypeVar("T")


def store_url(station: StationConfig, db: str | None) -> str:
    return resolve_db_url(db, station.database_url, Path(station.runs_dir))


#: the operator sees a refusal within this many seconds whatever the database does (issue 18 item 2)
STORE_DEADLINE_S = 1.5


def with_store(station: StationConfig, db: str | None, what: str, fn: Callable[[Any], T],
               timeout_s: float = STORE_DEADLINE_S) -> T:
    """``fn(store)`` on a fresh store, in a thread, given up after ``timeout_s`` (StoreError)."""
    url = store_url(station, db)

    def call() -> T:
        store = RunStore(url, timeout_s=max(timeout_s, 2.0))
        try:
            return fn(store)
        finally:
            store.close()

    return call_with_deadline(call, timeout_s, what)


def store_problem(station: StationConfig, db: str | None) -> str | None:
    """A run whose record cannot be stored must not start: ping the records store (bounded)."""
    try:
        with_store(station, db, "ping", lambda store: store.ping())
    except Exception as exc:  # StoreError, InputError, OSError: all mean "cannot record"
        return f"records store unreachable: {exc}"
    return None


def calibration_problem(station: StationConfig, today: date | None = None) -> str | None:
    """In production mode an instrument past its calibration due date may not be used."""
    if not station.production:
        return None
    today = today or date.today()
    overdue = [f"{role} calibration overdue since {cfg.calibration_due.isoformat()}"
               for role, cfg in (("supply", station.supply), ("load", station.load))
               if cfg.calibration_due is not None and cfg.calibration_due < today]
    return "; ".join(overdue) + " (production station)" if overdue else None


def instrument_problem(station: StationConfig) -> str | None:
    """Real (or externally simulated) instruments: open them and ask for their identity."""
    if station.simulator is not None and station.simulator.mode == "in_process":
        return None  # started with the run; nothing to ask beforehand
    try:
        bench = connect_bench(station)
    except Exception as exc:
        return f"instruments not answering: {exc}"
    try:
        bench.supply.identify()
        bench.load.identify()
        bench.adapter.read_identity()
    except Exception as exc:
        return f"instruments not answering: {exc}"
    finally:
        try:
            bench.close()
        except Exception as exc:  # closing must not hide the answer
            log.warning("closing after preflight: %s", exc)
    return None
