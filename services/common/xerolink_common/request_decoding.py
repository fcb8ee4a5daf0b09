"""Bytes that are not the RPC's request message are the caller's mistake: INVALID_ARGUMENT with a
reason, not the INTERNAL "Exception deserializing request!" grpc answers by default."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from xerolink_common.errors import ErrorCode, FieldViolation, XerolinkError
from xerolink_common.grpc_errors import to_status


class _Undecodable:
    """Stands in for a request that could not be decoded, until the handler refuses it."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, ValueError, TypeError) as exc:
            return _Undecodable(exc)

    return decode


def _error(method: str, error: Exception) -> XerolinkError:
    rpc = method.rsplit("/", 1)[-1]
    return XerolinkError(
        ErrorCode.INVALID_ARGUMENT,
        "UNDECODABLE_REQUEST",
        f"the request is not a valid {rpc} request message: send the protobuf message the contract defines",
        field_violations=[FieldViolation("request", f"cannot be decoded as {rpc}Request ({error})")],
    )


class DecodeGuard(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = str(details.method)
        decode = _lenient(handler.request_deserializer)

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                context.abort_with_status(to_status(_error(method, request.error)))
            return request

        def checked_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            # Raised inside the servicer's own loop over the requests: its error translation turns
            # it into the rich status (an abort from here would be reported as INTERNAL).
            for request in requests:
                if isinstance(request, _Undecodable):
                    raise _error(method, request.error)
                yield request

        if handler.unary_unary:
            inner_uu = handler.unary_unary
            return grpc.unary_unary_rpc_method_handler(
                lambda r, c: inner_uu(checked(r, c), c), decode, handler.response_serializer
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream
            return grpc.unary_stream_rpc_method_handler(
                lambda r, c: inner_us(checked(r, c), c), decode, handler.response_serializer
            )
        if handler.stream_unary:
            inner_su = handler.stream_unary
            return grpc.stream_unary_rpc_method_handler(
                lambda rs, c: inner_su(checked_stream(rs, c), c), decode, handler.response_serializer
            )
        inner_ss = handler.stream_stream
        return grpc.stream_stream_rpc_method_handler(
            lambda rs, c: inner_ss(checked_stream(rs, c), c), decode, handler.response_serializer
        )
