"""What the links repository keeps for selecting and unlinking links: each link's matter and
participant, the records its current posting refers to (lasting dependencies), and the orphaned
Xero objects that unlinks leave behind."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2

from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.adapters.operations import record_dependencies
from xerolink_poster.adapters.tables import (
    LinkDependencyRow,
    LinkObjectRow,
    LinkRow,
    LinkSubjectRow,
    OrphanRow,
    OutboxRow,
)
from xerolink_poster.domain.link_filter import LinkFilter
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import OutboxState


@dataclass(frozen=True)
class IndexedPosting:
    link: LinkRow
    transaction: transaction_pb2.Transaction
    operations: Sequence[xero_pb2.Operation]
    # The link was inserted in this transaction: it has nothing indexed to replace.
    fresh: bool = False


@dataclass(frozen=True)
class OpenWork:
    """A link's open outbox work that pays or credits `document`: its operations (a serialized
    MapTransactionResponse) and the link's Xero objects (JSON) so far."""

    link_id: int
    document: RecordRef
    operations: bytes
    xero_objects: str


_SUBJECTS = LinkSubjectRow.__table__  # type: ignore[attr-defined]
_DEPENDENCIES = LinkDependencyRow.__table__  # type: ignore[attr-defined]


def _journal_matters(transaction: transaction_pb2.Transaction) -> dict[str, int]:
    journal = transaction.trust_journal if transaction.WhichOneof("kind") == "trust_journal" else None
    return {
        "paying_action_id": journal.from_action_id if journal is not None else 0,
        "receiving_action_id": journal.to_action_id if journal is not None else 0,
    }


