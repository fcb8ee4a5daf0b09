"""Drift detection's tables (schema revision 0005, docs/drift.md): what xerolink expects each
linked Xero object to hold, the differences found, Xero's webhook events as received, and the
poller's place per resource."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _big(**kwargs: object) -> Column[int]:
    return Column(BigInteger, **kwargs)  # type: ignore[arg-type]


class XeroSnapshotRow(SQLModel, table=True):
    """One Xero object a link holds, as Xero answered when xerolink posted it (or as a person
    accepted it since): what drift detection compares Xero's current state with, and what
    reconciliation counts as posted. Named by the object's Xero id within the connection."""

    __tablename__ = "xero_snapshot"
    __table_args__ = (
        Index("ix_snapshot_link", "link_id"),
        Index("ix_snapshot_date", "connection_id", "doc_date"),
    )
    connection_id: str = Field(primary_key=True, max_length=64)
    xero_id: str = Field(primary_key=True, max_length=64)
    link_id: int
    # The link's generation that posted it.
    generation: int
    # xerolink.xero.v1.ObjectType.
    object_type: int
    # JSON: the object as Xero answered it (its element of the call's answer), trimmed to the
    # fields drift and reconciliation read (see domain/drift.py).
    document: str = Field(sa_column=Column(Text, nullable=False))
    # The document's date, YYYY-MM-DD, for reconciliation by period.
    doc_date: str = Field(default="", max_length=10)
    # Xero's UpdatedDateUTC of the last state compared with this one ("" before any comparison).
    xero_updated: str = Field(default="", max_length=40)
    # False once the link no longer holds it (unlinked): the object stays in Xero, orphaned.
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, default=True))
    create_us: int = Field(sa_column=_big(nullable=False))
    update_us: int = Field(sa_column=_big(nullable=False))


class DriftRow(SQLModel, table=True):
    """One kind of difference between a linked object and Xero's current state. At most one open
    row per object and kind: a later read with the same difference changes nothing, another
    difference of that kind updates it, and a read that finds Xero as posted resolves it."""

    __tablename__ = "drift"
    __table_args__ = (
        Index("ix_drift_list", "connection_id", "state", "id"),
        Index("ix_drift_link", "link_id", "state"),
        Index("ix_drift_object", "connection_id", "xero_id", "kind", "state"),
        # A connection's drift in id order, whatever its state: ListDrift's pages (revision 0008).
        Index("ix_drift_page", "connection_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    connection_id: str = Field(max_length=64)
    link_id: int
    xero_id: str = Field(max_length=64)
    object_type: int
    # xerolink.poster.v1.DriftKind name without its prefix, e.g. "PAID_IN_XERO".
    kind: str = Field(max_length=40)
    # "open" or "resolved".
    state: str = Field(max_length=16)
    # JSON list of {"field", "posted", "xero"}.
    differences: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    # "webhook", "poll", "posting" or "reconcile".
    source: str = Field(max_length=16)
    detected_us: int = Field(sa_column=_big(nullable=False))
    xero_updated: str = Field(default="", max_length=40)
    resolved_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    # DriftResolution name without its prefix, e.g. "ACCEPT_XERO"; "" while open.
    resolution: str = Field(default="", max_length=32)
    resolved_by: str = Field(default="", max_length=128)
    resolve_note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class WebhookEventRow(SQLModel, table=True):
    """One event of a signed Xero webhook, stored before the webhook is answered. Xero retries a
    delivery for hours: the same event again finds its row (event_key) and is not stored twice."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("event_key", name="uq_webhook_event"),
        Index("ix_webhook_pending", "state", "id"),
        # One object's events (pending_events_of), not every pending event (revision 0006).
        Index("ix_webhook_object", "tenant_id", "category", "resource_id", "state"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # SHA-256 of tenantId, eventCategory, eventType, resourceId and eventDateUtc.
    event_key: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    category: str = Field(max_length=32)
    event_type: str = Field(max_length=32)
    resource_id: str = Field(max_length=64)
    event_date: str = Field(max_length=40)
    received_us: int = Field(sa_column=_big(nullable=False))
    # "pending", "done" or "ignored" (no connection or link of ours).
    state: str = Field(max_length=16)
    attempts: int = 0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    done_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))


class PollCursorRow(SQLModel, table=True):
    """Where the poller's If-Modified-Since reads of one resource of one connection stand."""

    __tablename__ = "poll_cursor"
    connection_id: str = Field(primary_key=True, max_length=64)
    # The Xero collection, e.g. "Invoices".
    resource: str = Field(primary_key=True, max_length=32)
    # The next If-Modified-Since: a millisecond before the newest change of the last page read
    # ("" before the first read).
    modified_since: str = Field(default="", max_length=40)
    last_poll_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))
