"""The office bank: deposits, withdrawals and transfers between bank accounts (the transfer a trust
transfer also makes)."""

from __future__ import annotations

from dataclasses import replace

from xerolink_mapper.domain.aggregation import unit_amount
from xerolink_mapper.domain.allocations import OFFICE_BANK
from xerolink_mapper.domain.mapping_job import KindMapper, MappingJob, bank_transaction, document_lines
from xerolink_mapper.domain.model import BankEntryBody, Kind, TransferBody
from xerolink_mapper.domain.xero import BankTransactionType, BankTransfer, LineAmountTypes, LineItem, Operation


def transfer(job: MappingJob, body: TransferBody, default_from: str | None) -> tuple[list[Operation], int]:
    """A transfer between bank accounts; `default_from` is the allocation function whose account the
    money leaves when the transaction names none (None: it must name one)."""
    amount = job.money(body.amount, "amount")
    if default_from is None and not body.from_account:
        job.problems.field(f"{job.path}.from_bank_account", "is required: the bank account the money leaves")
    source = (
        job.account(body.from_account, "from_bank_account", default_from, "the trust bank account")
        if default_from
        else job.code(body.from_account, "from_bank_account")
    )
    job.code(body.to_account, "to_bank_account")
    if not body.to_account:
        job.problems.field(f"{job.path}.to_bank_account", "is required: the bank account the money arrives in")
    elif body.to_account == source:
        job.problems.field(f"{job.path}.to_bank_account", "is the account the money leaves: nothing moves")
    moved = BankTransfer(source, body.to_account, amount, job.date, job.reference)
    return [Operation("bank-transfer", moved)], amount


def _office_bank_transfer(job: MappingJob, body: TransferBody) -> tuple[list[Operation], int]:
    # A transfer that involves a trust account is a trust transfer.
    job.kept_apart(body.from_account, f"{job.path}.from_bank_account", trust=False)
    job.kept_apart(body.to_account, f"{job.path}.to_bank_account", trust=False)
    return transfer(job, body, None)


def _bank_entry(job: MappingJob, body: BankEntryBody, deposit: bool) -> tuple[list[Operation], int]:
    bank = job.account(body.bank_account, "bank_account", OFFICE_BANK, "the office bank account")
    # Not summed: Xero takes a bank transaction line only with the tax its rate gives the line's
    # amount (XeroAPI/xero-node#768), and tax summed over lines, each rounded, can be a cent off it.
    items, _sub, _tax, total = document_lines(job, body, purchase=not deposit, merge=False)
    type_ = BankTransactionType.RECEIVE if deposit else BankTransactionType.SPEND
    ref = "bank-deposit" if deposit else "bank-withdrawal"
    lines = tuple(_tax_inclusive(item) for item in items)
    return [Operation(ref, bank_transaction(job, type_, bank, lines, LineAmountTypes.INCLUSIVE))], total


def _tax_inclusive(item: LineItem) -> LineItem:
    """The line with its amount including its tax, for a bank transaction sent Inclusive. Xero
    then works the tax out of the inclusive amount (amount x rate / (1 + rate), rounded), which
    gives Actionstep's tax whether Actionstep worked it out of the exclusive amount or the
    inclusive one: a tax rounded from the exclusive amount is within half a cent of its exact
    value, and so within half a cent divided by (1 + rate) of what the inclusive amount gives. Sent
    Exclusive, a line priced with tax included (1,100.05 at 10 %: tax 100.00, 1,000.05 without)
    was refused, Xero's tax of 1,000.05 being 100.01."""
    inclusive = item.line_amount + item.tax_amount
    return replace(item, unit_amount=unit_amount(inclusive), line_amount=inclusive)


def _bank_deposit(job: MappingJob, body: BankEntryBody) -> tuple[list[Operation], int]:
    return _bank_entry(job, body, deposit=True)


def _bank_withdrawal(job: MappingJob, body: BankEntryBody) -> tuple[list[Operation], int]:
    return _bank_entry(job, body, deposit=False)


MAPPERS: dict[Kind, KindMapper] = {
    Kind.BANK_DEPOSIT: _bank_deposit,  # type: ignore[dict-item]
    Kind.BANK_WITHDRAWAL: _bank_withdrawal,  # type: ignore[dict-item]
    Kind.OFFICE_BANK_TRANSFER: _office_bank_transfer,  # type: ignore[dict-item]
}
