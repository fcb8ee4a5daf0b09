"""Money helpers: amounts are integer hundredths ("cents"); Xero's JSON wants decimal
strings. Nothing here touches float."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
# ISO 4217's alphabetic codes are three ASCII capitals (match with `fullmatch`: `$` lets a
# trailing newline through); str.isupper() would also take "ΑΒΓ".
ISO_4217 = re.compile("[A-Z]{3}")
# The ISO 4217 alphabetic currency codes Xero knows: those its Accounting API's CurrencyCode lists
# (Xero's OpenAPI description, components.schemas.CurrencyCode). A code of that shape Xero does not
# list ("QQQ", or an ISO code such as SSP or XAU) is refused by Xero after the caller was told the
# transaction is posted, so it is refused here instead. Current ISO 4217 codes first, then the
# withdrawn ones Xero still lists (currencies replaced by the euro, and older codes of currencies
# since redenominated).
# fmt: off
CURRENCY_CODES = frozenset({
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLF", "CLP", "CNY", "COP",
    "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR",
    "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV",
    "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG",
    "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD",
    "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD",
    "UYU", "UZS", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW",
    # Withdrawn from ISO 4217, still listed by Xero.
    "BYR", "EEK", "HRK", "LTL", "LVL", "MRO", "SKK", "STD", "VEF", "ZMK", "ZWD",
})
# fmt: on


def cents_to_decimal(units: int) -> Decimal:
    """12345 -> Decimal('123.45'), exact."""
    return (Decimal(units) / 100).quantize(CENT)


def cents_to_str(units: int) -> str:
    """12345 -> '123.45'; the form Xero's JSON accepts for amounts."""
    return str(cents_to_decimal(units))


def decimal_to_cents(value: Decimal | str | int) -> int:
    """Decimal('123.45') -> 12345. Refuses anything finer than a cent instead of rounding it
    silently: Xero stores totals in cents, so a sub-cent amount is a caller error."""
    amount = parse_decimal(value)
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{value!s} has more than two decimal places")
    return int(cents)


def parse_decimal(value: Decimal | str | int) -> Decimal:
    """Parses a decimal string strictly: no floats, no NaN, no infinity, no exponent tricks."""
    if isinstance(value, float):  # pragma: no cover - guarded by types; a float is a bug
        raise TypeError("money is never a float")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a decimal number") from exc
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return amount


def round_to_cents(value: Decimal) -> int:
    """Rounds half away from zero to whole cents (the convention Xero documents for line
    amounts); used only where a rate or quantity makes rounding unavoidable."""
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
