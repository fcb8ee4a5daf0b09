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

from xerolink_mapper.domain.model import TaxRate
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.xero import BankTransaction, CreditNote, Invoice, ManualJournal, Operation


def _tax_types(op: Operation) -> Iterator[str]:
    body = op.body
    if isinstance(body, Invoice | CreditNote | BankTransaction):
        for item in body.line_items:
            yield item.tax_type
    elif isinstance(body, ManualJournal):
        for line in body.journal_lines:
            yield line.tax_type


def check_operations(operations: Sequence[Operation], rates: dict[str, TaxRate], problems: Problems) -> None:
    seen: set[str] = set()
    for op in operations:
        for tax_type in _tax_types(op):
            # An empty tax type is already a precondition of its own (an unmapped code).
            if not tax_type or tax_type in seen:
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
