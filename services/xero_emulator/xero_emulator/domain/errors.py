"""Failures the domain raises; the HTTP layer turns each into Xero's response shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ValidationFailure(Exception):
    """One element broke Xero's rules; becomes a ValidationError entry on that element."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class NotFound(Exception):
    """No object with that identifier in this organisation (HTTP 404)."""

    def __init__(self, resource: str, key: str) -> None:
        super().__init__(f"{resource} {key} was not found")
        self.resource = resource
        self.key = key


class BadRequest(Exception):
    """The request as a whole is unreadable (Xero's PostDataInvalidException, ErrorNumber 14)."""

    def __init__(self, message: str, kind: str = "PostDataInvalidException", number: int = 14) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.number = number


class Errors:
    """Runs an element's independent checks and gathers every failure, so one response lists all
    of an element's problems as Xero does, instead of only the first."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, check: Callable[[], T]) -> T | None:
        try:
            return check()
        except ValidationFailure as failure:
            self.messages.extend(failure.messages)
            return None

    def add(self, message: str) -> None:
        self.messages.append(message)

    def raise_any(self) -> None:
        if self.messages:
            raise ValidationFailure(*self.messages)
