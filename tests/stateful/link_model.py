"""The model the stateful test checks the poster against: a handful of Actionstep records, what
has been done to each (posted, content version, unlinked, generation), and the link state each
must settle in. Written from the rules in docs/link-states.md, not from the poster's code.

- A record with no dependency links.
- A payment links once its bill is linked; until then it waits. Once linked it stays linked
  (unlinking its bill afterwards leaves the payment alone).
- Unlinking leaves the Xero objects in place (orphans). Posting the record again creates it
  afresh as the next generation, except a client bill: its orphaned invoice still holds the
  invoice number, which Xero keeps unique, so Xero refuses the new one and the link fails with
  Xero's reason (the operator voids the orphan first; that is the correction's work).
- A linked record is locked: changed content is refused until it is unlinked.
- An operator's unlink request (UnlinkLinks) refuses a bill with linked payments unless it
  cascades, which unlinks them with it; an unlinked record needs nothing.
- A correction (ApplyCorrection, EDIT) of a linked payment deletes it in Xero and unlinks it; of
  a linked document, deletes its linked payments, voids the document and unlinks them all, but
  is blocked while a payment of it that no link holds (an orphan of an unlink) is live in Xero.
  Trust receipts (bank transactions) are not corrected. Corrected objects end DELETED or VOIDED
  in Xero. An EDIT renames a client bill's invoice `<number>-void-<bill id>-<generation>` before
  voiding it, so the bill posted again after its correction links under its own number as the
  next generation; only one posted again after a plain unlink (its live orphan holds the number)
  fails."""

from __future__ import annotations

from dataclasses import dataclass, field

from xerolink.actionstep.v1 import billing_pb2, common_pb2, supplier_pb2, transaction_pb2, trust_pb2
from xerolink.type.v1 import date_pb2
from xerolink_mapper import samples

LINKED, WAITING, FAILED, UNLINKED = "LINKED", "WAITING", "FAILED", "UNLINKED"


@dataclass
class RecordModel:
    name: str
    kind: common_pb2.TransactionKind.ValueType
    record_id: int
    depends_on: str = ""
    numbered: bool = False  # its Xero document number must be unique (ACCREC)
    posted: bool = False
    version: int = 0
    generation: int = 1
    unlinked: bool = False
    stays_linked: bool = False  # was LINKED at the last settle and has not been touched since
    posting: str = ""
    orphans: set[str] = field(default_factory=set)  # Xero ids left live in Xero by unlinks
    corrected: set[str] = field(default_factory=set)  # Xero ids a correction deleted or voided


def _bill(record_id: int, version: int) -> transaction_pb2.Transaction:
    lines = [
        samples.line("Advice on lease", "200", "GST", 45_000 + 100 * version, 4_500 + 10 * version),
        samples.line("Court filing fee", "210", "FRE", 8_900, 0),
    ]
    return samples.client_bill(record_id, lines)


def _payment(record_id: int, bill_id: int, version: int) -> transaction_pb2.Transaction:
    body = billing_pb2.ClientBillPayment(bill_id=bill_id, amount=samples.money(10_000 + 100 * version))
    return transaction_pb2.Transaction(header=samples.header(record_id), client_bill_payment=body)


def _supplier_invoice(record_id: int, version: int) -> transaction_pb2.Transaction:
    lines = [samples.line("Printer toner", "420", "GST", 18_000 + 100 * version, 1_800 + 10 * version)]
    body = supplier_pb2.SupplierInvoice(
        invoice_number=f"SUP-{record_id}",
        due_date=date_pb2.Date(year=2026, month=3, day=30),
        lines=lines,
        totals=samples.totals(lines),
    )
    return transaction_pb2.Transaction(header=samples.header(record_id), supplier_invoice=body)


def _trust_receipt(record_id: int, version: int) -> transaction_pb2.Transaction:
    body = trust_pb2.TrustReceipt(amount=samples.money(500_000 + 100 * version), description="Deposit on purchase")
    return transaction_pb2.Transaction(header=samples.header(record_id), trust_receipt=body)


K = common_pb2.TransactionKind


