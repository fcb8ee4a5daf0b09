"""An in-memory OutboxRepository: the queue of Xero work and its dependency waits. Claiming and
leasing belong to the dispatcher's loop, which the unit tests do not run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState, OutboxState
from xerolink_poster.domain.stored_rows import ClaimedEntry, StoredEntry

from tests.fixtures.registry_rows import as_values
from tests.unit.fakes.registry import Registry, Wait


def _unused(what: str) -> NoReturn:
    raise NotImplementedError(f"{what}: the dispatcher's loop, which no unit test here runs")


class FakeOutboxRepository:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def add_outbox(self, need_id: bool, row: OutboxRow) -> OutboxRow:
        self.save(row)
        return row

    def save(self, row: OutboxRow) -> None:
        if row.id is None:
            row.id = self._registry.next_id()
        self._registry.outbox[row.id] = row

    def insert_outbox(self, rows: Sequence[dict[str, Any]], returning_ids: bool = False) -> list[int]:
        ids = [self.add_outbox(True, OutboxRow(**row)).id or 0 for row in rows]
        return ids if returning_ids else []

    def update_outbox(self, rows: Sequence[dict[str, object]]) -> None:
        for values in rows:
            outbox_id = values["id"]
            assert isinstance(outbox_id, int)
            row = self._registry.outbox[outbox_id]
            for name, value in values.items():
                setattr(row, name, value)

    def preload_outbox(self, ids: Sequence[int]) -> None:
        pass  # every row is in memory

    def mark_uncertain(
        self,
        hints: dict[int, str],
        lease_until_us: int,
        holder: str,
        now_us: int,
        claims: dict[int, int] | None = None,
    ) -> int:
        _unused("mark_uncertain")

    def unclaim(self, ids: Sequence[int], holder: str, claims: dict[int, tuple[int, ...]] | None = None) -> int:
        _unused("unclaim")

    def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        return self._registry.outbox.get(outbox_id)

    def lock_entry(self, outbox_id: int) -> OutboxRow | None:
        return self._registry.outbox.get(outbox_id)

    def lock_waits(self, outbox_id: int) -> list[tuple[str, RecordRef]] | None:
        return self.connection_waits_of(outbox_id)

    def lock_entries(self, ids: Sequence[int]) -> dict[int, OutboxRow]:
        return self.outbox_by_ids(ids)

    def outbox_by_ids(self, ids: Sequence[int]) -> dict[int, OutboxRow]:
        return {i: self._registry.outbox[i] for i in ids if i in self._registry.outbox}

    def stored_entries(self, ids: Sequence[int]) -> dict[int, StoredEntry]:
        # The row's values, field by field, as the SQL repository selects them.
        return {i: as_values(StoredEntry, row) for i, row in self.outbox_by_ids(ids).items()}

    def open_outbox_of_link(self, link_id: int) -> Sequence[OutboxRow]:
        return [r for r in self._registry.outbox.values() if r.link_id == link_id and r.state != OutboxState.DONE]

    def latest_available(self, link_id: int) -> int:
        return max((r.available_us for r in self._registry.outbox.values() if r.link_id == link_id), default=0)

    def open_operations(self, connection_id: str) -> Iterator[tuple[int, bytes]]:
        for row in list(self._registry.outbox.values()):
            if row.connection_id == connection_id and row.state != OutboxState.DONE:
                yield row.link_id, row.operations

    def close_work_of_links(self, link_ids: Sequence[int]) -> None:
        for link_id in link_ids:
            for row in self.open_outbox_of_link(link_id):
                self.clear_waits(row.id or 0)
                row.state = OutboxState.DONE

    def uncertain_outbox(self, connection_id: str) -> list[OutboxRow]:
        _unused("uncertain_outbox")

    def move_outbox(self, connection_id: str, tenant_id: str) -> None:
        _unused("move_outbox")

    def has_claimable(self, tenant_id: str, now_us: int) -> bool:
        _unused("has_claimable")

    def claim(self, tenant_id: str, holder: str, limit: int, now_us: int, lease_us: int) -> list[ClaimedEntry]:
        _unused("claim")

    def release_claims(self, tenant_id: str) -> None:
        _unused("release_claims")

    def tenants_with_ready_work(self, now_us: int) -> list[str]:
        _unused("tenants_with_ready_work")

    def purge_done_outbox(self, before_us: int, limit: int) -> int:
        _unused("purge_done_outbox")

    # -- dependency waits --------------------------------------------------------------------
    def add_waits(self, outbox_id: int, connection_id: str, records: Sequence[RecordRef]) -> None:
        self._registry.waits.extend(Wait(outbox_id, connection_id, r) for r in records)

    def insert_waits(self, rows: Sequence[dict[str, Any]]) -> None:
        self._registry.waits.extend(
            Wait(r["outbox_id"], r["connection_id"], RecordRef(r["kind"], r["record_id"])) for r in rows
        )

    def clear_waits(self, outbox_id: int) -> None:
        self._registry.waits = [w for w in self._registry.waits if w.outbox_id != outbox_id]

    def waiters_on(self, connection_id: str, record: RecordRef) -> list[int]:
        return sorted(
            {w.outbox_id for w in self._registry.waits if w.connection_id == connection_id and w.record == record}
        )

    def connection_waits_of(self, outbox_id: int) -> list[tuple[str, RecordRef]]:
        return sorted({(w.connection_id, w.record) for w in self._registry.waits if w.outbox_id == outbox_id})

    def records_with_waiters(self, records: Sequence[tuple[str, RecordRef]]) -> list[tuple[str, RecordRef]]:
        wanted = set(records)
        waits = self._registry.waits
        return sorted({(w.connection_id, w.record) for w in waits if (w.connection_id, w.record) in wanted})

    def satisfied_waiting_entries(self) -> list[int]:
        def linked(wait: Wait) -> bool:
            link = self._registry.link_of(wait.connection_id, wait.record)
            return link is not None and link.state == LinkState.LINKED

        return sorted(
            outbox_id
            for outbox_id, row in self._registry.outbox.items()
            if row.state == OutboxState.WAITING
            and all(linked(w) for w in self._registry.waits if w.outbox_id == outbox_id)
        )
