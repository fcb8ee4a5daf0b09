"""Trust money: receipts, payments and interest on the trust bank, journals between matters,
transfers out of trust, invoices paid from trust, and statutory and advanced funds."""

from __future__ import annotations

from xerolink_mapper.domain.allocations import (
    ADVANCED_FUNDS,
    INTEREST_ON_TRUST,
    OFFICE_BANK,
    STATUTORY_DEPOSIT,
    TRUST_BANK,
    TRUST_INTEREST,
    TRUST_LIABILITY,
    TRUST_MONEY,
)
from xerolink_mapper.domain.kinds.banking import transfer
from xerolink_mapper.domain.mapping_job import KindMapper, MappingJob, bank_transaction, single_line
from xerolink_mapper.domain.model import (
    BankAmountBody,
    FundsBody,
    FundsDirection,
    Kind,
    Ledgers,
    PaymentBody,
    RecordKey,
    TransferBody,
    TrustJournalBody,
)
from xerolink_mapper.domain.text import TextRule
from xerolink_mapper.domain.xero import (
    BankTransactionType,
    BankTransfer,
    DocumentType,
    JournalLine,
    LineAmountTypes,
    ManualJournal,
    Operation,
    Payment,
)
from xerolink_mapper.domain.xero_fields import LINE_DESCRIPTION, NARRATION

# A trust journal's note ends up in its narration: one line, bounded as a whole by the caller.
_NOTE_IN_NARRATION = TextRule(NARRATION.what)


def _note(job: MappingJob, description: str) -> tuple[str, str]:
    """The transaction's own description, else the header's memo, with the path of the one used."""
    if description:
        return description, f"{job.path}.description"
    return job.tx.header.memo, "transaction.header.memo"


def _trust_money(
    job: MappingJob, body: BankAmountBody, type_: BankTransactionType, function: str, untaxed: str, ref: str
) -> tuple[list[Operation], int]:
    tax_type = job.untaxed(untaxed)
    amount = job.money(body.amount, "amount")
    bank = job.account(body.bank_account, "trust_bank_account", TRUST_BANK, "the trust bank account")
    line_account = job.allocated(function, "the trust ledger line")
    description, path = _note(job, body.description)
    job.text(description, path, LINE_DESCRIPTION)
    items = single_line(description, line_account, tax_type, amount, job.matter)
    return [Operation(ref, bank_transaction(job, type_, bank, items, LineAmountTypes.NO_TAX))], amount


def _trust_receipt(job: MappingJob, body: BankAmountBody) -> tuple[list[Operation], int]:
    return _trust_money(job, body, BankTransactionType.RECEIVE, TRUST_LIABILITY, TRUST_MONEY, "trust-receipt")


def _trust_payment(job: MappingJob, body: BankAmountBody) -> tuple[list[Operation], int]:
    return _trust_money(job, body, BankTransactionType.SPEND, TRUST_LIABILITY, TRUST_MONEY, "trust-payment")


def _trust_interest(job: MappingJob, body: BankAmountBody) -> tuple[list[Operation], int]:
    return _trust_money(job, body, BankTransactionType.RECEIVE, TRUST_INTEREST, INTEREST_ON_TRUST, "trust-interest")


def _trust_journal(job: MappingJob, body: TrustJournalBody) -> tuple[list[Operation], int]:
    amount = job.money(body.amount, "amount")
    from_action = job.record_id(body.from_action_id, "from_action_id")
    to_action = job.record_id(body.to_action_id, "to_action_id")
    if from_action and from_action == to_action:
        job.problems.field(f"{job.path}.to_action_id", "is the same matter as from_action_id: nothing moves")
    liability = job.allocated(TRUST_LIABILITY, "the matters' trust ledger")
    tax_type = job.untaxed(TRUST_MONEY)
    note, path = _note(job, body.description)
    suffix = f": {note}" if note else ""
    narration = f"Trust journal from matter {from_action} to matter {to_action}{suffix}"
    # The note is part of the narration, which the poster tags and looks the journal up by.
    if job.text(note, path, _NOTE_IN_NARRATION) and len(narration) > NARRATION.limit:
        job.problems.field(
            path,
            f"makes the journal's narration {len(narration)} characters; {NARRATION.what} takes at most "
            f"{NARRATION.limit}",
        )
    # Reports by matter: each line is tracked to its own matter.
    debit_matter, credit_matter = (from_action, to_action) if job.tracking else (0, 0)
    journal = ManualJournal(
        narration=narration,
        date=job.date,
        line_amount_types=LineAmountTypes.NO_TAX,
        journal_lines=(
            # The paying matter's liability falls (debit), the receiving matter's rises (credit).
            JournalLine(liability, f"Matter {from_action}{suffix}", amount, tax_type, 0, debit_matter),
            JournalLine(liability, f"Matter {to_action}{suffix}", -amount, tax_type, 0, credit_matter),
        ),
    )
    return [Operation("trust-journal", journal)], amount


