"""Attacks on which Xero objects a correction undoes, in which order Xero's status rules demand,
and what it leaves in Xero when a document carries money that no link holds.

Xero's contract (xero_accounting.yaml, v16.1.0): Invoice.AmountCredited is the "Sum of all credit
notes, over-payments and pre-payments applied to invoice"; Invoice.Overpayments / Prepayments /
CreditNotes / Payments list them; an overpayment's allocation is removed with
deleteOverpaymentAllocations (DELETE /Overpayments/{OverpaymentID}/Allocations/{AllocationID});
Payment.Status AUTHORISED / DELETED (deletePayment, PaymentDelete {"Status": "DELETED"});
BankTransaction.Status AUTHORISED / DELETED / VOIDED; Overpayment.Status AUTHORISED / PAID /
VOIDED. The rule that an AUTHORISED invoice is voided only once its payments and allocations are
removed is in /work/shared/NOTES.md ("Status rules").

Each docstring starts with "DEFECT:" (fails now) or "GUARD:" (holds). Real poster and mapper on
loopback, the Xero emulator over HTTP, SQLite."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import correction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples

from tests.attack.test_correction_identity_attacks import live_payments, refusal
from tests.fixtures.poster import PosterFactory, connect, stub_for, xero_objects
from tests.integration.test_poster_corrections import Firm

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
CREDIT_NOTE = common_pb2.TRANSACTION_KIND_CREDIT_NOTE
REFUND = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_REFUND
OVERPAYMENT_REFUND = common_pb2.TRANSACTION_KIND_OVERPAYMENT_REFUND
EDIT = correction_pb2.CORRECTION_INTENT_EDIT
DELETE = correction_pb2.CORRECTION_INTENT_DELETE
XERO_USER = correction_pb2.CORRECTION_ACTOR_XERO_USER
COMPLETED = correction_pb2.CORRECTION_STATE_COMPLETED
UNLINKED = poster_pb2.LINK_STATE_UNLINKED
LINKED = poster_pb2.LINK_STATE_LINKED


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


@pytest.fixture
def extended(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    """Firm's connection under the extended profile (refunds are posted under it)."""
    found = Firm.__new__(Firm)
    found.stub = stub_for(poster_factory())
    found.emulator = emulator
    _, found.org = connect(
        found.stub, emulator, context=samples.demo_context(profile=mapper_pb2.POLICY_PROFILE_EXTENDED)
    )
    found.sample = samples.sample_transactions(5000)
    found.bill = found.sample["client_bill"].header.id
    found.payment = found.sample["client_bill_payment"].header.id
    found.credit_note = found.sample["credit_note"].header.id
    found.application = found.sample["credit_note_application"].header.id
    return found


def _one(firm: Firm, resource: str, id_field: str, xero_id: str) -> dict[str, Any]:
    return next(o for o in xero_objects(firm.emulator, firm.org["tenant_id"], resource) if o[id_field] == xero_id)


