"""The drift repository: what xerolink posted to each linked Xero object (snapshots), the drift
found since, Xero's webhook events as received and the poller's cursors (docs/drift.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from xerolink_poster.adapters.drift_tables import DriftRow, PollCursorRow, WebhookEventRow, XeroSnapshotRow
from xerolink_poster.adapters.repositories.bulk import in_by_connection, insert_rows

_SNAPSHOTS: Any = XeroSnapshotRow.__table__  # type: ignore[attr-defined]
# Built once, with bound parameters (the list expands at each execution).
_SNAPSHOT_IDS = core_select(_SNAPSHOTS.c.xero_id).where(
    _SNAPSHOTS.c.connection_id == bindparam("c"), _SNAPSHOTS.c.xero_id.in_(bindparam("ids", expanding=True))
)
OPEN = "open"
RESOLVED = "resolved"


class SqlDriftRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    # -- snapshots ------------------------------------------------------------------------------
    def get_snapshot(self, connection_id: str, xero_id: str, lock: bool = False) -> XeroSnapshotRow | None:
        """The object's snapshot; with `lock`, read again (the row the session holds is refreshed)
        and held until the transaction ends (FOR UPDATE on PostgreSQL)."""
        if lock:  # SQLite's dialect writes no FOR UPDATE
            return self._session.get(
                XeroSnapshotRow, (connection_id, xero_id), with_for_update=True, populate_existing=True
            )
        return self._session.get(XeroSnapshotRow, (connection_id, xero_id))

    def snapshot_documents(self, connection_id: str, xero_ids: Sequence[str]) -> list[tuple[int, int, str]]:
        """(link id, object type, document) of these objects' snapshots, as values: no ORM rows
        are loaded, so a caller can lock the links first and then read the snapshots as they are."""
        if not xero_ids:
            return []
        query = core_select(_SNAPSHOTS.c.link_id, _SNAPSHOTS.c.object_type, _SNAPSHOTS.c.document).where(
            _SNAPSHOTS.c.connection_id == connection_id, _SNAPSHOTS.c.xero_id.in_(sorted(set(xero_ids)))
        )
        return [(link_id, object_type, document) for link_id, object_type, document in self._session.execute(query)]

    def put_snapshot(self, row: XeroSnapshotRow) -> None:
        """Adds the object's snapshot, or replaces the one it has (a later generation, or a state
        a person accepted)."""
        existing = self.get_snapshot(row.connection_id, row.xero_id)
        if existing is None:
            self._session.add(row)
            return
        for field in ("link_id", "generation", "object_type", "document", "doc_date", "xero_updated", "active"):
            setattr(existing, field, getattr(row, field))
        existing.update_us = row.update_us
        self._session.add(existing)

    def add_snapshots(self, rows: Sequence[XeroSnapshotRow]) -> None:
        """Adds snapshots of objects that have none (just created in Xero)."""
        self._session.add_all(rows)

    def insert_snapshots(self, rows: Sequence[dict[str, Any]]) -> None:
        """Inserts snapshots of objects that have none, given as columns, in one statement: ORM
        objects and their flush cost more than the SQL for a call's fifty."""
        insert_rows(self._session, XeroSnapshotRow, rows)

    def snapshots_of_links(self, link_ids: Sequence[int], active_only: bool = True) -> list[XeroSnapshotRow]:
        if not link_ids:
            return []
        query = select(XeroSnapshotRow).where(col(XeroSnapshotRow.link_id).in_(sorted(set(link_ids))))
        if active_only:
            query = query.where(col(XeroSnapshotRow.active).is_(True))
        return list(self._session.exec(query).all())

    def snapshots_by_xero_ids(self, connection_id: str, xero_ids: Sequence[str]) -> dict[str, XeroSnapshotRow]:
        if not xero_ids:
            return {}
        # Which exist, as values first: every call's answers ask about the objects just created,
        # which have none, and the ORM's select of no rows cost three times this one.
        found = [x for (x,) in self._session.execute(_SNAPSHOT_IDS, {"c": connection_id, "ids": sorted(set(xero_ids))})]
        if not found:
            return {}
        query = select(XeroSnapshotRow).where(
            XeroSnapshotRow.connection_id == connection_id, col(XeroSnapshotRow.xero_id).in_(found)
        )
        return {row.xero_id: row for row in self._session.exec(query).all()}

    def snapshots_of_objects(
        self, keys: Sequence[tuple[str, str]], lock: bool = False
    ) -> dict[tuple[str, str], XeroSnapshotRow]:
        """The snapshots of these (connection, Xero id) objects that exist, by key: which exist
        asked first, as values (the objects a call just created have none), then only those
        loaded as rows, one statement each whatever the connections. With `lock`, the rows are
        read again (rows the session holds are refreshed) and held until the transaction ends, in
        key order (FOR UPDATE; SQLite's dialect writes none)."""
        if not keys:
            return {}
        found = sorted(
            (c, x)
            for c, x in self._session.execute(
                core_select(_SNAPSHOTS.c.connection_id, _SNAPSHOTS.c.xero_id).where(
                    in_by_connection(_SNAPSHOTS.c.connection_id, _SNAPSHOTS.c.xero_id, keys)
                )
            )
        )
        if not found:
            return {}
        wanted = in_by_connection(col(XeroSnapshotRow.connection_id), col(XeroSnapshotRow.xero_id), found)
        query = select(XeroSnapshotRow).where(wanted)
        if lock:
            order = (col(XeroSnapshotRow.connection_id), col(XeroSnapshotRow.xero_id))
            query = query.order_by(*order).with_for_update().execution_options(populate_existing=True)
        rows = self._session.exec(query).all()
        return {(row.connection_id, row.xero_id): row for row in rows}

    def snapshots_until(self, connection_id: str, last_day: str) -> list[XeroSnapshotRow]:
        """Every snapshot of the connection dated on or before `last_day` (YYYY-MM-DD), active or
        not, in a stable order."""
        query = (
            select(XeroSnapshotRow)
            .where(XeroSnapshotRow.connection_id == connection_id, col(XeroSnapshotRow.doc_date) <= last_day)
            .order_by(col(XeroSnapshotRow.doc_date), col(XeroSnapshotRow.xero_id))
        )
        return list(self._session.exec(query).all())

    def deactivate_snapshots(self, link_id: int, now_us: int) -> None:
        """The link no longer holds its objects (unlinked): they stay in Xero, orphaned."""
        for row in self.snapshots_of_links([link_id]):
            row.active = False
            row.update_us = now_us
            self._session.add(row)

    def snapshot_types(self, connection_id: str) -> set[int]:
        """The object types the connection's active snapshots hold (what the poller reads)."""
        query = (
            select(XeroSnapshotRow.object_type)
            .where(XeroSnapshotRow.connection_id == connection_id, col(XeroSnapshotRow.active).is_(True))
            .distinct()
        )
        return set(self._session.exec(query).all())

    # -- drift ----------------------------------------------------------------------------------
    def get_drift(self, connection_id: str, drift_id: int, lock: bool = False) -> DriftRow | None:
        """The drift; with `lock`, read again (the row the session holds is refreshed) and held
        until the transaction ends (FOR UPDATE on PostgreSQL; SQLite's write transaction already
        excludes every other writer)."""
        if lock:  # SQLite's dialect writes no FOR UPDATE
            row = self._session.get(DriftRow, drift_id, with_for_update=True, populate_existing=True)
        else:
            row = self._session.get(DriftRow, drift_id)
        return row if row is not None and row.connection_id == connection_id else None

    def open_drifts_of_object(self, connection_id: str, xero_id: str) -> list[DriftRow]:
        query = select(DriftRow).where(
            DriftRow.connection_id == connection_id, DriftRow.xero_id == xero_id, DriftRow.state == OPEN
        )
        return list(self._session.exec(query).all())

    def open_drifts_of_links(self, link_ids: Sequence[int]) -> dict[int, list[DriftRow]]:
        if not link_ids:
            return {}
        query = (
            select(DriftRow)
            .where(col(DriftRow.link_id).in_(sorted(set(link_ids))), DriftRow.state == OPEN)
            .order_by(col(DriftRow.id))
        )
        out: dict[int, list[DriftRow]] = {}
        for row in self._session.exec(query).all():
            out.setdefault(row.link_id, []).append(row)
        return out

    def save_drift(self, row: DriftRow) -> DriftRow:
        self._session.add(row)
        self._session.flush()
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
        """Newest first, from before `before_id` (the page token)."""
        query = select(DriftRow).where(DriftRow.connection_id == connection_id)
        if state:
            query = query.where(DriftRow.state == state)
        if kinds:
            query = query.where(col(DriftRow.kind).in_(sorted(set(kinds))))
        if link_id is not None:
            query = query.where(DriftRow.link_id == link_id)
        if before_id is not None:
            query = query.where(col(DriftRow.id) < before_id)
        return list(self._session.exec(query.order_by(col(DriftRow.id).desc()).limit(limit)).all())

    # -- webhook events -------------------------------------------------------------------------
    def add_event(self, row: WebhookEventRow) -> bool:
        """Stores the event unless it was stored before (Xero delivers again until answered):
        whether it is new."""
        query = select(WebhookEventRow.id).where(WebhookEventRow.event_key == row.event_key)
        if self._session.exec(query).first() is not None:
            return False
        try:
            with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError:
            return False  # stored by a concurrent delivery of the same event
        return True

    def pending_events(self, limit: int) -> list[WebhookEventRow]:
        query = (
            select(WebhookEventRow)
            .where(WebhookEventRow.state == "pending")
            .order_by(col(WebhookEventRow.id))
            .limit(limit)
        )
        return list(self._session.exec(query).all())

    def pending_events_of(
        self, tenant_id: str, category: str, resource_id: str, received_until_us: int
    ) -> list[WebhookEventRow]:
        """The pending events of one object of one organisation received up to a moment: one
        read of the object made after that moment answers them all."""
        query = (
            select(WebhookEventRow)
            .where(
                WebhookEventRow.state == "pending",
                WebhookEventRow.tenant_id == tenant_id,
                WebhookEventRow.category == category,
                WebhookEventRow.resource_id == resource_id,
                col(WebhookEventRow.received_us) <= received_until_us,
            )
            .order_by(col(WebhookEventRow.id))
        )
        return list(self._session.exec(query).all())

    def get_event(self, event_id: int) -> WebhookEventRow | None:
        return self._session.get(WebhookEventRow, event_id)

    def save_event(self, row: WebhookEventRow) -> None:
        self._session.add(row)

    # -- poll cursors ---------------------------------------------------------------------------
    def get_cursor(self, connection_id: str, resource: str) -> PollCursorRow | None:
        return self._session.get(PollCursorRow, (connection_id, resource))

    def save_cursor(self, row: PollCursorRow) -> None:
        self._session.merge(row)
