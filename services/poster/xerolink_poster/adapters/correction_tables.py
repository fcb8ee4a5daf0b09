"""The correction saga's tables (migration 5): one row per correction of one link generation,
one row per step. A step is written before its Xero call (in_progress) and after it (done or
failed), so a poster that dies mid-step leaves a row saying where to look Xero up."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _big(**kwargs: object) -> Column[int]:
    return Column(BigInteger, **kwargs)  # type: ignore[arg-type]


class CorrectionRow(SQLModel, table=True):
    __tablename__ = "correction"
    __table_args__ = (
        # One saga per generation of a link: applying again resumes it instead of starting over.
        UniqueConstraint("connection_id", "kind", "record_id", "generation", name="uq_correction_record"),
    )
    correction_id: str = Field(primary_key=True, max_length=40)
    connection_id: str = Field(max_length=64)
    kind: int
    record_id: int = Field(sa_column=_big(nullable=False))
    generation: int
    intent: int
    state: str = Field(max_length=16)
    xero_status: str = Field(default="", max_length=32)
    # JSON list of sentences.
    notes: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    # Who is running it and until when (renewed at every step); empty when nobody is.
    runner: str = Field(default="", max_length=160)
    runner_until_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    create_us: int = Field(sa_column=_big(nullable=False))
    update_us: int = Field(sa_column=_big(nullable=False))


class CorrectionStepRow(SQLModel, table=True):
    __tablename__ = "correction_step"
    __table_args__ = (Index("ix_correction_step_order", "correction_id", "position"),)
    correction_id: str = Field(primary_key=True, max_length=40)
    position: int = Field(primary_key=True)
    action: int
    actor: int
    description: str = Field(sa_column=Column(Text, nullable=False))
    kind: int = 0
    record_id: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    xero_type: int = 0
    xero_id: str = Field(default="", max_length=64)
    parent_xero_id: str = Field(default="", max_length=64)
    state: str = Field(max_length=16)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    reason: str = Field(default="", max_length=64)
    attempts: int = 0
    update_us: int = Field(sa_column=_big(nullable=False))