class LinkModel:
    def __init__(self) -> None:
        self.records = {
            r.name: r
            for r in (
                RecordModel("bill-1", K.TRANSACTION_KIND_CLIENT_BILL, 101, numbered=True),
                RecordModel("bill-2", K.TRANSACTION_KIND_CLIENT_BILL, 102, numbered=True),
                RecordModel("payment-1", K.TRANSACTION_KIND_CLIENT_BILL_PAYMENT, 201, depends_on="bill-1"),
                RecordModel("payment-2", K.TRANSACTION_KIND_CLIENT_BILL_PAYMENT, 202, depends_on="bill-2"),
                RecordModel("supplier-1", K.TRANSACTION_KIND_SUPPLIER_INVOICE, 301),
                RecordModel("receipt-1", K.TRANSACTION_KIND_TRUST_RECEIPT, 401),
            )
        }

    def transaction(self, name: str, version: int | None = None) -> transaction_pb2.Transaction:
        r = self.records[name]
        v = r.version if version is None else version
        if r.kind == K.TRANSACTION_KIND_CLIENT_BILL:
            return _bill(r.record_id, v)
        if r.kind == K.TRANSACTION_KIND_CLIENT_BILL_PAYMENT:
            return _payment(r.record_id, self.records[r.depends_on].record_id, v)
        if r.kind == K.TRANSACTION_KIND_SUPPLIER_INVOICE:
            return _supplier_invoice(r.record_id, v)
        return _trust_receipt(r.record_id, v)

    def settled_state(self, name: str) -> str | None:
        """The state the record's link must reach once the dispatcher has nothing left to do."""
        r = self.records[name]
        if not r.posted:
            return None
        if r.unlinked:
            return UNLINKED
        if r.stays_linked:
            return LINKED
        if r.numbered and r.orphans:
            return FAILED  # a live orphan a plain unlink left holds the number
        if r.depends_on:
            return LINKED if self.settled_state(r.depends_on) == LINKED else WAITING
        return LINKED

    def settled(self) -> dict[str, str]:
        return {name: state for name in self.records if (state := self.settled_state(name)) is not None}

    # -- what the operations do to the model ---------------------------------------------------
    def accepted(self, name: str, posting: str, changed: bool) -> None:
        """A post that queued work: a first post, a changed version, or a record posted again
        after it was unlinked or failed."""
        r = self.records[name]
        if r.unlinked:
            r.generation += 1
        r.posted, r.unlinked, r.stays_linked, r.posting = True, False, False, posting
        if changed:
            r.version += 1

    def linked_dependents(self, name: str) -> list[str]:
        """Payments of the record that are linked (settled): they refer to it in Xero."""
        return sorted(
            d.name for d in self.records.values() if d.depends_on == name and self.settled_state(d.name) == LINKED
        )

    def unlink_request(self, name: str, cascade: bool) -> tuple[bool, list[str]]:
        """(refused, records that become UNLINKED) for an operator's request to unlink one settled
        record: a document with linked payments is refused unless the request cascades, which
        unlinks them with it; an unlinked record needs nothing."""
        if self.records[name].unlinked:
            return False, []
        dependents = self.linked_dependents(name)
        if dependents and not cascade:
            return True, []
        return False, [name, *dependents]

    def correction(self, name: str) -> tuple[str, list[str]]:
        """("completed", records unlinked by it) or ("blocked" | "not supported", []) for a
        correction of a settled, linked record."""
        r = self.records[name]
        if r.kind == K.TRANSACTION_KIND_TRUST_RECEIPT:
            return "not supported", []
        payments = [p for p in self.records.values() if p.depends_on == name]
        if any(p.orphans for p in payments):
            return "blocked", []  # a live payment in Xero that no link holds
        return "completed", [name, *self.linked_dependents(name)]

    def unlinked(self, name: str, objects: set[str], corrected: bool = False) -> None:
        r = self.records[name]
        r.unlinked, r.stays_linked = True, False
        if corrected:
            r.corrected |= objects
        else:
            r.orphans |= objects

    def observed_settled(self) -> None:
        for name, state in self.settled().items():
            self.records[name].stays_linked = state == LINKED
