"""Lines summed per general-ledger account and Xero tax type, as Actionstep posts them: the
layout differs from the Actionstep document, the totals match to the cent."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from xerolink_common.reasons import Reason

from xerolink_mapper.domain.model import Line
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.text import check_text
from xerolink_mapper.domain.validation import MAX_CENTS, decimal_field, money
from xerolink_mapper.domain.xero import LineItem
from xerolink_mapper.domain.xero_fields import ACCOUNT_CODE, ACCOUNT_CODE_LENGTH, LINE_DESCRIPTION

# The length a summed line's joined descriptions are cut to. Xero's description of LineItem
# bounds none; 4000 is the longest description Xero's description of an Account allows.
MAX_DESCRIPTION = 4000


def tax_type_for(code: str, path: str, tax_map: dict[str, str], map_name: str, problems: Problems) -> str:
    if not code:
        problems.field(path, "is required: send the line's Actionstep tax code (e.g. GST, or the no-tax code)")
        return ""
    tax_type = tax_map.get(code)
    if not tax_type:
        problems.precondition(
            Reason.TAX_CODE_NOT_MAPPED,
            code,
            f"Actionstep tax code {code!r} ({path}) has no Xero tax type in context.{map_name}: add it to the "
            "connection's tax-code map",
        )
        return ""
    return tax_type


def describe(descriptions: list[str], fallback: str) -> str:
    """The distinct descriptions of the lines summed into one, joined; Xero needs one."""
    if len(descriptions) == 1 and len(descriptions[0]) <= MAX_DESCRIPTION:
        return descriptions[0] or fallback
    unique = list(dict.fromkeys(d for d in descriptions if d))
    if not unique:
        return fallback
    text = "; ".join(unique)
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def unit_amount(cents: int) -> str:
    """12345 -> "123.45" (integer arithmetic: this runs for every line of every document)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


# The plain forms almost every line uses; anything else goes through the full checks.
_PLAIN_QUANTITY = re.compile(r"\d{1,12}(\.\d{1,4})?").fullmatch
_PLAIN_PRICE = re.compile(r"-?\d{1,12}(\.\d{1,4})?").fullmatch


def _line_is_plain(line: Line, tax_type: str | None, currency: str) -> bool:
    amount, tax = line.amount, line.tax
    account, description = line.gl_account, line.description
    # Printable ASCII that is not all spaces passes every text rule (see text.check_text).
    return bool(
        tax_type
        and account
        and len(account) <= ACCOUNT_CODE_LENGTH
        and account.isascii()
        and account.isprintable()
        and not account.isspace()
        and description.isascii()
        and description.isprintable()
        and not description.isspace()
        and amount is not None
        and tax is not None
        and (not amount.currency_code or amount.currency_code == currency)
        and (not tax.currency_code or tax.currency_code == currency)
        and -MAX_CENTS <= amount.cents <= MAX_CENTS
        and -MAX_CENTS <= tax.cents <= MAX_CENTS
        and (not line.quantity or _PLAIN_QUANTITY(line.quantity))
        and (not line.unit_price or _PLAIN_PRICE(line.unit_price))
    )


def _check_line(
    line: Line, at: str, currency: str, tax_map: dict[str, str], map_name: str, problems: Problems
) -> tuple[int, int, str]:
    """Every check of one line, recording each problem with its path."""
    if not line.gl_account:
        problems.field(f"{at}.gl_account", "is required: allocate the line to a general-ledger account")
    check_text(line.gl_account, f"{at}.gl_account", ACCOUNT_CODE, problems)
    tax_type = tax_type_for(line.tax_code, f"{at}.tax_code", tax_map, map_name, problems)
    decimal_field(line.quantity, f"{at}.quantity", problems, places=4, allow_negative=False)
    decimal_field(line.unit_price, f"{at}.unit_price", problems, places=4, allow_negative=True)
    amount = money(line.amount, f"{at}.amount", currency, problems, positive=False)
    tax = money(line.tax, f"{at}.tax", currency, problems, positive=False)
    check_text(line.description, f"{at}.description", LINE_DESCRIPTION, problems)
    return amount, tax, tax_type


def aggregate_lines(
    lines: Sequence[Line],
    path: str,
    currency: str,
    tax_map: dict[str, str],
    map_name: str,
    problems: Problems,
    *,
    merge: bool = True,
    matter: int = 0,
) -> tuple[tuple[LineItem, ...], int, int]:
    """Validates the lines and sums them per (account, tax type, matter) in first-seen order; with
    `merge` False, each line stays a line of its own. `matter` is the lines' matter (reports by
    matter; 0 when off): lines of two matters are never one Xero line, so it is part of the key
    although a document's lines share their header's. Returns the Xero line items, the summed
    exclusive amount and the summed tax."""
    if not lines:
        problems.field(path, "has no lines: a document needs at least one line")
        return (), 0, 0
    # (account, tax type, matter[, line]) -> [account, tax type, amount, tax, descriptions], first-seen order.
    groups: dict[tuple[Any, ...], list[Any]] = {}
    sub_total = 0
    tax_total = 0
    for i, line in enumerate(lines):
        tax_type = tax_map.get(line.tax_code) if line.tax_code else None
        if tax_type and _line_is_plain(line, tax_type, currency):
            amount, tax = line.amount.cents, line.tax.cents  # type: ignore[union-attr]  # checked just above
        else:
            amount, tax, tax_type = _check_line(line, f"{path}[{i}]", currency, tax_map, map_name, problems)
        key = (line.gl_account, tax_type, matter) if merge else (line.gl_account, tax_type, matter, i)
        group = groups.get(key)
        if group is None:
            groups[key] = [line.gl_account, tax_type, amount, tax, [line.description]]
        else:
            group[2] += amount
            group[3] += tax
            group[4].append(line.description)
        sub_total += amount
        tax_total += tax
    items = tuple(
        # Quantity 1 and unit amount = the sum, so Xero's quantity x unit amount check holds exactly.
        LineItem(
            describe(texts, f"Account {account}"), "1", unit_amount(amount), account, tax_type, amount, tax, matter
        )
        for account, tax_type, amount, tax, texts in groups.values()
    )
    return items, sub_total, tax_total
