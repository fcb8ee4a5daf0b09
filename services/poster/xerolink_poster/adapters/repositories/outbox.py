"""The outbox repository: the queue of Xero work (one entry per posting), its claims, and the
dependency waits of entries blocked on other records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, text, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from xerolink_poster.adapters.repositories.bulk import bulk_update, expire_loaded, insert_rows
from xerolink_poster.adapters.repositories.plan_hints import tested_only
from xerolink_poster.adapters.tables import DependencyWaitRow, LinkRow, OutboxRow
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState, OutboxState
from xerolink_poster.domain.stored_rows import ClaimedEntry, StoredEntry

_OUTBOX: Any = OutboxRow.__table__  # type: ignore[attr-defined]
_WAITS: Any = DependencyWaitRow.__table__  # type: ignore[attr-defined]
# What applying a call's answers reads of its entries: values, not ORM objects, with the columns
# in the order of StoredEntry's fields (domain/stored_rows). Locked on PostgreSQL (SQLite renders
# no lock clause; its writer is alone anyway): at READ COMMITTED, a claim committed between this
# read and the UPDATE by id would be overwritten. In id order, as any two appliers lock alike.
_STORED_ENTRIES = (
    core_select(*(_OUTBOX.c[f.name] for f in fields(StoredEntry)))
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_OUTBOX.c.id)
    .with_for_update()
)

# Before every create call (mark_uncertain): built once, with bound parameters.
_MARK_UNCERTAIN = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.id.in_(bindparam("ids", expanding=True)),
        _OUTBOX.c.claimed_by == bindparam("holder"),
        tested_only(_OUTBOX.c.state) == OutboxState.READY,  # read by id, not along ix_outbox_done
        _OUTBOX.c.lease_until_us >= bindparam("now"),
    )
    .values(uncertain=True, lookup_hint=bindparam("hint"), lease_until_us=bindparam("until"))
)
# The same, for the claim a job made (or last extended) only: `claimed` is that claim's end.
_MARK_UNCERTAIN_OF_CLAIM = _MARK_UNCERTAIN.where(_OUTBOX.c.lease_until_us == bindparam("claimed"))
_UNCLAIM = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)), _OUTBOX.c.claimed_by == bindparam("holder"))
    .values(claimed_by="", lease_until_us=0)
)
_UNCLAIM_OF_CLAIM = _UNCLAIM.where(_OUTBOX.c.lease_until_us.in_(bindparam("claimed", expanding=True)))
# Groups of (connection, kind) asked for waiters in one statement (records_with_waiters).
_WAIT_GROUPS = 500
# What a claim returns of each entry, in the order of ClaimedEntry's fields.
_CLAIMED = [_OUTBOX.c[f.name] for f in fields(ClaimedEntry)]
# A tenant's entries a claim may take now: ready, available, and no live claim on them. Built
# once, with bound parameters: building the claim for each batch cost about a third of it.
_CLAIMABLE = core_select(_OUTBOX.c.id).where(
    _OUTBOX.c.tenant_id == bindparam("tenant"),
    _OUTBOX.c.state == OutboxState.READY,
    _OUTBOX.c.available_us <= bindparam("now"),
    _OUTBOX.c.lease_until_us < bindparam("now"),
)
_ANY_CLAIMABLE = _CLAIMABLE.limit(1)
_CANDIDATES = _CLAIMABLE.order_by(_OUTBOX.c.available_us, _OUTBOX.c.id).limit(bindparam("limit"))


def _claim_of(candidates: Any) -> Any:
    return (
        update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(candidates.scalar_subquery()))
        .values(claimed_by=bindparam("holder"), lease_until_us=bindparam("until"))
        .returning(*_CLAIMED)
    )


# SKIP LOCKED on PostgreSQL: concurrent claimers take different entries. SQLite has one writer.
_CLAIM_SKIPPING_LOCKED = _claim_of(_CANDIDATES.with_for_update(skip_locked=True))
_CLAIM_ON_SQLITE = _claim_of(_CANDIDATES)

# Both PostgreSQL and SQLite run this form of a loose index scan (PostgreSQL's wiki, "Loose
# indexscan"): each step asks the index for the first tenant after the previous one.
_TENANTS_WITH_READY_WORK = text(
    """
    WITH RECURSIVE tenants(tenant_id) AS (
        SELECT (SELECT o.tenant_id FROM outbox o WHERE o.state = :ready ORDER BY o.tenant_id LIMIT 1)
        UNION ALL
        SELECT (
            SELECT o.tenant_id FROM outbox o
            WHERE o.state = :ready AND o.tenant_id > tenants.tenant_id
            ORDER BY o.tenant_id LIMIT 1
        )
        FROM tenants WHERE tenants.tenant_id IS NOT NULL
    )
    SELECT tenant_id, since FROM (
        SELECT t.tenant_id, (
            SELECT MIN(o.available_us) FROM outbox o WHERE o.state = :ready AND o.tenant_id = t.tenant_id
        ) AS since
        FROM tenants t WHERE t.tenant_id IS NOT NULL
    ) ready WHERE since <= :now
    """
)


class SqlOutboxRepository:
    def __init__(self, session: Session, is_sqlite: bool) -> None:
        self._session = session
        self._is_sqlite = is_sqlite
        # Kept for the unit of work: the session's identity map holds rows weakly.
        self._preloaded: list[object] = []

    def add_outbox(self, need_id: bool, row: OutboxRow) -> OutboxRow:
        self._session.add(row)
        if need_id:
            self._session.flush()
        return row

    def save(self, row: OutboxRow) -> None:
        self._session.add(row)

    def insert_outbox(self, rows: Sequence[dict[str, Any]], returning_ids: bool = False) -> list[int]:
        """New entries in one statement; with returning_ids, their ids in the order of `rows`."""
        return insert_rows(self._session, OutboxRow, rows, returning_ids)

    def update_outbox(self, rows: Sequence[dict[str, object]]) -> None:
        bulk_update(self._session, OutboxRow, rows)

    def preload_outbox(self, ids: Sequence[int]) -> None:
        """Loads entries into the session by id, so later gets are served without SQL."""
        if ids:
            self._preloaded += self._session.exec(select(OutboxRow).where(col(OutboxRow.id).in_(list(ids)))).all()

    def mark_uncertain(
        self,
        hints: dict[int, str],
        lease_until_us: int,
        holder: str,
        now_us: int,
        claims: dict[int, int] | None = None,
    ) -> int:
        """Marks entries uncertain before their create call, each with its look-up hint, and
        extends their claims: only those `holder`'s claim still holds (claimed by it, ready, the
        claim not run out) and, given `claims` (id: the claim's end as the job knows it), only
        those still under the job's own claim. Returns how many it marked: fewer than asked, and
        some entry is no longer this job's to send (another poster took the tenant over, or
        another job of this one claimed it after the claim ran out, and may have posted it). One
        UPDATE per distinct hint and claim (a batch usually shares one). A Core statement, which
        leaves rows the session holds as they were: it runs first in its unit."""
        groups: dict[tuple[str, int | None], list[int]] = {}
        for outbox_id, hint in hints.items():
            groups.setdefault((hint, None if claims is None else claims[outbox_id]), []).append(outbox_id)
        marked = 0
        for (hint, claimed), ids in groups.items():
            values = {"ids": ids, "holder": holder, "now": now_us, "hint": hint, "until": lease_until_us}
            if claimed is None:
                result = self._session.execute(_MARK_UNCERTAIN, values)
            else:
                result = self._session.execute(_MARK_UNCERTAIN_OF_CLAIM, {**values, "claimed": claimed})
            marked += int(getattr(result, "rowcount", 0) or 0)
        return marked

    def unclaim(self, ids: Sequence[int], holder: str, claims: dict[int, tuple[int, ...]] | None = None) -> int:
        """Lets go of the entries among `ids` that `holder` still claims (its lease was lost
        before their call): claimable at once. An entry another poster claimed since keeps its
        claim, and given `claims` (id: the ends its claim may have as the job knows it, Work.claims)
        so does one another job of this poster claimed since. One UPDATE per distinct set of ends;
        returns how many it let go."""
        if not ids:
            return 0
        if claims is None:
            result = self._session.execute(_UNCLAIM, {"ids": list(ids), "holder": holder})
            let_go = int(getattr(result, "rowcount", 0) or 0)
        else:
            by_claim: dict[tuple[int, ...], list[int]] = {}
            for outbox_id in ids:
                by_claim.setdefault(claims[outbox_id], []).append(outbox_id)
            let_go = 0
            for ends, some in by_claim.items():
                values = {"ids": some, "holder": holder, "claimed": list(ends)}
                # No end known (a Work read without its claim): any of the holder's claims.
                result = self._session.execute(_UNCLAIM_OF_CLAIM if ends else _UNCLAIM, values)
                let_go += int(getattr(result, "rowcount", 0) or 0)
        expire_loaded(self._session, OutboxRow, ids)
        return let_go

    def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        return self._session.get(OutboxRow, outbox_id)

    def lock_entry(self, outbox_id: int) -> OutboxRow | None:
        """The entry read again and held until the transaction ends, or None when it is gone or
        another transaction holds it (FOR UPDATE SKIP LOCKED on PostgreSQL: whoever holds it is
        changing it, and a release must not write over that from an older read)."""
        return self._session.get(OutboxRow, outbox_id, with_for_update={"skip_locked": True}, populate_existing=True)

    def lock_entries(self, ids: Sequence[int]) -> dict[int, OutboxRow]:
        """The entries read again (rows the session holds are refreshed) and held until the
        transaction ends, in id order, waiting for whoever holds one (FOR UPDATE on PostgreSQL;
        SQLite's write transaction already excludes every other writer)."""
        if not ids:
            return {}
        query = select(OutboxRow).where(col(OutboxRow.id).in_(sorted(set(ids))))
        if not self._is_sqlite:
            query = query.order_by(col(OutboxRow.id)).with_for_update().execution_options(populate_existing=True)
        return {r.id or 0: r for r in self._session.exec(query).all()}

    def outbox_by_ids(self, ids: Sequence[int]) -> dict[int, OutboxRow]:
        if not ids:
            return {}
        rows = self._session.exec(select(OutboxRow).where(col(OutboxRow.id).in_(list(ids)))).all()
        return {r.id or 0: r for r in rows}

    def stored_entries(self, ids: Sequence[int]) -> dict[int, StoredEntry]:
        """The entries' columns that applying Xero's answers reads, without ORM objects, locked
        until the transaction ends (PostgreSQL)."""
        if not ids:
            return {}
        rows = self._session.execute(_STORED_ENTRIES, {"ids": list(ids)})
        return {row.id: StoredEntry(*row) for row in rows}

    def open_outbox_of_link(self, link_id: int) -> Sequence[OutboxRow]:
        return self._session.exec(
            select(OutboxRow).where(OutboxRow.link_id == link_id, OutboxRow.state != OutboxState.DONE)
        ).all()

    def latest_available(self, link_id: int) -> int:
        """The latest time any entry of the link, done ones included, was to be available: one given
        up after an unanswered call keeps the time a look-up of it can be trusted (0: none)."""
        found = self._session.execute(
            select(func.max(OutboxRow.available_us)).where(col(OutboxRow.link_id) == link_id)
        ).scalar()
        return int(found or 0)

    def open_operations(self, connection_id: str) -> Iterator[tuple[int, bytes]]:
        """(link id, operations) of the connection's entries not done: ready, waiting or claimed
        (in flight). Streamed, a few hundred rows at a time."""
        query = (
            select(OutboxRow.link_id, OutboxRow.operations)
            .where(OutboxRow.connection_id == connection_id, OutboxRow.state != OutboxState.DONE)
            .execution_options(yield_per=500)
        )
        yield from self._session.exec(query)

    def close_work_of_links(self, link_ids: Sequence[int]) -> None:
        """Marks the links' open outbox work done and drops its dependency waits: two statements."""
        if not link_ids:
            return
        open_ids = select(OutboxRow.id).where(col(OutboxRow.link_id).in_(link_ids), OutboxRow.state != OutboxState.DONE)
        box_ids = [i for i in self._session.exec(open_ids) if i is not None]
        if box_ids:
            self._session.execute(delete(DependencyWaitRow).where(col(DependencyWaitRow.outbox_id).in_(box_ids)))
            self._session.execute(
                update(OutboxRow).where(col(OutboxRow.id).in_(box_ids)).values(state=OutboxState.DONE)
            )

    def uncertain_outbox(self, connection_id: str) -> list[OutboxRow]:
        """The connection's open entries whose last call had no certain answer (Xero may hold what
        it made): rare, so the connection's entries are read without an index of their own."""
        return list(
            self._session.exec(
                select(OutboxRow).where(
                    col(OutboxRow.connection_id) == connection_id,
                    col(OutboxRow.state) != OutboxState.DONE,
                    col(OutboxRow.uncertain),
                )
            ).all()
        )

    def move_outbox(self, connection_id: str, tenant_id: str) -> None:
        """Queued work follows the connection to its new organisation, so the new tenant's lease and
        rate budget govern it."""
        self._session.execute(
            update(OutboxRow)
            .where(
                col(OutboxRow.connection_id) == connection_id,
                col(OutboxRow.tenant_id) != tenant_id,
                col(OutboxRow.state) != OutboxState.DONE,
            )
            .values(tenant_id=tenant_id)
        )

    def has_claimable(self, tenant_id: str, now_us: int) -> bool:
        """Whether a claim now would take anything: a read, for polling without the write lock."""
        found = self._session.execute(_ANY_CLAIMABLE, {"tenant": tenant_id, "now": now_us})
        return found.first() is not None

    def claim(self, tenant_id: str, holder: str, limit: int, now_us: int, lease_us: int) -> list[ClaimedEntry]:
        """Claims up to `limit` ready entries of one tenant, the longest available first (an
        entry's acceptance, or the end of its back-off), exactly once across processes (SKIP
        LOCKED on PostgreSQL; BEGIN IMMEDIATE serialises SQLite). The order is `ix_outbox_ready`'s,
        so the claim reads about `limit` index entries, not the tenant's whole queue. One Core
        UPDATE returning the entries as values, in id order: the job only reads them, and ORM
        objects of them (a SELECT after the claim) cost more than the claim."""
        claimed = self._session.execute(
            _CLAIM_ON_SQLITE if self._is_sqlite else _CLAIM_SKIPPING_LOCKED,
            {"tenant": tenant_id, "now": now_us, "limit": limit, "holder": holder, "until": now_us + lease_us},
        ).all()
        return sorted((ClaimedEntry(*row) for row in claimed), key=lambda entry: entry.id)

    def release_claims(self, tenant_id: str) -> None:
        """Voids every claim on the tenant's open entries. Called by a poster that has just taken
        the tenant's lease from a holder that did not hand it back: only the lease holder calls
        Xero for a tenant, so whoever claimed them before (a poster that died or lost the lease)
        will never finish them; without this they would wait out their claim. A late answer of the
        old claimer is then dropped, and the entries' uncertain mark makes the new holder look up
        before creating. It reads every ready entry of the tenant (no index holds the claimed
        ones: one would be written at every claim and mark), which a lease handed back spares."""
        self._session.execute(
            update(OutboxRow)
            .where(
                col(OutboxRow.tenant_id) == tenant_id,
                col(OutboxRow.state) == OutboxState.READY,
                col(OutboxRow.lease_until_us) > 0,
            )
            .values(claimed_by="", lease_until_us=0)
        )

    def tenants_with_ready_work(self, now_us: int) -> list[str]:
        """The tenants with an entry ready now, the one whose work has been ready longest first.
        A loose index scan: the recursive query hops from one tenant to the next along
        `ix_outbox_ready` and reads each tenant's earliest `available_us` from the same index, so
        the cost grows with the number of tenants, not with the number of entries queued."""
        rows = self._session.execute(_TENANTS_WITH_READY_WORK, {"ready": OutboxState.READY.value, "now": now_us})
        return [tenant for tenant, _ in sorted(rows, key=lambda row: int(row[1]))]

    def purge_done_outbox(self, before_us: int, limit: int) -> int:
        """Deletes up to `limit` done entries created before `before_us` (and any wait rows
        left on them), oldest first; returns how many. Links, postings and the audit trail stay:
        they are what callers read. Oldest by `create_us`, the order of `ix_outbox_done`, so a
        batch reads only its own entries (in id order SQLite sorted every expired entry). An entry
        whose available time is not past `before_us` as well stays: one given up after an
        unanswered call keeps there when a repost may look it up (`latest_available`), and a
        payment accepted long ago and given up today lost it, and was paid twice."""
        query = (
            select(OutboxRow.id)
            .where(
                OutboxRow.state == OutboxState.DONE,
                col(OutboxRow.create_us) < before_us,
                col(OutboxRow.available_us) < before_us,
            )
            .order_by(col(OutboxRow.create_us))
            .limit(limit)
        )
        if not self._is_sqlite:
            query = query.with_for_update(skip_locked=True)  # another poster purging takes other rows
        ids = [i for i in self._session.exec(query) if i is not None]
        if ids:
            self._session.execute(delete(DependencyWaitRow).where(col(DependencyWaitRow.outbox_id).in_(ids)))
            self._session.execute(delete(OutboxRow).where(col(OutboxRow.id).in_(ids)))
        return len(ids)

    # -- dependency waits --------------------------------------------------------------------
    def add_waits(self, outbox_id: int, connection_id: str, records: Sequence[RecordRef]) -> None:
        for record in records:
            self._session.add(
                DependencyWaitRow(
                    outbox_id=outbox_id, connection_id=connection_id, kind=record.kind, record_id=record.id
                )
            )

    def insert_waits(self, rows: Sequence[dict[str, Any]]) -> None:
        insert_rows(self._session, DependencyWaitRow, rows)

    def lock_waits(self, outbox_id: int) -> list[tuple[str, RecordRef]] | None:
        """What the entry waits for (as connection_waits_of), every wait row held until the
        transaction ends, or None when another transaction holds one of them (an unlink or a new
        post of the record deleting them): FOR UPDATE SKIP LOCKED on PostgreSQL reads fewer rows
        than a plain read then."""
        query = core_select(_WAITS.c.connection_id, _WAITS.c.kind, _WAITS.c.record_id).where(
            _WAITS.c.outbox_id == outbox_id
        )
        every = self._session.execute(query).all()
        held = self._session.execute(query.with_for_update(skip_locked=True)).all()
        if len(held) != len(every):
            return None
        return sorted({(c, RecordRef(k, i)) for c, k, i in held})

    def clear_waits(self, outbox_id: int) -> None:
        self._session.execute(delete(DependencyWaitRow).where(col(DependencyWaitRow.outbox_id) == outbox_id))

    def waiters_on(self, connection_id: str, record: RecordRef) -> list[int]:
        return sorted(
            set(
                self._session.exec(
                    select(DependencyWaitRow.outbox_id).where(
                        DependencyWaitRow.connection_id == connection_id,
                        DependencyWaitRow.kind == record.kind,
                        DependencyWaitRow.record_id == record.id,
                    )
                )
            )
        )

    def connection_waits_of(self, outbox_id: int) -> list[tuple[str, RecordRef]]:
        """What the entry waits for, each with the connection it is linked under (the office half
        of an invoice paid from trust waits for a record of the trust organisation's connection)."""
        rows = self._session.exec(select(DependencyWaitRow).where(DependencyWaitRow.outbox_id == outbox_id)).all()
        return sorted({(r.connection_id, RecordRef(r.kind, r.record_id)) for r in rows})

    def records_with_waiters(self, records: Sequence[tuple[str, RecordRef]]) -> list[tuple[str, RecordRef]]:
        """Which of these records, each of its connection, something waits for, in one query
        for up to 500 connections and kinds (Core: every transaction that applies answers asks,
        and the ORM's select cost twice the statement). An IN of ids for each connection and kind, so
        that each record is sought in `ix_wait_record` by all three: with a row-value IN of
        (kind, id) SQLite sought by connection alone and read every wait of the connection."""
        ids: dict[tuple[str, int], set[int]] = {}
        for connection_id, record in records:
            ids.setdefault((connection_id, record.kind), set()).add(record.id)
        groups = sorted(ids.items())
        found: set[tuple[str, RecordRef]] = set()
        # SQLite reads `a OR b OR ...` as a tree as deep as its terms, and refuses one deeper than
        # 1,000 (SQLITE_MAX_EXPR_DEPTH): a statement for each _WAIT_GROUPS groups.
        for start in range(0, len(groups), _WAIT_GROUPS):
            terms = [
                and_(_WAITS.c.connection_id == c, _WAITS.c.kind == k, _WAITS.c.record_id.in_(sorted(v)))
                for (c, k), v in groups[start : start + _WAIT_GROUPS]
            ]
            rows = self._session.execute(
                core_select(_WAITS.c.connection_id, _WAITS.c.kind, _WAITS.c.record_id).where(or_(*terms))
            )
            found.update((c, RecordRef(k, i)) for c, k, i in rows)
        return sorted(found)

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
        query = select(OutboxRow.id).where(OutboxRow.state == OutboxState.WAITING, col(OutboxRow.id).not_in(dependency))
        return sorted(i for i in self._session.exec(query) if i is not None)
