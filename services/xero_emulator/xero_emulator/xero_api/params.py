"""The query parameters several operations read: true/false flags (summarizeErrors), `page` and
`unitdp`."""

from __future__ import annotations

from xero_emulator.domain.errors import BadRequest
from xero_emulator.messages import Request

MAX_PAGE = 100000


def flag(request: Request, name: str, default: bool) -> bool:
    value = request.param(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false.")
    return value.lower() == "true"


def summarize_errors(request: Request) -> bool:
    return flag(request, "summarizeErrors", True)


def page_number(request: Request) -> int | None:
    value = request.param("page")
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"page must be a whole number from 1 to {MAX_PAGE}.")
    return int(value)


def unit_places(request: Request) -> int:
    """The decimal places a write keeps of unit amounts: 4 with unitdp=4, else 2 (Xero's OpenAPI
    description, parameter unitdp: "You can opt in to use four decimal places")."""
    return 4 if request.param("unitdp") == "4" else 2
