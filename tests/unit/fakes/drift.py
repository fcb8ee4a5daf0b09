"""An in-memory drift repository: snapshots and drift rows in dicts (webhook events and poll
cursors are not used by the rules the fakes test)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from xerolink_poster.adapters.drift_tables import DriftRow, PollCursorRow, WebhookEventRow, XeroSnapshotRow


def _unused(what: str) -> NoReturn:
    raise NotImplementedError(f"the fake drift repository does not keep {what}")


class FakeDriftRepository:
    def __init__(self) -> None:
        self.snapshots: dict[tuple[str, str], XeroSnapshotRow] = {}
        self.drifts: dict[int, DriftRow] = {}

    def get_snapshot(self, connection_id: str, xero_id: str, lock: bool = False) -> XeroSnapshotRow | None:
        return self.snapshots.get((connection_id, xero_id))

    def snapshot_documents(self, connection_id: str, xero_ids: Sequence[str]) -> list[tuple[int, int, str]]:
        wanted = set(xero_ids)
        found = [s for (c, x), s in self.snapshots.items() if c == connection_id and x in wanted]
        return [(s.link_id, s.object_type, s.document) for s in found]

    def put_snapshot(self, row: XeroSnapshotRow) -> None:
        """As the registry's: a snapshot replaced keeps its creation time."""
        existing = self.snapshots.get((row.connection_id, row.xero_id))
        if existing is not None and existing is not row:
            row.create_us = existing.create_us
        self.snapshots[(row.connection_id, row.xero_id)] = row

    def add_snapshots(self, rows: Sequence[XeroSnapshotRow]) -> None:
        for row in rows:
            self.put_snapshot(row)

    def insert_snapshots(self, rows: Sequence[dict[str, Any]]) -> None:
        for values in rows:
            row = XeroSnapshotRow(**values)
            assert (row.connection_id, row.xero_id) not in self.snapshots, "a snapshot inserted twice"
            self.snapshots[(row.connection_id, row.xero_id)] = row

    def snapshots_of_links(self, link_ids: Sequence[int], active_only: bool = True) -> list[XeroSnapshotRow]:
        return [s for s in self.snapshots.values() if s.link_id in link_ids and (s.active or not active_only)]

    def snapshots_by_xero_ids(self, connection_id: str, xero_ids: Sequence[str]) -> dict[str, XeroSnapshotRow]:
        return {x: s for x in xero_ids if (s := self.snapshots.get((connection_id, x))) is not None}

    def snapshots_of_objects(
        self, keys: Sequence[tuple[str, str]], lock: bool = False
    ) -> dict[tuple[str, str], XeroSnapshotRow]:
        return {k: s for k in keys if (s := self.snapshots.get(k)) is not None}

    def snapshots_until(self, connection_id: str, last_day: str) -> list[XeroSnapshotRow]:
        rows = [s for s in self.snapshots.values() if s.connection_id == connection_id and s.doc_date <= last_day]
        return sorted(rows, key=lambda s: (s.doc_date, s.xero_id))

    def snapshot_types(self, connection_id: str) -> set[int]:
        return {s.object_type for s in self.snapshots.values() if s.connection_id == connection_id and s.active}

    def deactivate_snapshots(self, link_id: int, now_us: int) -> None:
        for row in self.snapshots_of_links([link_id]):
            row.active = False
            row.update_us = now_us

    def get_drift(self, connection_id: str, drift_id: int, lock: bool = False) -> DriftRow | None:
        row = self.drifts.get(drift_id)
        return row if row is not None and row.connection_id == connection_id else None

    def open_drifts_of_object(self, connection_id: str, xero_id: str) -> list[DriftRow]:
        return [
            d for d in self.drifts.values() if (d.connection_id, d.xero_id, d.state) == (connection_id, xero_id, "open")
        ]

    def open_drifts_of_links(self, link_ids: Sequence[int]) -> dict[int, list[DriftRow]]:
        out: dict[int, list[DriftRow]] = {}
        for d in sorted(self.drifts.values(), key=lambda d: d.id or 0):
            if d.link_id in link_ids and d.state == "open":
                out.setdefault(d.link_id, []).append(d)
        return out

    def save_drift(self, row: DriftRow) -> DriftRow:
        if row.id is None:
            row.id = max(self.drifts, default=0) + 1
        self.drifts[row.id] = row
        return row

    def list_drifts(
        self,
        connection_id: str,
        state: str | None,
        kinds: Sequence[str],
        link_id: int | None,
        before_id: int | None,
        limit: int,
    ) -> list[DriftRow]:
        rows = [
            d
            for d in self.drifts.values()
            if d.connection_id == connection_id
            and (not state or d.state == state)
            and (not kinds or d.kind in kinds)
            and (link_id is None or d.link_id == link_id)
            and (before_id is None or (d.id or 0) < before_id)
        ]
        return sorted(rows, key=lambda d: -(d.id or 0))[:limit]

    def add_event(self, row: WebhookEventRow) -> bool:
        _unused("webhook events")

    def pending_events(self, limit: int) -> list[WebhookEventRow]:
        _unused("webhook events")

    def pending_events_of(
        self, tenant_id: str, category: str, resource_id: str, received_until_us: int
    ) -> list[WebhookEventRow]:
        _unused("webhook events")

    def get_event(self, event_id: int) -> WebhookEventRow | None:
        _unused("webhook events")

    def save_event(self, row: WebhookEventRow) -> None:
        _unused("webhook events")

    def get_cursor(self, connection_id: str, resource: str) -> PollCursorRow | None:
        _unused("poll cursors")

    def save_cursor(self, row: PollCursorRow) -> None:
        _unused("poll cursors")
