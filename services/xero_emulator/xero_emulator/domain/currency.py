"""Foreign-currency documents. Xero's CurrencyRate is units of the document's currency per unit of
the base currency ("Exchange rate to base currency ... e.g. 0.7500"), so a foreign amount books
at amount / rate, rounded to the cent. Rates keep six decimals ("max length = [18].[6]", Invoice
.CurrencyRate in Xero's OpenAPI description). Decimal only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from xero_emulator.domain.amounts import number, to_cents
from xero_emulator.domain.errors import ValidationFailure
from xero_emulator.domain.organisation import Organisation

ONE = Decimal(1)
RATE_PLACES = 6


def document_currency(org: Organisation, element: dict[str, Any]) -> tuple[str, Decimal]:
    """(CurrencyCode, CurrencyRate) of a new document. A base-currency document is at rate 1 whatever
    rate is sent: Xero uses CurrencyRate only for non base currency documents."""
    code = element.get("CurrencyCode") or org.base_currency
    if not isinstance(code, str) or code.upper() not in org.currencies:
        raise ValidationFailure(
            f"The currency {code} is not set up in this organisation ({', '.join(sorted(org.currencies))})."
        )
    code = code.upper()
    if code == org.base_currency:
        return code, ONE
    rate = number(element, "CurrencyRate", places=RATE_PLACES)
    if rate is None:
        # Xero would take the XE.com day rate; the emulator has none and will not invent one.
        raise ValidationFailure(f"A CurrencyRate is required for a {code} document in this emulator.")
    if rate <= 0:
        raise ValidationFailure("CurrencyRate must be greater than zero.")
    return code, rate


def payment_rate(org: Organisation, element: dict[str, Any], doc: dict[str, Any]) -> Decimal:
    """Payment.CurrencyRate: "Only used for non base currency invoices and credit notes"; without
    it the payment takes the document's rate."""
    if doc.get("CurrencyCode", org.base_currency) == org.base_currency:
        return ONE
    doc_rate = Decimal(doc["CurrencyRate"])
    rate = number(element, "CurrencyRate", places=RATE_PLACES)
    if rate is None:
        return doc_rate
    if rate <= 0:
        raise ValidationFailure("CurrencyRate must be greater than zero.")
    return rate


def to_base(amount: Decimal, rate: Decimal) -> Decimal:
    return amount if rate == ONE else to_cents(amount / rate)
