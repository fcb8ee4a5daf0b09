"""Exactly once as real Xero behaves, with the Actionstep record as the identity of everything
xerolink creates: equal bodies of two records never collide, look-ups use fields Xero keeps,
an answer that proves nothing is looked up (never failed), two participants never share a
contact, and an overpayment refund pays the overpayment's own id. Each test failed before the
fix it names, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.contract.xero_parameters import undeclared_requests
from tests.fixtures.lookups import bill_and_credit, credit_application
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
APPLICATION = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION


def _post(stub: poster_grpc.PosterServiceStub, *transactions: transaction_pb2.Transaction) -> list[poster_pb2.Posting]:
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=list(transactions))
    ).results
    return [r.posting for r in results]


def _settle(stub: poster_grpc.PosterServiceStub, *transactions: transaction_pb2.Transaction) -> list[int]:
    return [wait_settled(stub, p.name, timeout=40).state for p in _post(stub, *transactions)]


def _link(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> poster_pb2.Link:
    link: poster_pb2.Link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=kind, id=record_id))  # type: ignore[arg-type]
    ).link
    return link


def _allocations(emulator: Any, tenant: str) -> list[dict[str, Any]]:
    [note] = xero_objects(emulator, tenant, "CreditNotes")
    return [a for a in note.get("Allocations") or [] if not a.get("IsDeleted")]


def test_two_equal_applications_of_one_credit_note_are_two_allocations(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Defect: the Idempotency-Key hashed the body alone, so the second application of 50.00
    carried the first's key; Xero replayed the first allocation and 50.00 was lost."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bill, credit = bill_and_credit(4000)
    assert _settle(stub, bill, credit) == [LINKED, LINKED]

    assert _settle(stub, credit_application(4101, 4000, 5000)) == [LINKED]
    assert _settle(stub, credit_application(4102, 4000, 5000)) == [LINKED]

    allocations = _allocations(emulator, org["tenant_id"])
    assert len(allocations) == 2, "one application was lost"
    ids = {_link(stub, APPLICATION, r).xero_objects[0].xero_id for r in (4101, 4102)}
    assert ids == {a["AllocationID"] for a in allocations}
    [note] = xero_objects(emulator, org["tenant_id"], "CreditNotes")
    assert str(note["RemainingCredit"]) in ("10", "10.0", "10.00")


def test_a_lost_answer_to_the_second_equal_allocation_creates_it_and_never_adopts_the_first(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Allocations carry no reference: the look-up after the lost answer must not take the first
    application's allocation (another link holds it) for the second's; it finds the one the
    lost call made, or creates it when the call made none."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    bill, credit = bill_and_credit(4200)
    assert _settle(stub, bill, credit) == [LINKED, LINKED]
    assert _settle(stub, credit_application(4301, 4200, 5000)) == [LINKED]
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Allocations")
    emulator.faults.add(dropped)

    assert _settle(stub, credit_application(4302, 4200, 5000)) == [LINKED]

    assert dropped.hits == 1
    allocations = _allocations(emulator, org["tenant_id"])
    assert len(allocations) == 2, f"lost or duplicated: {allocations}"
    ids = [_link(stub, APPLICATION, r).xero_objects[0].xero_id for r in (4301, 4302)]
    assert len(set(ids)) == 2 and set(ids) == {a["AllocationID"] for a in allocations}


def test_a_supplier_bill_whose_answer_was_lost_is_found_by_a_field_xero_keeps(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Defect: bills were looked up by Reference, which Xero drops on ACCPAY ("ACCREC only" in its
    OpenAPI). Once the Idempotency-Key window had passed, a lost answer re-created the bill."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    bill = samples.sample_transactions(5500)["supplier_invoice"]
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(dropped)

    assert _settle(stub, bill) == [LINKED]

    assert dropped.hits == 1
    bills = [i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["Type"] == "ACCPAY"]
    assert len(bills) == 1, f"the bill was created {len(bills)} times"
    link = _link(stub, common_pb2.TRANSACTION_KIND_SUPPLIER_INVOICE, bill.header.id)
    assert link.xero_objects[0].xero_id == bills[0]["InvoiceID"]
    # The supplier's number stays readable, followed by the record's tag.
    assert bills[0]["InvoiceNumber"].startswith("SUP-88 [AS-SI-")


@pytest.mark.parametrize(
    "garbled",
    [
        pytest.param(b'{"Status":"OK","Invoices":["garbled"]}', id="elements-mangled"),
        pytest.param(b'{"Status":"OK"}', id="no-list"),
        pytest.param(b"<html><body>Bad gateway</body></html>", id="html-page"),
    ],
)
def test_a_garbled_look_up_after_a_lost_answer_never_creates_the_bill_again(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, garbled: bytes
) -> None:
    """Defect: a 200 to the look-up that listed no invoices (mangled on the way) was read as "not
    in Xero", and once the Idempotency-Key window had passed the bill was created a second time.
    Xero answers a look-up that finds nothing with its list empty ("Invoices": []), so an answer
    without the list proves nothing."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=2.5)))
    _, org = connect(stub, emulator)
    bill = samples.sample_transactions(5600)["supplier_invoice"]
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(dropped)
    mangled: list[str] = []
    handle = emulator.gateway.handle

    def garble_first_look_up(request: Request) -> Response:
        if request.method == "GET" and request.path.endswith("/Invoices") and request.param("where") and not mangled:
            mangled.append(request.path)
            time.sleep(0.8)  # past the Idempotency-Key window: only the look-up stands between
            return Response(200, garbled, {"Content-Type": "application/json"})
        return handle(request)

    emulator.gateway.handle = garble_first_look_up  # type: ignore[method-assign]

    assert _settle(stub, bill) == [LINKED]

    assert dropped.hits == 1 and len(mangled) == 1
    bills = [i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["Type"] == "ACCPAY"]
    assert len(bills) == 1, f"the bill was created {len(bills)} times"
    link = _link(stub, common_pb2.TRANSACTION_KIND_SUPPLIER_INVOICE, bill.header.id)
    assert link.xero_objects[0].xero_id == bills[0]["InvoiceID"]


