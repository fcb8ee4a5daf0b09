"""Reconcile's first step (docs/drift.md, "Links made before snapshots were kept"): the objects
links hold that have no snapshot (linked before registry revision 0005 kept them) are read from
Xero and handed to drift_checks.record_observations, which adopts a baseline for each (an audit
entry on its link) and records what it cannot have posted (voided, deleted, gone, money no link
made) as drift with source "reconcile". Without this, what xerolink posted before the upgrade
would count as nothing posted and reconciliation would report Xero's side alone.

Reads go through the caller's `get` (the tenant's worker, so the rate budget and lease posting
shares), at most ADOPT_READS per call: invoices in batches by Xero's `IDs` filter (the only list
whose OpenAPI description has one: GET /Invoices "IDs: Filter by a comma-separated list of
InvoicesIDs", with `page` so lines come with them: "Up to 100 invoices will be returned in a single
API call with line items"), the others by id (GET /{Collection}/{id})."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.link_filter import LinkFilter
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer.drift_checks import Observed, record_observations
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

SOURCE = "reconcile"
ACTOR = "reconcile"
# Xero reads one Reconcile spends adopting at most; the rest wait for the next call.
ADOPT_READS = 200
INVOICE_BATCH = 50
_PAGE = 500
# Object type -> (collection, id field); allocations have no GET of their own and move no money.
_READABLE: dict[int, tuple[str, str]] = {
    ObjectType.INVOICE: ("Invoices", "InvoiceID"),
    ObjectType.CREDIT_NOTE: ("CreditNotes", "CreditNoteID"),
    ObjectType.PAYMENT: ("Payments", "PaymentID"),
    ObjectType.BANK_TRANSACTION: ("BankTransactions", "BankTransactionID"),
    ObjectType.BANK_TRANSFER: ("BankTransfers", "BankTransferID"),
    ObjectType.MANUAL_JOURNAL: ("ManualJournals", "ManualJournalID"),
    ObjectType.OVERPAYMENT: ("Overpayments", "OverpaymentID"),
}
# GET path, collection, query -> the collection's elements ([] for a 404).
Get = Callable[[str, str, "dict[str, str] | None"], list[dict[str, Any]]]


def missing_snapshots(db: Database, connection_id: str) -> list[tuple[int, str]]:
    """(object type, Xero id) of every object a live link of the connection holds that has no
    snapshot and can be read from Xero, in link order."""
    out: list[tuple[int, str]] = []
    after = 0
    with UnitOfWork(db, write=False) as uow:
        while True:
            page = uow.links.list_links(connection_id, LinkFilter(), after, _PAGE)
            refs = [
                (o.type, o.xero_id.lower())
                for link in page
                if link.state != LinkState.UNLINKED
                for o in uow.links.xero_objects(link)
                if o.type in _READABLE and o.xero_id
            ]
            if refs:
                have = uow.drift.snapshots_by_xero_ids(connection_id, [x for _, x in refs])
                out += [(t, x) for t, x in refs if x not in have]
            if len(page) < _PAGE:
                return out
            after = page[-1].id or 0


def adopt_missing(db: Database, connection_id: str, get: Get) -> int:
    """Reads and adopts the objects without a snapshot, up to ADOPT_READS reads; returns how many
    are left for a later call. Each batch is committed as it is read, so every call progresses."""
    missing = missing_snapshots(db, connection_id)
    reads = 0
    done = 0
    invoices = [x for t, x in missing if t == ObjectType.INVOICE]
    for start in range(0, len(invoices), INVOICE_BATCH):
        if reads >= ADOPT_READS:
            return len(missing) - done
        chunk = invoices[start : start + INVOICE_BATCH]
        found = {
            str(item.get("InvoiceID", "")).lower(): item
            for item in get("Invoices", "Invoices", {"IDs": ",".join(chunk), "page": "1"})
        }
        reads += 1
        observed = []
        for xero_id in chunk:
            document = found.get(xero_id)
            if document is None:
                # Not listed: read it alone, so only Xero's 404 says it is gone.
                document = _first(get(f"Invoices/{xero_id}", "Invoices", None))
                reads += 1
            observed.append(Observed(ObjectType.INVOICE, xero_id, document, _updated(document)))
        _record(db, connection_id, observed)
        done += len(chunk)
    for object_type, xero_id in missing:
        if object_type == ObjectType.INVOICE:
            continue
        if reads >= ADOPT_READS:
            return len(missing) - done
        collection, _ = _READABLE[object_type]
        document = _first(get(f"{collection}/{xero_id}", collection, None))
        reads += 1
        _record(db, connection_id, [Observed(object_type, xero_id, document, _updated(document))])
        done += 1
    return 0


def _record(db: Database, connection_id: str, observed: Sequence[Observed]) -> None:
    run_in_transaction(db, lambda uow: record_observations(uow, connection_id, observed, SOURCE, now_us(), ACTOR))


def _first(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return items[0] if items else None


def _updated(document: dict[str, Any] | None) -> str:
    return str(document.get("UpdatedDateUTC", "")) if document else ""
