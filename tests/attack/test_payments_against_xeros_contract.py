"""Attacks on payments, allocations, overpayments and refunds as real Xero treats them, and on the
corrections and unlinks of them.

Xero's contract (/work/shared/xero-openapi/xero_accounting.yaml, v16.1.0): Payment.Amount "Must be
less than or equal to the outstanding amount owing on the invoice"; Payment.Status AUTHORISED /
DELETED, deleted with deletePayment (POST /Payments/{PaymentID}, PaymentDelete {"Status"});
Allocation requires Amount, Invoice and Date; Overpayment.Status AUTHORISED / PAID / VOIDED and
BankTransaction.OverpaymentID on RECEIVE-OVERPAYMENT transactions; "Payments can only be made
against Authorised documents" (NOTES.md, peer complaint 2).

Each docstring starts with "DEFECT:" (fails now) or "GUARD:" (holds). Real poster and mapper on
loopback, the Xero emulator over HTTP, SQLite."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import correction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples

from tests.fixtures.drift_firm import Firm as DriftFirm
from tests.fixtures.poster import PosterFactory, stub_for, wait_for, wait_settled, xero_objects
from tests.integration.test_poster_corrections import Firm, rpc_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
FROM_TRUST = common_pb2.TRANSACTION_KIND_INVOICE_PAID_FROM_TRUST
DELETE = correction_pb2.CORRECTION_INTENT_DELETE
LINKED = poster_pb2.LINK_STATE_LINKED
FAILED = poster_pb2.LINK_STATE_FAILED
WAITING = poster_pb2.LINK_STATE_WAITING


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


def _post(firm: Firm, transaction: transaction_pb2.Transaction) -> poster_pb2.Posting:
    posting: poster_pb2.Posting = firm.stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=transaction)
    ).posting
    return posting


def _live_spends(emulator: EmulatorServer, tenant: str, record_id: int) -> list[dict[str, Any]]:
    """The live SPEND bank transactions tagged with the invoice-paid-from-trust record."""
    tag = f"[AS-IPFT-{record_id}]"
    return [
        t
        for t in xero_objects(emulator, tenant, "BankTransactions")
        if t["Type"] == "SPEND" and tag in str(t.get("Reference", "")) and t["Status"] not in ("DELETED", "VOIDED")
    ]


# -- an invoice paid from trust: the trust half must not leave trust when its payment cannot go --
def test_an_invoice_paid_from_trust_for_a_bill_known_paid_in_xero_moves_no_trust_money(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT (fixed): the bill's invoice was paid in full by a bank-feed match in Xero and xerolink has
    recorded the drift (PAID_IN_XERO). A client bill payment is then held, never sent
    (docs/drift.md). An invoice paid from trust of the same bill is posted as two operations, the
    trust SPEND first and the payment second; the hold is only checked on the operation that names
    the invoice, so the SPEND goes to Xero (clients' money leaves the trust bank in Xero) and only
    then is the payment held. Xero refuses a payment on a PAID invoice ("Payments can only be made
    against Authorised documents"), so the trust money is gone in Xero for a fee that can never be
    applied, while Actionstep's trust ledger is waiting on the firm's decision."""
    firm = DriftFirm(poster_factory(), emulator, 3600)
    invoice = firm.linked_bill()
    firm.pay_in_full_by_bank_feed(invoice)
    assert firm.observe_bill(invoice) == ["PAID_IN_XERO"]
    from_trust = _sample(3600, "invoice_paid_from_trust")

    firm.post(from_trust)
    wait_for(lambda: firm.link(FROM_TRUST, from_trust.header.id).state != poster_pb2.LINK_STATE_PENDING, 20)
    time.sleep(0.5)
    link = firm.link(FROM_TRUST, from_trust.header.id)

    assert link.last_error.reason == "XERO_DOCUMENT_CHANGED", poster_pb2.LinkState.Name(link.state)
    assert _live_spends(emulator, firm.tenant, from_trust.header.id) == [], (
        "the trust SPEND was sent for an invoice xerolink knew Xero shows PAID: trust money left the "
        "trust bank in Xero for a payment that is held"
    )


