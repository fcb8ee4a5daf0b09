"""Transport-free errors. Domain code raises these; the gRPC adapter turns them into
rich statuses (google.rpc.ErrorInfo + BadRequest / PreconditionFailure), so the domain
never imports grpc."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


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


def invalid_argument(reason: str, message: str, violations: list[FieldViolation]) -> XerolinkError:
    return XerolinkError(ErrorCode.INVALID_ARGUMENT, reason, message, field_violations=list(violations))


def failed_precondition(
    reason: str, message: str, violations: list[PreconditionViolation] | None = None
) -> XerolinkError:
    return XerolinkError(ErrorCode.FAILED_PRECONDITION, reason, message, precondition_violations=list(violations or []))


def not_found(reason: str, message: str) -> XerolinkError:
    return XerolinkError(ErrorCode.NOT_FOUND, reason, message)


def unavailable(reason: str, message: str, retry_after_seconds: float | None = None) -> XerolinkError:
    return XerolinkError(ErrorCode.UNAVAILABLE, reason, message, retry_after_seconds=retry_after_seconds)
