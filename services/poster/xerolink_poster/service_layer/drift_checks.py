"""Drift checks: Xero's current state of linked objects, however read (a webhook's follow-up
read, the poller, a read before or after posting), compared with what xerolink posted, and the
differences kept as drift records on the links (docs/drift.md, "Drift records").

`record_observations` is the one entry point. Per observed object it compares the snapshot
(domain/drift.py) with Xero's element and, per kind of difference, opens one drift row (or
updates the open one when the difference changed; the same difference again changes nothing),
resolves with XERO_RESTORED the open drifts a matching read no longer finds, and for each change
appends an audit entry on the link, logs one line and counts it. The snapshot's xero_updated
remembers the state compared."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xerolink_poster.adapters.drift_tables import DriftRow, XeroSnapshotRow
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain import drift as rules
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import RecordRef, link_name
from xerolink_poster.domain.states import LinkState
from xerolink_poster.domain.stored_rows import StoredLink
from xerolink_poster.service_layer import metrics
from xerolink_poster.service_layer.ports import Repositories

log = logging.getLogger("xerolink_poster.drift")

OPEN = "open"
RESOLVED = "resolved"
SOURCES = ("webhook", "poll", "posting", "reconcile")
DETECTED = "drift_detected"
CLEARED = "drift_cleared"
ADOPTED = "snapshot_adopted"
RESTORED = "XERO_RESTORED"


@dataclass(frozen=True)
class Observed:
    """One object as Xero holds it now."""

    object_type: int  # xerolink.xero.v1.ObjectType value
    xero_id: str
    document: dict[str, Any] | None  # Xero's current JSON element; None: Xero no longer has it
    updated: str = ""  # its UpdatedDateUTC as Xero sent it


def record_observations(
    uow: Repositories,
    connection_id: str,
    observed: Sequence[Observed],
    source: str,
    now_us: int,
    actor: str,
) -> list[DriftRow]:
    """Compares each observed object with what xerolink posted; returns the drift rows opened,
    changed or resolved. Objects no link of the connection holds are ignored; a linked object
    without a snapshot (linked before snapshots were kept) adopts a baseline (_adopt) and is
    compared with it at once."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    changed: list[DriftRow] = []
    wanted = [o.xero_id.lower() for o in observed if o.xero_id]
    uow.links.lock_links(links_written(uow, connection_id, wanted))
    snapshots = uow.drift.snapshots_by_xero_ids(connection_id, wanted)
    for item in observed:
        xero_id = item.xero_id.lower()
        if not xero_id:
            continue
        snapshot = snapshots.get(xero_id)
        if snapshot is None:
            snapshot = _adopt(uow, connection_id, item, now_us, actor)
            if snapshot is None:
                continue
        if not snapshot.active:
            continue  # unlinked: the object stays in Xero, orphaned, and is no longer watched
        link = uow.links.get_link_by_id(snapshot.link_id)
        if link is None or link.state == LinkState.UNLINKED:
            continue
        changed += _check(uow, snapshot, link, item, source, now_us, actor)
    return changed


def links_written(uow: Repositories, connection_id: str, xero_ids: Sequence[str]) -> list[int]:
    """The links whose drifts the check may write: the observed objects', and those of the
    payments and allocations their snapshots expect (settled from the document's view). They are
    taken first, in one statement in id order, as a resolution and an unlink take theirs, and held
    until the transaction ends; the snapshots and drifts are then read as they are once those have
    committed. Read before them, a drift open then resolved would be written over, and a snapshot
    replaced by an accepted version would have its drift opened again."""
    documents = uow.drift.snapshot_documents(connection_id, xero_ids)
    entries = sorted({e for _, object_type, doc in documents for e in rules.own_entries(object_type, json.loads(doc))})
    held = uow.drift.snapshot_documents(connection_id, entries) if entries else []
    return [link_id for link_id, _, _ in documents + held]


# The status of a document xerolink posted and Xero still counts: what an adopted baseline holds
# when Xero's copy is voided or deleted (xerolink never posts either). Xero's OpenAPI status enums:
# ManualJournal DRAFT|POSTED|DELETED|VOIDED|ARCHIVED; the others AUTHORISED (and PAID) |DELETED|VOIDED.
_LIVE_STATUS: dict[int, str] = {ObjectType.MANUAL_JOURNAL: "POSTED"}


