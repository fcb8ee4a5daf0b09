"""One claimed outbox entry and what a job learns about it on its way to Xero."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from xerolink.xero.v1 import objects_pb2 as xero_pb2

from xerolink_poster.adapters import operations as deps
from xerolink_poster.adapters.tables import ConnectionRow, LinkRow
from xerolink_poster.domain.matters import LineTracking
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.stored_rows import ClaimedEntry, StoredLink

# Another record's document an operation pays or allocates to: (the record, its link, the Xero id
# used, its ObjectType).
Document = tuple[RecordRef, LinkRow, str, int]


@dataclass(frozen=True)
class LaterPayment:
    """A payment a posting makes after its next operation: its document and its amount."""

    document: Document
    amount: Decimal
    currency: str


@dataclass
class Work:
    """One claimed entry and what the job learned about it."""

    # The entry and its link as the claim read them (values: the job never writes them back).
    row: ClaimedEntry
    link: StoredLink
    connection: ConnectionRow
    operation: xero_pb2.Operation | None = None
    resolved: dict[str, str] = field(default_factory=dict)
    contact: xero_pb2.Contact | None = None
    contact_id: str = ""
    # The value of the field carrying the record's tag (xero_payloads.tag_base + the tag).
    reference: str = ""
    # Written with the uncertain mark: what the look-up needs that Xero cannot carry.
    hint: str = ""
    # The option of each matter its lines carry, when the connection tracks matters; None when
    # it does not (xero_payloads.element_of).
    tracking: dict[int, LineTracking] | None = None
    # The other records' documents it pays or allocates to.
    documents: list[Document] = field(default_factory=list)
    # The same for the posting's operations after this one: checked before this one is sent.
    later_documents: list[Document] = field(default_factory=list)
    # Of those, the documents later payments pay, with what each pays (payable.py).
    later_payments: list[LaterPayment] = field(default_factory=list)
    # A sales invoice or client credit note posted again whose own orphaned document of an earlier
    # generation holds its number (preparing._renumber): the number it is sent again under if Xero
    # refuses that one as in use, and, once sent so, the number sent and the note saying so in the
    # link's audit.
    renumber_to: str = ""
    renumber_holders: list[str] = field(default_factory=list)
    renumber_note: str = ""
    sent_number: str = ""
    number_note: str = ""
    # Xero's element for the object it created (or a look-up found): its drift snapshot.
    answered: dict[str, Any] | None = None
    # This job looked the entry up and found nothing of it in Xero (or it was never sent): its
    # uncertain mark from an earlier attempt is settled (Results.retry_together).
    looked_up: bool = False
    # The end of this job's claim on the entry (the claim's, then the last mark's that extended
    # it): a claim names the poster, so a job that waited past its claim matches another job's
    # claim of the entry by name. Marks match this too (Gate.call), unclaims `claims` (_put_back).
    claim_until_us: int = 0
    # The end a mark whose commit failed in a way that may have gone through set, if it did.
    claim_if_marked_us: int = 0
    # Its element went into a call that changes Xero (gate.call, marked uncertain first): after
    # a failure from then on, Xero may have it. Until then, nothing of it was sent by this job.
    sending: bool = False
    # This job wrote the entry's outcome or retry and let go of it (Results.handed_back): another
    # job of this poster may have claimed it since, so this job's failure must not touch it.
    handed_back: bool = False
    # Its write failed at a commit that may have gone through: if it did not, the entry is still
    # claimed by this job, and only voiding the tenant's claims at its next taking frees it.
    commit_unknown: bool = False

    def __post_init__(self) -> None:
        if not self.claim_until_us:
            self.claim_until_us = self.row.lease_until_us

    @property
    def claims(self) -> tuple[int, ...]:
        """The claim ends under which the entry is this job's (none known: any of the poster's)."""
        if not self.claim_until_us:
            return ()
        return (self.claim_until_us, self.claim_if_marked_us) if self.claim_if_marked_us else (self.claim_until_us,)

    def answer(self, element: dict[str, Any] | None) -> None:
        """Keeps Xero's element for the snapshot; an allocation's names its credit note, which
        Xero's answer may leave out (the call's path names it)."""
        if element is not None and self.operation is not None and self.body == "allocation":
            element = {**element}
            element.setdefault("CreditNote", {"CreditNoteID": self.resolved.get("credit_note", "")})
        self.answered = element

    @property
    def body(self) -> str:
        assert self.operation is not None
        return deps.body_of(self.operation)

    @property
    def identity(self) -> str:
        """The Actionstep record, its version (generation) and the operation this element is."""
        assert self.operation is not None
        link = self.link
        return f"{link.connection_id}/{link.kind}/{link.record_id}#{link.generation}/{self.operation.local_ref}"
