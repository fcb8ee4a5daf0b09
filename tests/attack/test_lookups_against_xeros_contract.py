"""Look-ups after an uncertain call, attacked with what real Xero does and what users type.

Each test loses the answer to a create call after Xero committed it and lets Xero's idempotency
window pass (a crash or an outage longer than a few minutes), so only the look-up stands between
the record and a second object in Xero."""

from __future__ import annotations

from typing import Any

from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import billing_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_settled,
    xero_objects,
)

LINKED = poster_pb2.LINK_STATE_LINKED


def _settle(stub: poster_grpc.PosterServiceStub, *transactions: transaction_pb2.Transaction) -> list[int]:
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=list(transactions))
    ).results
    return [wait_settled(stub, r.posting.name, timeout=60).state for r in results]


def _live(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if str(i.get("Status", "")).upper() not in ("DELETED", "VOIDED")]


def test_an_overpayment_whose_answer_was_lost_is_not_received_twice_when_lists_omit_line_items(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The overpayment's tag sits in its first line's Description, and the look-up lists
    BankTransactions without `page`: real Xero answers such a list without line items, so the
    tag is never seen and the 25.00 overpayment is received into the bank a second time."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
    refund = samples.sample_transactions(8400)["overpayment_refund"]
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="BankTransactions")
    emulator.faults.add(dropped)

    assert _settle(stub, refund) == [LINKED]

    assert dropped.hits == 1
    received = _live(xero_objects(emulator, org["tenant_id"], "BankTransactions"))
    overpayments = _live(xero_objects(emulator, org["tenant_id"], "Overpayments"))
    assert len(received) == 1 and len(overpayments) == 1, (
        f"the overpayment was received {len(received)} times ({len(overpayments)} overpayments)"
    )


def test_a_payment_whose_reference_holds_a_double_quote_is_found_after_a_lost_answer(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The look-up strips '"' from the tagged reference before putting it in `where`
    (`Reference=="OBrien ..."`), so it can never equal the stored `O"Brien ...`: nothing is
    found and the 100.00 payment is made twice."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    assert _settle(stub, samples.client_bill(8501)) == [LINKED]
    payment = transaction_pb2.Transaction(
        header=samples.header(8502, reference='O"Brien deposit'),
        client_bill_payment=billing_pb2.ClientBillPayment(bill_id=8501, amount=samples.money(10000)),
    )
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Payments")
    emulator.faults.add(dropped)

    assert _settle(stub, payment) == [LINKED]

    assert dropped.hits == 1
    payments = _live(xero_objects(emulator, org["tenant_id"], "Payments"))
    assert len(payments) == 1, f"the payment was made {len(payments)} times: {[p['Reference'] for p in payments]}"


def test_a_supplier_bill_whose_number_holds_a_double_quote_is_not_entered_twice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The same quoting on a bill, where Xero allows duplicate numbers: the bill is owed twice."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    bill = samples.sample_transactions(8600)["supplier_invoice"]
    bill.supplier_invoice.invoice_number = 'SUP "88"'
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(dropped)

    assert _settle(stub, bill) == [LINKED]

    assert dropped.hits == 1
    bills = _live([i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["Type"] == "ACCPAY"])
    assert len(bills) == 1, f"the bill was entered {len(bills)} times: {[b['InvoiceNumber'] for b in bills]}"
