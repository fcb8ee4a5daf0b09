"""The backfill's durable state: one row per backfill operation and one per transaction it
handled, and the request_ids claimed by starts not yet recorded (revisions 0009, 0010). Progress is not
stored: it is read from the links of the postings."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel


class BackfillRow(SQLModel, table=True):
    __tablename__ = "backfill"
    __table_args__ = (Index("ix_backfill_request", "connection_id", "request_id"),)
    backfill_id: str = Field(primary_key=True, max_length=40)
    connection_id: str = Field(max_length=64)
    request_id: str = Field(default="", max_length=128)
    bills: int
    # sha256 of the request's bills and payments: a request_id names this request only.
    fingerprint: str = Field(default="", max_length=64)
    create_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class BackfillItemRow(SQLModel, table=True):
    __tablename__ = "backfill_item"
    id: int | None = Field(default=None, primary_key=True)
    backfill_id: str = Field(max_length=40, index=True)
    # Position in the backfill: bills before their payments, in request order.
    seq: int
    bill_index: int
    kind: int
    record_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    # accepted, already_done or refused.
    outcome: str = Field(max_length=16)
    posting_id: str = Field(default="", max_length=40)
    # JSON error (service_layer/errors_json.py) of a refused item.
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class BackfillClaimRow(SQLModel, table=True):
    """A request_id taken by a start before it posts anything, until its backfill is recorded:
    another request under it is refused with nothing of it posted, and the claiming request,
    sent again after a start that stopped part-way, finishes it."""

    __tablename__ = "backfill_claim"
    connection_id: str = Field(primary_key=True, max_length=64)
    request_id: str = Field(primary_key=True, max_length=128)
    fingerprint: str = Field(max_length=64)
    create_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The starts of the request that hold the claim (revision 0010): a start that fails having
    # queued nothing drops its own hold, and the claim goes with the last one. A start that
    # queued something, or crashed, never drops its hold, so the request can still be finished.
    holders: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))


TABLES = [BackfillRow.__table__, BackfillItemRow.__table__, BackfillClaimRow.__table__]  # type: ignore[attr-defined]
