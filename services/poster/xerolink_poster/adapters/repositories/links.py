"""The links repository: each record's link, its postings and audit trail, and the state changes
that move it. Every state change goes through the domain's transition table and appends its audit
row in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import and_, bindparam, func, or_
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from xerolink_poster.adapters.repositories.bulk import bulk_update, insert_rows
from xerolink_poster.adapters.repositories.link_index import LinkIndex
from xerolink_poster.adapters.repositories.plan_hints import tested_only
from xerolink_poster.adapters.tables import AuditRow, LinkObjectRow, LinkRow, OrphanRow, PostingRow
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState, Transition, transition
from xerolink_poster.domain.stored_rows import StoredLink

# Built once: every Post runs it, and building the statement and its cache key each time was a
# tenth of a Post's CPU.
_LINKS_OF_RECORDS = select(LinkRow).where(
    LinkRow.connection_id == bindparam("connection_id"),
    LinkRow.kind == bindparam("kind"),
    col(LinkRow.record_id).in_(bindparam("ids", expanding=True)),
)
# What applying a call's answers reads of its links: values, not ORM objects (domain/stored_rows).
_LINK_TABLE: Any = LinkRow.__table__  # type: ignore[attr-defined]
# Its columns in the order of StoredLink's fields, which are built from each row in turn.
_STORED_LINKS = core_select(*(_LINK_TABLE.c[f.name] for f in fields(StoredLink))).where(
    _LINK_TABLE.c.id.in_(bindparam("ids", expanding=True))
)
# Which link holds a Xero object, by key: a row for each object of each link's xero_objects,
# written by a trigger on link (revision 0007) and never removed.
_LINK_OBJECTS: Any = LinkObjectRow.__table__  # type: ignore[attr-defined]
# The ids of the links indexed as holding any of the objects (maybe one that held it). The
# links are then read by primary key: their connection is only tested, or SQLite would read
# every link of the connection along ix_link_list. Built once, with bound parameters.
_HOLDING = core_select(_LINK_OBJECTS.c.link_id).where(
    _LINK_OBJECTS.c.connection_id == bindparam("connection_id"),
    _LINK_OBJECTS.c.xero_id.in_(bindparam("xero_ids", expanding=True)),
)
_LINKS_HOLDING = select(LinkRow).where(
    col(LinkRow.id).in_(_HOLDING), tested_only(_LINK_TABLE.c.connection_id) == bindparam("connection")
)
_HOLDERS = core_select(_LINK_TABLE.c.id, _LINK_TABLE.c.xero_objects).where(
    _LINK_TABLE.c.id.in_(_HOLDING), tested_only(_LINK_TABLE.c.connection_id) == bindparam("connection")
)
# What `holders` gives an object an unlink left orphaned: held by no link, and by no record to be.
ORPHANED = -1


# Whether a record is linked, asked before work waiting for it is released. FOR SHARE on
# PostgreSQL holds the link against an unlink until the release commits (at READ COMMITTED a plain
# read lets an unlink commit between the check and the write); SKIP LOCKED counts a link another
# transaction is changing as not linked, so a release never waits on a lock (two transactions each
# linking one of an entry's records and releasing it would wait on each other): the sweep for
# satisfied waits releases it once that transaction ends. SQLite renders neither clause (its one
# writer is alone).
_LINK_STATE_HELD = (
    core_select(_LINK_TABLE.c.state)
    .where(
        _LINK_TABLE.c.connection_id == bindparam("connection_id"),
        _LINK_TABLE.c.kind == bindparam("kind"),
        _LINK_TABLE.c.record_id == bindparam("record_id"),
    )
    .with_for_update(read=True, skip_locked=True)
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def id_key(xero_id: str) -> str:
    """A Xero id as link_object keys it: lower case in ASCII only (revision 0007; Xero's ids are
    GUIDs, which compare without case)."""
    return xero_id.translate(_ASCII_LOWER)


def _listed_ids(objects: str | None) -> list[str]:
    """The Xero ids a link's stored list names; a value that is not such a list (set by hand)
    names none."""
    try:
        parsed = json.loads(objects or "[]")
    except ValueError:
        return []
    if not isinstance(parsed, list):
        return []
    return [o["xero_id"] for o in parsed if isinstance(o, dict) and isinstance(o.get("xero_id"), str)]


def _holding(connection_id: str, xero_ids: Sequence[str]) -> dict[str, object]:
    """The parameters of _HOLDING and the reads built on it."""
    keys = sorted({id_key(x) for x in xero_ids})
    return {"connection_id": connection_id, "connection": connection_id, "xero_ids": keys}


@dataclass
class StateChange:
    """One link's state change in a batch, with the other columns to set on the link."""

    link: LinkRow | StoredLink
    event: Event
    detail: str
    values: dict[str, object] = field(default_factory=dict)


