"""Line items, tax and document totals, computed the way Xero does."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from xero_emulator.domain.amounts import UNIT_PLACES, ZERO, number, to_cents
from xero_emulator.domain.chart import AP_CODE, AR_CODE, CLASS_FLAG
from xero_emulator.domain.errors import Errors, ValidationFailure
from xero_emulator.domain.organisation import Organisation, new_id
from xero_emulator.domain.tracking import line_tracking

LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")


@dataclass(frozen=True)
class Totals:
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal


def line_amount_types(element: dict[str, Any]) -> str:
    value = element.get("LineAmountTypes", "Exclusive")
    if value not in LINE_AMOUNT_TYPES:
        raise ValidationFailure("LineAmountTypes must be one of Exclusive, Inclusive or NoTax.")
    return str(value)


def line_account(org: Organisation, line: dict[str, Any], *, allow_bank: bool = False) -> dict[str, Any]:
    code = line.get("AccountCode")
    account_id = line.get("AccountID")
    account = None
    if isinstance(account_id, str) and account_id:
        account = org.accounts.get(account_id.lower())
    elif isinstance(code, str) and code:
        account = org.account_by_code(code)
    else:
        raise ValidationFailure("Each line item must have an AccountCode.")
    if account is None:
        raise ValidationFailure(f"Account code '{code or account_id}' is not a valid code for this document.")
    if account["Status"] != "ACTIVE":
        raise ValidationFailure(
            f"The account code '{account['Code']}' has been archived, or deleted. "
            "Each line item must reference a valid account."
        )
    if not allow_bank and account["Type"] == "BANK":
        raise ValidationFailure(
            f"Account code '{account['Code']}' is a bank account and cannot be used on a line item."
        )
    if account["Code"] in (AR_CODE, AP_CODE):
        raise ValidationFailure(f"Account code '{account['Code']}' is a system account and cannot be used on a line.")
    return account


def tax_rate_for(org: Organisation, line: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    """The line's tax rate: its TaxType, else its account's, else the region's no-tax type. A tax
    type the organisation does not have (another region's, say) is refused as Xero refuses it."""
    tax_type = line.get("TaxType") or account.get("TaxType") or org.region.no_tax_type
    if isinstance(tax_type, str):
        tax_type = org.region.replacement(tax_type, account["Class"])
    rate = org.tax_rates.get(tax_type) if isinstance(tax_type, str) else None
    if rate is None or rate["Status"] != "ACTIVE":
        raise ValidationFailure(
            f"The TaxType code '{tax_type}' does not exist or cannot be used for this type of transaction."
        )
    if not rate[CLASS_FLAG[account["Class"]]]:
        raise ValidationFailure(f"The TaxType code '{tax_type}' cannot be used with account code '{account['Code']}'.")
    return rate


def compute_tax(amount: Decimal, rate_percent: Decimal, amount_types: str) -> Decimal:
    if amount_types == "NoTax" or rate_percent == 0:
        return ZERO
    rate = rate_percent / 100
    if amount_types == "Inclusive":
        return to_cents(amount * rate / (1 + rate))
    return to_cents(amount * rate)


def build_lines(
    org: Organisation,
    element: dict[str, Any],
    amount_types: str,
    *,
    field: str = "LineItems",
    allow_bank: bool = False,
    tax_as_rate: bool = False,
) -> list[dict[str, Any]]:
    raw = element.get(field)
    if not isinstance(raw, list) or not raw:
        raise ValidationFailure(
            "At least one line item is required." if field == "LineItems" else f"{field} are required."
        )
    errors = Errors()
    build = partial(_build_line, org, amount_types=amount_types, allow_bank=allow_bank, tax_as_rate=tax_as_rate)
    lines = [errors.check(partial(build, item=item, position=n)) for n, item in enumerate(raw, start=1)]
    errors.raise_any()
    return [line for line in lines if line is not None]


def _build_line(
    org: Organisation, *, item: Any, amount_types: str, allow_bank: bool, tax_as_rate: bool, position: int = 1
) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValidationFailure("Each line item must be an object.")
    description = item.get("Description", "")
    if not isinstance(description, str):
        raise ValidationFailure("Description must be a string.")
    account = line_account(org, item, allow_bank=allow_bank)
    rate = tax_rate_for(org, item, account)
    tracking = line_tracking(org, item.get("Tracking"), f"Line {position}")
    quantity = number(item, "Quantity", places=4)
    unit = number(item, "UnitAmount", places=UNIT_PLACES.get())
    given_line = number(item, "LineAmount")
    discount = number(item, "DiscountRate") or ZERO
    # "LineAmount = Quantity * Unit Amount * ((100 - DiscountRate)/100) or LineAmount = (Quantity *
    # UnitAmount) - DiscountAmount" (LineItem.LineAmount in Xero's OpenAPI description).
    discount_amount = number(item, "DiscountAmount") or ZERO
    if quantity is None:
        quantity = Decimal("1.0000")
    if unit is not None:
        line_amount = to_cents(quantity * unit * (100 - discount) / 100) - discount_amount
        if given_line is not None and given_line != line_amount:
            raise ValidationFailure(
                f"The line amount {given_line} does not match quantity {quantity} x unit amount {unit} ({line_amount})."
            )
    elif given_line is not None:
        line_amount = given_line
        unit = (given_line / quantity).quantize(Decimal("0.0001")) if quantity else given_line
    else:
        raise ValidationFailure("Each line item must have a UnitAmount or a LineAmount.")
    tax_amount = number(item, "TaxAmount")
    computed = compute_tax(line_amount, Decimal(rate["EffectiveRate"]), amount_types)
    if tax_amount is None:
        tax_amount = computed
    elif amount_types == "NoTax" and tax_amount != 0:
        raise ValidationFailure("TaxAmount must be zero when LineAmountTypes is NoTax.")
    elif tax_as_rate and tax_amount != computed:
        # An invoice may carry its own TaxAmount; a bank transaction may not (XeroAPI/xero-node#768:
        # "Tax amount 52.23 is incorrect for INPUT2 tax type, should be 52.28").
        raise ValidationFailure(
            f"Tax amount {tax_amount} is incorrect for {rate['TaxType']} tax type, should be {computed}"
        )
    line: dict[str, Any] = {
        "LineItemID": new_id(),
        "Description": description,
        "Quantity": quantity,
        "UnitAmount": unit,
        "AccountCode": account["Code"],
        "AccountID": account["AccountID"],
        "TaxType": rate["TaxType"],
        "TaxAmount": tax_amount,
        "LineAmount": line_amount,
        "Tracking": tracking,
    }
    if discount:
        line["DiscountRate"] = discount
    if discount_amount:
        line["DiscountAmount"] = discount_amount
    for optional in ("ItemCode",):
        if isinstance(item.get(optional), str):
            line[optional] = item[optional]
    return line


def totals(lines: list[dict[str, Any]], amount_types: str) -> Totals:
    """SubTotal, TotalTax and Total from the lines: Exclusive adds tax on top; Inclusive lines
    already contain it."""
    line_sum = sum((line["LineAmount"] for line in lines), ZERO)
    tax = sum((line["TaxAmount"] for line in lines), ZERO)
    if amount_types == "Inclusive":
        return Totals(line_sum - tax, tax, line_sum)
    return Totals(line_sum, tax, line_sum + tax)


def net_amount(line: dict[str, Any], amount_types: str) -> Decimal:
    """The part of a line that lands on its own account (tax goes to the tax account, 820)."""
    amount: Decimal = line["LineAmount"]
    return amount - line["TaxAmount"] if amount_types == "Inclusive" else amount