def _adopt(uow: Repositories, connection_id: str, item: Observed, now_us: int, actor: str) -> XeroSnapshotRow | None:
    """The baseline of an object linked before snapshots were kept, built from what is known
    (docs/drift.md, "Drift records"): Xero's state as read, except what xerolink cannot have
    posted, which then shows as drift when compared with that state: a VOIDED or DELETED status
    (xerolink posts live documents; the baseline holds the live status), money on it that no link
    of the connection made (the baseline leaves it out), and an object Xero no longer has (the
    baseline holds only its id and a live status). None when no link holds the object."""
    xero_id = item.xero_id.lower()
    link = uow.links.link_holding(connection_id, xero_id)
    if link is None or link.id is None or link.state == LinkState.UNLINKED or item.object_type not in rules.ID_FIELDS:
        return None
    id_field, label = rules.ID_FIELDS[item.object_type]
    live = _LIVE_STATUS.get(item.object_type, "AUTHORISED")
    notes: list[str] = []
    if item.document is None:
        document: dict[str, Any] = {id_field: xero_id, "Status": live}
        notes.append("Xero no longer has it")
    else:
        document = rules.trim(item.object_type, item.document)
        document[id_field] = xero_id
        status = str(document.get("Status") or "").upper()
        if status in ("VOIDED", "DELETED") or document.pop("IsDeleted", False):
            document["Status"] = live
            notes.append(f"Xero holds it {status or 'DELETED'}, which xerolink never posts")
        foreign = _foreign_entries(uow, connection_id, item.object_type, document)
        if foreign:
            document = rules.without_entries(item.object_type, document, foreign)
            if str(document.get("Status") or "").upper() == "PAID":
                document["Status"] = "AUTHORISED"
            notes.append(f"money on it no link made: {', '.join(sorted(foreign))}")
    row = new_snapshot(connection_id, link, item.object_type, document, now_us, "")
    uow.drift.add_snapshots([row])
    detail = f"{label} {xero_id} linked before snapshots were kept: adopted as Xero holds it"
    if notes:
        detail += "; compared as posted live and without what xerolink did not make (" + "; ".join(notes) + ")"
    uow.links.insert_audit(
        [
            {
                "link_id": link.id,
                "time_us": now_us,
                "actor": actor,
                "event": ADOPTED,
                "from_state": link.state,
                "to_state": link.state,
                "detail": detail[:2000],
            }
        ]
    )
    return row


def _foreign_entries(uow: Repositories, connection_id: str, object_type: int, document: Mapping[str, Any]) -> set[str]:
    """The payments, allocations and crediting documents on the document that no link of the
    connection holds."""
    referenced = rules.referenced_ids(document)
    if not referenced:
        return set()
    snapped = uow.drift.snapshots_by_xero_ids(connection_id, sorted(referenced))
    return {
        xero_id
        for xero_id in referenced
        if xero_id not in snapped and uow.links.link_holding(connection_id, xero_id) is None
    }


def new_snapshot(
    connection_id: str, link: LinkRow, object_type: int, document: Mapping[str, Any], now_us: int, updated: str = ""
) -> XeroSnapshotRow:
    return XeroSnapshotRow(**snapshot_values(connection_id, link, object_type, document, now_us, updated))


def snapshot_values(
    connection_id: str,
    link: LinkRow | StoredLink,
    object_type: int,
    document: Mapping[str, Any],
    now_us: int,
    updated: str = "",
) -> dict[str, Any]:
    """A snapshot's columns (a new snapshot's row, without the cost of an ORM object)."""
    id_field, _ = rules.ID_FIELDS[object_type]
    return {
        "connection_id": connection_id,
        "xero_id": str(document.get(id_field, "")).lower(),
        "link_id": link.id or 0,
        "generation": link.generation,
        "object_type": object_type,
        "document": json.dumps(document, sort_keys=True),
        "doc_date": str(document.get("Date", ""))[:10],
        "xero_updated": updated,
        "active": True,
        "create_us": now_us,
        "update_us": now_us,
    }


