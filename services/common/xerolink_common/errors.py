"""Transport-free errors. Domain code raises these; the gRPC adapter turns them into
rich statuses (google.rpc.ErrorInfo + BadRequest / PreconditionFailure), so the domain
never imports grpc."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from xerolink_common.reasons import Reason


class ErrorCode(Enum):
    """The gRPC codes xerolink uses, by name and number (numbers are the wire values)."""

    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    UNAUTHENTICATED = 16
    UNAVAILABLE = 14
    INTERNAL = 13


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """One unmet precondition: type (e.g. "LINK_LOCKED"), subject (what), description (why / what to do)."""

    type: str
    subject: str
    description: str


@dataclass
class XerolinkError(Exception):
    """An error with a machine-readable reason and a sentence that says what to do next."""

    code: ErrorCode
    reason: str
    message: str
    field_violations: list[FieldViolation] = field(default_factory=list)
    precondition_violations: list[PreconditionViolation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"


def invalid_argument(reason: Reason, message: str, violations: list[FieldViolation]) -> XerolinkError:
    return XerolinkError(ErrorCode.INVALID_ARGUMENT, reason, message, field_violations=list(violations))


def failed_precondition(
    reason: Reason, message: str, violations: list[PreconditionViolation] | None = None
) -> XerolinkError:
    return XerolinkError(ErrorCode.FAILED_PRECONDITION, reason, message, precondition_violations=list(violations or []))


def not_found(reason: Reason, message: str) -> XerolinkError:
    return XerolinkError(ErrorCode.NOT_FOUND, reason, message)


def unavailable(reason: Reason, message: str, retry_after_seconds: float | None = None) -> XerolinkError:
    return XerolinkError(ErrorCode.UNAVAILABLE, reason, message, retry_after_seconds=retry_after_seconds)


# gRPC refuses trailers over 16 KiB, and a batch answer must stay under the caller's message limit:
# an error that echoed a huge input would reach the caller as RESOURCE_EXHAUSTED with no reason at
# all. Every echoed text is cut, and so is the list of violations.
MAX_TEXT = 240
MAX_VIOLATIONS = 20


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else f"{text[: limit - 24]}… ({len(text)} characters)"


def bounded(err: XerolinkError) -> XerolinkError:
    """The same error with every text and list cut to a size any transport carries."""
    fields = [FieldViolation(_cut(v.field), _cut(v.description)) for v in err.field_violations[:MAX_VIOLATIONS]]
    if len(err.field_violations) > MAX_VIOLATIONS:
        fields.append(FieldViolation("…", f"{len(err.field_violations) - MAX_VIOLATIONS} more problems not listed"))
    preconditions = [
        PreconditionViolation(_cut(v.type, 64), _cut(v.subject), _cut(v.description))
        for v in err.precondition_violations[:MAX_VIOLATIONS]
    ]
    if len(err.precondition_violations) > MAX_VIOLATIONS:
        extra = len(err.precondition_violations) - MAX_VIOLATIONS
        preconditions.append(PreconditionViolation("MORE", "…", f"{extra} more unmet preconditions not listed"))
    return XerolinkError(
        err.code,
        err.reason,
        _cut(err.message, 1000),
        field_violations=fields,
        precondition_violations=preconditions,
        metadata={_cut(k, 64): _cut(v) for k, v in list(err.metadata.items())[:MAX_VIOLATIONS]},
        retry_after_seconds=err.retry_after_seconds,
    )
