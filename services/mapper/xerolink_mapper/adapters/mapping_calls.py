"""The mapping calls of the service on protobuf messages, free of any transport: one request, or
many answered item by item. Used by the gRPC servicer and by stream worker processes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import ErrorCode, FieldViolation, XerolinkError, invalid_argument
from xerolink_common.reasons import Reason

from xerolink_mapper.adapters.proto_in import context_from_proto, transaction_from_proto
from xerolink_mapper.adapters.proto_out import error_result, fill_response, outcome_to_proto
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import MappingContext, Profile
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.xero import MapOutcome

log = logging.getLogger(__name__)


class ContextCache:
    """Domain contexts by their wire bytes. A connection sends the same context with thousands of
    transactions; converting it (chart, maps) costs more than mapping a transaction."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: dict[bytes, MappingContext] = {}

    def get(self, message: mapper_pb2.MappingContext) -> MappingContext:
        key = message.SerializeToString()
        context = self._entries.get(key)
        if context is None:
            problems = Problems()
            context = context_from_proto(message, problems)
            problems.raise_if_any()
            if len(self._entries) >= self._size:
                self._entries = {}  # rebinding is atomic for concurrent readers; contexts rarely churn
            self._entries[key] = context
        return context


_CONTEXTS = ContextCache()


# The batch's own context once resolved: a domain context, or the error converting it gave.
Shared = MappingContext | XerolinkError | None


def _map(request: mapper_pb2.MapTransactionRequest, shared: Shared) -> tuple[MapOutcome, Profile]:
    if shared is None and not request.HasField("context"):
        # Not sent at all is the caller's mistake; one sent without a field is a connection not ready.
        raise invalid_argument(
            Reason.INVALID_TRANSACTION,
            "The request has no context: send the connection's MappingContext with it, or once for the whole batch.",
            [FieldViolation("context", "is required unless the batch or stream message sets context")],
        )
    if shared is None or request.HasField("context"):
        context = _CONTEXTS.get(request.context)
    elif isinstance(shared, XerolinkError):
        raise shared
    else:
        context = shared
    problems = Problems()
    transaction = transaction_from_proto(request.transaction, problems)
    problems.raise_if_any()
    assert transaction is not None  # a missing kind is a recorded problem
    return map_transaction(transaction, context), context.profile


def map_request(request: mapper_pb2.MapTransactionRequest) -> mapper_pb2.MapTransactionResponse:
    """One request through the domain; raises XerolinkError for bad input or configuration."""
    return outcome_to_proto(*_map(request, None))


def map_many(
    requests: Iterable[mapper_pb2.MapTransactionRequest],
    shared_message: mapper_pb2.MappingContext | None,
    results: Any,
) -> None:
    """Appends one MapResult per request to `results` (a repeated field): each item is answered on
    its own, so one bad transaction never fails its neighbours. `shared_message` is the batch's
    context, used by the requests that have none of their own."""
    shared: Shared = None
    if shared_message is not None:
        try:
            shared = _CONTEXTS.get(shared_message)
        except XerolinkError as err:
            shared = err
    for index, request in enumerate(requests):
        try:
            outcome, profile = _map(request, shared)
        except XerolinkError as err:
            results.append(error_result(index, err))
            continue
        except Exception:
            log.exception("unexpected error mapping item %d", index)
            internal = XerolinkError(
                ErrorCode.INTERNAL, Reason.INTERNAL, "an internal error occurred; it was logged, retry later"
            )
            results.append(error_result(index, internal))
            continue
        fill_response(results.add(index=index).response, outcome, profile)
