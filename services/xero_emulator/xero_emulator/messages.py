"""Transport-neutral request/response values and Xero's response bodies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from xero_emulator.domain.organisation import now_utc
from xero_emulator.jsonio import dumps, ms_datetime

JSON = "application/json; charset=utf-8"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    query_string: str = ""
    target: str = ""  # the request line's target as sent: path and query, still percent-encoded

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        """Query parameters are case-insensitive in Xero."""
        for key, values in self.query.items():
            if key.lower() == name.lower() and values:
                return values[-1]
        return None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, dumps(render(payload)), {"Content-Type": JSON, **(headers or {})})


def render(value: Any) -> Any:
    """Drops internal ("_"-prefixed) keys and nulls, which Xero omits."""
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items() if not str(k).startswith("_") and v is not None}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def envelope(resource: str, items: list[dict[str, Any]], provider: str) -> dict[str, Any]:
    return {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": provider,
        "DateTimeUTC": ms_datetime(now_utc()),
        resource: items,
    }


def validation_exception(elements: list[dict[str, Any]]) -> Response:
    return Response.json(
        400,
        {
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": elements,
        },
    )


def error_400(message: str, kind: str = "PostDataInvalidException", number: int = 14) -> Response:
    return Response.json(400, {"ErrorNumber": number, "Type": kind, "Message": message})


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    """Xero's identity-layer problem body (401, 403, 404, 429, 5xx)."""
    body: dict[str, Any] = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    response = Response(status, dumps(body), {"Content-Type": JSON, **(headers or {})})
    return response
