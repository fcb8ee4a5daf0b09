"""Exact amounts: parsing JSON numbers into Decimal and rounding to the cent like Xero
(half away from zero). Strings and booleans are refused: Xero's schema says number."""

from __future__ import annotations

from contextvars import ContextVar
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from xero_emulator.domain.errors import ValidationFailure

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_AMOUNT = Decimal("999999999999.99")
# The decimal places a write keeps of a unit amount: two unless the request opts in to four with
# unitdp=4 ("By default UnitPrice is rounded to two decimal places. You can use 4 decimal places
# by adding the unitdp=4 querystring parameter": Purchase.UnitPrice, and the unitdp parameter, in
# Xero's OpenAPI description). Set for the length of a write (xero_api/batches.py).
UNIT_PLACES: ContextVar[int] = ContextVar("unit_places", default=2)


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def number(element: dict[str, Any], field: str, *, default: Decimal | None = None, places: int = 2) -> Decimal | None:
    """Reads an optional number field; more decimals than `places` are rounded as Xero does."""
    value = element.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValidationFailure(f"{field} must be a number.")
    amount = Decimal(value)
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        raise ValidationFailure(f"{field} is out of range.")
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def required_number(element: dict[str, Any], field: str, places: int = 2) -> Decimal:
    amount = number(element, field, places=places)
    if amount is None:
        raise ValidationFailure(f"{field} is required.")
    return amount


def positive_number(element: dict[str, Any], field: str, label: str) -> Decimal:
    amount = required_number(element, field)
    if amount <= 0:
        raise ValidationFailure(f"{label} must be greater than zero.")
    return amount


def optional_text(element: dict[str, Any], field: str, max_length: int = 255) -> str | None:
    value = element.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailure(f"{field} must be a string.")
    if len(value) > max_length:
        raise ValidationFailure(f"{field} must be {max_length} characters or fewer.")
    return value
