"""The MapperService gRPC servicer: proto in, domain, proto out. No decisions are made here."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import grpc
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.grpc_errors import translate_errors, translate_stream_errors

from xerolink_mapper.adapters.proto_in import context_from_proto, transaction_from_proto
from xerolink_mapper.adapters.proto_out import error_result, outcome_to_proto
from xerolink_mapper.adapters.support_matrix_proto import support_matrix_response
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.problems import Problems

log = logging.getLogger(__name__)
SERVICE_NAME = mapper_pb2.DESCRIPTOR.services_by_name["MapperService"].full_name


def map_request(request: mapper_pb2.MapTransactionRequest) -> mapper_pb2.MapTransactionResponse:
    """One request through the domain; raises XerolinkError for bad input or configuration."""
    problems = Problems()
    context = context_from_proto(request.context, problems)
    transaction = transaction_from_proto(request.transaction, problems)
    problems.raise_if_any()
    assert transaction is not None  # a missing kind is a recorded problem
    return outcome_to_proto(map_transaction(transaction, context), context.profile)


def map_many(requests: Iterable[mapper_pb2.MapTransactionRequest]) -> list[mapper_pb2.MapResult]:
    """Each item answered on its own: one bad transaction never fails its neighbours."""
    results = []
    for index, request in enumerate(requests):
        try:
            results.append(mapper_pb2.MapResult(index=index, response=map_request(request)))
        except XerolinkError as err:
            results.append(error_result(index, err))
        except Exception:
            log.exception("unexpected error mapping item %d", index)
            results.append(
                error_result(
                    index,
                    XerolinkError(
                        ErrorCode.INTERNAL, "INTERNAL", "an internal error occurred; it was logged, retry later"
                    ),
                )
            )
    return results


class MapperServicer(mapper_grpc.MapperServiceServicer):
    @translate_errors
    def MapTransaction(
        self, request: mapper_pb2.MapTransactionRequest, context: grpc.ServicerContext
    ) -> mapper_pb2.MapTransactionResponse:
        return map_request(request)

    @translate_errors
    def BatchMapTransactions(
        self, request: mapper_pb2.BatchMapTransactionsRequest, context: grpc.ServicerContext
    ) -> mapper_pb2.BatchMapTransactionsResponse:
        return mapper_pb2.BatchMapTransactionsResponse(results=map_many(request.requests))

    @translate_stream_errors
    def StreamMapTransactions(
        self, request_iterator: Iterator[mapper_pb2.StreamMapTransactionsRequest], context: grpc.ServicerContext
    ) -> Iterator[mapper_pb2.StreamMapTransactionsResponse]:
        for message in request_iterator:
            yield mapper_pb2.StreamMapTransactionsResponse(results=map_many(message.requests))

    @translate_errors
    def ListSupportMatrix(
        self, request: mapper_pb2.ListSupportMatrixRequest, context: grpc.ServicerContext
    ) -> mapper_pb2.ListSupportMatrixResponse:
        return support_matrix_response(request.profile)


def register(server: grpc.Server) -> None:
    mapper_grpc.add_MapperServiceServicer_to_server(MapperServicer(), server)
