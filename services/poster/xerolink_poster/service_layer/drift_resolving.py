"""ResolveDrift's work (docs/drift.md "Resolving a drift"): the drift's object is read from Xero
again through a tenant worker lent by the dispatcher (the tenant's budget and lease, as
corrections use them), compared with what xerolink posted, and the resolution applied
(drift_resolution) in one transaction with what the read found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from xerolink_common.errors import unavailable

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.drift_tables import DriftRow, XeroSnapshotRow
from xerolink_poster.adapters.tables import ConnectionRow, LinkRow
from xerolink_poster.adapters.xero_client import Credentials
from xerolink_poster.domain import drift as rules
from xerolink_poster.service_layer import drift_resolution
from xerolink_poster.service_layer.connections import get_connection
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.drift_rereads import RereadFailed, read_object
from xerolink_poster.service_layer.ports import Repositories, XeroCaller
from xerolink_poster.service_layer.tenant_access import borrowed_tenant
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction


@dataclass(frozen=True)
class Resolved:
    drift: DriftRow
    link: LinkRow | None


def xero_state(
    repos: Repositories, snapshot: XeroSnapshotRow | None, element: dict[str, Any] | None
) -> drift_resolution.XeroState:
    """What the read found, trimmed as snapshots are, and how it differs from what xerolink posted
    (the object's own findings; payments and allocations xerolink made count as meant)."""
    if snapshot is None:
        current = rules.trim(0, element) if element is not None else None
        return drift_resolution.XeroState(json.dumps(current, sort_keys=True) if current is not None else None)
    posted = json.loads(snapshot.document)
    current = rules.trim(snapshot.object_type, element) if element is not None else None
    referenced = rules.referenced_ids(posted) | (rules.referenced_ids(current) if current else set())
    held = repos.drift.snapshots_by_xero_ids(snapshot.connection_id, sorted(referenced)) if referenced else {}
    made = {xero_id for xero_id, row in held.items() if row.active}
    findings = [f for f in rules.compare(snapshot.object_type, posted, current, made) if not f.xero_id]
    differences = [d.to_json() for f in findings for d in f.differences]
    updated = str(element.get("UpdatedDateUTC", "")) if element else ""
    document = json.dumps(current, sort_keys=True) if current is not None else None
    return drift_resolution.XeroState(document, updated, differences)


def resolve_in(
    repos: Repositories,
    connection_id: str,
    drift_id: int,
    resolution: str,
    note: str,
    element: dict[str, Any] | None,
    actor: str,
    seen: str | None = None,
) -> Resolved:
    """The resolution applied in the caller's transaction, given Xero's object as read (None when
    Xero no longer has it) and what xerolink had recorded of it before the read (`seen`,
    drift_resolution.recorded_state; None: not checked)."""
    row = drift_resolution.held_drift(repos, connection_id, drift_id)
    if not drift_resolution.already_resolved(row, resolution):  # resolved meanwhile: answer it
        if seen is not None and drift_resolution.recorded_state(repos, connection_id, row.xero_id, True) != seen:
            raise drift_resolution.changed_since_read(row, "xerolink recorded a change of it since")
        found = xero_state(repos, repos.drift.get_snapshot(connection_id, row.xero_id, lock=True), element)
        drift_resolution.resolve(repos, row, resolution, note, found, actor, now_us())
    return Resolved(row, repos.links.get_link_by_id(row.link_id))


class DriftResolver:
    def __init__(self, db: Database, dispatcher: Dispatcher | None, lease_wait: float = 10.0) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.lease_wait = lease_wait

    @contextmanager
    def _xero(self, connection: ConnectionRow) -> Iterator[tuple[XeroCaller, Credentials]]:
        with borrowed_tenant(
            self.dispatcher, connection, self.lease_wait, "resolve drifts on a poster that runs it"
        ) as borrowed:
            yield borrowed

    def resolve(self, connection_id: str, drift_id: int, resolution: str, note: str, actor: str) -> Resolved:
        drift_resolution.check_request(resolution, note)
        connection = get_connection(self.db, connection_id)
        with UnitOfWork(self.db, write=False) as uow:
            drift = drift_resolution.get_drift(uow, connection_id, drift_id)
            if drift_resolution.already_resolved(drift, resolution):
                return Resolved(drift, uow.links.get_link_by_id(drift.link_id))
            snapshot = uow.drift.get_snapshot(connection_id, drift.xero_id)
            posted = json.loads(snapshot.document) if snapshot is not None else {}
            seen = drift_resolution.recorded_state(uow, connection_id, drift.xero_id, False)
        credit_note = str((posted.get("CreditNote") or {}).get("CreditNoteID", ""))
        try:
            with self._xero(connection) as (caller, creds):
                element = read_object(caller, creds, drift.object_type, drift.xero_id, credit_note)
        except RereadFailed as exc:
            raise unavailable(
                exc.reason, f"{exc.message}; Xero must be read to resolve a drift: resolve again", 5.0
            ) from exc

        resolved = run_in_transaction(
            self.db, lambda uow: resolve_in(uow, connection_id, drift_id, resolution, note, element, actor, seen)
        )
        if self.dispatcher is not None:
            self.dispatcher.changes.notify()
        return resolved
