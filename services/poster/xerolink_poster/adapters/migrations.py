"""A small versioned migration runner (Alembic would be more machinery than these few steps
need). Each step is a numbered Python function run in its own transaction and recorded in
schema_version; the runner applies the missing ones in order. On PostgreSQL a transaction-level
advisory lock serialises posters starting together; on SQLite BEGIN IMMEDIATE does."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, inspect, select, text
from sqlmodel import SQLModel
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2

from xerolink_poster.adapters import backfill_tables, correction_tables, tables
from xerolink_poster.adapters.connection_migration import connection_lifecycle
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.operations import record_dependencies

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x5845524F  # any constant shared by every poster


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _create_v1_tables(conn: Connection) -> None:
    wanted = [
        tables.ConnectionRow,
        tables.LinkRow,
        tables.PostingRow,
        tables.AuditRow,
        tables.OutboxRow,
        tables.DependencyWaitRow,
        tables.ContactLinkRow,
        tables.TenantLeaseRow,
    ]
    SQLModel.metadata.create_all(conn, tables=[t.__table__ for t in wanted])  # type: ignore[attr-defined]


def _index_outbox_by_posting(conn: Connection) -> None:
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_outbox_posting ON outbox (posting_id)"))


def _outbox_trace_context(conn: Connection) -> None:
    # A registry created by this version's step 1 already has the column (create_all uses the
    # current table definitions); one created by an older version gets it here.
    if "trace_context" not in {c["name"] for c in inspect(conn).get_columns("outbox")}:
        conn.execute(text("ALTER TABLE outbox ADD COLUMN trace_context VARCHAR(128) NOT NULL DEFAULT ''"))


def _unlink_tables(conn: Connection) -> None:
    """Subjects, lasting dependencies and orphans. Dependencies of existing links are read from
    the operations of each link's current posting; subjects cannot be (the transaction itself is
    not stored), so matter and participant filters know records posted from this version on."""
    wanted = [tables.LinkSubjectRow, tables.LinkDependencyRow, tables.OrphanRow]
    SQLModel.metadata.create_all(conn, tables=[t.__table__ for t in wanted])  # type: ignore[attr-defined]
    link, outbox = tables.LinkRow.__table__, tables.OutboxRow.__table__  # type: ignore[attr-defined]
    current = select(link.c.id, link.c.connection_id, outbox.c.operations).join(
        outbox, (outbox.c.link_id == link.c.id) & (outbox.c.posting_id == link.c.posting_id)
    )
    rows: list[dict[str, object]] = []
    for link_id, connection_id, operations in conn.execute(current):
        mapped = mapper_pb2.MapTransactionResponse.FromString(operations)
        rows.extend(
            {"link_id": link_id, "connection_id": connection_id, "kind": dep.kind, "record_id": dep.id}
            for dep in record_dependencies(mapped.operations)
        )
    if rows:
        conn.execute(tables.LinkDependencyRow.__table__.insert(), rows)  # type: ignore[attr-defined]


def _create_backfill_tables(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn, tables=backfill_tables.TABLES)


def _create_correction_tables(conn: Connection) -> None:
    wanted = [correction_tables.CorrectionRow, correction_tables.CorrectionStepRow]
    SQLModel.metadata.create_all(conn, tables=[t.__table__ for t in wanted])  # type: ignore[attr-defined]


def _retention_and_app_minute(conn: Connection) -> None:
    # The retention purge finds old done entries without reading the live ones.
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_outbox_done ON outbox (state, create_us)"))
    SQLModel.metadata.create_all(conn, tables=[tables.AppCallBucketRow.__table__])  # type: ignore[attr-defined]


def _link_outcome_unknown(conn: Connection) -> None:
    # A registry created by this version's step 1 already has the column.
    if "outcome_unknown" not in {c["name"] for c in inspect(conn).get_columns("link")}:
        conn.execute(text("ALTER TABLE link ADD COLUMN outcome_unknown BOOLEAN NOT NULL DEFAULT false"))


def _exactly_once_columns(conn: Connection) -> None:
    # A registry created by this version's step 1 already has the columns.
    outbox = {c["name"] for c in inspect(conn).get_columns("outbox")}
    if "alone" not in outbox:
        conn.execute(text("ALTER TABLE outbox ADD COLUMN alone BOOLEAN NOT NULL DEFAULT false"))
    if "lookup_hint" not in outbox:
        conn.execute(text("ALTER TABLE outbox ADD COLUMN lookup_hint TEXT NOT NULL DEFAULT ''"))
    if "origin" not in {c["name"] for c in inspect(conn).get_columns("contact_link")}:
        conn.execute(text("ALTER TABLE contact_link ADD COLUMN origin VARCHAR(32) NOT NULL DEFAULT ''"))
    if "fingerprint" not in {c["name"] for c in inspect(conn).get_columns("backfill")}:
        conn.execute(text("ALTER TABLE backfill ADD COLUMN fingerprint VARCHAR(64) NOT NULL DEFAULT ''"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create the registry, outbox and lease tables", _create_v1_tables),
    Migration(2, "index outbox entries by posting", _index_outbox_by_posting),
    Migration(3, "carry each posting's trace context to its Xero calls", _outbox_trace_context),
    Migration(4, "record link subjects, lasting dependencies and orphaned Xero objects", _unlink_tables),
    Migration(5, "record correction sagas and their steps", _create_correction_tables),
    Migration(6, "connection lifecycle: encrypted tokens, refresh lease, state, organisation", connection_lifecycle),
    Migration(7, "record pre-integration backfills and their items", _create_backfill_tables),
    Migration(8, "index done outbox entries by age; count app-wide Xero calls", _retention_and_app_minute),
    Migration(9, "remember links that gave up while a call's outcome was unknown", _link_outcome_unknown),
    Migration(
        10,
        "exactly-once columns: alone, look-up hints, contact origins, backfill fingerprints",
        _exactly_once_columns,
    ),
)


def _lock(db: Database, conn: Connection) -> None:
    if not db.is_sqlite:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})


def current_version(db: Database) -> int:
    with db.read.connect() as conn:
        if not db.read.dialect.has_table(conn, "schema_version"):
            return 0
        column = tables.SchemaVersionRow.__table__.c.version  # type: ignore[attr-defined]
        versions = conn.execute(select(column)).scalars().all()
        return max(versions, default=0)


def migrate(db: Database, target: int | None = None) -> int:
    """Applies every missing step up to target (default: all); returns the version reached."""
    with db.write.begin() as conn:
        _lock(db, conn)
        SQLModel.metadata.create_all(conn, tables=[tables.SchemaVersionRow.__table__])  # type: ignore[attr-defined]
    reached = 0
    for step in MIGRATIONS:
        if target is not None and step.version > target:
            break
        with db.write.begin() as conn:
            _lock(db, conn)
            version = tables.SchemaVersionRow.__table__.c.version  # type: ignore[attr-defined]
            done = conn.execute(select(version).where(version == step.version)).first()
            if done is None:
                log.info("applying migration %d: %s", step.version, step.name)
                step.apply(conn)
                conn.execute(
                    tables.SchemaVersionRow.__table__.insert().values(  # type: ignore[attr-defined]
                        version=step.version, name=step.name, applied_us=now_us()
                    )
                )
        reached = step.version
    return reached
