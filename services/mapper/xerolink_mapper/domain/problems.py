"""Collects everything wrong with one request before answering, so a caller fixes it in one go.

Field problems (the request itself is wrong) win over precondition problems (the connection's
configuration is missing something): fixing the request may change which preconditions apply.
"""

from __future__ import annotations

from xerolink_common.errors import (
    FieldViolation,
    PreconditionViolation,
    XerolinkError,
    failed_precondition,
    invalid_argument,
)
from xerolink_common.reasons import Reason


class Problems:
    __slots__ = ("fields", "preconditions")

    def __init__(self) -> None:
        self.fields: list[FieldViolation] = []
        self.preconditions: list[PreconditionViolation] = []

    def field(self, path: str, description: str) -> None:
        self.fields.append(FieldViolation(path, description))

    def precondition(self, type_: str, subject: str, description: str) -> None:
        self.preconditions.append(PreconditionViolation(type_, subject, description))

    def __bool__(self) -> bool:
        return bool(self.fields or self.preconditions)

    def error(self) -> XerolinkError:
        if self.fields:
            first = self.fields[0]
            more = f" (and {len(self.fields) - 1} more)" if len(self.fields) > 1 else ""
            return invalid_argument(
                Reason.INVALID_TRANSACTION,
                f"The transaction is invalid: {first.field}: {first.description}{more}. Fix the fields listed "
                "in the error details and send it again.",
                self.fields,
            )
        first_pre = self.preconditions[0]
        more = f" (and {len(self.preconditions) - 1} more)" if len(self.preconditions) > 1 else ""
        return failed_precondition(
            Reason.MAPPING_NOT_CONFIGURED,
            f"The connection's mapping is incomplete: {first_pre.description}{more}",
            self.preconditions,
        )

    def raise_if_any(self) -> None:
        if self:
            raise self.error()