def _check(
    uow: Repositories,
    snapshot: XeroSnapshotRow,
    link: LinkRow,
    item: Observed,
    source: str,
    now_us: int,
    actor: str,
) -> list[DriftRow]:
    connection_id = snapshot.connection_id
    object_type = snapshot.object_type
    posted = json.loads(snapshot.document)
    current = rules.trim(object_type, item.document) if item.document is not None else None
    made = _made_by_xerolink(uow, connection_id, posted, current)
    findings = rules.compare(object_type, posted, current, made)
    updated = item.updated or (str(current.get("UpdatedDateUTC", "")) if current else "")
    changed: list[DriftRow] = []
    # The object's own findings: each opens or updates its drift; the others of its open drifts
    # are no longer true.
    own = [f for f in findings if not f.xero_id]
    changed += _settle(uow, snapshot, link, own, set(rules.DriftKind), source, updated, now_us, actor)
    # Payments and allocations xerolink made, as the document holds them (or no longer does).
    if current is not None:
        entries = rules.own_entries(object_type, posted)
        others = uow.drift.snapshots_by_xero_ids(connection_id, sorted(entries))
        for entry_id in sorted(entries):
            entry = others.get(entry_id)
            if entry is None or not entry.active:
                continue
            entry_link = uow.links.get_link_by_id(entry.link_id)
            if entry_link is None or entry_link.state == LinkState.UNLINKED:
                continue
            theirs = [f for f in findings if f.xero_id == entry_id]
            # Only the document's view of them: gone from it, or there again.
            kinds = {rules.DriftKind.PAYMENT_DELETED_IN_XERO, rules.DriftKind.DELETED_IN_XERO}
            changed += _settle(uow, entry, entry_link, theirs, kinds, source, "", now_us, actor)
    if updated and updated != snapshot.xero_updated:
        snapshot.xero_updated = updated
        snapshot.update_us = now_us
        uow.drift.put_snapshot(snapshot)
    return changed


def _made_by_xerolink(
    uow: Repositories, connection_id: str, posted: Mapping[str, Any], current: Mapping[str, Any] | None
) -> set[str]:
    """The payments, allocations and crediting documents on the document that a link of the
    connection holds (a PAID status they explain is as xerolink meant)."""
    referenced = rules.referenced_ids(posted) | (rules.referenced_ids(current) if current else set())
    if not referenced:
        return set()
    held = uow.drift.snapshots_by_xero_ids(connection_id, sorted(referenced))
    return {xero_id for xero_id, row in held.items() if row.active}


def _settle(
    uow: Repositories,
    snapshot: XeroSnapshotRow,
    link: LinkRow,
    findings: Sequence[rules.Finding],
    watched: set[rules.DriftKind],
    source: str,
    updated: str,
    now_us: int,
    actor: str,
) -> list[DriftRow]:
    """Opens or updates a drift per finding and resolves the open drifts of `watched` kinds that
    no finding confirms."""
    changed: list[DriftRow] = []
    open_rows = {row.kind: row for row in uow.drift.open_drifts_of_object(snapshot.connection_id, snapshot.xero_id)}
    found = {f.kind.value for f in findings}
    for finding in findings:
        differences = json.dumps([d.to_json() for d in finding.differences])
        row = open_rows.get(finding.kind.value)
        if row is not None and row.differences == differences and row.description == finding.description:
            continue
        if row is None:
            row = DriftRow(
                connection_id=snapshot.connection_id,
                link_id=snapshot.link_id,
                xero_id=snapshot.xero_id,
                object_type=snapshot.object_type,
                kind=finding.kind.value,
                state=OPEN,
                source=source,
                detected_us=now_us,
            )
        row.differences = differences
        row.description = finding.description
        row.source = source
        row.xero_updated = updated or row.xero_updated
        changed.append(uow.drift.save_drift(row))
        _tell(uow, link, row, DETECTED, actor, now_us, source)
    for kind, row in open_rows.items():
        if kind in found or kind not in {k.value for k in watched}:
            continue
        row.state = RESOLVED
        row.resolution = RESTORED
        row.resolved_us = now_us
        row.resolved_by = actor
        row.xero_updated = updated or row.xero_updated
        changed.append(uow.drift.save_drift(row))
        _tell(uow, link, row, CLEARED, actor, now_us, source)
    return changed


def _tell(uow: Repositories, link: LinkRow, row: DriftRow, event: str, actor: str, now_us: int, source: str) -> None:
    """The audit entry on the link, the log line and the metric of one drift change."""
    name = link_name(link.connection_id, RecordRef(link.kind, link.record_id))
    if event == DETECTED:
        fields = "; ".join(
            f"{d['field']}: {d['posted'] or '-'} -> {d['xero'] or '-'}" for d in json.loads(row.differences)
        )
        detail = f"{row.kind} on {row.xero_id}: {fields}"
    else:
        detail = f"{row.kind} on {row.xero_id}: Xero holds it as posted again"
    uow.links.insert_audit(
        [
            {
                "link_id": link.id,
                "time_us": now_us,
                "actor": actor,
                "event": event,
                "from_state": link.state,
                "to_state": link.state,
                "detail": detail[:2000],
            }
        ]
    )
    log.info(
        "%s connection=%s link=%s kind=%s xero_id=%s source=%s",
        event,
        link.connection_id,
        name,
        row.kind,
        row.xero_id,
        source,
    )
    metrics.count_drift(link.connection_id, row.kind, source, "detected" if event == DETECTED else "cleared")
