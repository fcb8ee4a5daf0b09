"""Checks every tax type of the operations against the organisation's tax rates (when the caller
passed them), so a tax type the organisation lacks (another country's, or a deleted rate) is a
precondition named by tax type before posting, rather than a Xero 400 later.

Xero refuses a line whose TaxType is not one of the organisation's: its TaxRates endpoint lists
them with a Status of ACTIVE, DELETED, ARCHIVED or PENDING (Xero's OpenAPI, schema TaxRate), and
the validation error reads "The TaxType code '…' does not exist or cannot be used for this type of
transaction." (docs/regions.md quotes the sources)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from xerolink_common.reasons import Reason

from xerolink_mapper.domain.model import ChartAccount, TaxRate
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.xero import BankTransaction, CreditNote, Invoice, ManualJournal, Operation


def _lines(op: Operation) -> Iterator[tuple[str, str]]:
    """(tax type, account code) of each line."""
    body = op.body
    if isinstance(body, Invoice | CreditNote | BankTransaction):
        for item in body.line_items:
            yield item.tax_type, item.account_code
    elif isinstance(body, ManualJournal):
        for line in body.journal_lines:
            yield line.tax_type, line.account_code


def check_operations(
    operations: Sequence[Operation],
    rates: dict[str, TaxRate],
    chart: dict[str, ChartAccount] | None,
    problems: Problems,
) -> None:
    seen: set[str] = set()
    placed: set[tuple[str, str]] = set()
    for op in operations:
        for tax_type, code in _lines(op):
            # An empty tax type is already a precondition of its own (an unmapped code).
            if not tax_type:
                continue
            if (tax_type, code) not in placed:
                placed.add((tax_type, code))
                _check_class(op, tax_type, code, rates, chart, problems)
            if tax_type in seen:
                continue
            seen.add(tax_type)
            rate = rates.get(tax_type)
            if rate is None:
                problems.precondition(
                    Reason.TAX_TYPE_NOT_IN_ORGANISATION,
                    tax_type,
                    f"tax type {tax_type} ({op.local_ref}) is not a tax rate of the Xero organisation: map the "
                    "Actionstep tax code (or untaxed_line_tax_types) to one of the organisation's tax types; "
                    "RunPreflight lists them",
                )
            elif (rate.status or "ACTIVE").upper() != "ACTIVE":
                problems.precondition(
                    Reason.TAX_TYPE_NOT_IN_ORGANISATION,
                    tax_type,
                    f"tax rate {tax_type} {rate.name!r} ({op.local_ref}) is {rate.status.lower()} in Xero: restore "
                    "it or map the Actionstep tax code to an active tax type",
                )


def _check_class(
    op: Operation,
    tax_type: str,
    code: str,
    rates: dict[str, TaxRate],
    chart: dict[str, ChartAccount] | None,
    problems: Problems,
) -> None:
    """Xero refuses a rate on an account of a class it does not apply to: "The TaxType code '…' cannot
    be used with account code '…'" (XeroAPI/Xero-Java#336; the rate's CanApplyTo* flags in Xero's
    OpenAPI, schema TaxRate)."""
    rate = rates.get(tax_type)
    account = chart.get(code) if chart is not None and code else None
    if rate is None or account is None or not rate.account_classes or not account.account_class:
        return
    if account.account_class not in rate.account_classes:
        classes = ", ".join(sorted(c.lower() for c in rate.account_classes))
        problems.precondition(
            Reason.TAX_TYPE_NOT_FOR_ACCOUNT,
            tax_type,
            f"tax type {tax_type} {rate.name!r} ({op.local_ref}) cannot be used on account {code} {account.name!r}, "
            f"a {account.account_class.lower()} account (Xero allows it on {classes} accounts): map the Actionstep "
            "tax code to a tax type for that kind of account",
        )
