"""Two connections (two Actionstep organisations, or one registered twice under a new connection
id) on one Xero organisation. Every name xerolink gives Xero — the tag `[AS-<kind>-<record id>]`
and the contact number `AS-<participant id>` — is unique only within a connection: a second
connection's participant 501 took the first's contact AS-501 (its bill on another firm's client),
and its look-ups adopted the first's objects. A second live connection to an organisation is
therefore refused; once the first is disconnected, the organisation can be connected again."""

from __future__ import annotations

import grpc
import pytest
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.poster.v1 import connection_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples

from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, stub_for, wait_settled, xero_objects

LINKED = poster_pb2.LINK_STATE_LINKED


def _settle(
    stub: poster_grpc.PosterServiceStub, connection_id: str, *transactions: transaction_pb2.Transaction
) -> list[int]:
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id=connection_id, transactions=list(transactions))
    ).results
    return [wait_settled(stub, r.posting.name, timeout=60).state for r in results]


def test_a_second_connection_to_one_organisation_is_refused_until_the_first_is_disconnected(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, "firm-1")
    assert _settle(stub, "firm-1", samples.client_bill(9101)) == [LINKED]

    with pytest.raises(grpc.RpcError) as refused:
        register_emulated_connection(stub, "firm-2", emulator.base_url, org, samples.demo_context())

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already connected as connection 'firm-1'" in str(refused.value.details())
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-2"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    stub.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-1"))
    register_emulated_connection(stub, "firm-2", emulator.base_url, org, samples.demo_context())
    second = samples.client_bill(9201)
    second.header.participant.display_name = "Quinn Legal"
    assert _settle(stub, "firm-2", second) == [LINKED]
    assert {i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices")} == {
        "INV-9101",
        "INV-9201",
    }