class LinkIndex:
    """The index half of the links repository (SqlLinkRepository adds the links themselves)."""

    _session: Session
    _is_sqlite: bool

    def index_postings(self, postings: Sequence[IndexedPosting]) -> None:
        """Replaces the subject and dependencies of each link by those of its new posting: two
        deletes (for links posted before) and two multi-row inserts for the whole batch, as Core
        statements (the ORM's bulk paths cost more than the SQL on the Post path)."""
        if not postings:
            return
        ids = [p.link.id for p in postings if p.link.id is not None and not p.fresh]
        if ids:
            self._session.execute(_SUBJECTS.delete().where(_SUBJECTS.c.link_id.in_(ids)))
            self._session.execute(_DEPENDENCIES.delete().where(_DEPENDENCIES.c.link_id.in_(ids)))
        subjects = [
            {
                "link_id": p.link.id,
                "connection_id": p.link.connection_id,
                "action_id": p.transaction.header.action_id,
                "participant_id": p.transaction.header.participant.participant_id,
                **_journal_matters(p.transaction),
            }
            for p in postings
        ]
        self._session.execute(_SUBJECTS.insert(), subjects)
        dependencies = [
            {"link_id": p.link.id, "connection_id": p.link.connection_id, "kind": d.kind, "record_id": d.id}
            for p in postings
            for d in record_dependencies(p.operations)
        ]
        if dependencies:
            self._session.execute(_DEPENDENCIES.insert(), dependencies)

    def links_of(self, connection_id: str, records: Sequence[RecordRef], lock: bool) -> dict[RecordRef, LinkRow]:
        """The links of these records; with `lock`, read again (rows the session holds are
        refreshed) and row-locked on PostgreSQL until the transaction ends (SQLite's write
        transaction already excludes every other writer)."""
        if not records:
            return {}
        wanted = set(records)
        ids: dict[int, set[int]] = {}
        for record in wanted:
            ids.setdefault(record.kind, set()).add(record.id)
        # By kind and id: Actionstep numbers each kind apart, and a lock must not take another
        # kind's record of the same number (another caller's, or the dispatcher's, for no reason).
        by_kind = [and_(col(LinkRow.kind) == k, col(LinkRow.record_id).in_(sorted(i))) for k, i in sorted(ids.items())]
        query = select(LinkRow).where(LinkRow.connection_id == connection_id, or_(*by_kind))
        if lock and not self._is_sqlite:
            # Id order within each call; a deadlock across calls is retried by run_in_transaction.
            query = query.order_by(col(LinkRow.id)).with_for_update().execution_options(populate_existing=True)
        rows = self._session.exec(query).all()
        return {ref: row for row in rows if (ref := RecordRef(row.kind, row.record_id)) in wanted}

    def dependents_of(self, connection_id: str, records: Iterable[RecordRef]) -> dict[RecordRef, list[RecordRef]]:
        """For each record, the records whose current posting refers to it (payments of an invoice,
        allocations of a credit note), whatever their state."""
        keys = sorted(set(records))
        if not keys:
            return {}
        rows = self._session.exec(
            select(LinkDependencyRow.kind, LinkDependencyRow.record_id, LinkRow.kind, LinkRow.record_id)
            .join(LinkRow, col(LinkRow.id) == col(LinkDependencyRow.link_id))
            .where(
                LinkDependencyRow.connection_id == connection_id,
                col(LinkDependencyRow.record_id).in_(sorted({k.id for k in keys})),
            )
        ).all()
        found: dict[RecordRef, set[RecordRef]] = {}
        wanted = set(keys)
        for kind, record_id, dep_kind, dep_id in rows:
            target = RecordRef(kind, record_id)
            if target in wanted:
                found.setdefault(target, set()).add(RecordRef(dep_kind, dep_id))
        return {k: sorted(v) for k, v in found.items()}

    def open_work_paying(self, connection_id: str, records: Iterable[RecordRef]) -> list[OpenWork]:
        """The open outbox work (not done) of the links whose current posting pays or credits one
        of `records`, with the Xero objects each link holds: one read by the dependency index."""
        keys = sorted(set(records))
        if not keys:
            return []
        # Five columns: SQLAlchemy's select (sqlmodel's types stop at four).
        rows = self._session.execute(
            sa_select(
                col(LinkRow.id),
                col(LinkDependencyRow.kind),
                col(LinkDependencyRow.record_id),
                col(OutboxRow.operations),
                col(LinkRow.xero_objects),
            )
            .join(LinkRow, col(LinkRow.id) == col(LinkDependencyRow.link_id))
            .join(
                OutboxRow,
                and_(col(OutboxRow.link_id) == col(LinkRow.id), col(OutboxRow.posting_id) == col(LinkRow.posting_id)),
            )
            .where(
                col(LinkDependencyRow.connection_id) == connection_id,
                col(LinkDependencyRow.record_id).in_(sorted({k.id for k in keys})),
                col(OutboxRow.state) != OutboxState.DONE,
            )
        ).all()
        wanted = set(keys)
        return [
            OpenWork(link_id or 0, RecordRef(kind, record_id), bytes(operations), objects)
            for link_id, kind, record_id, operations, objects in rows
            if RecordRef(kind, record_id) in wanted
        ]

    def add_orphans(self, rows: Sequence[OrphanRow]) -> None:
        self._session.add_all(rows)
        self._session.flush()

    def list_orphans(
        self, connection_id: str, record: RecordRef | None, object_type: int, after_id: int, limit: int
    ) -> Sequence[OrphanRow]:
        query = select(OrphanRow).where(OrphanRow.connection_id == connection_id, col(OrphanRow.id) > after_id)
        if record is not None:
            query = query.where(OrphanRow.kind == record.kind, OrphanRow.record_id == record.id)
        if object_type:
            query = query.where(OrphanRow.object_type == object_type)
        return self._session.exec(query.order_by(col(OrphanRow.id)).limit(limit)).all()

    def list_links(self, connection_id: str, wanted: LinkFilter, after_id: int, limit: int) -> Sequence[LinkRow]:
        """One page of links in id order (stable under inserts: new links sort after every token)."""
        query = select(LinkRow).where(LinkRow.connection_id == connection_id, col(LinkRow.id) > after_id)
        if wanted.group:
            query = query.where(LinkRow.link_group == wanted.group)
        if wanted.state:
            query = query.where(LinkRow.state == wanted.state)
        if wanted.kinds:
            query = query.where(col(LinkRow.kind).in_(sorted(set(wanted.kinds))))
        if wanted.updated_from_us:
            query = query.where(col(LinkRow.update_us) >= wanted.updated_from_us)
        if wanted.updated_to_us:
            query = query.where(col(LinkRow.update_us) < wanted.updated_to_us)
        if wanted.xero_id:
            # The links indexed as holding it (link_object), each checked against its own list,
            # whatever the case (Xero's GUIDs compare without case). The id is validated to ASCII
            # letters, digits and '-': lower() keys it as link_object does, and it holds no LIKE
            # wildcard.
            key = wanted.xero_id.lower()
            holding = select(LinkObjectRow.link_id).where(
                LinkObjectRow.connection_id == connection_id, LinkObjectRow.xero_id == key
            )
            # The id quoted anywhere in the list, however the JSON is spaced.
            named = func.lower(col(LinkRow.xero_objects)).contains(f'"{key}"')
            query = query.where(col(LinkRow.id).in_(holding), named)
        if wanted.drifted:
            open_drift = select(DriftRow.id).where(DriftRow.link_id == LinkRow.id, DriftRow.state == "open")
            query = query.where(open_drift.exists())
        if wanted.action_id or wanted.participant_id:
            query = query.join(LinkSubjectRow, col(LinkSubjectRow.link_id) == col(LinkRow.id))
            if wanted.action_id:
                query = query.where(LinkSubjectRow.action_id == wanted.action_id)
            if wanted.participant_id:
                query = query.where(LinkSubjectRow.participant_id == wanted.participant_id)
        return self._session.exec(query.order_by(col(LinkRow.id)).limit(limit)).all()
