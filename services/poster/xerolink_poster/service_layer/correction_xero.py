"""The Xero side of a correction: read a document and the status of the objects to undo, and
undo one object. Every call goes through a tenant worker lent by the dispatcher, so the
correction shares the tenant's rate budget and lease with posting.

Writes are single-element POSTs whose body depends only on the object and the new status, so a
quick retry carries the same Idempotency-Key; every write is preceded by a look-up, so an object
already deleted or voided (by an earlier attempt whose answer was lost, or by hand) is never
acted on twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.xero_client import Credentials, Uncertain, XeroAnswer
from xerolink_poster.domain.corrections import GONE, XeroDocument, document_change, object_label
from xerolink_poster.service_layer.dispatch import answers
from xerolink_poster.service_layer.ports import XeroCaller

RATE_LIMIT_RETRIES = 5

# Object type -> (resource, id field).
_RESOURCES: dict[int, tuple[str, str]] = {
    xero_pb2.OBJECT_TYPE_PAYMENT: ("Payments", "PaymentID"),
    xero_pb2.OBJECT_TYPE_BANK_TRANSACTION: ("BankTransactions", "BankTransactionID"),
    xero_pb2.OBJECT_TYPE_INVOICE: ("Invoices", "InvoiceID"),
    xero_pb2.OBJECT_TYPE_CREDIT_NOTE: ("CreditNotes", "CreditNoteID"),
}
_NUMBER_FIELD: dict[int, str] = {
    xero_pb2.OBJECT_TYPE_INVOICE: "InvoiceNumber",
    xero_pb2.OBJECT_TYPE_CREDIT_NOTE: "CreditNoteNumber",
}

# The money applied to an invoice besides its payments and credit notes (Invoice.Overpayments,
# Invoice.Prepayments in Xero's OpenAPI description): (field, id field, what it is).
_APPLIED = (("Overpayments", "OverpaymentID", "overpayment"), ("Prepayments", "PrepaymentID", "prepayment"))


class XeroTrouble(Exception):
    """No usable answer: Xero unreachable, failing, refusing credentials, or the answer lost.
    Whether a write happened is unknown: the next attempt looks the object up first."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class XeroRefused(Exception):
    """Xero answered and refused the change (validation errors), saying why."""


@dataclass(frozen=True)
class Undone:
    """What an undo did: a sentence for the step's detail, and a reason when it did not do what
    the step is for but nothing is left for it to do."""

    detail: str
    reason: str = ""


