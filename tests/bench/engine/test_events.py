"""The progress event bus: every event to every subscriber, sample events only to those that take them."""

from __future__ import annotations

from bench.engine.events import EventBus, ProgressEvent


def _sample(t_s: float) -> ProgressEvent:
    return ProgressEvent(kind="sample", run_id="r", t_s=t_s, data={"t": t_s})


def test_nobody_listening_wants_no_sample_event():
    bus = EventBus()
    assert not bus.wants_sample(0.0)
    got: list[ProgressEvent] = []
    unsubscribe = bus.subscribe(got.append)
    assert bus.wants_sample(0.0) and bus.wants_sample(1e9)
    unsubscribe()
    assert not bus.wants_sample(5.0)


def test_a_status_line_subscriber_takes_one_sample_per_period_and_every_other_event():
    bus = EventBus()
    every: list[float] = []
    status: list[float] = []
    bus.subscribe(lambda ev: status.append(ev.t_s) if ev.kind == "sample" else None, sample_every_s=600.0)
    for t in range(0, 1801):
        if bus.wants_sample(float(t)):
            bus.publish(_sample(float(t)))
    # alone, it is asked only at its due times: the other samples are never built
    assert status == [0.0, 600.0, 1200.0, 1800.0]
    unsubscribe = bus.subscribe(lambda ev: every.append(ev.t_s) if ev.kind == "sample" else None)
    for t in range(1801, 2500):
        assert bus.wants_sample(float(t))
        bus.publish(_sample(float(t)))
    assert every == [float(t) for t in range(1801, 2500)]
    assert status == [0.0, 600.0, 1200.0, 1800.0, 2400.0]
    unsubscribe()
    assert not bus.wants_sample(2500.0) and bus.wants_sample(3000.0)
    others: list[str] = []
    bus.subscribe(lambda ev: others.append(ev.kind), sample_every_s=600.0)
    bus.publish(ProgressEvent(kind="step_started", run_id="r", t_s=2500.0))
    assert others == ["step_started"]


def test_a_failing_subscriber_is_dropped_and_no_longer_wants_samples():
    bus = EventBus()

    def broken(ev: ProgressEvent) -> None:
        raise RuntimeError("display gone")

    bus.subscribe(broken)
    bus.publish(_sample(0.0))
    assert not bus.wants_sample(1.0)
