"""A page token names the connection it was issued on: used on another connection with the same
filters it is refused (INVALID_ARGUMENT naming page_token), never read as a position in the other
connection's list, where it would silently skip or repeat records."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.poster.v1 import unlink_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled

CONNECTIONS = ("firm-a", "firm-b")


def _post_bill(stub: poster_grpc.PosterServiceStub, connection_id: str, bill: transaction_pb2.Transaction) -> None:
    posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=bill))
    assert wait_settled(stub, posting.posting.name).state == poster_pb2.LINK_STATE_LINKED


def _refused_naming_the_token(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    err = from_rpc_error(raised.value)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert [v.field for v in err.field_violations] == ["page_token"]


def test_list_links_and_list_orphans_tokens_of_one_connection_are_refused_on_another(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    for offset, connection_id in enumerate(CONNECTIONS):
        connect(stub, emulator, connection_id)
        bills = [samples.sample_transactions(48_000 + 1000 * offset + 10 * i)["client_bill"] for i in range(3)]
        for bill in bills:
            _post_bill(stub, connection_id, bill)
        records = [common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=b.header.id) for b in bills]
        stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id=connection_id, records=records, confirm=True))

    links = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-a", page_size=1))
    orphans = stub.ListOrphans(unlink_pb2.ListOrphansRequest(connection_id="firm-a", page_size=1))
    assert links.next_page_token and orphans.next_page_token

    _refused_naming_the_token(
        lambda: stub.ListLinks(
            poster_pb2.ListLinksRequest(connection_id="firm-b", page_size=1, page_token=links.next_page_token)
        )
    )
    _refused_naming_the_token(
        lambda: stub.ListOrphans(
            unlink_pb2.ListOrphansRequest(connection_id="firm-b", page_size=1, page_token=orphans.next_page_token)
        )
    )
    # On its own connection each token still pages on.
    second = stub.ListLinks(
        poster_pb2.ListLinksRequest(connection_id="firm-a", page_size=1, page_token=links.next_page_token)
    )
    assert second.links and second.links[0].name != links.links[0].name