class CorrectionXero:
    def __init__(self, caller: XeroCaller, creds: Credentials) -> None:
        self.caller = caller
        self.creds = creds
        # Names this application's writes for their Idempotency-Keys: a retry within it is
        # replayed by Xero, while applying again later (after fixing what Xero refused) is a new
        # request, not Xero's replay of its refusal. Every step reads Xero before it writes, so a
        # write that did land is never sent again.
        self.application = uuid.uuid4().hex

    # -- calls -------------------------------------------------------------------------------
    def _send(self, method: str, path: str, body: Any = None) -> XeroAnswer:
        """One call on one object; a 429 waits (the tenant budget holds the next call until
        Retry-After) and is sent again. An answer that speaks for the whole call is raised as
        XeroTrouble; any other answer is returned."""
        for _ in range(RATE_LIMIT_RETRIES):
            try:
                # No summarizeErrors: Xero declares it on the collection endpoints only, not on the
                # single-object POSTs and DELETEs a correction makes (its OpenAPI description).
                names = [f"correction-application/{self.application}"]
                answer = self.caller.call(self.creds, method, path, body=body, names=names)
            except Uncertain as exc:
                raise XeroTrouble(Reason.XERO_NO_ANSWER, f"no answer from Xero ({exc})") from exc
            verdict = answers.call_verdict(answer, one_object=True)
            if verdict != answers.RATE_LIMITED:
                break
        else:
            raise XeroTrouble(Reason.XERO_RATE_LIMITED, "Xero kept asking to slow down")
        if verdict == answers.UNAVAILABLE:
            raise XeroTrouble(Reason.XERO_UNAVAILABLE, f"Xero answered {answer.status}")
        if verdict == answers.UNAUTHORISED:
            raise XeroTrouble(
                Reason.XERO_UNAUTHORISED, f"Xero refused the connection's credentials ({answer.status}); reconnect it"
            )
        if verdict == answers.MISSING:
            raise XeroTrouble(Reason.XERO_OBJECT_MISSING, f"Xero has no {path}; check the connection's organisation")
        if verdict == answers.UNREADABLE:
            raise XeroTrouble(Reason.XERO_NO_ANSWER, f"Xero's answer to {method} {path} could not be read")
        return answer

    def _read(self, path: str, collection: str) -> dict[str, Any]:
        answer = self._send("GET", path)
        items = answer.body.get(collection)
        first = items[0] if isinstance(items, list) and items else None
        if not answers.readable_lookup(answer) or not isinstance(first, dict):
            raise XeroTrouble(Reason.XERO_LOOKUP_FAILED, f"Xero answered {answer.status} to GET {path}")
        return first

    def _write(self, path: str, collection: str, body: dict[str, Any]) -> None:
        answer = self._send("POST", path, body)
        element = answers.read_elements(answer, collection, 1, one_object=True).elements[0]
        if element.refused is not None:
            raise XeroRefused("; ".join(element.refused))
        if element.answered is None:
            raise XeroTrouble(Reason.XERO_NO_ANSWER, f"Xero's answer to POST {path} held no {collection}")

    # -- reads -------------------------------------------------------------------------------
    def document(self, xero_type: int, xero_id: str) -> XeroDocument:
        resource, _ = _RESOURCES[xero_type]
        doc = self._read(f"{resource}/{xero_id}", resource)
        payments = tuple(
            str(p.get("PaymentID", ""))
            for p in doc.get("Payments") or []
            if str(p.get("Status", "")).upper() != "DELETED"
        )
        if xero_type == xero_pb2.OBJECT_TYPE_CREDIT_NOTE:
            live = [a for a in doc.get("Allocations") or [] if not a.get("IsDeleted")]
            credits = tuple(str(a.get("AllocationID", "")) for a in live)
        else:
            credits = tuple(str(c.get("CreditNoteID", "")) for c in doc.get("CreditNotes") or [])
        applied = tuple(
            (what, str(item.get(id_field, "")))
            for field, id_field, what in _APPLIED
            for item in doc.get(field) or []
            if item.get(id_field)
        )
        return XeroDocument(
            str(doc.get("Status", "")).upper(),
            payments,
            credits,
            str(doc.get("Type", "")).upper(),
            str(doc.get(_NUMBER_FIELD[xero_type]) or ""),
            applied,
        )

    def status(self, xero_type: int, xero_id: str, parent_id: str = "") -> str:
        """The object's Xero status now; an allocation is DELETED once Xero marks or drops it."""
        if xero_type == xero_pb2.OBJECT_TYPE_ALLOCATION:
            note = self._read(f"CreditNotes/{parent_id}", "CreditNotes")
            for allocation in note.get("Allocations") or []:
                if str(allocation.get("AllocationID", "")).lower() == xero_id.lower():
                    return "DELETED" if allocation.get("IsDeleted") else "AUTHORISED"
            return "DELETED"
        resource, _ = _RESOURCES[xero_type]
        return str(self._read(f"{resource}/{xero_id}", resource).get("Status", "")).upper()

    # -- undo --------------------------------------------------------------------------------
    def undo(self, xero_type: int, xero_id: str, parent_id: str = "") -> Undone:
        """Deletes a payment, bank transaction or allocation, or voids or deletes a document, as
        its status allows; an object already gone counts as done."""
        status = self.status(xero_type, xero_id, parent_id)
        if status in GONE:
            return Undone(f"already {status.lower()} in Xero")
        if xero_type == xero_pb2.OBJECT_TYPE_ALLOCATION:
            answer = self._send("DELETE", f"CreditNotes/{parent_id}/Allocations/{xero_id}")
            if not answer.ok:
                raise XeroRefused(answers.refusal_message(answer))
            return Undone("deleted in Xero")
        resource, id_field = _RESOURCES[xero_type]
        if xero_type in (xero_pb2.OBJECT_TYPE_INVOICE, xero_pb2.OBJECT_TYPE_CREDIT_NOTE):
            change = document_change(status)
            assert change is not None
        else:
            change = "DELETED"
        # Xero's description: a payment takes a bare PaymentDelete {"Status": "DELETED"}; documents
        # and bank transactions take their collection with one element.
        if xero_type == xero_pb2.OBJECT_TYPE_PAYMENT:
            body: dict[str, Any] = {"Status": change}
        else:
            body = {resource: [{id_field: xero_id, "Status": change}]}
        try:
            self._write(f"{resource}/{xero_id}", resource, body)
        except XeroRefused:
            # Someone (or a lost earlier answer) may have got there first.
            now = self.status(xero_type, xero_id, parent_id)
            if now in GONE:
                return Undone(f"already {now.lower()} in Xero")
            raise
        return Undone(f"{change.lower()} in Xero (it was {status})")

    # -- rename ------------------------------------------------------------------------------
    def rename(self, xero_type: int, xero_id: str, number: str, new_number: str) -> Undone:
        """Gives an ACCREC invoice or ACCRECCREDIT credit note new_number in place of number
        (Xero's updateInvoice, POST Invoices/{InvoiceID}; updateCreditNote, POST
        CreditNotes/{CreditNoteID}), read first so a rename whose answer was lost is found, not
        sent twice. Xero allows it on a document without payments or credits applied; otherwise it
        answers with a validation error, raised as XeroRefused and nothing changes."""
        resource, id_field = _RESOURCES[xero_type]
        number_field, label = _NUMBER_FIELD[xero_type], object_label(xero_type)
        shown = self.document(xero_type, xero_id)
        if shown.number.lower() == new_number.lower():
            return Undone(f"already renamed {new_number} in Xero")
        if shown.status == "DELETED":
            return Undone(f"already deleted in Xero: a deleted {label}'s number {number} is free")
        if shown.number.lower() != number.lower():
            return Undone(f"Xero shows it as {shown.number or 'unnumbered'}, not {number}: it does not hold {number}")
        if shown.status == "VOIDED":
            return Undone(
                f"already voided in Xero under {number}: Xero does not let a voided {label} be renamed, so {number} "
                f"stays taken and the edited {label} is posted again under another number",
                Reason.INVOICE_NUMBER_KEPT,
            )
        body = {resource: [{id_field: xero_id, number_field: new_number}]}
        try:
            self._write(f"{resource}/{xero_id}", resource, body)
        except XeroRefused:
            # An earlier attempt whose answer was lost may have renamed it after all.
            if self.document(xero_type, xero_id).number.lower() == new_number.lower():
                return Undone(f"already renamed {new_number} in Xero")
            raise
        return Undone(f"renamed {number} to {new_number} in Xero (it was {shown.status})")
