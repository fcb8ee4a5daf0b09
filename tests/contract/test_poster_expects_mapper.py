"""Consumer-driven contracts: every field the poster reads from the mapper, verified against a
running mapper. A mapper change that would break the poster fails here before it ships."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import json_format
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc

from tests.contract.pact import Pact, check, load_pacts, to_dict

PACTS = load_pacts("poster-expects-mapper")


@pytest.fixture(scope="module")
def mapper(mapper_process_target: str) -> Iterator[mapper_grpc.MapperServiceStub]:
    with grpc.insecure_channel(mapper_process_target) as channel:
        yield mapper_grpc.MapperServiceStub(channel)


@pytest.mark.parametrize("pact", PACTS, ids=[p.name for p in PACTS])
def test_mapper_honours_the_posters_pact(pact: Pact, mapper: mapper_grpc.MapperServiceStub) -> None:
    assert (pact.consumer, pact.provider, pact.rpc) == ("poster", "mapper", "MapTransaction")
    request = json_format.ParseDict(pact.request, mapper_pb2.MapTransactionRequest())
    response = mapper.MapTransaction(request, timeout=10)
    problems = check(to_dict(response), pact.expect)
    assert not problems, f"{pact.description}\n" + "\n".join(problems)


def test_the_batch_rpc_honours_the_same_pacts(mapper: mapper_grpc.MapperServiceStub) -> None:
    """The poster maps in batches too; each item must read the same as the unary answer."""
    requests = [json_format.ParseDict(p.request, mapper_pb2.MapTransactionRequest()) for p in PACTS]
    results = mapper.BatchMapTransactions(mapper_pb2.BatchMapTransactionsRequest(requests=requests), timeout=10)
    assert [r.index for r in results.results] == list(range(len(PACTS)))
    for pact, result in zip(PACTS, results.results, strict=True):
        assert result.WhichOneof("outcome") == "response", f"{pact.name}: {result.error}"
        problems = check(to_dict(result.response), pact.expect)
        assert not problems, f"{pact.name} (batch)\n" + "\n".join(problems)
