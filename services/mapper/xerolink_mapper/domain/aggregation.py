"""Lines summed per general-ledger account and Xero tax type, as Actionstep posts them: the
layout differs from the Actionstep document, the totals match to the cent."""

from __future__ import annotations

from collections.abc import Sequence

from xerolink_common.money import cents_to_str

from xerolink_mapper.domain.model import Line
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.validation import decimal_field, money
from xerolink_mapper.domain.xero import LineItem

# Xero's limit on a line item description.
MAX_DESCRIPTION = 4000
TAX_CODE_NOT_MAPPED = "TAX_CODE_NOT_MAPPED"


def tax_type_for(code: str, path: str, tax_map: dict[str, str], map_name: str, problems: Problems) -> str:
    if not code:
        problems.field(path, "is required: send the line's Actionstep tax code (e.g. GST, or the no-tax code)")
        return ""
    tax_type = tax_map.get(code)
    if not tax_type:
        problems.precondition(
            TAX_CODE_NOT_MAPPED,
            code,
            f"Actionstep tax code {code!r} ({path}) has no Xero tax type in context.{map_name}: add it to the "
            "connection's tax-code map",
        )
        return ""
    return tax_type


def describe(descriptions: list[str], fallback: str) -> str:
    """The distinct descriptions of the lines summed into one, joined; Xero needs one."""
    unique = list(dict.fromkeys(d for d in descriptions if d))
    if not unique:
        return fallback
    text = "; ".join(unique)
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def aggregate_lines(
    lines: Sequence[Line],
    path: str,
    currency: str,
    tax_map: dict[str, str],
    map_name: str,
    problems: Problems,
) -> tuple[tuple[LineItem, ...], int, int]:
    """Validates the lines and sums them per (account, tax type) in first-seen order.
    Returns the Xero line items, the summed exclusive amount and the summed tax."""
    if not lines:
        problems.field(path, "has no lines: a document needs at least one line")
        return (), 0, 0
    groups: dict[tuple[str, str], list[int]] = {}
    texts: dict[tuple[str, str], list[str]] = {}
    sub_total = 0
    tax_total = 0
    for i, line in enumerate(lines):
        at = f"{path}[{i}]"
        if not line.gl_account:
            problems.field(f"{at}.gl_account", "is required: allocate the line to a general-ledger account")
        tax_type = tax_type_for(line.tax_code, f"{at}.tax_code", tax_map, map_name, problems)
        decimal_field(line.quantity, f"{at}.quantity", problems, places=4, allow_negative=False)
        decimal_field(line.unit_price, f"{at}.unit_price", problems, places=4, allow_negative=True)
        amount = money(line.amount, f"{at}.amount", currency, problems, positive=False)
        tax = money(line.tax, f"{at}.tax", currency, problems, positive=False)
        key = (line.gl_account, tax_type)
        sums = groups.get(key)
        if sums is None:
            groups[key] = [amount, tax]
            texts[key] = [line.description]
        else:
            sums[0] += amount
            sums[1] += tax
            texts[key].append(line.description)
        sub_total += amount
        tax_total += tax
    items = tuple(
        LineItem(
            description=describe(texts[key], f"Account {key[0]}"),
            quantity="1",
            unit_amount=cents_to_str(amount),
            account_code=key[0],
            tax_type=key[1],
            line_amount=amount,
            tax_amount=tax,
        )
        for key, (amount, tax) in groups.items()
    )
    return items, sub_total, tax_total
