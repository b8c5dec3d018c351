"""SQLAlchemy tables of the records store.

Shared rows (stations, instruments, packs) are keyed by natural keys so that several benches
can upsert them concurrently. Everything a run owns (steps, checks, events, files, samples)
hangs off ``runs.run_id`` and is rewritten per run only, so benches never lock each other's rows.

The Alembic revision in ``migrations/versions`` creates exactly these tables; change both together.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bench.record import SAMPLE_COLUMNS

#: Sample columns stored as text (the step id); every other column is a float.
TEXT_SAMPLE_COLUMNS = frozenset({"step"})


class Base(DeclarativeBase):
    pass


class Station(Base):
    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    location: Mapped[str] = mapped_column(String(200), default="")
    simulated: Mapped[bool] = mapped_column(Boolean)
    production: Mapped[bool] = mapped_column(Boolean, default=False)


class Instrument(Base):
    __tablename__ = "instruments"
    __table_args__ = (UniqueConstraint("family", "make", "model", "serial", name="uq_instrument_identity"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    family: Mapped[str] = mapped_column(String(100))
    make: Mapped[str] = mapped_column(String(100), default="")
    model: Mapped[str] = mapped_column(String(100), default="")
    serial: Mapped[str] = mapped_column(String(100), default="")
    firmware: Mapped[str] = mapped_column(String(100), default="")
    calibration_due: Mapped[date | None] = mapped_column(Date, nullable=True)


class Pack(Base):
    __tablename__ = "packs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(100), unique=True)
    part_number: Mapped[str] = mapped_column(String(100), default="")
    nominal_capacity_ah: Mapped[float] = mapped_column(Float)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_pack_started", "pack_id", "started_at"),)
    run_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    pack_id: Mapped[int] = mapped_column(ForeignKey("packs.id"))
    verdict: Mapped[str] = mapped_column(String(20), index=True)
    abort_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    procedure_name: Mapped[str] = mapped_column(String(200), index=True)
    procedure_version: Mapped[str] = mapped_column(String(50))
    procedure_sha256: Mapped[str] = mapped_column(String(64))
    software_version: Mapped[str] = mapped_column(String(50))
    operator: Mapped[str] = mapped_column(String(100), default="")
    simulated: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    bms_serial: Mapped[str] = mapped_column(String(100), default="")
    bms_sw_version: Mapped[str] = mapped_column(String(100), default="")
    bms_hw_version: Mapped[str] = mapped_column(String(100), default="")
    as_received_soc_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    as_received_soh_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    as_received_cycle_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    as_received_dtcs: Mapped[list[str]] = mapped_column(JSON, default=list)
    ah_charged: Mapped[float] = mapped_column(Float, default=0.0)
    ah_discharged: Mapped[float] = mapped_column(Float, default=0.0)
    wh_charged: Mapped[float] = mapped_column(Float, default=0.0)
    wh_discharged: Mapped[float] = mapped_column(Float, default=0.0)
    reference_capacity_ah: Mapped[float | None] = mapped_column(Float, nullable=True)
    bms_learned_capacity_ah: Mapped[float | None] = mapped_column(Float, nullable=True)
    soh_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    divergence_v: Mapped[float | None] = mapped_column(Float, nullable=True)
    bench_hours: Mapped[float] = mapped_column(Float, default=0.0)
    sample_count: Mapped[int] = mapped_column(Integer, default=0)
    #: The whole RunRecord as JSON: the store can hand back exactly what the engine wrote.
    record_json: Mapped[str] = mapped_column(Text)


class RunInstrument(Base):
    __tablename__ = "run_instruments"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"))
    role: Mapped[str] = mapped_column(String(20))
    resource: Mapped[str] = mapped_column(String(300), default="")
    calibration_overdue: Mapped[bool] = mapped_column(Boolean, default=False)


class Step(Base):
    __tablename__ = "steps"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(50))
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str] = mapped_column(Text, default="")
    ah: Mapped[float] = mapped_column(Float, default=0.0)
    wh: Mapped[float] = mapped_column(Float, default=0.0)
    resumed: Mapped[bool] = mapped_column(Boolean, default=False)


class Check(Base):
    __tablename__ = "checks"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_id: Mapped[str] = mapped_column(String(100), index=True)
    step_id: Mapped[str] = mapped_column(String(100))
    t_s: Mapped[float] = mapped_column(Float)
    value_num: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    unit: Mapped[str] = mapped_column(String(20), default="")
    low: Mapped[float | None] = mapped_column(Float, nullable=True)
    high: Mapped[float | None] = mapped_column(Float, nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    decision_rule: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    # revision 0002: the rest of the check record
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    reference: Mapped[float | None] = mapped_column(Float, nullable=True)
    tolerance: Mapped[float | None] = mapped_column(Float, nullable=True)
    tolerance_kind: Mapped[str | None] = mapped_column(String(10), nullable=True)
    action: Mapped[str | None] = mapped_column(Text, nullable=True)
    retried: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Event(Base):
    __tablename__ = "events"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    t_s: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)


class RunFile(Base):
    __tablename__ = "run_files"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(Integer)


def _sample_columns() -> list[Column[Any]]:
    columns: list[Column[Any]] = [
        Column("run_id", String(100), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        Column("t_s", Float, primary_key=True),
    ]
    for name in SAMPLE_COLUMNS:
        if name == "t_s":
            continue
        kind = String(100) if name in TEXT_SAMPLE_COLUMNS else Float
        columns.append(Column(name, kind, nullable=True))
    return columns


#: One row per line of ``samples.csv``; (run_id, t_s) is the key, so re-sending a batch after a
#: crash or a retry inserts nothing twice.
samples_table = Table("samples", Base.metadata, *_sample_columns())
