"""What xerolink posted to each Xero object it links, kept when the dispatcher links the object
(from Xero's answer element, trimmed before and stored in the transaction that links it): the
snapshot drift detection compares Xero's later state with (docs/drift.md, "Drift records")."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from xerolink_poster.adapters.drift_tables import XeroSnapshotRow
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain import drift as rules
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.domain.stored_rows import StoredLink
from xerolink_poster.service_layer.drift_checks import snapshot_values
from xerolink_poster.service_layer.ports import Repositories

# An object's type and what drift keeps of Xero's element for it (rules.trim).
Document = tuple[int, dict[str, Any]]
# One created element: the link that holds it and the documents of the objects it stands for.
Posted = tuple[LinkRow | StoredLink, Sequence[Document]]


def overpayment_element(transaction: Mapping[str, Any], overpayment_id: str) -> dict[str, Any]:
    """The Overpayment an overpayment bank transaction made, from the transaction's answer: Xero
    answers with the transaction only, naming the Overpayment by BankTransaction.OverpaymentID
    (Xero's OpenAPI); the overpayment carries the transaction's type, contact, date, lines and
    totals, and starts AUTHORISED with nothing allocated (Overpayment.Status)."""
    element = {k: v for k, v in transaction.items() if k != "BankTransactionID"}
    element.update({"OverpaymentID": overpayment_id, "Status": "AUTHORISED", "Allocations": [], "Payments": []})
    return element


def documents_of(objects: Sequence[XeroObjectRef], element: Mapping[str, Any]) -> tuple[Document, ...]:
    """What drift keeps of the objects Xero's element stands for (the first is the one the
    element is; an overpayment transaction's Overpayment is made from it); none for an object
    drift does not watch. Needs nothing stored, so it is made before the transaction."""
    if not objects or objects[0].type not in rules.ID_FIELDS:
        return ()
    documents: list[Document] = [(objects[0].type, rules.trim(objects[0].type, element))]
    for extra in objects[1:]:
        if extra.type == ObjectType.OVERPAYMENT:
            made = overpayment_element(element, extra.xero_id)
            documents.append((ObjectType.OVERPAYMENT, rules.trim(ObjectType.OVERPAYMENT, made)))
    return tuple(documents)


def record_posted(repos: Repositories, posted: Sequence[Posted], now_us: int) -> None:
    """Snapshots of the objects just created (or found by a look-up after an uncertain call);
    the document a payment or allocation applies to expects it from now on. One read of the
    snapshots that exist and one INSERT of the new ones, whatever the connections (a
    transaction applies the answers of several organisations' calls)."""
    by_connection: dict[str, list[tuple[LinkRow | StoredLink, int, dict[str, Any]]]] = {}
    for link, documents in posted:
        if documents:
            docs = by_connection.setdefault(link.connection_id, [])
            docs.extend((link, object_type, document) for object_type, document in documents)
    made = {connection_id: _made(connection_id, docs, now_us) for connection_id, docs in by_connection.items()}
    wanted = [
        (connection_id, xero_id)
        for connection_id, snapshots in made.items()
        for values, entry in snapshots
        for xero_id in (values["xero_id"], *([entry[1].lower()] if entry is not None else []))
    ]
    # Held, read again: a document's snapshot is rewritten to expect the payment, and a change
    # of it a resolution accepted meanwhile (its date) must not be written back over.
    existing = repos.drift.snapshots_of_objects(wanted, lock=True)
    new: list[dict[str, Any]] = []
    for connection_id, snapshots in made.items():
        held = {x: row for (c, x), row in existing.items() if c == connection_id}
        new += _record(repos, snapshots, held, now_us)
    repos.drift.insert_snapshots(new)


# A snapshot's columns, and what the object applies to another document (rules.applied_entry).
_Made = list[tuple[dict[str, Any], tuple[str, str, str, dict[str, Any]] | None]]


def _made(connection_id: str, docs: list[tuple[LinkRow | StoredLink, int, dict[str, Any]]], now_us: int) -> _Made:
    made: _Made = []
    for link, object_type, doc in docs:
        values = snapshot_values(connection_id, link, object_type, doc, now_us)
        if values["xero_id"]:
            made.append((values, rules.applied_entry(object_type, doc)))
    return made


def _record(
    repos: Repositories, made: _Made, existing: dict[str, XeroSnapshotRow], now_us: int
) -> list[dict[str, Any]]:
    """One connection's snapshots: those that exist (`existing`, by Xero id) replaced, the
    documents they apply to updated; returns the columns of the new ones, to be inserted."""
    # Columns, not ORM objects: the new snapshots go in as one INSERT (insert_snapshots).
    new: dict[str, dict[str, Any]] = {}
    for values, _ in made:
        if values["xero_id"] in existing:
            row = XeroSnapshotRow(**values)
            repos.drift.put_snapshot(row)  # adopted again (a look-up found it): what Xero holds now
            existing[row.xero_id] = row
        else:
            new[values["xero_id"]] = values
    for _, entry in made:
        if entry is None:
            continue
        _, target_id, key, item = entry
        fresh = new.get(target_id.lower())
        if fresh is not None:
            fresh["document"] = json.dumps(rules.with_applied(json.loads(fresh["document"]), key, item), sort_keys=True)
            continue
        target = existing.get(target_id.lower())
        if target is None or not target.active:
            continue  # a document xerolink did not post (or no longer links): nothing expects it
        target.document = json.dumps(rules.with_applied(json.loads(target.document), key, item), sort_keys=True)
        target.update_us = now_us
        repos.drift.put_snapshot(target)
    return list(new.values())