def _hand_made_overpayment(firm: Firm, contact_id: str, amount: str) -> str:
    """A person records a client's overpayment in Xero (a RECEIVE-OVERPAYMENT bank transaction:
    Xero's OpenAPI, BankTransaction.OverpaymentID) and returns the Overpayment's id."""
    answer = firm.xero_call(
        "PUT",
        "BankTransactions",
        {
            "BankTransactions": [
                {
                    "Type": "RECEIVE-OVERPAYMENT",
                    "Contact": {"ContactID": contact_id},
                    "BankAccount": {"Code": "090"},
                    "Date": "2026-07-01",
                    "LineItems": [{"Description": "Paid twice by the client", "LineAmount": Decimal(amount)}],
                }
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["BankTransactions"][0]["OverpaymentID"])


def _allocate_overpayment(firm: Firm, overpayment_id: str, invoice_id: str, amount: str) -> str:
    answer = firm.xero_call(
        "PUT",
        f"Overpayments/{overpayment_id}/Allocations",
        {"Allocations": [{"Invoice": {"InvoiceID": invoice_id}, "Amount": Decimal(amount), "Date": "2026-07-03"}]},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["Allocations"][0]["AllocationID"])


# -- money on the invoice that the plan does not read -----------------------------------------
def test_an_overpayment_allocated_by_hand_blocks_the_invoice_correction_before_any_payment_is_deleted(
    firm: Firm,
) -> None:
    """DEFECT: a person applies a client's overpayment (entered in Xero) to the linked bill's
    invoice; the bill's own 500.00 payment is linked. Xero's OpenAPI counts an overpayment as
    money on the invoice (Invoice.Overpayments; Invoice.AmountCredited "Sum of all credit notes,
    over-payments and pre-payments applied to invoice"; removed only by
    deleteOverpaymentAllocations), and an AUTHORISED invoice is voided only once every payment and
    allocation is gone (NOTES.md "Status rules"). docs/corrections.md promises that "a payment or
    credit on the document that no link holds ... becomes a XERO_USER step ... and blocks
    ApplyCorrection". But CorrectionXero.document reads only Payments and CreditNotes, so the plan
    names no step for the overpayment, ApplyCorrection is not blocked, deletes the client's 500.00
    payment in Xero and only then is refused at the void (XERO_REFUSED, for good): the invoice
    stays AUTHORISED and linked in Xero, owing 500.00 more than Actionstep says, and UnlinkLinks
    is then allowed, orphaning it with the overpayment still applied.
    Fixed: the plan reads the overpayments and prepayments applied to the invoice; each is a
    XERO_USER step that blocks ApplyCorrection."""
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    contact_id = firm.xero("Invoices", invoice_id)["Contact"]["ContactID"]
    overpayment_id = _hand_made_overpayment(firm, contact_id, "10.00")
    _allocate_overpayment(firm, overpayment_id, invoice_id, "10.00")
    assert firm.xero("Invoices", invoice_id)["AmountCredited"] == 10  # Xero counts it on the invoice

    plan = firm.plan(BILL, firm.bill, DELETE)
    named = [s for s in plan.steps if s.actor == XERO_USER]
    if named:
        code, reason, _ = refusal(lambda: firm.apply(BILL, firm.bill, DELETE))
    else:
        code, reason = (
            None,
            f"not refused: {correction_pb2.CorrectionState.Name(firm.apply(BILL, firm.bill, DELETE).state)}",
        )

    assert [p["PaymentID"] for p in live_payments(firm)] == [payment_id], (
        "ApplyCorrection deleted the client's linked payment in Xero although the overpayment applied by "
        "hand makes Xero refuse the void: the correction stopped half-done"
    )
    assert named, "the plan names no XERO_USER step for the overpayment applied to the invoice"
    assert reason == "CORRECTION_BLOCKED", (code, reason)
    assert firm.link(BILL, firm.bill).state == LINKED


# -- what the recipes undo, in Xero's order -----------------------------------------------------
def test_a_credit_note_correction_deletes_its_refund_before_voiding_it(extended: Firm) -> None:
    """GUARD: a credit note refunded in cash (a Payment on the credit note) is PAID in Xero and
    cannot be voided while the refund stands (NOTES.md "Status rules": "A fully allocated credit
    note is PAID and cannot be voided"; deletePayment with PaymentDelete {"Status": "DELETED"}).
    The correction deletes the refund, then voids the credit note, and unlinks both: nothing of
    the credit note's money stays live in Xero."""
    firm = extended
    firm.post("client_bill", "credit_note", "credit_note_refund")
    refund = firm.sample["credit_note_refund"].header.id
    note_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, xero_pb2.OBJECT_TYPE_CREDIT_NOTE)
    refund_id = firm.xero_id(REFUND, refund, xero_pb2.OBJECT_TYPE_PAYMENT)

    done = firm.apply(CREDIT_NOTE, firm.credit_note, DELETE)

    assert done.state == COMPLETED, done
    assert firm.xero("Payments", refund_id)["Status"] == "DELETED"
    note = firm.xero("CreditNotes", note_id)
    assert note["Status"] == "VOIDED"
    assert all(p.get("Status") == "DELETED" for p in note.get("Payments") or [])
    assert firm.link(REFUND, refund).state == UNLINKED
    assert firm.link(CREDIT_NOTE, firm.credit_note).state == UNLINKED


def test_an_overpayment_refund_is_refused_whole_and_nothing_is_undone_in_xero(extended: Firm) -> None:
    """GUARD: an overpayment refund (a RECEIVE-OVERPAYMENT bank transaction making an Overpayment,
    and the Payment refunding it) is not corrected by xerolink: ApplyCorrection is refused
    FAILED_PRECONDITION / CORRECTION_NOT_SUPPORTED before any Xero write, so the refund Payment
    (Payment.Status AUTHORISED/DELETED) and the bank transaction (BankTransaction.Status
    AUTHORISED/DELETED/VOIDED) both stay AUTHORISED and linked, never half undone. (docs/corrections.md
    still says such a record "is undone by the payment rule"; the code refuses it.)"""
    firm = extended
    firm.post("client_bill", "overpayment_refund")
    record = firm.sample["overpayment_refund"].header.id
    refund_id = firm.xero_id(OVERPAYMENT_REFUND, record, xero_pb2.OBJECT_TYPE_PAYMENT)
    receive_id = firm.xero_id(OVERPAYMENT_REFUND, record, xero_pb2.OBJECT_TYPE_BANK_TRANSACTION)

    _, reason, _ = refusal(lambda: firm.apply(OVERPAYMENT_REFUND, record, EDIT))

    assert reason == "CORRECTION_NOT_SUPPORTED"
    assert firm.xero("Payments", refund_id)["Status"] == "AUTHORISED"
    assert _one(firm, "BankTransactions", "BankTransactionID", receive_id)["Status"] == "AUTHORISED"
    assert firm.link(OVERPAYMENT_REFUND, record).state == LINKED
