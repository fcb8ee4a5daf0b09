"""An in-memory LinkRepository: links, their postings, audit trail, dependencies and orphans.
Rows are changed in place, as the SQL repository's session-bound rows are."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from xerolink_poster.adapters.operations import record_dependencies
from xerolink_poster.adapters.tables import AuditRow, LinkRow, OrphanRow, PostingRow
from xerolink_poster.domain.link_filter import LinkFilter
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState, Transition, transition
from xerolink_poster.domain.stored_rows import StoredLink
from xerolink_poster.service_layer.ports import IndexedPosting, OpenWork, StateChange

from tests.fixtures.registry_rows import as_values
from tests.unit.fakes.registry import Registry


def _unused(what: str) -> NoReturn:
    raise NotImplementedError(f"{what}: no service-layer rule under unit test needs it yet")


class FakeLinkRepository:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def get_link(self, connection_id: str, record: RecordRef) -> LinkRow | None:
        return self._registry.link_of(connection_id, record)

    def linked_now(self, connection_id: str, record: RecordRef) -> bool:
        link = self._registry.link_of(connection_id, record)
        return link is not None and link.state == LinkState.LINKED

    def links_for(self, connection_id: str, records: Sequence[RecordRef]) -> dict[RecordRef, LinkRow]:
        return {r: link for r in records if (link := self._registry.link_of(connection_id, r)) is not None}

    def get_link_by_id(self, link_id: int) -> LinkRow | None:
        return self._registry.links.get(link_id)

    def lock_link(self, link_id: int) -> LinkRow | None:
        return self._registry.links.get(link_id)

    def lock_links(self, ids: Sequence[int]) -> dict[int, LinkRow]:
        return self.links_by_ids(ids)

    def links_by_ids(self, ids: Sequence[int]) -> dict[int, LinkRow]:
        return {i: self._registry.links[i] for i in ids if i in self._registry.links}

    def stored_links(self, ids: Sequence[int]) -> dict[int, StoredLink]:
        # The row's values, field by field, as the SQL repository selects them.
        return {link.id or 0: as_values(StoredLink, link) for link in self.links_by_ids(ids).values()}

    def preload_links(self, ids: Sequence[int]) -> None:
        pass  # nothing to load ahead: every row is in memory

    def add_link(self, row: LinkRow) -> LinkRow:
        if row.id is None:
            row.id = self._registry.next_id()
        self._registry.links[row.id] = row
        return row

    def save(self, link: LinkRow) -> None:
        self.add_link(link)

    def refresh(self, link: LinkRow) -> None:
        pass  # the stored row is the caller's row: it is never stale

    def insert_links(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        return [self.add_link(LinkRow(**row)).id or 0 for row in rows]

    def update_links(self, rows: Sequence[dict[str, object]]) -> None:
        for values in rows:
            link_id = values["id"]
            assert isinstance(link_id, int)
            link = self._registry.links[link_id]
            for name, value in values.items():
                setattr(link, name, value)

    def change_state(
        self, link: LinkRow, event: Event, actor: str, now_us: int, detail: str = "", posting: PostingRow | None = None
    ) -> Transition:
        step = self._apply(StateChange(link, event, detail), actor, now_us)
        if posting is not None:
            posting.state = step.to_state.value
        return step

    def apply_transitions(self, changes: Sequence[StateChange], actor: str, now_us: int) -> None:
        # Every transition is checked before any is applied, so an illegal one changes nothing.
        for change in changes:
            transition(LinkState(change.link.state) if change.link.state else None, change.event)
        for change in changes:
            self._apply(change, actor, now_us)

    def _apply(self, change: StateChange, actor: str, now_us: int) -> Transition:
        # A stored link is a copy of the row's values: the change goes to the row.
        link = change.link if isinstance(change.link, LinkRow) else self._registry.links[change.link.id]
        current = LinkState(link.state) if link.state else None
        step = transition(current, change.event)
        self.add_link(link)
        link.state = step.to_state.value
        link.update_us = now_us
        for name, value in change.values.items():
            setattr(link, name, value)
        if (posting := self._registry.postings.get(link.posting_id)) is not None:
            posting.state = step.to_state.value
        self._registry.audit.append(
            AuditRow(
                id=self._registry.next_id(),
                link_id=link.id or 0,
                time_us=now_us,
                actor=actor,
                event=change.event.value,
                from_state=current.value if current else "",
                to_state=step.to_state.value,
                detail=change.detail,
            )
        )
        return step

    def audit(self, link_id: int) -> Sequence[AuditRow]:
        return [row for row in self._registry.audit if row.link_id == link_id]

    def insert_audit(self, rows: Sequence[dict[str, Any]]) -> None:
        self._registry.audit.extend(AuditRow(id=self._registry.next_id(), **row) for row in rows)

    @staticmethod
    def xero_objects(link: LinkRow | StoredLink) -> list[XeroObjectRef]:
        return [XeroObjectRef.from_json(item) for item in json.loads(link.xero_objects)]

    @staticmethod
    def set_xero_objects(link: LinkRow, objects: Sequence[XeroObjectRef]) -> None:
        link.xero_objects = json.dumps([o.to_json() for o in objects])

    def held_xero_ids(self, connection_id: str, xero_ids: Sequence[str], except_link_id: int) -> set[str]:
        _unused("held_xero_ids (the dispatcher's look-up)")

    def holders(self, connection_id: str, xero_ids: Sequence[str]) -> dict[str, set[int]]:
        _unused("holders (the dispatcher's look-up)")

    def link_holding(self, connection_id: str, xero_id: str) -> LinkRow | None:
        for link in self._registry.links.values():
            if link.connection_id == connection_id and any(
                o["xero_id"].lower() == xero_id.lower() for o in json.loads(link.xero_objects)
            ):
                return link
        return None

    # -- postings ----------------------------------------------------------------------------
    def add_posting(self, row: PostingRow) -> None:
        self._registry.postings[row.posting_id] = row

    def insert_postings(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            self.add_posting(PostingRow(**row))

    def preload_postings(self, posting_ids: Sequence[str]) -> None:
        pass

    def get_posting(self, posting_id: str) -> PostingRow | None:
        return self._registry.postings.get(posting_id)

    def posting_by_request(self, connection_id: str, request_id: str) -> PostingRow | None:
        postings = self._registry.postings.values()
        matching = [p for p in postings if p.connection_id == connection_id and p.request_id == request_id]
        return min(matching, key=lambda p: (p.create_us, p.posting_id), default=None)

    def list_postings(
        self, connection_id: str, state: str, before: tuple[int, str] | None, limit: int
    ) -> Sequence[PostingRow]:
        _unused("list_postings (a query, not a rule)")

    # -- the index ---------------------------------------------------------------------------
    def index_postings(self, postings: Sequence[IndexedPosting]) -> None:
        for posting in postings:
            self._registry.dependencies[posting.link.id or 0] = record_dependencies(posting.operations)

    def links_of(self, connection_id: str, records: Sequence[RecordRef], lock: bool) -> dict[RecordRef, LinkRow]:
        return self.links_for(connection_id, records)  # one writer at a time: nothing to lock

    def dependents_of(self, connection_id: str, records: Iterable[RecordRef]) -> dict[RecordRef, list[RecordRef]]:
        wanted = set(records)
        found: dict[RecordRef, set[RecordRef]] = {}
        for link_id, targets in self._registry.dependencies.items():
            link = self._registry.links[link_id]
            if link.connection_id != connection_id:
                continue
            for target in wanted.intersection(targets):
                found.setdefault(target, set()).add(RecordRef(link.kind, link.record_id))
        return {k: sorted(v) for k, v in found.items()}

    def open_work_paying(self, connection_id: str, records: Iterable[RecordRef]) -> list[OpenWork]:
        wanted = set(records)
        return [
            OpenWork(link_id, target, row.operations, link.xero_objects)
            for link_id, targets in sorted(self._registry.dependencies.items())
            if (link := self._registry.links[link_id]).connection_id == connection_id
            for target in sorted(wanted.intersection(targets))
            for row in self._registry.outbox.values()
            if row.link_id == link_id and row.posting_id == link.posting_id and row.state != OutboxState.DONE
        ]

    def add_orphans(self, rows: Sequence[OrphanRow]) -> None:
        for row in rows:
            row.id = self._registry.next_id()
            self._registry.orphans.append(row)

    def list_orphans(
        self, connection_id: str, record: RecordRef | None, object_type: int, after_id: int, limit: int
    ) -> Sequence[OrphanRow]:
        rows = [
            o
            for o in self._registry.orphans
            if o.connection_id == connection_id
            and (o.id or 0) > after_id
            and (record is None or (o.kind, o.record_id) == (record.kind, record.id))
            and (not object_type or o.object_type == object_type)
        ]
        return rows[:limit]

    def list_links(self, connection_id: str, wanted: LinkFilter, after_id: int, limit: int) -> Sequence[LinkRow]:
        _unused("list_links (a query, not a rule)")
