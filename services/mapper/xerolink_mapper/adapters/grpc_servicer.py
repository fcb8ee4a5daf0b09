"""The MapperService gRPC servicer: proto in, domain, proto out. No decisions are made here.

The handlers are registered by hand rather than with the generated add_..._to_server so that
StreamMapTransactions works on wire bytes: a stream message is parsed, mapped and serialized
wherever it is mapped (this thread or a worker process, see stream_mapping)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.grpc_errors import translate_errors, translate_stream_errors
from xerolink_common.grpc_server import Registration

from xerolink_mapper.adapters.mapping_calls import map_many, map_request
from xerolink_mapper.adapters.stream_mapping import StreamMapper
from xerolink_mapper.adapters.support_matrix_proto import support_matrix_response

SERVICE_NAME = mapper_pb2.DESCRIPTOR.services_by_name["MapperService"].full_name


class MapperServicer:
    def __init__(self, stream_mapper: StreamMapper | None = None) -> None:
        self.stream_mapper = stream_mapper or StreamMapper()

    @translate_errors
    def MapTransaction(
        self, request: mapper_pb2.MapTransactionRequest, context: grpc.ServicerContext
    ) -> mapper_pb2.MapTransactionResponse:
        return map_request(request)

    @translate_errors
    def BatchMapTransactions(
        self, request: mapper_pb2.BatchMapTransactionsRequest, context: grpc.ServicerContext
    ) -> mapper_pb2.BatchMapTransactionsResponse:
        response = mapper_pb2.BatchMapTransactionsResponse()
        map_many(request.requests, request.context if request.HasField("context") else None, response.results)
        return response

    @translate_stream_errors
    def StreamMapTransactions(
        self, request_iterator: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        yield from self.stream_mapper.responses(request_iterator)

    @translate_errors
    def ListSupportMatrix(
        self, request: mapper_pb2.ListSupportMatrixRequest, context: grpc.ServicerContext
    ) -> mapper_pb2.ListSupportMatrixResponse:
        return support_matrix_response(request.profile)


def _unary(method: object, request: type, response: type) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        method,
        request_deserializer=request.FromString,  # type: ignore[attr-defined]
        response_serializer=response.SerializeToString,  # type: ignore[attr-defined]
    )


def registration(servicer: MapperServicer) -> grpc.GenericRpcHandler:
    handlers = {
        "MapTransaction": _unary(
            servicer.MapTransaction, mapper_pb2.MapTransactionRequest, mapper_pb2.MapTransactionResponse
        ),
        "BatchMapTransactions": _unary(
            servicer.BatchMapTransactions,
            mapper_pb2.BatchMapTransactionsRequest,
            mapper_pb2.BatchMapTransactionsResponse,
        ),
        # Bytes in, bytes out: no (de)serializer.
        "StreamMapTransactions": grpc.stream_stream_rpc_method_handler(servicer.StreamMapTransactions),
        "ListSupportMatrix": _unary(
            servicer.ListSupportMatrix, mapper_pb2.ListSupportMatrixRequest, mapper_pb2.ListSupportMatrixResponse
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def registrar(servicer: MapperServicer) -> Registration:
    def register(server: grpc.Server) -> None:
        server.add_generic_rpc_handlers((registration(servicer),))

    return register


def register(server: grpc.Server) -> None:
    """Registers the service with streams mapped in the request thread."""
    server.add_generic_rpc_handlers((registration(MapperServicer()),))
