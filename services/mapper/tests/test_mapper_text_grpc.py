"""Text refused at the door, through the real mapper server on loopback: the caller gets
INVALID_ARGUMENT with a google.rpc.BadRequest naming each field, in unary calls and per item."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_mapper import samples
from xerolink_mapper.entrypoints.server import start


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    running = start("127.0.0.1:0", max_workers=2)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield channel
    finally:
        channel.close()
        running.stop(0)


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> mapper_grpc.MapperServiceStub:
    return mapper_grpc.MapperServiceStub(channel)


def request(tx: transaction_pb2.Transaction) -> mapper_pb2.MapTransactionRequest:
    return mapper_pb2.MapTransactionRequest(transaction=tx, context=samples.demo_context())


def bad_request_of(err: grpc.RpcError) -> error_details_pb2.BadRequest:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad
    raise AssertionError(f"no BadRequest in {status}")


def hostile_bill() -> transaction_pb2.Transaction:
    tx = samples.client_bill(8101)
    tx.header.participant.display_name = "\u200b\u200b"
    tx.header.participant.tax_number = "5" * 51
    tx.header.reference = "AS-8101\x00"
    tx.client_bill.lines[0].description = "Attendance\x1b[31m"
    return tx


def test_blank_names_control_characters_and_long_text_are_invalid_argument_naming_each_field(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.MapTransaction(request(hostile_bill()), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = {v.field: v.description for v in bad_request_of(caught.value).field_violations}
    assert set(violations) == {
        "transaction.header.reference",
        "transaction.header.participant.display_name",
        "transaction.header.participant.tax_number",
        "transaction.client_bill.lines[0].description",
    }
    assert "U+0000" in violations["transaction.header.reference"]
    assert "whitespace or invisible" in violations["transaction.header.participant.display_name"]
    assert "at most 50" in violations["transaction.header.participant.tax_number"]
    assert "U+001B" in violations["transaction.client_bill.lines[0].description"]


def test_a_batch_refuses_the_bad_item_alone(stub: mapper_grpc.MapperServiceStub) -> None:
    good = request(samples.client_bill(8102))
    response = stub.BatchMapTransactions(
        mapper_pb2.BatchMapTransactionsRequest(requests=[good, request(hostile_bill())]), timeout=30
    )
    first, second = response.results
    assert first.WhichOneof("outcome") == "response"
    assert second.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "transaction.header.participant.display_name" in [v.field for v in second.error.field_violations]


def test_text_that_is_not_utf_8_never_reaches_the_mapping(channel: grpc.Channel) -> None:
    """A lone surrogate cannot arrive: protobuf refuses a string field that is not UTF-8."""
    tx = samples.client_bill(8103)
    tx.header.reference = "SURROGATE"
    wire = request(tx).SerializeToString().replace(b"SURROGATE", b"SURR\xed\xa0\x80TE")
    call = channel.unary_unary("/xerolink.mapper.v1.MapperService/MapTransaction")
    with pytest.raises(grpc.RpcError) as caught:
        call(wire, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
