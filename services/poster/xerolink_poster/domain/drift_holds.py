"""What drift means for work posted against a document (docs/drift.md "Holds and resolution"):
which drifts make a document unpayable in Xero, which refusals by Xero say the same, and the
sentences a held, failed or released entry carries. Plain rules: the rows are read and written
by service_layer/drift_holds.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

# Drift kinds (DriftKind names without their prefix) after which Xero takes no payment or
# allocation on the document: Xero applies payments to AUTHORISED documents only (its message
# "Payments can only be made against Authorised documents", NOTES: what users of peer
# integrations complain about, 2; developer.xero.com/documentation/api/accounting/payments).
UNPAYABLE_KINDS = frozenset({"PAID_IN_XERO", "VOIDED_IN_XERO", "DELETED_IN_XERO"})
# Money applied in Xero that xerolink did not make (a bank-feed match, a part payment by hand)
# also holds further money on the document, though Xero would take it while something is owed:
# the classic case is the bank feed matching a deposit before Actionstep's receipt of the same
# money arrives, which posted would pay the document twice (NOTES: peer complaints, 3). A person
# decides: the Xero payment stands for the record (ACCEPT_XERO: the held record fails), or it is
# removed in Xero (CORRECTED: the held record is posted).
APPLIED_IN_XERO = "ALLOCATION_ADDED_IN_XERO"
HOLDING_KINDS = UNPAYABLE_KINDS | {APPLIED_IN_XERO}
STATUS_CHANGED = "STATUS_CHANGED"
PAYABLE_STATUS = "AUTHORISED"

# A drift row's state, and its resolution (DriftResolution names without their prefix).
OPEN = "open"
RESOLVED = "resolved"
ACCEPT_XERO = "ACCEPT_XERO"
CORRECTED = "CORRECTED"
UNLINKED = "UNLINKED"

# Xero's refusals of a payment or allocation on a document that is no longer payable, matched as
# parts of its messages (case-insensitive):
# - "Payments can only be made against Authorised documents": a paid, voided, deleted or draft
#   document (NOTES: peer complaints, 2; the issue text: Clio users meet it).
# - "Payment amount exceeds the amount outstanding on this document": paid (in part) meanwhile
#   (Xero's OpenAPI description, createPayments' and createPayment's 400 examples).
# - "not of valid status for modification": a document whose status no longer allows the change
#   (XeroAPI/Xero-NetStandard#79).
# - "exceeds the amount due on the invoice": an allocation on an invoice paid meanwhile (the
#   emulator's wording; docs/emulator.md "Known differences").
DOCUMENT_REFUSALS = (
    "can only be made against authorised documents",
    "exceeds the amount outstanding on this document",
    "not of valid status for modification",
    "exceeds the amount due on the invoice",
)


def blocks_payment(kind: str, differences: Sequence[Mapping[str, str]]) -> bool:
    """Whether an open drift of this kind holds payments and allocations on the document: paid,
    voided or deleted in Xero, its status changed away from AUTHORISED (back to draft, say), or
    money applied to it in Xero that xerolink did not make."""
    if kind in HOLDING_KINDS:
        return True
    if kind == STATUS_CHANGED:
        return any(d.get("field") == "Status" and d.get("xero", "") != PAYABLE_STATUS for d in differences)
    return False


def refused_for_document(messages: Iterable[str]) -> bool:
    """Whether Xero refused a payment or allocation because its document is no longer payable."""
    lowered = [m.lower() for m in messages]
    return any(part in m for m in lowered for part in DOCUMENT_REFUSALS)


def drift_name(connection_id: str, drift_id: int) -> str:
    return f"connections/{connection_id}/drifts/{drift_id}"


_HAPPENED = {
    "PAID_IN_XERO": "was paid in Xero by a payment xerolink did not make (a bank-feed match or by hand)",
    APPLIED_IN_XERO: (
        "has money applied in Xero that xerolink did not make (a bank-feed match or a payment or credit "
        "entered by hand), which may be this same money"
    ),
    "VOIDED_IN_XERO": "was voided in Xero",
    "DELETED_IN_XERO": "was deleted in Xero",
    STATUS_CHANGED: "had its status changed in Xero",
}

_TO_DO = {
    "PAID_IN_XERO": (
        "either accept Xero's version (xerolink drift resolve {drift} --accept-xero) and remove this record in "
        "Actionstep, as the document is already paid; or delete the payment made in Xero and resolve the drift "
        "as corrected (--corrected): this record is then posted"
    ),
    APPLIED_IN_XERO: (
        "if the money in Xero is this record's, accept Xero's version (xerolink drift resolve {drift} "
        "--accept-xero): this record then fails and is not paid twice; if it is not, delete it in Xero (unreconcile "
        "the bank line) and resolve the drift as corrected (--corrected): this record is then posted"
    ),
    "VOIDED_IN_XERO": (
        "Xero does not undo a void: accept Xero's version (xerolink drift resolve {drift} --accept-xero), remove "
        "this record in Actionstep and correct the document there (PlanCorrection)"
    ),
    "DELETED_IN_XERO": (
        "Xero does not undo a deletion: accept Xero's version (xerolink drift resolve {drift} --accept-xero), "
        "remove this record in Actionstep and correct the document there (PlanCorrection)"
    ),
    STATUS_CHANGED: (
        "either approve the document again in Xero and resolve the drift as corrected (xerolink drift resolve "
        "{drift} --corrected): this record is then posted; or accept Xero's version (--accept-xero) and remove "
        "this record in Actionstep"
    ),
}


def happened(kind: str, document: str) -> str:
    """What happened in Xero, in a clause (the drift's own description is a paragraph of advice,
    listed with the drift)."""
    return f"{document} {_HAPPENED.get(kind, 'was changed in Xero')}"


def hold_message(kind: str, document: str, drift: str) -> str:
    """The held entry's sentence: what happened in Xero, that nothing was sent, and what to do."""
    to_do = _TO_DO.get(kind, _TO_DO[STATUS_CHANGED]).format(drift=drift)
    return (
        f"{happened(kind, document)} ({drift}); this record was not sent to Xero and waits until "
        f"the drift is resolved: {to_do}"
    )


