"""Correcting a linked record: what a correction is made of (intent, steps and who does each,
its state) and the names and Xero statuses it speaks in. correction_plans.py turns a record's
links into the ordered steps, as Actionstep's help describes it ("Correcting Accounting Errors in
the Xero Integration", best-practice scenarios).

Pure: the facts (links, what Xero reports) are gathered by the service layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from xerolink_common.reasons import Reason

from xerolink_poster.domain.kinds import ObjectType, TransactionKind
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import LinkState


class Intent(IntEnum):
    """Numbered as xerolink.poster.v1.CorrectionIntent."""

    EDIT = 1
    DELETE = 2


class Actor(IntEnum):
    """Numbered as xerolink.poster.v1.CorrectionActor."""

    XEROLINK = 1
    ACTIONSTEP_USER = 2
    XERO_USER = 3


class Action(IntEnum):
    """Numbered as xerolink.poster.v1.CorrectionAction."""

    DELETE_PAYMENT = 1
    DELETE_BANK_TRANSACTION = 2
    DELETE_ALLOCATION = 3
    VOID_OR_DELETE_DOCUMENT = 4
    UNLINK = 5
    MANUAL = 6
    RENAME_DOCUMENT = 7


class StepState(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"


class SagaState(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    FAILED = "failed"
    COMPLETED = "completed"


# Xero statuses that mean an object is already gone (nothing left to undo).
GONE = frozenset({"DELETED", "VOIDED"})

# Failed-step reasons that applying again does not get past: Xero refuses the change (a lock
# date, a reconciled payment) or no longer has the object. A record whose correction stopped on
# one may be unlinked by hand, its objects then orphans for a person to handle in Xero; one
# stopped by what passes (Xero unavailable, rate limited, no answer) is finished by applying again.
FAILED_FOR_GOOD = frozenset(
    {
        Reason.XERO_REFUSED,
        Reason.XERO_OBJECT_MISSING,
        Reason.NUMBER_UNKNOWN,
        # Its objects are in an organisation the connection no longer calls (connection_lifecycle).
        Reason.CORRECTION_LEFT_IN_PREVIOUS_ORGANISATION,
    }
)


def left_in_previous_organisation(steps: Sequence[Step]) -> bool:
    """Whether the saga ended when its connection was connected to another organisation: its
    objects are in the previous one, so applying again must send nothing to the new one."""
    return any(s.reason == Reason.CORRECTION_LEFT_IN_PREVIOUS_ORGANISATION for s in steps)


def to_finish(state: str, steps: Sequence[Step]) -> bool:
    """Whether a saga in `state` with these steps is still to be finished by applying it again:
    running, or failed on no step of FAILED_FOR_GOOD."""
    if state == SagaState.RUNNING.value:
        return True
    return state == SagaState.FAILED.value and not any(
        s.reason in FAILED_FOR_GOOD for s in steps if s.state == StepState.FAILED
    )


DELETABLE_DOCUMENT = frozenset({"DRAFT", "SUBMITTED"})
VOIDABLE_DOCUMENT = frozenset({"AUTHORISED", "PAID"})
# Xero's OpenAPI: Invoice.InvoiceNumber "Unique alpha numeric code" (ACCREC), maxLength 255.
# CreditNote.CreditNoteNumber (unique for ACCRECCREDIT) gives no length; it is held to the same.
MAX_INVOICE_NUMBER = 255
# The sales documents whose number Xero keeps unique, a voided one's included, by ObjectType and
# the Type Xero shows (Invoice.InvoiceNumber, CreditNote.CreditNoteNumber).
UNIQUE_NUMBERED = frozenset({(ObjectType.INVOICE, "ACCREC"), (ObjectType.CREDIT_NOTE, "ACCRECCREDIT")})
DOCUMENT_TYPES = frozenset({ObjectType.INVOICE, ObjectType.CREDIT_NOTE})

_KIND_NAMES: Mapping[int, str] = {
    TransactionKind.CLIENT_BILL: "client bill",
    TransactionKind.CLIENT_BILL_PAYMENT: "payment",
    TransactionKind.CREDIT_NOTE: "credit note",
    TransactionKind.CREDIT_NOTE_APPLICATION: "credit note application",
    TransactionKind.CREDIT_NOTE_REFUND: "credit note refund",
    TransactionKind.OVERPAYMENT_REFUND: "overpayment refund",
    TransactionKind.INVOICE_PAID_FROM_TRUST: "invoice payment from trust",
    TransactionKind.SUPPLIER_INVOICE: "supplier invoice",
    TransactionKind.SUPPLIER_INVOICE_PAYMENT: "supplier invoice payment",
    TransactionKind.SUPPLIER_CREDIT: "supplier credit",
    TransactionKind.SUPPLIER_CREDIT_APPLICATION: "supplier credit application",
}


def record_name(record: RecordRef) -> str:
    return f"{_KIND_NAMES.get(record.kind, 'record')} {record.id}"


_OBJECT_NAMES: Mapping[int, str] = {
    ObjectType.PAYMENT: "payment",
    ObjectType.BANK_TRANSACTION: "bank transaction",
    ObjectType.ALLOCATION: "allocation",
    ObjectType.INVOICE: "invoice",
    ObjectType.CREDIT_NOTE: "credit note",
}


def object_label(object_type: int) -> str:
    """What a person calls an object of this type ("invoice", "credit note", ...)."""
    return _OBJECT_NAMES.get(object_type, "object")


def object_name(obj: XeroObjectRef) -> str:
    label = object_label(obj.type)
    return f"{label} {obj.number}" if obj.number else f"{label} {obj.xero_id}"


@dataclass(frozen=True)
class LinkFacts:
    """A link as the registry holds it."""

    record: RecordRef
    state: LinkState
    objects: tuple[XeroObjectRef, ...]
    generation: int = 1
    # For an allocation: the Xero id of the credit note it belongs to (resolved from the
    # record the allocation applies, which the mapper's operations name).
    credit_note_id: str = ""
    # Waiting because its document drifted in Xero (docs/drift.md "Holds and resolution"): it
    # waits for the drift to be resolved, not for a posting to settle.
    held: bool = False
    # Failed while a call's outcome was unknown: Xero may hold an object the link does not.
    outcome_unknown: bool = False


@dataclass(frozen=True)
class XeroDocument:
    """A document as Xero reports it now."""

    status: str
    # Payments Xero shows on it (not deleted).
    payment_ids: tuple[str, ...] = ()
    # Credit notes applied to an invoice (by CreditNoteID, one entry per application), or the
    # live allocation ids of a credit note.
    credit_ids: tuple[str, ...] = ()
    # Type (ACCREC, ACCPAY, ...) and InvoiceNumber / CreditNoteNumber as Xero shows them.
    doc_type: str = ""
    number: str = ""
    # Overpayments and prepayments applied to an invoice, as ("overpayment" | "prepayment", id):
    # money on it ("AmountCredited: Sum of all credit notes, over-payments and pre-payments
    # applied to invoice", Invoice in Xero's OpenAPI description) that a void must wait for.
    applied: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Step:
    action: Action
    actor: Actor
    description: str
    record: RecordRef | None = None
    xero_type: int = 0
    xero_id: str = ""
    # Allocations: the credit note the allocation belongs to.
    parent_xero_id: str = ""
    state: StepState = StepState.PENDING
    detail: str = ""
    reason: str = ""
    attempts: int = 0
    update_us: int = 0


@dataclass(frozen=True)
class Plan:
    record: RecordRef
    intent: Intent
    steps: tuple[Step, ...]
    xero_status: str = ""
    notes: tuple[str, ...] = ()
    # Why xerolink cannot start now (a person must act first), each a sentence.
    blockers: tuple[str, ...] = field(default=())


class NotCorrectable(Exception):
    """The record's link does not allow a correction; code is NOT_FOUND or FAILED_PRECONDITION."""

    def __init__(self, reason: Reason, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.not_found = not_found


def is_document(link: LinkFacts) -> bool:
    return any(o.type in DOCUMENT_TYPES for o in link.objects)


def document_of(link: LinkFacts) -> XeroObjectRef:
    return next(o for o in link.objects if o.type in DOCUMENT_TYPES)


def void_number(number: str, record: RecordRef, generation: int) -> str:
    """The number a sales invoice or client credit note takes before it is voided, so its own
    number can be used again.
    It names the Actionstep record and the link generation, never the content, so every attempt
    (and a re-read after a lost answer) arrives at the same number, and each correction of the
    same bill gets its own; the original is shortened to keep within Xero's 255 characters."""
    suffix = f"-void-{record.id}-{generation}"
    return number[: MAX_INVOICE_NUMBER - len(suffix)] + suffix


def repost_number(number: str, record: RecordRef, generation: int) -> str:
    """The number a sales invoice posted again takes when its own earlier generation's invoice,
    voided in Xero by hand and left orphaned, still holds `number`: Xero keeps a voided invoice's
    number and allows no edit of a VOIDED invoice (see void_number), so the number cannot be freed.
    Named like void_number by the Actionstep record and the new generation, never by content."""
    suffix = f"-repost-{record.id}-{generation}"
    return number[: MAX_INVOICE_NUMBER - len(suffix)] + suffix


def document_change(status: str) -> str | None:
    """The Status to send for a document in this Xero status; None when it is already gone."""
    if status in GONE:
        return None
    if status in DELETABLE_DOCUMENT:
        return "DELETED"
    return "VOIDED"


def saga_state(steps: Sequence[Step]) -> SagaState:
    ours = [s for s in steps if s.actor == Actor.XEROLINK]
    if any(s.state == StepState.FAILED for s in ours):
        return SagaState.FAILED
    if all(s.state == StepState.DONE for s in ours):
        return SagaState.COMPLETED
    return SagaState.RUNNING
