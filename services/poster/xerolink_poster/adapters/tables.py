"""The registry's tables as SQLModel classes. Times are integer microseconds since the epoch
(UTC): the same on SQLite and PostgreSQL, no naive/aware ambiguity, cheap lease comparisons.
Schema changes go through adapters/migrations.py, never through create_all at start-up."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from xerolink_poster.domain.states import ConnectionState


def _big(**kwargs: object) -> Column[int]:
    return Column(BigInteger, **kwargs)  # type: ignore[arg-type]


class ConnectionRow(SQLModel, table=True):
    """A connection between one Actionstep organisation and one Xero organisation (tenant)."""

    __tablename__ = "connection"
    # One Xero organisation, one connected connection (connections.require_tenant_free): the check
    # alone let two overlapping transactions each find the other absent and both commit (0011).
    __table_args__ = (
        Index(
            "ux_connection_connected_tenant",
            "xero_tenant_id",
            unique=True,
            sqlite_where=text("state = 'connected' AND xero_tenant_id != ''"),
            postgresql_where=text("state = 'connected' AND xero_tenant_id != ''"),
        ),
    )
    connection_id: str = Field(primary_key=True, max_length=64)
    xero_base_url: str = Field(sa_column=Column(Text, nullable=False))
    xero_tenant_id: str = Field(max_length=64, index=True)
    # Plain-text tokens of registries before migration 6; always empty since (see token_box).
    access_token: str = Field(default="", sa_column=Column(Text, nullable=False))
    refresh_token: str = Field(default="", sa_column=Column(Text, nullable=False))
    # xerolink.mapper.v1.MappingContext, serialized: what every mapping of this connection needs.
    mapping_context: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    create_us: int = Field(sa_column=_big(nullable=False))
    # The access and refresh token, AES-GCM sealed (adapters/token_vault.py) with key token_key_id.
    token_key_id: str = Field(default="", max_length=32)
    token_box: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # Incremented by every token change: the compare-and-swap that lets one worker refresh.
    token_version: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    access_expires_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    token_update_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    # Who is exchanging the refresh token, and until when the others wait for it.
    refresh_holder: str = Field(default="", max_length=128)
    refresh_until_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    # connected / needs_reconnect / disconnected.
    state: str = Field(default=ConnectionState.CONNECTED, max_length=16)
    # The server-configured Xero app that refreshes the tokens ("" = never refreshed).
    xero_app: str = Field(default="", max_length=64)
    # Xero's id of the tenant connection (DELETE /connections/{id} disconnects it).
    xero_connection_id: str = Field(default="", max_length=64)
    # JSON: organisation facts and warnings read at connect time.
    organisation: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # xerolink.poster.v1.ConnectionRouting, serialized; None or empty routes nothing (schema 0004).
    routing: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # The connections a routing ever joined (the firm's office, trust and divisions' organisations)
    # share a group, named by one of them; "" for a connection never routed with another. Routing
    # changes never split a group: a record is linked under at most one connection of it.
    firm_group: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class LinkRow(SQLModel, table=True):
    """One Actionstep record and the Xero objects that represent it."""

    __tablename__ = "link"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "record_id", name="uq_link_record"),
        Index("ix_link_list", "connection_id", "link_group", "state", "id"),
        # A connection's links in id order: ListLinks' pages (revision 0008).
        Index("ix_link_page", "connection_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    connection_id: str = Field(max_length=64)
    kind: int
    record_id: int = Field(sa_column=_big(nullable=False))
    link_group: int
    state: str = Field(max_length=16)
    fingerprint: str = Field(max_length=64)
    # Incremented each time the record is posted afresh after an unlink: part of the
    # references set in Xero, so a lookup never finds the orphaned object of an earlier cycle.
    generation: int = 1
    attempts: int = 0
    # JSON: {"code", "reason", "message", "field_violations": [{"field", "description"}]}.
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # JSON list of XeroObjectRef.to_json().
    xero_objects: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    # JSON list of [kind, id] this link waits for.
    waiting_on: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    # This generation gave up while a call's outcome was unknown: Xero may hold its object.
    outcome_unknown: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    posting_id: str = Field(max_length=40)
    create_us: int = Field(sa_column=_big(nullable=False))
    update_us: int = Field(sa_column=_big(nullable=False))


class PostingRow(SQLModel, table=True):
    """One accepted request to post one version of a transaction."""

    __tablename__ = "posting"
    __table_args__ = (
        # ListPostings' order, newest first, the ties by id (revision 0008 added posting_id).
        Index("ix_posting_list", "connection_id", "create_us", "posting_id"),
        Index("ix_posting_request", "connection_id", "request_id"),
    )
    posting_id: str = Field(primary_key=True, max_length=40)
    connection_id: str = Field(max_length=64)
    kind: int
    record_id: int = Field(sa_column=_big(nullable=False))
    link_id: int | None = Field(default=None, index=True)
    fingerprint: str = Field(max_length=64)
    # xerolink.mapper.v1.Decision, serialized.
    decision: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(max_length=16)
    duplicate: bool = False
    request_id: str = Field(default="", max_length=128)
    create_us: int = Field(sa_column=_big(nullable=False))


class AuditRow(SQLModel, table=True):
    """Append-only: rows are inserted with the state change they record and never updated."""

    __tablename__ = "link_audit"
    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(index=True)
    time_us: int = Field(sa_column=_big(nullable=False))
    actor: str = Field(max_length=128)
    event: str = Field(max_length=32)
    from_state: str = Field(default="", max_length=16)
    to_state: str = Field(max_length=16)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))


class OutboxRow(SQLModel, table=True):
    """Durable work: the mapped operations of one posting, claimed by the dispatcher that holds
    the tenant's lease. state: ready (claimable), waiting (on a dependency), done."""

    __tablename__ = "outbox"
    # A claim reads a tenant's ready entries in the order they became available and stops at the
    # batch, and the tenants with ready work are found by hopping from tenant to tenant (see
    # SqlOutboxRepository.tenants_with_ready_work): both cost the same however long the queue.
    __table_args__ = (Index("ix_outbox_ready", "state", "tenant_id", "available_us", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    connection_id: str = Field(max_length=64)
    link_id: int = Field(index=True)
    posting_id: str = Field(max_length=40)
    # xerolink.mapper.v1.MapTransactionResponse, serialized.
    operations: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(max_length=16)
    available_us: int = Field(sa_column=_big(nullable=False))
    claimed_by: str = Field(default="", max_length=128)
    lease_until_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    attempts: int = 0
    # The last call for this work had no certain answer: look the object up before creating.
    uncertain: bool = False
    create_us: int = Field(sa_column=_big(nullable=False))
    # W3C traceparent of the request that accepted the work, continued around its Xero call.
    trace_context: str = Field(default="", max_length=128)
    # Post this entry in a call of its own: a batch it was in was refused whole, with no answer
    # per element, so only a call of one tells whether Xero refuses it.
    alone: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    # What the look-up after an uncertain call needs and Xero cannot carry: for an allocation,
    # the JSON list of the credit note's allocation ids read just before the call.
    lookup_hint: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class DependencyWaitRow(SQLModel, table=True):
    """One record an outbox entry waits for; deleted when that record links."""

    __tablename__ = "dependency_wait"
    __table_args__ = (Index("ix_wait_record", "connection_id", "kind", "record_id"),)
    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(index=True)
    connection_id: str = Field(max_length=64)
    kind: int
    record_id: int = Field(sa_column=_big(nullable=False))


class ContactLinkRow(SQLModel, table=True):
    """An Actionstep participant and the Xero contact found or created for it, once."""

    __tablename__ = "contact_link"
    # The participant linked to a Xero contact (participant_of_contact), revision 0006.
    __table_args__ = (Index("ix_contact_link_contact", "connection_id", "contact_id"),)
    connection_id: str = Field(primary_key=True, max_length=64)
    participant_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    contact_id: str = Field(max_length=64)
    contact_number: str = Field(max_length=64)
    create_us: int = Field(sa_column=_big(nullable=False))
    # How the contact became this participant's: "created", "created_renamed" (created under a
    # name that names the participant, because another contact held the display name), or
    # "contact_number" (found in Xero by ContactNumber AS-<participant id>, which the firm set).
    origin: str = Field(default="", max_length=32)


class TrackingCategoryLinkRow(SQLModel, table=True):
    """The Xero tracking category a connection's matters are tracked in, found or created once."""

    __tablename__ = "tracking_category_link"
    connection_id: str = Field(primary_key=True, max_length=64)
    category_name: str = Field(max_length=100)
    tracking_category_id: str = Field(max_length=64)
    create_us: int = Field(sa_column=_big(nullable=False))
    # "created", or "found" (an active category of that name was already in Xero).
    origin: str = Field(default="", max_length=32)


class MatterOptionLinkRow(SQLModel, table=True):
    """A matter and its tracking option in the connection's category, found or created once and
    known by its TrackingOptionID whatever the option is renamed to in Xero."""

    __tablename__ = "matter_option_link"
    connection_id: str = Field(primary_key=True, max_length=64)
    action_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    tracking_category_id: str = Field(max_length=64)
    tracking_option_id: str = Field(max_length=64)
    name: str = Field(max_length=100)
    # "active" or "archived" (CloseMatter); see domain/matters.py.
    state: str = Field(max_length=16)
    # "created", or "found" (an option of the matter's name was already in the category).
    origin: str = Field(default="", max_length=32)
    create_us: int = Field(sa_column=_big(nullable=False))
    update_us: int = Field(sa_column=_big(nullable=False))


class TenantLeaseRow(SQLModel, table=True):
    """Which poster process serves a Xero tenant, until when, and the calls it made recently
    (so a new holder starts from the old holder's budget, not from zero)."""

    __tablename__ = "tenant_lease"
    tenant_id: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_us: int = Field(sa_column=_big(nullable=False))
    # JSON list of wall-clock seconds of the calls in the last (scaled) minute.
    minute_log: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    day_calls: int = 0
    day_started_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    blocked_until_us: int = Field(default=0, sa_column=_big(nullable=False, default=0))


class AppCallBucketRow(SQLModel, table=True):
    """The app's Xero calls across every poster, per sixtieth of a (scaled) minute, so the
    posters together keep under Xero's app-wide minute before its headers have to say so."""

    __tablename__ = "app_call_bucket"
    bucket_us: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    calls: int = 0


class SchemaVersionRow(SQLModel, table=True):
    __tablename__ = "schema_version"
    version: int = Field(primary_key=True)
    name: str = Field(max_length=128)
    applied_us: int = Field(sa_column=_big(nullable=False))


class LinkSubjectRow(SQLModel, table=True):
    """The matter and participant of a link's record, as its last posting carried them, so an
    operator can select links by matter or client (schema version 4; earlier records have none)."""

    __tablename__ = "link_subject"
    __table_args__ = (
        Index("ix_subject_action", "connection_id", "action_id"),
        Index("ix_subject_participant", "connection_id", "participant_id"),
    )
    link_id: int = Field(primary_key=True)
    connection_id: str = Field(max_length=64)
    action_id: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    participant_id: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    # A trust journal's matters: the one paying (its trust falls) and the one receiving, each
    # line's matter where Xero's lines carry none (no reports by matter; revision 0012). 0 for
    # every other record, and for journals last posted before.
    paying_action_id: int = Field(default=0, sa_column=_big(nullable=False, default=0, server_default="0"))
    receiving_action_id: int = Field(default=0, sa_column=_big(nullable=False, default=0, server_default="0"))


class LinkDependencyRow(SQLModel, table=True):
    """A record whose Xero document a link's current posting refers to (a payment's invoice, an
    allocation's credit note and invoice). Unlike dependency waits these rows stay while the
    link is linked: they are how an unlink finds the payments of an invoice."""

    __tablename__ = "link_dependency"
    __table_args__ = (Index("ix_dependency_record", "connection_id", "kind", "record_id"),)
    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(index=True)
    connection_id: str = Field(max_length=64)
    kind: int
    record_id: int = Field(sa_column=_big(nullable=False))


class LinkObjectRow(SQLModel, table=True):
    """A Xero object a link holds, keyed by the object's id in lower case (Xero's GUIDs compare
    without case): the link of a Xero object is found by key (webhook events, drift checks, the
    look-up after a lost answer), not by matching the JSON of every link of the connection
    (revision 0007). Written by a trigger on `link` in the statement that sets its objects, and
    never removed: a link that lets an object go (posted again after an unlink) keeps the row, so
    readers check the link's own `xero_objects`, which stays the truth."""

    __tablename__ = "link_object"
    connection_id: str = Field(primary_key=True, max_length=64)
    xero_id: str = Field(primary_key=True, max_length=64)
    link_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


class OrphanRow(SQLModel, table=True):
    """A Xero object left in Xero when its link was unlinked. Append-only, like the audit trail."""

    __tablename__ = "orphaned_xero_object"
    __table_args__ = (
        Index("ix_orphan_list", "connection_id", "id"),
        Index("ix_orphan_record", "connection_id", "kind", "record_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    connection_id: str = Field(max_length=64)
    link_id: int
    kind: int
    record_id: int = Field(sa_column=_big(nullable=False))
    generation: int
    object_type: int
    xero_id: str = Field(max_length=64)
    local_ref: str = Field(default="", sa_column=Column(Text, nullable=False))
    number: str = Field(default="", sa_column=Column(Text, nullable=False))
    orphaned_us: int = Field(sa_column=_big(nullable=False))
    actor: str = Field(max_length=128)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