def test_an_invoice_paid_from_trust_for_a_bill_paid_in_xero_unseen_moves_no_trust_money(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """The same, with no webhook or poll having seen the bank-feed payment yet: the invoice is read
    from Xero before the trust SPEND is sent (dispatch/payable.py), the drift is recorded from that
    read and the posting held on it, nothing sent."""
    firm = DriftFirm(poster_factory(), emulator, 3700)
    invoice = firm.linked_bill()
    firm.pay_in_full_by_bank_feed(invoice)
    from_trust = _sample(3700, "invoice_paid_from_trust")

    firm.post(from_trust)
    wait_for(lambda: firm.link(FROM_TRUST, from_trust.header.id).state != poster_pb2.LINK_STATE_PENDING, 20)
    time.sleep(0.5)
    link = firm.link(FROM_TRUST, from_trust.header.id)

    assert link.last_error.reason == "XERO_DOCUMENT_CHANGED", (poster_pb2.LinkState.Name(link.state), link.last_error)
    assert _live_spends(emulator, firm.tenant, from_trust.header.id) == []


def _sample(base: int, name: str) -> transaction_pb2.Transaction:
    found: transaction_pb2.Transaction = samples.sample_transactions(base)[name]
    return found


def test_an_invoice_paid_from_trust_over_what_the_bill_owes_leaves_no_trust_spend_behind(firm: Firm) -> None:
    """DEFECT (fixed): the bill (936.55) is paid 500.00 by the client; then 500.00 is paid from trust,
    63.45 more than the invoice owes (436.55). Xero refuses the payment ("Payment
    amount exceeds the amount outstanding on this document": Payment.Amount "Must be less than or
    equal to the outstanding amount owing on the invoice"). The trust SPEND of 500.00 was sent first
    and stays live in Xero; the record ends FAILED, and PlanCorrection then says it "failed to post,
    so it is not in Xero" (NOT_IN_XERO): a person told so deletes it in Actionstep only, and the
    500.00 stays withdrawn from the trust bank in Xero."""
    firm.post("client_bill", "client_bill_payment")
    from_trust = firm.sample["invoice_paid_from_trust"]
    from_trust.invoice_paid_from_trust.amount.units = 50000

    posting = _post(firm, from_trust)
    settled = wait_settled(firm.stub, posting.name)

    spends = _live_spends(firm.emulator, firm.org["tenant_id"], from_trust.header.id)
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    assert firm.xero("Invoices", invoice_id)["AmountDue"] == Decimal("436.55")
    if settled.state == LINKED:
        pytest.fail("Xero took a payment over the amount due")
    # The record did not post; whatever it left in Xero must be named, not denied.
    if spends:
        _, reason, message = rpc_error(lambda: firm.plan(FROM_TRUST, from_trust.header.id, DELETE))
        assert reason != "NOT_IN_XERO", (
            f"a trust SPEND of {spends[0]['Total']} is live in Xero, yet PlanCorrection says: {message}"
        )
    assert spends == [], "the trust SPEND stays live in Xero for a payment Xero refused"
    error = firm.link(FROM_TRUST, from_trust.header.id).last_error
    assert error.reason == "PAYMENT_NOT_PAYABLE_IN_XERO" and "owes 436.55" in error.message, error


# -- what Xero refuses is refused once, visibly, and changes nothing --------------------------
def test_a_client_receipt_over_what_the_invoice_owes_fails_with_xeros_reason_and_creates_nothing(
    firm: Firm,
) -> None:
    """GUARD: a receipt of 1,000.00 on the 936.55 bill. Xero refuses it (Payment.Amount "Must be
    less than or equal to the outstanding amount owing on the invoice"); the record ends FAILED
    with Xero's sentence, is not retried for ever nor held, and Xero holds no payment of it."""
    firm.post("client_bill")
    receipt = firm.sample["client_bill_payment"]
    receipt.client_bill_payment.amount.units = 100000

    settled = wait_settled(firm.stub, _post(firm, receipt).name)

    link = firm.link(PAYMENT, firm.payment)
    assert settled.state == FAILED and link.state == FAILED
    said = [v.description for v in link.last_error.field_violations]
    assert link.last_error.reason == "XERO_VALIDATION" and any("outstanding" in d for d in said), said
    assert not link.xero_objects
    tag = f"[AS-CBP-{firm.payment}]"
    assert [p for p in xero_objects(firm.emulator, firm.org["tenant_id"], "Payments") if tag in p["Reference"]] == []
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    assert firm.xero("Invoices", invoice_id)["AmountDue"] == Decimal("936.55")


def test_a_payment_deleted_by_correction_and_posted_again_is_in_xero_once(firm: Firm) -> None:
    """GUARD: the client's 500.00 receipt is corrected (DELETE: the payment deleted in Xero with
    POST Payments/{id} {"Status": "DELETED"}, then unlinked), then the same receipt is posted again
    (the person changed their mind): one live payment of it in Xero, the invoice owing 436.55."""
    firm.post("client_bill", "client_bill_payment")
    first = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)

    done = firm.apply(PAYMENT, firm.payment, DELETE)
    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert firm.xero("Payments", first)["Status"] == "DELETED"
    firm.post("client_bill_payment")

    tag = f"[AS-CBP-{firm.payment}]"
    live = [
        p
        for p in xero_objects(firm.emulator, firm.org["tenant_id"], "Payments")
        if tag in p["Reference"] and p["Status"] == "AUTHORISED"
    ]
    assert len(live) == 1 and live[0]["PaymentID"] != first
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    assert firm.xero("Invoices", invoice_id)["AmountDue"] == Decimal("436.55")


def test_the_emulator_refuses_payments_xero_refuses(firm: Firm) -> None:
    """GUARD: as Xero does (NOTES.md "Status rules"; Payment.Amount; Payment.Status AUTHORISED /
    DELETED), the emulator refuses a payment above the amount due, a payment on a VOIDED invoice,
    an edit of a payment, and a deletion of a payment already deleted."""
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)

    def pay(amount: str) -> Any:
        element: dict[str, Any] = {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}}
        element["Date"] = "2026-03-03"
        element["Amount"] = Decimal(amount)
        return firm.xero_call("PUT", "Payments?summarizeErrors=false", {"Payments": [element]}).json()["Payments"][0]

    assert pay("436.56").get("ValidationErrors")
    edited = firm.xero_call("POST", f"Payments/{payment_id}", {"Status": "AUTHORISED", "Amount": Decimal("1.00")})
    assert edited.status_code == 400 or edited.json()["Payments"][0].get("ValidationErrors")
    assert firm.xero("Payments", payment_id)["Amount"] == Decimal("500.00")
    deleted = firm.xero_call("POST", f"Payments/{payment_id}", {"Status": "DELETED"})
    assert deleted.status_code == 200, deleted.text
    again = firm.xero_call("POST", f"Payments/{payment_id}", {"Status": "DELETED"})
    assert again.status_code == 400 or again.json()["Payments"][0].get("ValidationErrors")
    voided = firm.xero_call(
        "POST", f"Invoices/{invoice_id}", {"Invoices": [{"InvoiceID": invoice_id, "Status": "VOIDED"}]}
    )
    assert voided.status_code == 200, voided.text
    assert pay("1.00").get("ValidationErrors")
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"
