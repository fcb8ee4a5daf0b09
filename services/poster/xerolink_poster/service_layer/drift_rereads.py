"""Reading one linked object again when its drift matters now: after Xero refused a payment or
allocation on its document (the dispatcher's gate), and when a drift is resolved (a tenant
worker lent by the dispatcher). Either way the read shares the tenant's budget and lease with
posting. Xero's element comes back untrimmed, as record_observations and domain/drift.trim take it.

An allocation has no endpoint of its own: it is read from its credit note's Allocations (Xero's
OpenAPI: CreditNote.Allocations; GET /CreditNotes/{CreditNoteID})."""

from __future__ import annotations

from typing import Any

from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.xero_client import Credentials, Uncertain, XeroAnswer
from xerolink_poster.service_layer.dispatch import answers
from xerolink_poster.service_layer.ports import XeroCaller

RATE_LIMIT_RETRIES = 5

# Object type -> the collection Xero serves it from (GET /{collection}/{id}, Xero's OpenAPI).
COLLECTIONS: dict[int, str] = {
    xero_pb2.OBJECT_TYPE_INVOICE: "Invoices",
    xero_pb2.OBJECT_TYPE_CREDIT_NOTE: "CreditNotes",
    xero_pb2.OBJECT_TYPE_PAYMENT: "Payments",
    xero_pb2.OBJECT_TYPE_BANK_TRANSACTION: "BankTransactions",
    xero_pb2.OBJECT_TYPE_BANK_TRANSFER: "BankTransfers",
    xero_pb2.OBJECT_TYPE_MANUAL_JOURNAL: "ManualJournals",
    xero_pb2.OBJECT_TYPE_OVERPAYMENT: "Overpayments",
}


class RereadFailed(Exception):
    """No usable answer from Xero: whether the object changed is unknown; ask again later."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def rate_limited(self) -> bool:
        """Xero kept answering 429: a wait for the tenant's block, not a failed attempt."""
        return self.reason == Reason.XERO_RATE_LIMITED


# Invoices read in one GET by IDs: 50 ids of 36 characters keep the URL under the 2,091
# characters past which Xero answers with an error (xero_client.py).
INVOICE_BATCH = 50


def read_invoices(caller: XeroCaller, creds: Credentials, xero_ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """Xero's current element of each invoice, by lower-case id (None: Xero no longer has it), a
    GET of up to INVOICE_BATCH by IDs (Xero's OpenAPI: getInvoices, `IDs`), with `page` so that
    Xero answers whole invoices, lines included, as a read by id does. An invoice the list leaves
    out is read alone, so only Xero's 404 says it is gone."""
    wanted = sorted({x.lower() for x in xero_ids})
    found: dict[str, dict[str, Any] | None] = {}
    for start in range(0, len(wanted), INVOICE_BATCH):
        chunk = wanted[start : start + INVOICE_BATCH]
        listed = _list(caller, creds, "Invoices", {"IDs": ",".join(chunk), "page": "1"})
        found |= {
            str(i.get("InvoiceID", "")).lower(): i for i in listed if str(i.get("InvoiceID", "")).lower() in chunk
        }
    for xero_id in wanted:
        if xero_id not in found:
            found[xero_id] = _get(caller, creds, f"Invoices/{xero_id}", "Invoices")
    return found


def _list(caller: XeroCaller, creds: Credentials, collection: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """The elements a GET of `collection` with `params` lists (none: an empty list)."""
    answer = _answer(caller, creds, collection, params)
    items = answer.body.get(collection) if answers.readable_lookup(answer) else None
    if answers.call_verdict(answer) or not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RereadFailed(Reason.XERO_LOOKUP_FAILED, f"Xero answered {answer.status} to GET {collection}")
    return items


def _answer(caller: XeroCaller, creds: Credentials, path: str, params: dict[str, str] | None = None) -> XeroAnswer:
    """Xero's answer to a GET, asked again while Xero answers 429 (the tenant's budget waits out
    Retry-After); RereadFailed when no answer came or Xero refused the credentials."""
    for _ in range(RATE_LIMIT_RETRIES):
        try:
            answer = caller.call(creds, "GET", path, params=params)
        except Uncertain as exc:
            raise RereadFailed(Reason.XERO_NO_ANSWER, f"no answer from Xero to GET {path} ({exc})") from exc
        verdict = answers.call_verdict(answer)
        if verdict != answers.RATE_LIMITED:
            break
    else:
        raise RereadFailed(Reason.XERO_RATE_LIMITED, f"Xero kept asking to slow down (GET {path})")
    if verdict == answers.UNAVAILABLE:
        raise RereadFailed(Reason.XERO_UNAVAILABLE, f"Xero answered {answer.status} to GET {path}")
    if verdict == answers.UNAUTHORISED:
        raise RereadFailed(
            Reason.XERO_UNAUTHORISED, f"Xero refused the connection's credentials ({answer.status}); reconnect it"
        )
    return answer


def _get(caller: XeroCaller, creds: Credentials, path: str, collection: str) -> dict[str, Any] | None:
    """Xero's element at `path`; None on a 404 (Xero no longer has it)."""
    answer = _answer(caller, creds, path)
    verdict = answers.call_verdict(answer, one_object=True)
    if verdict == answers.MISSING:
        return None
    items = answer.body.get(collection) if answers.readable_lookup(answer) else None
    first = items[0] if isinstance(items, list) and items else None
    if verdict or not isinstance(first, dict):
        raise RereadFailed(Reason.XERO_LOOKUP_FAILED, f"Xero answered {answer.status} to GET {path}")
    return first


def read_object(
    caller: XeroCaller, creds: Credentials, object_type: int, xero_id: str, credit_note_id: str = ""
) -> dict[str, Any] | None:
    """Xero's current element of the object; None when Xero no longer has it. An allocation needs
    its credit note's id; one the credit note no longer lists is gone."""
    if object_type == xero_pb2.OBJECT_TYPE_ALLOCATION:
        note = _get(caller, creds, f"CreditNotes/{credit_note_id}", "CreditNotes") if credit_note_id else None
        for allocation in (note or {}).get("Allocations") or []:
            if isinstance(allocation, dict) and str(allocation.get("AllocationID", "")).lower() == xero_id.lower():
                return {**allocation, "CreditNote": {"CreditNoteID": credit_note_id}}
        return None
    collection = COLLECTIONS.get(object_type)
    if collection is None:
        raise RereadFailed(Reason.XERO_LOOKUP_FAILED, f"xerolink does not read objects of type {object_type}")
    return _get(caller, creds, f"{collection}/{xero_id}", collection)
