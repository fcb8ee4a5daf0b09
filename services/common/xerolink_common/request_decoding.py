"""Bytes that are not the RPC's request message are the caller's mistake: INVALID_ARGUMENT with a
reason, not the INTERNAL "Exception deserializing request!" grpc answers by default.

So is a request field that arrives with a wire type its declaration cannot have: protobuf parsers
keep it as an unknown field and hand over the message without it, so the handler would act on a
request with that field unset (a message of another RPC, or of another contract, sent by
mistake). Field numbers the request does not declare stay accepted: a newer client may send them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError, Message

from xerolink_common.errors import ErrorCode, FieldViolation, XerolinkError
from xerolink_common.grpc_errors import to_status
from xerolink_common.reasons import Reason


class _Undecodable:
    """Stands in for a request that could not be decoded, until the handler refuses it."""

    def __init__(self, error: Exception, field: str = "request") -> None:
        self.error = error
        self.field = field


_WIRE_TYPE_NAMES = {0: "a varint", 1: "64 bits", 2: "length-delimited bytes", 3: "a group", 5: "32 bits"}


def mistyped_field(message: Message) -> tuple[str, str] | None:
    """(name, what arrived) of the first field the message declares that arrived with a wire type
    its declaration rules out, or None. Only the message's own fields: looking into every nested
    message would cost a walk of the whole request on every call."""
    declared = message.DESCRIPTOR.fields_by_number
    for unknown in unknown_fields.UnknownFieldSet(message):  # type: ignore[attr-defined]
        field = declared.get(unknown.field_number)
        if field is not None:
            sent = _WIRE_TYPE_NAMES.get(unknown.wire_type, f"wire type {unknown.wire_type}")
            return field.name, f"field {unknown.field_number} arrived as {sent}"
    return None


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            message = deserializer(data)
        except (DecodeError, ValueError, TypeError) as exc:
            return _Undecodable(exc)
        mistyped = mistyped_field(message) if isinstance(message, Message) else None
        if mistyped is not None:
            return _Undecodable(ValueError(mistyped[1]), mistyped[0])
        return message

    return decode


def _error(method: str, undecodable: _Undecodable) -> XerolinkError:
    rpc = method.rsplit("/", 1)[-1]
    return XerolinkError(
        ErrorCode.INVALID_ARGUMENT,
        Reason.UNDECODABLE_REQUEST,
        f"the request is not a valid {rpc} request message: send the protobuf message the contract defines",
        field_violations=[
            FieldViolation(undecodable.field, f"cannot be decoded as {rpc}Request ({undecodable.error})")
        ],
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
                context.abort_with_status(to_status(_error(method, request)))
            return request

        def checked_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            # Raised inside the servicer's own loop over the requests: its error translation turns
            # it into the rich status (an abort from here would be reported as INTERNAL).
            for request in requests:
                if isinstance(request, _Undecodable):
                    raise _error(method, request)
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