def _trust_transfer(job: MappingJob, body: TransferBody) -> tuple[list[Operation], int]:
    return transfer(job, body, TRUST_BANK)


def _invoice_paid_from_trust(job: MappingJob, body: PaymentBody) -> tuple[list[Operation], int]:
    """The firm takes its fee out of trust: money leaves the trust bank against the matter's
    trust liability and arrives in the office bank as the payment of the invoice.

    The payment goes straight into the office bank rather than through a clearing account: a
    separate trust transfer to the office would map to a bank transfer out of the trust bank and
    credit it a second time, and Xero's bank transfers cannot clear a non-bank account.

    An organisation that keeps one ledger only (extended profile) posts its own half: the office
    organisation the payment, the trust organisation the spend. Each half conserves the amount,
    and needs only the allocations of its own organisation."""
    amount = job.money(body.amount, "amount")
    bill = job.record_id(body.document_id, "bill_id")
    ledgers = job.ctx.ledgers
    spends, pays = ledgers is not Ledgers.OFFICE, ledgers is not Ledgers.TRUST
    if spends:
        bank = job.account(body.bank_account, "trust_bank_account", TRUST_BANK, "the trust bank account")
        liability = job.allocated(TRUST_LIABILITY, "the matter's trust ledger")
    if pays:
        office = job.allocated(OFFICE_BANK, "the office bank the fee is paid into")
    operations = []
    if spends:
        line = f"Payment of bill {bill} from trust"
        items = single_line(line, liability, job.untaxed(TRUST_MONEY), amount, job.matter)
        spend = bank_transaction(job, BankTransactionType.SPEND, bank, items, LineAmountTypes.NO_TAX)
        operations.append(Operation("trust-spend", spend))
    if pays:
        payment = Payment(
            document=RecordKey(Kind.CLIENT_BILL, bill),
            document_type=DocumentType.INVOICE,
            account_code=office,
            date=job.date,
            amount=amount,
            reference=job.reference,
            currency_rate=job.rate,
        )
        operations.append(Operation("payment", payment))
    return operations, amount


def _funds(
    job: MappingJob, body: FundsBody, function: str, ref: str, account_field: str
) -> tuple[list[Operation], int]:
    amount = job.money(body.amount, "amount")
    trust = job.account(body.trust_bank_account, "trust_bank_account", TRUST_BANK, "the trust bank account")
    funds = job.account(body.funds_account, account_field, function, f"the {function.replace('_', ' ')} account")
    if trust and trust == funds:
        job.problems.field(f"{job.path}.{account_field}", f"is the trust bank account {trust}: nothing moves")
    if body.direction is FundsDirection.UNSPECIFIED:
        job.problems.field(f"{job.path}.direction", "is required: OUT_OF_TRUST or INTO_TRUST")
    out = body.direction is not FundsDirection.INTO_TRUST
    chart = job.ctx.chart
    known = chart.get(funds) if chart is not None else None
    if known is not None and known.type != "BANK":
        # The regulated account is not a bank account in Xero: move the money with a bank
        # transaction on the trust bank, its line on that account.
        type_ = BankTransactionType.SPEND if out else BankTransactionType.RECEIVE
        description = function.replace("_", " ").capitalize()
        items = single_line(description, funds, job.untaxed(TRUST_MONEY), amount, job.matter)
        return [Operation(ref, bank_transaction(job, type_, trust, items, LineAmountTypes.NO_TAX))], amount
    source, target = (trust, funds) if out else (funds, trust)
    return [Operation("bank-transfer", BankTransfer(source, target, amount, job.date, job.reference))], amount


def _statutory_funds(job: MappingJob, body: FundsBody) -> tuple[list[Operation], int]:
    return _funds(job, body, STATUTORY_DEPOSIT, "statutory-funds", "statutory_account")


def _advanced_funds(job: MappingJob, body: FundsBody) -> tuple[list[Operation], int]:
    return _funds(job, body, ADVANCED_FUNDS, "advanced-funds", "advanced_funds_account")


MAPPERS: dict[Kind, KindMapper] = {
    Kind.TRUST_RECEIPT: _trust_receipt,  # type: ignore[dict-item]
    Kind.TRUST_PAYMENT: _trust_payment,  # type: ignore[dict-item]
    Kind.TRUST_JOURNAL: _trust_journal,  # type: ignore[dict-item]
    Kind.TRUST_TRANSFER: _trust_transfer,  # type: ignore[dict-item]
    Kind.TRUST_INTEREST: _trust_interest,  # type: ignore[dict-item]
    Kind.INVOICE_PAID_FROM_TRUST: _invoice_paid_from_trust,  # type: ignore[dict-item]
    Kind.STATUTORY_FUNDS: _statutory_funds,  # type: ignore[dict-item]
    Kind.ADVANCED_FUNDS: _advanced_funds,  # type: ignore[dict-item]
}
