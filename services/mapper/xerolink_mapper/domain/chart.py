"""Checks every account code of the operations against the organisation's chart (when the
caller passed it): unknown or archived codes, and accounts that cannot play their role, are
preconditions named by code, found before posting rather than as a Xero 400 later."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from xerolink_common.reasons import Reason

from xerolink_mapper.domain.model import BANK, LINE, PAYMENT, ChartAccount
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.xero import (
    BankTransaction,
    BankTransfer,
    CreditNote,
    Invoice,
    ManualJournal,
    Operation,
    Payment,
)


def _uses(op: Operation) -> Iterator[tuple[str, str]]:
    body = op.body
    if isinstance(body, Invoice | CreditNote):
        for item in body.line_items:
            yield item.account_code, LINE
    elif isinstance(body, BankTransaction):
        yield body.bank_account_code, BANK
        for item in body.line_items:
            yield item.account_code, LINE
    elif isinstance(body, BankTransfer):
        yield body.from_bank_account_code, BANK
        yield body.to_bank_account_code, BANK
    elif isinstance(body, Payment):
        yield body.account_code, PAYMENT
    elif isinstance(body, ManualJournal):
        for line in body.journal_lines:
            yield line.account_code, LINE


def check_operations(
    operations: Sequence[Operation],
    chart: dict[str, ChartAccount],
    allowed: frozenset[tuple[str, str]],
    problems: Problems,
) -> None:
    seen: set[tuple[str, str]] = set()
    for op in operations:
        for code, role in _uses(op):
            # An overpayment line has no code: Xero books it to receivables.
            if not code or (code, role) in allowed or (code, role) in seen:
                continue
            seen.add((code, role))
            account = chart.get(code)
            if account is None:
                problems.precondition(
                    Reason.ACCOUNT_NOT_IN_CHART,
                    code,
                    f"account {code} ({op.local_ref}) is not in the Xero organisation's chart: create it in Xero or "
                    "change the Actionstep account / allocation",
                )
            elif account.status.upper() == "ARCHIVED":
                problems.precondition(
                    Reason.ACCOUNT_ARCHIVED,
                    code,
                    f"account {code} {account.name!r} ({op.local_ref}) is archived in Xero: restore it or allocate "
                    "an active account",
                )
            elif role == BANK and account.type != "BANK":
                problems.precondition(
                    Reason.ACCOUNT_NOT_A_BANK_ACCOUNT,
                    code,
                    f"account {code} {account.name!r} ({op.local_ref}) is a {account.type} account, not a bank "
                    "account: allocate a Xero bank account",
                )
            elif role == PAYMENT and account.type != "BANK" and not account.enable_payments:
                problems.precondition(
                    Reason.ACCOUNT_PAYMENTS_NOT_ENABLED,
                    code,
                    f"account {code} {account.name!r} ({op.local_ref}) does not accept payments: enable payments "
                    "to it in Xero or allocate a bank account",
                )