def test_a_garbled_answer_to_a_batch_is_looked_up_and_nothing_is_failed_or_created_twice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Defect: a 200 answer that could not be matched element by element failed every element
    with "Xero refused it … post it again"; doing as told turned 3 payments into 6."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    assert _settle(stub, samples.client_bill(6001)) == [LINKED]
    payments = [
        transaction_pb2.Transaction(
            header=samples.header(record_id),
            client_bill_payment=billing_pb2.ClientBillPayment(bill_id=6001, amount=samples.money(10000)),
        )
        for record_id in (6101, 6102, 6103)
    ]
    garbled = FaultRule("garble_after_commit", count=1, methods=("PUT",), path_contains="Payments")
    emulator.faults.add(garbled)

    assert _settle(stub, *payments) == [LINKED] * 3

    assert garbled.hits == 1
    made = [p for p in xero_objects(emulator, org["tenant_id"], "Payments") if p.get("Status") != "DELETED"]
    assert len(made) == 3
    kind = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
    assert {_link(stub, kind, r).xero_objects[0].xero_id for r in (6101, 6102, 6103)} == {p["PaymentID"] for p in made}


def test_two_participants_with_one_name_never_share_a_contact(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Defect: participant 777's contact creation was refused for the name 501's contact holds,
    and the poster then took 501's contact by name: 777's bill sat on another client's account."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    first = samples.client_bill(7001)
    first.header.participant.display_name = "Jordan Lee"
    assert _settle(stub, first) == [LINKED]
    second = samples.client_bill(7002)
    second.header.participant.participant_id = 777
    second.header.participant.display_name = "Jordan Lee"

    assert _settle(stub, second) == [LINKED]

    contacts = {c["ContactNumber"]: c for c in xero_objects(emulator, org["tenant_id"], "Contacts")}
    assert sorted(contacts) == ["AS-501", "AS-777"]
    assert contacts["AS-501"]["Name"] == "Jordan Lee"
    assert contacts["AS-777"]["Name"] == "Jordan Lee (AS-777)"
    invoices = {i["InvoiceNumber"]: i for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    assert invoices["INV-7001"]["Contact"]["ContactID"] == contacts["AS-501"]["ContactID"]
    assert invoices["INV-7002"]["Contact"]["ContactID"] == contacts["AS-777"]["ContactID"]


def test_a_contact_the_firm_numbered_is_adopted_and_one_it_did_not_is_never_taken_by_name(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Clients entered in Xero before connecting: the firm adopts one by giving it the
    participant's number (AS-<id>); a contact with the same name and no number stays its own."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    headers = {"Authorization": f"Bearer {org['access_token']}", "xero-tenant-id": org["tenant_id"]}
    made = httpx.put(
        f"{emulator.base_url}/api.xro/2.0/Contacts",
        json={"Contacts": [{"Name": "Harper and Cole", "ContactNumber": "AS-501"}, {"Name": "Ng Pty Ltd"}]},
        headers=headers,
    ).json()["Contacts"]
    adopted, same_name = samples.client_bill(7101), samples.client_bill(7102)
    same_name.header.participant.participant_id = 778
    same_name.header.participant.display_name = "Ng Pty Ltd"

    assert _settle(stub, adopted, same_name) == [LINKED, LINKED]

    invoices = {i["InvoiceNumber"]: i for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    assert invoices["INV-7101"]["Contact"]["ContactID"] == made[0]["ContactID"]
    assert invoices["INV-7102"]["Contact"]["ContactID"] != made[1]["ContactID"]


def test_an_overpayment_refund_pays_the_overpayment_xero_made_not_the_bank_transaction(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Defect: the refund named the RECEIVE-OVERPAYMENT bank transaction's id as the overpayment's;
    Xero gives them different ids (BankTransaction.OverpaymentID), answered "could not be found",
    and the 25.00 received was never refunded."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
    refund = samples.sample_transactions(8000)["overpayment_refund"]

    assert _settle(stub, refund) == [LINKED]

    [overpayment] = xero_objects(emulator, org["tenant_id"], "Overpayments")
    [transaction] = xero_objects(emulator, org["tenant_id"], "BankTransactions")
    assert overpayment["OverpaymentID"] != transaction["BankTransactionID"]
    refunds = [p for p in xero_objects(emulator, org["tenant_id"], "Payments") if p.get("Status") != "DELETED"]
    assert [p["Overpayment"]["OverpaymentID"] for p in refunds] == [overpayment["OverpaymentID"]]
    link = _link(stub, common_pb2.TRANSACTION_KIND_OVERPAYMENT_REFUND, refund.header.id)
    assert {o.xero_id for o in link.xero_objects} >= {overpayment["OverpaymentID"], transaction["BankTransactionID"]}


def test_every_call_the_poster_makes_carries_only_parameters_xero_declares(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Defect: summarizeErrors went to PUT BankTransfers, which Xero's OpenAPI does not declare.
    Every kind the extended profile posts, with corrections' look-ups, checked request by request
    against the description."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
    kinds = samples.sample_transactions(9000)
    posted = [
        kinds[name]
        for name in (
            "client_bill",
            "client_bill_payment",
            "credit_note",
            "credit_note_application",
            "trust_receipt",
            "trust_transfer",
            "trust_journal",
            "supplier_invoice",
            "supplier_credit",
            "office_bank_transfer",
            "general_journal",
            "overpayment_refund",
        )
    ]
    states = _settle(stub, *posted)
    assert states == [LINKED] * len(posted), states
    requests = emulator.state.requests.entries(org["tenant_id"])
    assert {r.path.split("/")[-1] for r in requests} >= {"BankTransfers", "Invoices", "Contacts"}
    assert undeclared_requests(requests) == []
