"""What xerolink posted to each Xero object it links, kept when the dispatcher links the object
(from Xero's answer element, in the transaction that links it): the snapshot drift detection
compares Xero's later state with (docs/drift.md, "Drift records")."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from xerolink_poster.adapters.drift_tables import XeroSnapshotRow
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain import drift as rules
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.service_layer.drift_checks import new_snapshot
from xerolink_poster.service_layer.ports import Repositories

# One created element: the link that holds it, the objects it stands for (the first is the one
# the element is), and Xero's element.
Posted = tuple[LinkRow, Sequence[XeroObjectRef], Mapping[str, Any]]


def overpayment_element(transaction: Mapping[str, Any], overpayment_id: str) -> dict[str, Any]:
    """The Overpayment an overpayment bank transaction made, from the transaction's answer: Xero
    answers with the transaction only, naming the Overpayment by BankTransaction.OverpaymentID
    (Xero's OpenAPI); the overpayment carries the transaction's type, contact, date, lines and
    totals, and starts AUTHORISED with nothing allocated (Overpayment.Status)."""
    element = {k: v for k, v in transaction.items() if k != "BankTransactionID"}
    element.update({"OverpaymentID": overpayment_id, "Status": "AUTHORISED", "Allocations": [], "Payments": []})
    return element


def record_posted(repos: Repositories, posted: Sequence[Posted], now_us: int) -> None:
    """Snapshots of the objects just created (or found by a look-up after an uncertain call);
    the document a payment or allocation applies to expects it from now on."""
    by_connection: dict[str, list[tuple[LinkRow, int, dict[str, Any]]]] = {}
    for link, objects, element in posted:
        if not objects or objects[0].type not in rules.ID_FIELDS:
            continue
        docs = by_connection.setdefault(link.connection_id, [])
        docs.append((link, objects[0].type, rules.trim(objects[0].type, element)))
        for extra in objects[1:]:
            if extra.type == ObjectType.OVERPAYMENT:
                made = overpayment_element(element, extra.xero_id)
                docs.append((link, ObjectType.OVERPAYMENT, rules.trim(ObjectType.OVERPAYMENT, made)))
    for connection_id, docs in by_connection.items():
        _record(repos, connection_id, docs, now_us)


def _record(
    repos: Repositories, connection_id: str, docs: list[tuple[LinkRow, int, dict[str, Any]]], now_us: int
) -> None:
    rows = [new_snapshot(connection_id, link, object_type, doc, now_us) for link, object_type, doc in docs]
    rows = [row for row in rows if row.xero_id]
    applied = [(row, rules.applied_entry(row.object_type, json.loads(row.document))) for row in rows]
    targets = [entry[1].lower() for _, entry in applied if entry is not None]
    existing = repos.drift.snapshots_by_xero_ids(connection_id, [r.xero_id for r in rows] + targets)
    new: dict[str, XeroSnapshotRow] = {}
    for row in rows:
        if row.xero_id in existing:
            repos.drift.put_snapshot(row)  # adopted again (a look-up found it): what Xero holds now
        else:
            new[row.xero_id] = row
        existing[row.xero_id] = row
    for _, entry in applied:
        if entry is None:
            continue
        _, target_id, key, item = entry
        target = existing.get(target_id.lower())
        if target is None or not target.active:
            continue  # a document xerolink did not post (or no longer links): nothing expects it
        target.document = json.dumps(rules.with_applied(json.loads(target.document), key, item), sort_keys=True)
        target.update_us = now_us
        if new.get(target.xero_id) is not target:
            repos.drift.put_snapshot(target)
    # Last: the new rows are inserted as they are now, and are not kept to be written again.
    repos.drift.insert_snapshots(list(new.values()))
