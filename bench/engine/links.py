"""Instrument links that drop in the middle of a run (a LAN blip, a cable knocked out).

A 10-hour calibration must not end, nor leave an output on, because a switch rebooted. When a
supply or load stops answering (after the driver's own quick retries, ``drivers.scpi``):

* the run pauses (a supervision pause, like a silent BMS) with every reachable output off;
* the lost instrument is re-opened with back-off on bench time, and each time it answers the
  first thing it is sent is the off command, read back: it only counts as back once its output is
  confirmed off;
* once every instrument is back the step goes on where it allows it (the step executor's pause:
  outputs re-configured); still unreachable after ``reconnect_window_s``: abort.

After any abort, :func:`confirm_outputs_off` keeps sending the off command to an output not
confirmed off until it is, or ``off_retry_s`` has passed; the record lists what stayed
unconfirmed (:class:`bench.record.UnconfirmedOutput`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.engine.journal import RunContext
from bench.engine.port import BenchPort, PowerStage, Role
from bench.engine.supervision import SupervisionLimit, SupervisionPause
from bench.errors import BenchError, ConnectionLost, SafetyTrip
from bench.record import UnconfirmedOutput

#: first retry this long after the drop, then doubling up to :data:`RETRY_MAX_S` (bench s)
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 15.0
ROLES: tuple[Role, ...] = ("load", "supply")  # reverse order of activation, as in Bench.safe_state


@dataclass
class LostLink:
    role: Role
    since_s: float
    error: str
    next_try_s: float
    delay_s: float = RETRY_FIRST_S
    attempts: int = 0


def _backoff(link: LostLink, t_s: float) -> None:
    link.attempts += 1
    link.next_try_s = t_s + link.delay_s
    link.delay_s = min(link.delay_s * 2.0, RETRY_MAX_S)


def reach_and_switch_off(drv: PowerStage) -> None:
    """Re-open ``drv``, send it the off command and read it back; raises unless confirmed off."""
    drv.reconnect()
    problems = drv.safe_state()
    if drv.output_is_on():
        raise BenchError(f"{drv.name}: still on after the off command ({'; '.join(problems)})")


def confirmed_off(drv: PowerStage) -> bool:
    """True when the instrument answers that its output is off (False if it cannot say)."""
    try:
        return drv.output_is_on() is False
    except Exception:
        return False


class LinkSupervisor:
    """The engine's view of which instruments answer; asked for every measurement."""

    def __init__(self, bench: BenchPort, window_s: float) -> None:
        self.bench = bench
        self.window_s = window_s
        self.lost: dict[Role, LostLink] = {}

    def measure(self, role: Role, drv: PowerStage, t_s: float) -> tuple[float, float]:
        """(V, A) of ``drv``, or NaNs while its link is down (a new loss is noted, not raised)."""
        if role in self.lost:
            return math.nan, math.nan
        try:
            volts, amps = drv.measure()
        except ConnectionLost as exc:
            self.lost[role] = LostLink(role, t_s, str(exc), next_try_s=t_s + RETRY_FIRST_S)
            return math.nan, math.nan
        return float(volts), float(amps)

    def supervise(self, engine: RunContext, t_s: float, newly_lost: list[Role]) -> SupervisionPause | None:
        """After a sample: make the bench safe on a new loss, retry due reconnects, enforce the
        window. Returns the pause to hold (None once every instrument is back)."""
        if not self.lost:
            return None
        if newly_lost:
            self._on_loss(engine, newly_lost)
        for link in list(self.lost.values()):
            if t_s >= link.next_try_s - 1e-9:
                self._try(engine, link, t_s)
        if not self.lost:
            # back and confirmed off, but this sample's readings are NaN: the step goes on
            # after one full sample, not on this one
            return self._pause()
        for link in self.lost.values():
            if t_s - link.since_s >= self.window_s - 1e-9:
                engine.end_begins()
                engine.bench.safe_state(skip=set(self.lost))
                message = (f"instrument_lost: {link.role} unreachable for {t_s - link.since_s:.0f} s "
                           f"(reconnect window {self.window_s:.0f} s, {link.attempts} attempts): "
                           f"{link.error}")
                engine.event("trip", message, data={"limit": "instrument_lost", "action": "abort"})
                engine.publish("trip", {"message": message, "action": "abort"})
                raise SafetyTrip(message)
        return self._pause()

    def _on_loss(self, engine: RunContext, roles: list[Role]) -> None:
        # outputs off in this control interval, on every instrument that answers; the lost one is
        # sent its off command at each reconnect attempt (its driver already retried just now)
        problems = engine.bench.safe_state(skip=set(self.lost))
        for problem in problems:
            engine.event("warning", f"safe state: {problem}")
        for role in roles:
            link = self.lost[role]
            engine.event("warning", f"lost instrument: {link.error}; its {_output(role)} is not "
                         f"confirmed off until it answers again",
                         data={"limit": "instrument_lost", "instrument": role})

    def _try(self, engine: RunContext, link: LostLink, t_s: float) -> None:
        drv = engine.bench.instrument(link.role)
        try:
            reach_and_switch_off(drv)
        except Exception as exc:  # still unreachable: try again later
            link.error = str(exc) or type(exc).__name__
            _backoff(link, t_s)
            return
        link.attempts += 1
        del self.lost[link.role]
        engine.event("info", f"{link.role} answers again after {t_s - link.since_s:.0f} s "
                     f"({link.attempts} attempts); its {_output(link.role)} is confirmed off",
                     data={"instrument": link.role, "unreachable_s": t_s - link.since_s})

    def _pause(self) -> SupervisionPause:
        first = min((link.since_s for link in self.lost.values()), default=0.0)
        if self.lost:
            message = (f"instrument_lost: {', '.join(sorted(self.lost))} unreachable; every reachable "
                       f"output off; reconnecting with back-off for up to {self.window_s:.0f} s")
        else:
            message = "instrument_lost: every instrument answers again, outputs confirmed off"
        limit = SupervisionLimit("instrument_lost", message)
        return SupervisionPause(limit, message, first)


