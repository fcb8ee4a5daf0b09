"""Failures the domain raises; the HTTP layer turns each into Xero's response shape."""

from __future__ import annotations


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
