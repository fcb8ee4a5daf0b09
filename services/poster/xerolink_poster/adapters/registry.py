"""The registry repository: links, postings, audit, outbox, dependency waits, contacts and tenant
leases, on one SQLModel session. Every state change goes through the domain's transition table
and appends its audit row in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from xerolink_poster.adapters.tables import (
    AppCallBucketRow,
    AuditRow,
    ConnectionRow,
    ContactLinkRow,
    DependencyWaitRow,
    LinkRow,
    OrphanRow,
    OutboxRow,
    PostingRow,
    TenantLeaseRow,
)
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState, Transition, transition

OUTBOX_READY = "ready"
OUTBOX_WAITING = "waiting"
OUTBOX_DONE = "done"


@dataclass
class StateChange:
    """One link's state change in a batch, with the other columns to set on the link."""

    link: LinkRow
    event: Event
    detail: str
    values: dict[str, object] = field(default_factory=dict)


class Registry:
    def __init__(self, session: Session, is_sqlite: bool) -> None:
        self.session = session
        self.is_sqlite = is_sqlite

    # -- connections -------------------------------------------------------------------------
    def get_connection(self, connection_id: str) -> ConnectionRow | None:
        return self.session.get(ConnectionRow, connection_id)

    def add_connection(self, row: ConnectionRow) -> None:
        self.session.add(row)

    def all_connections(self) -> Sequence[ConnectionRow]:
        return self.session.exec(select(ConnectionRow)).all()

    def connection_ids_of_tenant(self, tenant_id: str) -> list[str]:
        return list(
            self.session.exec(select(ConnectionRow.connection_id).where(ConnectionRow.xero_tenant_id == tenant_id))
        )

    # -- links -------------------------------------------------------------------------------
    def get_link(self, connection_id: str, record: RecordRef) -> LinkRow | None:
        return self.session.exec(
            select(LinkRow).where(
                LinkRow.connection_id == connection_id, LinkRow.kind == record.kind, LinkRow.record_id == record.id
            )
        ).first()

    def links_for(self, connection_id: str, records: Sequence[RecordRef]) -> dict[RecordRef, LinkRow]:
        """The links of many records, one query per kind: `kind = ? AND record_id IN (...)` is a
        search of the unique index, where a (kind, record_id) tuple IN made SQLite scan every
        link of the connection."""
        by_kind: dict[int, list[int]] = {}
        for record in records:
            by_kind.setdefault(record.kind, []).append(record.id)
        found: dict[RecordRef, LinkRow] = {}
        for kind, ids in sorted(by_kind.items()):
            rows = self.session.exec(
                select(LinkRow).where(
                    LinkRow.connection_id == connection_id, LinkRow.kind == kind, col(LinkRow.record_id).in_(ids)
                )
            ).all()
            found.update({RecordRef(r.kind, r.record_id): r for r in rows})
        return found

    def preload(self, model: type[Any], column: Any, values: Sequence[Any]) -> None:
        """Loads rows into the session by key, so later gets are served without SQL."""
        if values:
            self.session.exec(select(model).where(col(column).in_(list(values)))).all()

    def get_link_by_id(self, link_id: int) -> LinkRow | None:
        return self.session.get(LinkRow, link_id)

    def add_link(self, row: LinkRow) -> LinkRow:
        self.session.add(row)
        self.session.flush()
        return row

    def change_state(
        self,
        link: LinkRow,
        event: Event,
        actor: str,
        now_us: int,
        detail: str = "",
        posting: PostingRow | None = None,
    ) -> Transition:
        """Applies a transition to the link and its current posting, and appends the audit row."""
        current = LinkState(link.state) if link.state else None
        step = transition(current, event)
        link.state = step.to_state.value
        link.update_us = now_us
        self.session.add(link)
        if link.id is None:
            self.session.flush()
        assert link.id is not None
        if posting is None and link.posting_id:
            posting = self.session.get(PostingRow, link.posting_id)
        if posting is not None:
            posting.state = step.to_state.value
            self.session.add(posting)
        self.session.add(
            AuditRow(
                link_id=link.id,
                time_us=now_us,
                actor=actor,
                event=event.value,
                from_state=current.value if current else "",
                to_state=step.to_state.value,
                detail=detail,
            )
        )
        return step

    def apply_transitions(self, changes: Sequence[StateChange], actor: str, now_us: int) -> None:
        """Many links' state changes in three statements. Each goes through the transition table
        first (an illegal one raises and the caller's transaction rolls back, writing nothing) and
        appends its audit row."""
        if not changes:
            return
        steps = [transition(LinkState(c.link.state) if c.link.state else None, c.event) for c in changes]
        self.bulk_update(
            LinkRow,
            [
                {"id": c.link.id, "state": step.to_state.value, "update_us": now_us, **c.values}
                for c, step in zip(changes, steps, strict=True)
            ],
        )
        self.bulk_update(
            PostingRow,
            [
                {"posting_id": c.link.posting_id, "state": step.to_state.value}
                for c, step in zip(changes, steps, strict=True)
                if c.link.posting_id
            ],
        )
        self.session.execute(
            insert(AuditRow),
            [
                {
                    "link_id": c.link.id,
                    "time_us": now_us,
                    "actor": actor,
                    "event": c.event.value,
                    "from_state": step.from_state.value if step.from_state else "",
                    "to_state": step.to_state.value,
                    "detail": c.detail,
                }
                for c, step in zip(changes, steps, strict=True)
            ],
        )
        # The session's own copies of these links are stale now.
        for c in changes:
            self.session.expire(c.link)

    def insert_rows(self, model: type[Any], rows: Sequence[dict[str, Any]], returning_ids: bool = False) -> list[int]:
        """One multi-row INSERT (Core, no ORM objects); with returning_ids, the new rows' ids in
        the order of `rows`."""
        if not rows:
            return []
        table = model.__table__
        if not returning_ids:
            self.session.execute(table.insert(), list(rows))
            return []
        statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        return [int(i) for i in self.session.execute(statement, list(rows)).scalars()]

    def bulk_update(self, model: type[Any], rows: Sequence[dict[str, object]]) -> None:
        """UPDATE by primary key, one executemany for all rows with the same columns."""
        groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
        for row in rows:
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for group in groups.values():
            self.session.execute(update(model), group)

    def outbox_by_ids(self, ids: Sequence[int]) -> dict[int, OutboxRow]:
        if not ids:
            return {}
        rows = self.session.exec(select(OutboxRow).where(col(OutboxRow.id).in_(list(ids)))).all()
        return {r.id or 0: r for r in rows}

    def links_by_ids(self, ids: Sequence[int]) -> dict[int, LinkRow]:
        if not ids:
            return {}
        rows = self.session.exec(select(LinkRow).where(col(LinkRow.id).in_(list(ids)))).all()
        return {r.id or 0: r for r in rows}

    def records_with_waiters(self, connection_id: str, records: Sequence[RecordRef]) -> list[RecordRef]:
        """Which of these records something waits for, in one query."""
        if not records:
            return []
        found = self.session.exec(
            select(DependencyWaitRow.kind, DependencyWaitRow.record_id).where(
                DependencyWaitRow.connection_id == connection_id,
                tuple_(col(DependencyWaitRow.kind), col(DependencyWaitRow.record_id)).in_(
                    [(r.kind, r.id) for r in records]
                ),
            )
        ).all()
        return sorted({RecordRef(k, i) for k, i in found})

    def audit(self, link_id: int) -> Sequence[AuditRow]:
        return self.session.exec(select(AuditRow).where(AuditRow.link_id == link_id).order_by(col(AuditRow.id))).all()

    @staticmethod
    def xero_objects(link: LinkRow) -> list[XeroObjectRef]:
        return [XeroObjectRef.from_json(item) for item in json.loads(link.xero_objects)]

    @staticmethod
    def set_xero_objects(link: LinkRow, objects: Sequence[XeroObjectRef]) -> None:
        link.xero_objects = json.dumps([o.to_json() for o in objects])

    # -- postings ----------------------------------------------------------------------------
    def add_posting(self, row: PostingRow) -> None:
        self.session.add(row)

    def get_posting(self, posting_id: str) -> PostingRow | None:
        return self.session.get(PostingRow, posting_id)

    def posting_by_request(self, connection_id: str, request_id: str) -> PostingRow | None:
        """The first posting made under the request id: two posters racing on one id may both
        have stored one, and the first is the request the id names."""
        return self.session.exec(
            select(PostingRow)
            .where(PostingRow.connection_id == connection_id, PostingRow.request_id == request_id)
            .order_by(PostingRow.create_us, PostingRow.posting_id)  # type: ignore[arg-type]
        ).first()

    def list_postings(
        self, connection_id: str, state: str, before: tuple[int, str] | None, limit: int
    ) -> Sequence[PostingRow]:
        """Newest first; the page token is the (create time, id) of the last posting shown."""
        query = select(PostingRow).where(PostingRow.connection_id == connection_id)
        if state:
            query = query.where(PostingRow.state == state)
        if before is not None:
            query = query.where(
                or_(
                    col(PostingRow.create_us) < before[0],
                    and_(col(PostingRow.create_us) == before[0], col(PostingRow.posting_id) < before[1]),
                )
            )
        order = (col(PostingRow.create_us).desc(), col(PostingRow.posting_id).desc())
        return self.session.exec(query.order_by(*order).limit(limit)).all()

    # -- outbox ------------------------------------------------------------------------------
    def add_outbox(self, need_id: bool, row: OutboxRow) -> OutboxRow:
        self.session.add(row)
        if need_id:
            self.session.flush()
        return row

    def open_outbox_of_link(self, link_id: int) -> Sequence[OutboxRow]:
        return self.session.exec(
            select(OutboxRow).where(OutboxRow.link_id == link_id, OutboxRow.state != OUTBOX_DONE)
        ).all()

    def claim(self, tenant_id: str, holder: str, limit: int, now_us: int, lease_us: int) -> list[OutboxRow]:
        """Claims up to `limit` ready entries of one tenant, oldest first, exactly once across
        processes (SKIP LOCKED on PostgreSQL; BEGIN IMMEDIATE serialises SQLite)."""
        candidates = (
            select(OutboxRow.id)
            .where(
                OutboxRow.tenant_id == tenant_id,
                OutboxRow.state == OUTBOX_READY,
                col(OutboxRow.available_us) <= now_us,
                col(OutboxRow.lease_until_us) < now_us,
            )
            .order_by(col(OutboxRow.id))
            .limit(limit)
        )
        if not self.is_sqlite:
            candidates = candidates.with_for_update(skip_locked=True)
        claimed = self.session.execute(
            update(OutboxRow)
            .where(col(OutboxRow.id).in_(candidates.scalar_subquery()))
            .values(claimed_by=holder, lease_until_us=now_us + lease_us)
            .returning(col(OutboxRow.id))
        )
        ids = sorted(claimed.scalars().all())
        if not ids:
            return []
        return list(self.session.exec(select(OutboxRow).where(col(OutboxRow.id).in_(ids)).order_by(col(OutboxRow.id))))

    def release_claims(self, tenant_id: str) -> None:
        """Voids every claim on the tenant's open entries. Called by a poster that has just taken
        the tenant's lease: only the lease holder calls Xero for a tenant, so whoever claimed them
        before (a poster that died or lost the lease) will never finish them; without this they
        would wait out their claim. A late answer of the old claimer is then dropped, and the
        entries' uncertain mark makes the new holder look up before creating."""
        self.session.execute(
            update(OutboxRow)
            .where(
                col(OutboxRow.tenant_id) == tenant_id,
                col(OutboxRow.state) == OUTBOX_READY,
                col(OutboxRow.lease_until_us) > 0,
            )
            .values(claimed_by="", lease_until_us=0)
        )

    def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        return self.session.get(OutboxRow, outbox_id)

    def tenants_with_ready_work(self, now_us: int) -> list[str]:
        return list(
            self.session.exec(
                select(OutboxRow.tenant_id)
                .where(OutboxRow.state == OUTBOX_READY, col(OutboxRow.available_us) <= now_us)
                .distinct()
            )
        )

    def outbox_counts(self, tenant_id: str) -> dict[str, int]:
        rows = self.session.exec(
            select(OutboxRow.state, func.count()).where(OutboxRow.tenant_id == tenant_id).group_by(OutboxRow.state)
        ).all()
        return {state: int(count) for state, count in rows}

    def purge_done_outbox(self, before_us: int, limit: int) -> int:
        """Deletes up to `limit` done entries created before `before_us` (and any wait rows
        left on them), oldest first; returns how many. Links, postings and the audit trail stay:
        they are what callers read."""
        query = (
            select(OutboxRow.id)
            .where(OutboxRow.state == OUTBOX_DONE, col(OutboxRow.create_us) < before_us)
            .order_by(col(OutboxRow.id))
            .limit(limit)
        )
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True)  # another poster purging takes other rows
        ids = [i for i in self.session.exec(query) if i is not None]
        if ids:
            self.session.execute(delete(DependencyWaitRow).where(col(DependencyWaitRow.outbox_id).in_(ids)))
            self.session.execute(delete(OutboxRow).where(col(OutboxRow.id).in_(ids)))
        return len(ids)

    # -- dependency waits --------------------------------------------------------------------
    def add_waits(self, outbox_id: int, connection_id: str, records: Sequence[RecordRef]) -> None:
        for record in records:
            self.session.add(
                DependencyWaitRow(
                    outbox_id=outbox_id, connection_id=connection_id, kind=record.kind, record_id=record.id
                )
            )

    def clear_waits(self, outbox_id: int) -> None:
        self.session.execute(delete(DependencyWaitRow).where(col(DependencyWaitRow.outbox_id) == outbox_id))

    def waiters_on(self, connection_id: str, record: RecordRef) -> list[int]:
        return sorted(
            set(
                self.session.exec(
                    select(DependencyWaitRow.outbox_id).where(
                        DependencyWaitRow.connection_id == connection_id,
                        DependencyWaitRow.kind == record.kind,
                        DependencyWaitRow.record_id == record.id,
                    )
                )
            )
        )

    def waits_of(self, outbox_id: int) -> list[RecordRef]:
        rows = self.session.exec(select(DependencyWaitRow).where(DependencyWaitRow.outbox_id == outbox_id)).all()
        return sorted({RecordRef(r.kind, r.record_id) for r in rows})

    def satisfied_waiting_entries(self) -> list[int]:
        """Waiting entries all of whose dependencies are linked now, in one query: those with no
        wait row on a record that is not linked."""
        dependency = select(DependencyWaitRow.outbox_id).where(
            ~select(LinkRow.id)
            .where(
                LinkRow.connection_id == DependencyWaitRow.connection_id,
                LinkRow.kind == DependencyWaitRow.kind,
                LinkRow.record_id == DependencyWaitRow.record_id,
                LinkRow.state == LinkState.LINKED.value,
            )
            .exists()
        )
        query = select(OutboxRow.id).where(OutboxRow.state == OUTBOX_WAITING, col(OutboxRow.id).not_in(dependency))
        return sorted(i for i in self.session.exec(query) if i is not None)

    def held_xero_ids(self, connection_id: str, xero_ids: Sequence[str], except_link_id: int) -> set[str]:
        """Which of these Xero ids another link of the connection holds, or an unlink left
        orphaned: an uncertain call's look-up must never adopt one of them. Only the look-up
        path asks (after a lost or garbled answer), so a match on the JSON text is enough."""
        wanted = [x for x in xero_ids if x]
        if not wanted:
            return set()
        held: set[str] = set()
        links = select(LinkRow.id, LinkRow.xero_objects).where(
            LinkRow.connection_id == connection_id,
            LinkRow.id != except_link_id,
            or_(*(col(LinkRow.xero_objects).contains(f'"{x}"') for x in wanted)),
        )
        for _, objects in self.session.exec(links):
            held.update(o["xero_id"] for o in json.loads(objects) if o["xero_id"] in wanted)
        orphans = select(OrphanRow.xero_id).where(
            OrphanRow.connection_id == connection_id, col(OrphanRow.xero_id).in_(wanted)
        )
        held.update(self.session.exec(orphans))
        return held

    # -- contacts ----------------------------------------------------------------------------
    def get_contact(self, connection_id: str, participant_id: int) -> ContactLinkRow | None:
        return self.session.get(ContactLinkRow, (connection_id, participant_id))

    def participant_of_contact(self, connection_id: str, contact_id: str) -> int | None:
        """The participant already linked to this Xero contact, if any."""
        query = select(ContactLinkRow.participant_id).where(
            ContactLinkRow.connection_id == connection_id, ContactLinkRow.contact_id == contact_id
        )
        return self.session.exec(query).first()

    def add_contact(self, row: ContactLinkRow) -> None:
        if self.get_contact(row.connection_id, row.participant_id) is None:
            self.session.add(row)

    # -- tenant leases -----------------------------------------------------------------------
    def acquire_lease(self, tenant_id: str, holder: str, now_us: int, ttl_us: int) -> TenantLeaseRow | None:
        """Takes or renews the tenant's lease when it is free, expired or already ours."""
        dialect = sqlite if self.is_sqlite else postgresql
        table = TenantLeaseRow.__table__  # type: ignore[attr-defined]
        stmt = dialect.insert(table).values(
            tenant_id=tenant_id,
            holder=holder,
            expires_us=now_us + ttl_us,
            minute_log="[]",
            day_calls=0,
            day_started_us=now_us,
            blocked_until_us=0,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.tenant_id],
            set_={"holder": holder, "expires_us": now_us + ttl_us},
            where=or_(table.c.expires_us < now_us, table.c.holder == holder),
        ).returning(table.c.holder)
        got = self.session.execute(stmt).scalar_one_or_none()
        if got != holder:
            return None
        self.session.expire_all()
        return self.session.get(TenantLeaseRow, tenant_id)

    def release_lease(self, tenant_id: str, holder: str) -> None:
        self.session.execute(
            update(TenantLeaseRow)
            .where(col(TenantLeaseRow.tenant_id) == tenant_id, col(TenantLeaseRow.holder) == holder)
            .values(expires_us=0)
        )

    def record_call(self, tenant_id: str, holder: str, now_us: int, ttl_us: int, minute_us: int, day_us: int) -> bool:
        """Before each Xero call: checks the lease is still ours (renewing it) and logs the call in
        the lease row, so whoever holds the tenant next knows this call happened. False: the
        lease was lost, do not call."""
        lease = self.session.get(TenantLeaseRow, tenant_id, with_for_update=not self.is_sqlite)
        if lease is None or lease.holder != holder or lease.expires_us < now_us:
            return False
        log = [t for t in json.loads(lease.minute_log) if t > (now_us - minute_us) / 1e6]
        log.append(now_us / 1e6)
        lease.minute_log = json.dumps(log)
        if now_us - lease.day_started_us >= day_us:
            lease.day_started_us, lease.day_calls = now_us, 0
        lease.day_calls += 1
        lease.expires_us = now_us + ttl_us
        self.session.add(lease)
        return True

    def count_app_call(self, now_us: int, window_us: int) -> int:
        """Counts one call of the app in the bucket of `now_us` (a sixtieth of the window) and
        returns the app's calls in the window, this one included, from every poster on this
        database. Concurrent counters queue on the bucket row (PostgreSQL) or the write lock
        (SQLite), so each sees the others' committed calls."""
        self._add_app_calls(now_us, window_us, 1)
        # The oldest bucket counts whole, though part of it has left the window: never fewer.
        since = now_us - window_us - _bucket(window_us)
        table = AppCallBucketRow.__table__  # type: ignore[attr-defined]
        total = self.session.execute(select(func.sum(table.c.calls)).where(table.c.bucket_us > since)).scalar()
        return int(total or 0)

    def move_app_call(self, counted_us: int, answered_us: int, window_us: int) -> None:
        """Moves a call counted when it was reserved to when its answer came: Xero counted it on
        arrival, somewhere in between, so it must leave our window no earlier than Xero's."""
        if _bucket_of(counted_us, window_us) != _bucket_of(answered_us, window_us):
            self._add_app_calls(counted_us, window_us, -1)
            self._add_app_calls(answered_us, window_us, 1)

    def _add_app_calls(self, at_us: int, window_us: int, calls: int) -> None:
        table = AppCallBucketRow.__table__  # type: ignore[attr-defined]
        dialect = sqlite if self.is_sqlite else postgresql
        self.session.execute(
            dialect.insert(table)
            .values(bucket_us=_bucket_of(at_us, window_us), calls=calls)
            .on_conflict_do_update(index_elements=[table.c.bucket_us], set_={"calls": table.c.calls + calls})
        )

    def purge_app_calls(self, before_us: int) -> None:
        table = AppCallBucketRow.__table__  # type: ignore[attr-defined]
        self.session.execute(delete(table).where(table.c.bucket_us < before_us))

    def block_tenant(self, tenant_id: str, until_us: int) -> None:
        self.session.execute(
            update(TenantLeaseRow)
            .where(col(TenantLeaseRow.tenant_id) == tenant_id)
            .values(
                blocked_until_us=func.max(TenantLeaseRow.blocked_until_us, until_us)
                if self.is_sqlite
                else func.greatest(TenantLeaseRow.blocked_until_us, until_us)
            )
        )


def _bucket(window_us: int) -> int:
    return max(window_us // 60, 1)


def _bucket_of(at_us: int, window_us: int) -> int:
    return at_us - at_us % _bucket(window_us)