def _output(role: Role) -> str:
    return "output" if role == "supply" else "input"


def confirm_outputs_off(bench: BenchPort, problems: list[str], lost: set[Role], deadline_s: float,
                        sleep_until: Callable[[float], None], now: Callable[[], float],
                        exit_requested: Callable[[], bool]) -> list[UnconfirmedOutput]:
    """After ``bench.safe_state()`` returned ``problems``: every output that is not read back off is
    sent the off command again, with back-off, until it is confirmed or ``deadline_s`` (bench s) of
    retrying has passed. Returns the outputs still unconfirmed.

    ``exit_requested`` (Ctrl-C or SIGTERM while the run ends, ``bench.engine.end_of_run``) ends
    the retrying early; the caller hands the rest to the watchdog."""
    pending: dict[Role, str] = {}
    for role in ROLES:
        failed = [p for p in problems if p.startswith(f"{role}:")]
        if role in lost or failed or not confirmed_off(bench.instrument(role)):
            pending[role] = "; ".join(failed) or f"{role}: output state could not be read back"
    started = now()
    delay = RETRY_FIRST_S
    while pending and not exit_requested() and now() - started < deadline_s:
        sleep_until(min(now() + delay, started + deadline_s))
        if exit_requested():
            break
        delay = min(delay * 2.0, RETRY_MAX_S)
        for role in list(pending):
            try:
                reach_and_switch_off(bench.instrument(role))
            except Exception as exc:
                pending[role] = f"{role}: {exc}"
            else:
                del pending[role]
    retried = now() - started
    return [UnconfirmedOutput(instrument=role, last_error=error, retried_s=retried)
            for role, error in pending.items()]
