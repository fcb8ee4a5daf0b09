"""Turns XerolinkError into gRPC rich statuses (AIP-193) and back."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from xerolink_common.errors import (
    ErrorCode,
    FieldViolation,
    PreconditionViolation,
    XerolinkError,
    bounded,
)
from xerolink_common.reasons import Reason

DOMAIN = "xerolink"
log = logging.getLogger(__name__)


def to_status(err: XerolinkError) -> grpc.Status:
    err = bounded(err)
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata))
    details.append(info)
    if err.field_violations:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in err.field_violations
                ]
            )
        )
        details.append(bad)
    if err.precondition_violations:
        pre = any_pb2.Any()
        pre.Pack(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in err.precondition_violations
                ]
            )
        )
        details.append(pre)
    if err.retry_after_seconds is not None:
        retry = any_pb2.Any()
        seconds = int(err.retry_after_seconds)
        nanos = int((err.retry_after_seconds - seconds) * 1_000_000_000)
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)))
        details.append(retry)
    status = status_pb2.Status(code=err.code.value, message=err.message, details=details)
    return rpc_status.to_status(status)


def from_rpc_error(error: grpc.RpcError) -> XerolinkError:
    """Reads a rich status back (clients and tests); unknown shapes keep code and message."""
    call: Any = error
    status = rpc_status.from_call(call)
    code = ErrorCode(call.code().value[0]) if call.code().value[0] in {c.value for c in ErrorCode} else None
    err = XerolinkError(code or ErrorCode.INTERNAL, Reason.UNKNOWN, call.details() or "")
    if status is None:
        return err
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            err.reason = info.reason
            err.metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            err.field_violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            pre = error_details_pb2.PreconditionFailure()
            detail.Unpack(pre)
            err.precondition_violations = [
                PreconditionViolation(v.type, v.subject, v.description) for v in pre.violations
            ]
    return err


F = TypeVar("F", bound=Callable[..., Any])


def _explained(exc: Exception) -> XerolinkError | None:
    """What an error of a layer this module does not know means to a caller, when it says so
    (`as_xerolink_error`): the poster's registry commit that went unconfirmed, say."""
    explain = getattr(exc, "as_xerolink_error", None)
    explained = explain() if callable(explain) else None
    return explained if isinstance(explained, XerolinkError) else None


def translate_errors(method: F) -> F:
    """Decorates a unary servicer method: a XerolinkError becomes a rich status; any other
    exception becomes INTERNAL with no internals leaked (it is logged instead)."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except XerolinkError as err:
            context.abort_with_status(to_status(err))
        except Exception as exc:
            log.exception("unhandled error in %s", method.__name__)
            context.abort_with_status(
                to_status(
                    _explained(exc)
                    or XerolinkError(
                        ErrorCode.INTERNAL,
                        Reason.INTERNAL,
                        "an internal error occurred; it was logged, retry later or contact the operator",
                    )
                )
            )

    return wrapper  # type: ignore[return-value]


def translate_stream_errors(method: F) -> F:
    """The same for server-streaming methods (generators)."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, context)
        except XerolinkError as err:
            context.abort_with_status(to_status(err))
        except Exception as exc:
            log.exception("unhandled error in %s", method.__name__)
            context.abort_with_status(
                to_status(
                    _explained(exc) or XerolinkError(ErrorCode.INTERNAL, Reason.INTERNAL, "an internal error occurred")
                )
            )

    return wrapper  # type: ignore[return-value]


__all__ = ["code_pb2", "from_rpc_error", "to_status", "translate_errors", "translate_stream_errors"]
