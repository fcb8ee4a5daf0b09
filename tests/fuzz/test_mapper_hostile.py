"""Every RPC of the mapper under malformed and hostile requests: each gets a clear gRPC error
(INVALID_ARGUMENT with field violations, FAILED_PRECONDITION or NOT_FOUND, always with a reason),
never INTERNAL or UNKNOWN; in batches and streams each item carries that error itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as pb
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_mapper import samples

from tests.fuzz.hostile import (
    BROKEN_ELSEWHERE,
    call_raw,
    clear_error,
    clear_item_error,
    expect_error,
    hostile_transactions,
    wrong_wire_type_payloads,
)
from tests.fuzz.strategies import rough_transaction

MAPPER = pb.DESCRIPTOR.services_by_name["MapperService"]
HOSTILE = {name: tx for name, tx in hostile_transactions().items() if name not in BROKEN_ELSEWHERE}


@pytest.fixture(scope="module")
def channel(mapper_target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(mapper_target) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> mapper_grpc.MapperServiceStub:
    return mapper_grpc.MapperServiceStub(channel)


def _request(tx: transaction_pb2.Transaction, context: pb.MappingContext | None = None) -> pb.MapTransactionRequest:
    return pb.MapTransactionRequest(transaction=tx, context=context or samples.demo_context())


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_transaction_gets_a_clear_error(stub: mapper_grpc.MapperServiceStub, case: str) -> None:
    expect_error(lambda: stub.MapTransaction(_request(HOSTILE[case]), timeout=30))


def test_every_item_of_a_hostile_batch_and_stream_gets_its_own_clear_error(stub: mapper_grpc.MapperServiceStub) -> None:
    requests = [pb.MapTransactionRequest(transaction=tx) for tx in HOSTILE.values()]
    batch = stub.BatchMapTransactions(
        pb.BatchMapTransactionsRequest(requests=requests, context=samples.demo_context()), timeout=60
    )
    streamed = [
        result
        for response in stub.StreamMapTransactions(
            iter([pb.StreamMapTransactionsRequest(requests=requests, context=samples.demo_context())]), timeout=60
        )
        for result in response.results
    ]
    for results in (batch.results, streamed):
        assert sorted(r.index for r in results) == list(range(len(requests)))
        for result in results:
            assert result.WhichOneof("outcome") == "error", f"item {result.index} was mapped"
            clear_item_error(result.error)


def _context(**changes: int) -> pb.MappingContext:
    context = samples.demo_context()
    for name, value in changes.items():
        setattr(context, name, value)
    return context


@pytest.mark.parametrize(
    "context",
    [_context(profile=7), _context(profile=-1), _context(accounting_method=42)],
    ids=["unknown profile", "negative profile", "unknown accounting method"],
)
def test_unknown_enum_numbers_in_the_context_are_refused(
    stub: mapper_grpc.MapperServiceStub, context: pb.MappingContext
) -> None:
    err = expect_error(lambda: stub.MapTransaction(_request(samples.client_bill(), context), timeout=30))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT


def test_an_empty_context_is_refused(stub: mapper_grpc.MapperServiceStub) -> None:
    expect_error(lambda: stub.MapTransaction(_request(samples.client_bill(), pb.MappingContext()), timeout=30))


@pytest.mark.parametrize("profile", [3, 99, -1, 2**31 - 1])
def test_an_unknown_profile_is_refused_by_the_support_matrix(stub: mapper_grpc.MapperServiceStub, profile: int) -> None:
    err = expect_error(lambda: stub.ListSupportMatrix(pb.ListSupportMatrixRequest(profile=profile), timeout=10))  # type: ignore[arg-type]
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("method", sorted(MAPPER.methods_by_name))
def test_fields_of_the_wrong_wire_type_are_invalid_arguments(channel: grpc.Channel, method: str) -> None:
    descriptor = MAPPER.methods_by_name[method]
    for payload in wrong_wire_type_payloads(descriptor.input_type):
        err = expect_error(lambda p=payload: call_raw(channel, descriptor, p))  # type: ignore[misc]
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT, payload
        if descriptor.client_streaming:  # parsed by the stream's own handler (docs/mapper.md)
            assert err.reason == "MALFORMED_MESSAGE", payload
        else:
            assert err.reason == "UNDECODABLE_REQUEST", payload
            assert err.fields == (descriptor.input_type.fields_by_number[payload[0] >> 3].name,), payload


# Which tests send each mapper RPC named hostile field values. The undecodable and wrong-wire-type
# tests cover every RPC from the descriptor, so they do not count.
DEDICATED: dict[str, tuple[Callable[..., None], ...]] = {
    "MapTransaction": (
        test_a_hostile_transaction_gets_a_clear_error,
        test_unknown_enum_numbers_in_the_context_are_refused,
        test_an_empty_context_is_refused,
    ),
    "BatchMapTransactions": (test_every_item_of_a_hostile_batch_and_stream_gets_its_own_clear_error,),
    "StreamMapTransactions": (test_every_item_of_a_hostile_batch_and_stream_gets_its_own_clear_error,),
    "ListSupportMatrix": (test_an_unknown_profile_is_refused_by_the_support_matrix,),
}


def test_every_mapper_rpc_gets_named_hostile_requests() -> None:
    """A new RPC in the contract fails here until hostile cases for it are written."""
    assert set(DEDICATED) == set(MAPPER.methods_by_name), "an RPC without named hostile cases, or a stale entry"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tx=rough_transaction())
def test_roughed_up_transactions_are_mapped_or_refused_clearly(
    stub: mapper_grpc.MapperServiceStub, tx: transaction_pb2.Transaction
) -> None:
    try:
        response = stub.MapTransaction(_request(tx), timeout=30)
    except grpc.RpcError as err:
        clear_error(err)
        return
    assert response.decision.reason_code


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tx=rough_transaction(defects=1))
def test_transactions_with_a_defect_are_always_refused(
    stub: mapper_grpc.MapperServiceStub, tx: transaction_pb2.Transaction
) -> None:
    expect_error(lambda: stub.MapTransaction(_request(tx), timeout=30))