def accepted_message(kind: str, document: str, drift: str, accepted: str = "") -> str:
    """The sentence of held work failed because Xero's version was accepted. `drift` is the drift
    that keeps the document from taking the work (what the sentence explains); `accepted` the one
    a person resolved, when another: accepting Xero's version accepts the whole document, so it
    resolves every drift of it."""
    if kind == "PAID_IN_XERO":
        change = f"{document} is already paid in Xero: delete this record in Actionstep (or apply it elsewhere)"
    elif kind == APPLIED_IN_XERO:
        change = (
            f"the money applied to {document} in Xero stands for this record, which was not sent so as not to pay "
            "it twice: delete this record in Actionstep; if that money was other money, post this record again"
        )
    elif kind in ("VOIDED_IN_XERO", "DELETED_IN_XERO"):
        change = (
            f"{document} no longer stands in Xero: delete this record in Actionstep, then correct the document "
            "there (revert it to draft, edit it and post it again) and enter this record again if still due"
        )
    else:
        change = f"{document} cannot take it in Xero as it stands: delete or change this record in Actionstep"
    if accepted and accepted != drift:
        return (
            f"Xero's version of {document} was accepted ({accepted}), with all of it, including {drift}: "
            f"{happened(kind, document)}; {change}"
        )
    return f"Xero's version was accepted ({drift}: {happened(kind, document)}); {change}"


def gone(document: Mapping[str, object] | None) -> bool:
    """Whether an object's trimmed state says Xero no longer holds it as a live object: missing,
    deleted or voided (Xero's Status values; an allocation's IsDeleted)."""
    if document is None:
        return True
    return str(document.get("Status", "")).upper() in ("DELETED", "VOIDED") or document.get("IsDeleted") is True


def without_entry(document: Mapping[str, object], key: str, id_field: str, entry_id: str) -> dict[str, object]:
    """A document's snapshot no longer expecting one of its Payments or Allocations (one deleted
    in Xero whose deletion was accepted)."""
    out = dict(document)
    entries = out.get(key)
    if isinstance(entries, list):
        out[key] = [
            e for e in entries if not (isinstance(e, Mapping) and str(e.get(id_field, "")).lower() == entry_id.lower())
        ]
    return out
