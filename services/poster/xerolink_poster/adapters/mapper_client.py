"""The mapper over gRPC. Errors come back as XerolinkError (the mapper's rich statuses keep
their reason, field violations and preconditions); an unreachable mapper is UNAVAILABLE, and so
is a mapper that refuses this poster's credentials (MAPPER_REFUSED_POSTER)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason
from xerolink_common.security import client_channel

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# The mapper refused the poster itself: passed on as they are, they would tell the poster's caller
# that its own credentials are wrong.
_POSTER_REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}

log = logging.getLogger(__name__)


class MapperClient:
    def __init__(self, target: str, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        # TLS, client certificate and caller token to the mapper as the environment configures them.
        self._channel = client_channel(target)
        self._stub = mapper_grpc.MapperServiceStub(self._channel)

    def map_one(
        self, transaction: transaction_pb2.Transaction, context: mapper_pb2.MappingContext
    ) -> mapper_pb2.MapTransactionResponse:
        try:
            response: mapper_pb2.MapTransactionResponse = self._stub.MapTransaction(
                mapper_pb2.MapTransactionRequest(transaction=transaction, context=context), timeout=self.timeout
            )
            return response
        except grpc.RpcError as err:
            raise self._translate(err) from err

    def map_many(
        self, transactions: Sequence[transaction_pb2.Transaction], context: mapper_pb2.MappingContext
    ) -> list[mapper_pb2.MapResult]:
        return self.map_each([(t, context) for t in transactions])

    def map_each(
        self, requests: Sequence[tuple[transaction_pb2.Transaction, mapper_pb2.MappingContext]]
    ) -> list[mapper_pb2.MapResult]:
        """One BatchMapTransactions call; each transaction with its own connection's context."""
        request = mapper_pb2.BatchMapTransactionsRequest(
            requests=[mapper_pb2.MapTransactionRequest(transaction=t, context=c) for t, c in requests]
        )
        try:
            response: mapper_pb2.BatchMapTransactionsResponse = self._stub.BatchMapTransactions(
                request, timeout=self.timeout
            )
        except grpc.RpcError as err:
            raise self._translate(err) from err
        return sorted(response.results, key=lambda r: r.index)

    def _translate(self, err: grpc.RpcError) -> XerolinkError:
        call: grpc.Call = err
        if call.code() in _RETRYABLE:
            return XerolinkError(
                ErrorCode.UNAVAILABLE,
                Reason.MAPPER_UNAVAILABLE,
                f"the mapper at {self.target} did not answer ({call.code().name}); nothing was recorded, "
                "retry the request shortly",
                retry_after_seconds=1.0,
            )
        if call.code() in _POSTER_REFUSED:
            refusal = from_rpc_error(err)
            log.error(
                "the mapper at %s refused this poster: %s %s: %s (check XEROLINK_CALLER_TOKEN or the poster's client "
                "certificate against the mapper's callers file and XEROLINK_MAPPER_ALLOWED_CALLERS)",
                self.target,
                call.code().name,
                refusal.reason,
                refusal.message,
            )
            return XerolinkError(
                ErrorCode.UNAVAILABLE,
                Reason.MAPPER_REFUSED_POSTER,
                f"the mapper at {self.target} refused this poster ({call.code().name} {refusal.reason}); nothing "
                "was recorded: the operator must fix the poster's credentials for the mapper, then retry",
            )
        return from_rpc_error(err)

    def close(self) -> None:
        self._channel.close()