def xero_objects(link: LinkRow | StoredLink) -> list[XeroObjectRef]:
    """The Xero objects a link holds, from its JSON column."""
    return [XeroObjectRef.from_json(item) for item in json.loads(link.xero_objects)]


class SqlLinkRepository(LinkIndex):
    def __init__(self, session: Session, is_sqlite: bool) -> None:
        self._session = session
        self._is_sqlite = is_sqlite
        # The session's identity map holds rows weakly: preloaded rows are kept here for the
        # unit of work, or they are dropped at once and each later get runs its own SELECT.
        self._preloaded: list[object] = []

    def get_link(self, connection_id: str, record: RecordRef) -> LinkRow | None:
        return self._session.exec(
            select(LinkRow).where(
                LinkRow.connection_id == connection_id, LinkRow.kind == record.kind, LinkRow.record_id == record.id
            )
        ).first()

    def linked_now(self, connection_id: str, record: RecordRef) -> bool:
        """Whether the record's link is linked, held so until the transaction ends (_LINK_STATE_HELD)."""
        state = self._session.execute(
            _LINK_STATE_HELD, {"connection_id": connection_id, "kind": record.kind, "record_id": record.id}
        ).scalar()
        return state == LinkState.LINKED.value

    def links_for(self, connection_id: str, records: Sequence[RecordRef]) -> dict[RecordRef, LinkRow]:
        """The links of many records, one query per kind: `kind = ? AND record_id IN (...)` is a
        search of the unique index, where a (kind, record_id) tuple IN made SQLite scan every
        link of the connection."""
        by_kind: dict[int, list[int]] = {}
        for record in records:
            by_kind.setdefault(record.kind, []).append(record.id)
        found: dict[RecordRef, LinkRow] = {}
        for kind, ids in sorted(by_kind.items()):
            rows = self._session.exec(
                _LINKS_OF_RECORDS, params={"connection_id": connection_id, "kind": kind, "ids": ids}
            ).all()
            found.update({RecordRef(r.kind, r.record_id): r for r in rows})
        return found

    def get_link_by_id(self, link_id: int) -> LinkRow | None:
        return self._session.get(LinkRow, link_id)

    def lock_link(self, link_id: int) -> LinkRow | None:
        """The link read again and held until the transaction ends, or None when it is gone or
        another transaction holds it (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
        return self._session.get(LinkRow, link_id, with_for_update={"skip_locked": True}, populate_existing=True)

    def lock_links(self, ids: Sequence[int]) -> dict[int, LinkRow]:
        """The links read again (rows the session holds are refreshed) and held until the
        transaction ends, in id order, waiting for whoever holds one (FOR UPDATE on PostgreSQL;
        SQLite's write transaction already excludes every other writer)."""
        if not ids:
            return {}
        query = select(LinkRow).where(col(LinkRow.id).in_(sorted(set(ids))))
        if not self._is_sqlite:
            query = query.order_by(col(LinkRow.id)).with_for_update().execution_options(populate_existing=True)
        return {r.id or 0: r for r in self._session.exec(query).all()}

    def links_by_ids(self, ids: Sequence[int]) -> dict[int, LinkRow]:
        if not ids:
            return {}
        rows = self._session.exec(select(LinkRow).where(col(LinkRow.id).in_(list(ids)))).all()
        return {r.id or 0: r for r in rows}

    def stored_links(self, ids: Sequence[int]) -> dict[int, StoredLink]:
        """The links' columns that applying Xero's answers reads, without ORM objects."""
        if not ids:
            return {}
        rows = self._session.execute(_STORED_LINKS, {"ids": list(ids)})
        return {row.id: StoredLink(*row) for row in rows}

    def preload_links(self, ids: Sequence[int]) -> None:
        """Loads links into the session by id, so later gets are served without SQL."""
        if ids:
            self._preloaded += self._session.exec(select(LinkRow).where(col(LinkRow.id).in_(list(ids)))).all()

    def add_link(self, row: LinkRow) -> LinkRow:
        self._session.add(row)
        self._session.flush()
        return row

    def save(self, link: LinkRow) -> None:
        """Keeps changes made to a link in this transaction (rows read through it are kept anyway)."""
        self._session.add(link)

    def refresh(self, link: LinkRow) -> None:
        """Reloads a link that a bulk statement changed behind the session's back."""
        self._session.refresh(link)

    def insert_links(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """New links in one statement; their ids in the order of `rows`."""
        return insert_rows(self._session, LinkRow, rows, returning_ids=True)

    def update_links(self, rows: Sequence[dict[str, object]]) -> None:
        bulk_update(self._session, LinkRow, rows)

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
        self._session.add(link)
        if link.id is None:
            self._session.flush()
        assert link.id is not None
        if posting is None and link.posting_id:
            posting = self._session.get(PostingRow, link.posting_id)
        if posting is not None:
            posting.state = step.to_state.value
            self._session.add(posting)
        self._session.add(
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
        # Read from the links before the first UPDATE, which expires the session's copies of them.
        links = [
            {"id": c.link.id, "state": step.to_state.value, "update_us": now_us, **c.values}
            for c, step in zip(changes, steps, strict=True)
        ]
        postings: list[dict[str, object]] = [
            {"posting_id": c.link.posting_id, "state": step.to_state.value}
            for c, step in zip(changes, steps, strict=True)
            if c.link.posting_id
        ]
        audit = [
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
        ]
        bulk_update(self._session, LinkRow, links)
        bulk_update(self._session, PostingRow, postings)
        # A Core INSERT: the ORM's bulk insert collected each row through the mapper, 4 % of the
        # drain's CPU in a profile for the same statement.
        insert_rows(self._session, AuditRow, audit)

    def audit(self, link_id: int) -> Sequence[AuditRow]:
        return self._session.exec(select(AuditRow).where(AuditRow.link_id == link_id).order_by(col(AuditRow.id))).all()

    def insert_audit(self, rows: Sequence[dict[str, Any]]) -> None:
        insert_rows(self._session, AuditRow, rows)

    @staticmethod
    def xero_objects(link: LinkRow | StoredLink) -> list[XeroObjectRef]:
        return xero_objects(link)

    @staticmethod
    def set_xero_objects(link: LinkRow, objects: Sequence[XeroObjectRef]) -> None:
        # link_object follows in the same statement: a trigger indexes the column (revision 0007).
        link.xero_objects = json.dumps([o.to_json() for o in objects])

    def held_xero_ids(self, connection_id: str, xero_ids: Sequence[str], except_link_id: int) -> set[str]:
        """Which of these Xero ids another link of the connection holds, or an unlink left
        orphaned: an uncertain call's look-up must never adopt one of them."""
        return {x for x, links in self.holders(connection_id, xero_ids).items() if links - {except_link_id}}

    def holders(self, connection_id: str, xero_ids: Sequence[str]) -> dict[str, set[int]]:
        """The links of the connection holding each of these Xero ids (ORPHANED for an id an
        unlink left orphaned), in one read for a look-up's every record; ids no link holds are
        left out. The links are found by key (`link_object`), and each link's own list says
        whether it still holds the id."""
        # Xero's GUIDs compare without case: an id is held whatever the case it is stored in,
        # and is answered as asked.
        wanted = {id_key(x): x for x in xero_ids if x}
        if not wanted:
            return {}
        held: dict[str, set[int]] = {}
        for link_id, objects in self._session.execute(_HOLDERS, _holding(connection_id, list(wanted))):
            for x in _listed_ids(objects):
                if id_key(x) in wanted:
                    held.setdefault(wanted[id_key(x)], set()).add(int(link_id))
        orphans = select(OrphanRow.xero_id).where(
            OrphanRow.connection_id == connection_id, func.lower(OrphanRow.xero_id).in_(sorted(wanted))
        )
        for x in self._session.exec(orphans):
            if id_key(x) in wanted:
                held.setdefault(wanted[id_key(x)], set()).add(ORPHANED)
        return held

    def link_holding(self, connection_id: str, xero_id: str) -> LinkRow | None:
        """The link of the connection that holds this Xero object (webhook events and drift
        checks of objects without a snapshot): found by key (`link_object`), then checked
        against the link's own list."""
        for link in self._session.exec(_LINKS_HOLDING, params=_holding(connection_id, [xero_id])):
            if any(id_key(x) == id_key(xero_id) for x in _listed_ids(link.xero_objects)):
                return link
        return None

    # -- postings ----------------------------------------------------------------------------
    def add_posting(self, row: PostingRow) -> None:
        self._session.add(row)

    def insert_postings(self, rows: Sequence[dict[str, Any]]) -> None:
        insert_rows(self._session, PostingRow, rows)

    def preload_postings(self, posting_ids: Sequence[str]) -> None:
        if posting_ids:
            self._preloaded += self._session.exec(
                select(PostingRow).where(col(PostingRow.posting_id).in_(list(posting_ids)))
            ).all()

    def get_posting(self, posting_id: str) -> PostingRow | None:
        return self._session.get(PostingRow, posting_id)

    def posting_by_request(self, connection_id: str, request_id: str) -> PostingRow | None:
        """The first posting made under the request id: two posters racing on one id may both
        have stored one, and the first is the request the id names."""
        return self._session.exec(
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
        return self._session.exec(query.order_by(*order).limit(limit)).all()
