"""Two connections (two Actionstep organisations, or one registered twice under a new connection
id) on one Xero organisation. Nothing refuses the second connection, yet every name xerolink gives
Xero — the tag `[AS-<kind>-<record id>]` and the contact number `AS-<participant id>` — is unique
only within a connection, and the look-ups that follow them only pass over objects held by links
of the same connection."""

from __future__ import annotations

from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
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


def _settle(
    stub: poster_grpc.PosterServiceStub, connection_id: str, *transactions: transaction_pb2.Transaction
) -> list[int]:
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id=connection_id, transactions=list(transactions))
    ).results
    return [wait_settled(stub, r.posting.name, timeout=60).state for r in results]


def _xero_id(stub: poster_grpc.PosterServiceStub, connection_id: str, kind: int, record_id: int) -> str:
    link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id=connection_id, record=common_pb2.RecordKey(kind=kind, id=record_id))  # type: ignore[arg-type]
    ).link
    return str(link.xero_objects[0].xero_id)


def test_one_firms_client_never_receives_the_other_firms_bill(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Participant 501 of firm-2 (Quinn Legal) is found by ContactNumber AS-501, which firm-1's
    participant 501 (Harper & Cole) already carries: firm-2's bill is booked to Harper & Cole."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, "firm-1")
    register_emulated_connection(stub, "firm-2", emulator.base_url, org, samples.demo_context())
    first = samples.client_bill(9101)
    second = samples.client_bill(9201)
    second.header.participant.display_name = "Quinn Legal"
    assert _settle(stub, "firm-1", first) == [LINKED]

    states = _settle(stub, "firm-2", second)

    invoices = {i["InvoiceNumber"]: i for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    contacts = {c["ContactID"]: c["Name"] for c in xero_objects(emulator, org["tenant_id"], "Contacts")}
    if "INV-9201" in invoices:
        assert contacts[invoices["INV-9201"]["Contact"]["ContactID"]] != "Harper & Cole Pty Ltd", (
            "firm-2's bill for Quinn Legal was booked to firm-1's client Harper & Cole"
        )
    else:
        assert states == [LINKED], states


def test_a_lost_answer_never_adopts_the_other_connections_bill(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Both firms enter supplier bill record 9317 (SUP-88). Firm-2's answer is lost; its look-up
    finds both bills tagged `SUP-88 [AS-SI-9317]` and takes firm-1's (no link of firm-2 holds
    it). Firm-2's own bill stays in Xero unlinked, and firm-2's payments would pay firm-1's bill."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator, "firm-1")
    register_emulated_connection(stub, "firm-2", emulator.base_url, org, samples.demo_context())
    bill = samples.sample_transactions(9300)["supplier_invoice"]
    kind = common_pb2.TRANSACTION_KIND_SUPPLIER_INVOICE
    assert _settle(stub, "firm-1", bill) == [LINKED]
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(dropped)

    assert _settle(stub, "firm-2", bill) == [LINKED]

    assert dropped.hits == 1
    first, second = _xero_id(stub, "firm-1", kind, bill.header.id), _xero_id(stub, "firm-2", kind, bill.header.id)
    bills = [i["InvoiceID"] for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["Type"] == "ACCPAY"]
    assert first != second, f"both firms' records are linked to one Xero bill; Xero holds {bills}"
