"""What each supported kind becomes in Xero. One Actionstep transaction may become several
operations, in the order the poster performs them; references to other Actionstep records are
left as RecordKeys for the poster to resolve through its link registry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from xerolink_mapper.domain import chart as chart_checks
from xerolink_mapper.domain.aggregation import aggregate_lines, describe, tax_type_for, unit_amount
from xerolink_mapper.domain.decisions import decide
from xerolink_mapper.domain.model import (
    Amount,
    ApplicationBody,
    BankAmountBody,
    BankEntryBody,
    DocumentBody,
    FundsBody,
    FundsDirection,
    GeneralJournalBody,
    Kind,
    MappingContext,
    OverpaymentRefundBody,
    PaymentBody,
    RecordKey,
    Totals,
    Transaction,
    TransferBody,
    TrustJournalBody,
)
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.text import TextRule, check_text
from xerolink_mapper.domain.validation import check_context, check_date, check_header, money
from xerolink_mapper.domain.xero import (
    Allocation,
    BankTransaction,
    BankTransactionType,
    BankTransfer,
    Contact,
    CreditNote,
    CreditNoteType,
    Decision,
    DocumentType,
    Invoice,
    InvoiceType,
    JournalLine,
    LineAmountTypes,
    LineItem,
    LocalRef,
    ManualJournal,
    MapOutcome,
    Operation,
    Payment,
)
from xerolink_mapper.domain.xero_fields import (
    ACCOUNT_CODE,
    CONTACT_EMAIL,
    CONTACT_FIRST_NAME,
    CONTACT_LAST_NAME,
    CONTACT_NAME,
    CONTACT_TAX_NUMBER,
    CREDIT_NOTE_NUMBER,
    INVOICE_NUMBER,
    LINE_DESCRIPTION,
    NARRATION,
    REFERENCE,
    SUPPLIER_NUMBER,
    contact_number,
)

ALLOCATION_MISSING = "ACCOUNT_ALLOCATION_MISSING"
# Allocation functions (MappingContext.account_allocation keys).
OFFICE_BANK = "office_bank"
TRUST_BANK = "trust_bank"
TRUST_LIABILITY = "trust_liability"
TRUST_TRANSFERS = "trust_transfers"
TRUST_PAID_BY_FIRM = "trust_paid_by_firm"
TRUST_INTEREST = "trust_interest"
STATUTORY_DEPOSIT = "statutory_deposit"
ADVANCED_FUNDS = "advanced_funds"
ALLOCATION_FUNCTIONS = (
    OFFICE_BANK,
    TRUST_BANK,
    TRUST_LIABILITY,
    TRUST_TRANSFERS,
    TRUST_PAID_BY_FIRM,
    TRUST_INTEREST,
    STATUTORY_DEPOSIT,
    ADVANCED_FUNDS,
)
# Tax types of lines on allocated accounts, which carry no Actionstep tax code: trust money is
# not the firm's supply (excluded from tax returns); trust interest is exempt income.
TRUST_TAX_TYPE = "BASEXCLUDED"
INTEREST_TAX_TYPE = "EXEMPTOUTPUT"
# A journal line without a tax code.
UNTAXED_JOURNAL_TAX_TYPE = "BASEXCLUDED"

SALES_MAP = "tax_code_map"
PURCHASE_MAP = "purchase_tax_code_map"


class _Job:
    """One mapping in progress: the transaction, the context and the problems found so far."""

    __slots__ = ("ctx", "currency", "date", "path", "problems", "rate", "reference", "tx")

    def __init__(self, tx: Transaction, ctx: MappingContext, problems: Problems) -> None:
        self.tx = tx
        self.ctx = ctx
        self.problems = problems
        header = tx.header
        self.path = f"transaction.{tx.field_name}"
        self.currency = header.currency_code
        self.date: date = header.transaction_date or date.min  # validated before mapping
        self.rate = header.currency_rate
        self.reference = header.reference
        self.text(header.reference, "transaction.header.reference", REFERENCE)

    def text(self, value: str, path: str, rule: TextRule) -> bool:
        """Xero refuses such text or keeps it unreadable; refusing it here keeps an invalid
        request from changing state."""
        return check_text(value, path, rule, self.problems)

    def code(self, value: str, field: str) -> str:
        """An account code the transaction names (empty: the allocated one applies)."""
        self.text(value, f"{self.path}.{field}", ACCOUNT_CODE)
        return value

    def money(self, value: Amount | None, name: str, *, positive: bool = True) -> int:
        return money(value, f"{self.path}.{name}", self.currency, self.problems, positive=positive)

    def allocated(self, function: str, why: str) -> str:
        code = self.ctx.account_allocation.get(function, "")
        if not code:
            self.problems.precondition(
                ALLOCATION_MISSING,
                function,
                f"no Xero account is allocated to {function!r} ({why}): add it to the connection's account allocation",
            )
        return code

    def account(self, explicit: str, field: str, function: str, why: str) -> str:
        """The account the transaction names in `field`, else the one allocated to the function."""
        return self.code(explicit, field) or self.allocated(function, why)

    def contact(self) -> Contact:
        participant = self.tx.header.participant
        path = "transaction.header.participant"
        if participant is None:
            self.problems.field(path, "is required: Xero needs a contact for this transaction")
            return Contact("", "", 0)
        if participant.participant_id <= 0:
            self.problems.field(f"{path}.participant_id", "must be the Actionstep participant id")
        name = participant.display_name or f"{participant.first_name} {participant.last_name}".strip()
        if not name:
            self.problems.field(f"{path}.display_name", "is required (or first_name / last_name)")
        self.text(name, f"{path}.display_name", CONTACT_NAME)
        for field, value, rule in (
            ("first_name", participant.first_name, CONTACT_FIRST_NAME),
            ("last_name", participant.last_name, CONTACT_LAST_NAME),
            ("email", participant.email, CONTACT_EMAIL),
            ("tax_number", participant.tax_number, CONTACT_TAX_NUMBER),
        ):
            self.text(value, f"{path}.{field}", rule)
        return Contact(
            contact_number=contact_number(participant.participant_id),
            name=name,
            participant_id=participant.participant_id,
            first_name=participant.first_name,
            last_name=participant.last_name,
            email_address=participant.email,
            tax_number=participant.tax_number,
        )

    def record_id(self, value: int, name: str) -> int:
        if value <= 0:
            self.problems.field(f"{self.path}.{name}", "must be the Actionstep id of the linked record")
        return value

    def check_totals(self, totals: Totals | None, sub_total: int, tax_total: int) -> int:
        """The stated totals must equal what the lines add up to; returns the inclusive total."""
        path = f"{self.path}.totals"
        if totals is None:
            self.problems.field(path, "is required: send exclusive, tax and inclusive totals")
            return sub_total + tax_total
        stated = (
            ("exclusive", totals.exclusive, sub_total),
            ("tax", totals.tax, tax_total),
            ("inclusive", totals.inclusive, sub_total + tax_total),
        )
        for name, value, summed in stated:
            cents = self.money(value, f"totals.{name}", positive=False)
            if value is not None and cents != summed:
                self.problems.field(
                    f"{path}.{name}",
                    f"is {cents} cents but the lines add up to {summed}: correct the lines or the total",
                )
        inclusive = sub_total + tax_total
        if inclusive < 0:
            self.problems.field(f"{path}.inclusive", "is negative: post a credit instead of a negative document")
        return inclusive


def _document_lines(
    job: _Job, body: DocumentBody | BankEntryBody, purchase: bool
) -> tuple[tuple[LineItem, ...], int, int, int]:
    tax_map, map_name = (job.ctx.purchase_tax_code_map, PURCHASE_MAP) if purchase else (job.ctx.tax_code_map, SALES_MAP)
    items, sub_total, tax_total = aggregate_lines(
        body.lines, f"{job.path}.lines", job.currency, tax_map, map_name, job.problems
    )
    total = job.check_totals(body.totals, sub_total, tax_total)
    return items, sub_total, tax_total, total


def _document_number(job: _Job, number: str, field: str, required: bool, rule: TextRule) -> None:
    """Sales documents need their number (Xero keeps it unique); any number must fit Xero's field."""
    if required and not number:
        job.problems.field(f"{job.path}.{field}", f"is required: it becomes {rule.what}")
    job.text(number, f"{job.path}.{field}", rule)


def _invoice(job: _Job, body: DocumentBody, type_: InvoiceType) -> tuple[list[Operation], int]:
    sales = type_ is InvoiceType.ACCREC
    rule = INVOICE_NUMBER if sales else SUPPLIER_NUMBER
    _document_number(job, body.number, "bill_number" if sales else "invoice_number", sales, rule)
    due = check_date(body.due_date, f"{job.path}.due_date", job.problems)
    if due is not None and job.tx.header.transaction_date is not None and due < job.tx.header.transaction_date:
        job.problems.field(f"{job.path}.due_date", "is before the transaction date")
    items, sub_total, tax_total, total = _document_lines(job, body, purchase=type_ is InvoiceType.ACCPAY)
    invoice = Invoice(
        type=type_,
        contact=job.contact(),
        date=job.date,
        due_date=due,
        invoice_number=body.number,
        reference=job.reference,
        line_amount_types=LineAmountTypes.EXCLUSIVE,
        line_items=items,
        sub_total=sub_total,
        total_tax=tax_total,
        total=total,
        currency_code=job.currency,
        currency_rate=job.rate,
    )
    return [Operation("invoice", invoice)], total


def _client_bill(job: _Job, body: DocumentBody) -> tuple[list[Operation], int]:
    return _invoice(job, body, InvoiceType.ACCREC)


def _supplier_invoice(job: _Job, body: DocumentBody) -> tuple[list[Operation], int]:
    return _invoice(job, body, InvoiceType.ACCPAY)


def _credit(job: _Job, body: DocumentBody, type_: CreditNoteType) -> tuple[list[Operation], int]:
    sales = type_ is CreditNoteType.ACCRECCREDIT
    number_field = "credit_note_number" if sales else "credit_number"
    _document_number(job, body.number, number_field, sales, CREDIT_NOTE_NUMBER if sales else SUPPLIER_NUMBER)
    items, sub_total, tax_total, total = _document_lines(job, body, purchase=type_ is CreditNoteType.ACCPAYCREDIT)
    credit = CreditNote(
        type=type_,
        contact=job.contact(),
        date=job.date,
        credit_note_number=body.number,
        reference=job.reference,
        line_amount_types=LineAmountTypes.EXCLUSIVE,
        line_items=items,
        sub_total=sub_total,
        total_tax=tax_total,
        total=total,
        currency_code=job.currency,
        currency_rate=job.rate,
    )
    return [Operation("credit-note", credit)], total


def _credit_note(job: _Job, body: DocumentBody) -> tuple[list[Operation], int]:
    return _credit(job, body, CreditNoteType.ACCRECCREDIT)


def _supplier_credit(job: _Job, body: DocumentBody) -> tuple[list[Operation], int]:
    return _credit(job, body, CreditNoteType.ACCPAYCREDIT)


def _payment(
    job: _Job, body: PaymentBody, document: Kind, id_field: str, document_type: DocumentType, why: str
) -> tuple[list[Operation], int]:
    amount = job.money(body.amount, "amount")
    payment = Payment(
        document=RecordKey(document, job.record_id(body.document_id, id_field)),
        document_type=document_type,
        account_code=job.account(body.bank_account, "bank_account", OFFICE_BANK, why),
        date=job.date,
        amount=amount,
        reference=job.reference,
        currency_rate=job.rate,
    )
    return [Operation("payment", payment)], amount


def _client_bill_payment(job: _Job, body: PaymentBody) -> tuple[list[Operation], int]:
    return _payment(job, body, Kind.CLIENT_BILL, "bill_id", DocumentType.INVOICE, "the bank the client paid into")


def _supplier_invoice_payment(job: _Job, body: PaymentBody) -> tuple[list[Operation], int]:
    return _payment(
        job,
        body,
        Kind.SUPPLIER_INVOICE,
        "supplier_invoice_id",
        DocumentType.INVOICE,
        "the bank the supplier is paid from",
    )


def _credit_note_refund(job: _Job, body: PaymentBody) -> tuple[list[Operation], int]:
    return _payment(
        job, body, Kind.CREDIT_NOTE, "credit_note_id", DocumentType.CREDIT_NOTE, "the bank the refund is paid from"
    )


def _application(
    job: _Job, body: ApplicationBody, credit: Kind, credit_field: str, invoice: Kind, invoice_field: str
) -> tuple[list[Operation], int]:
    amount = job.money(body.amount, "amount")
    allocation = Allocation(
        credit_note=RecordKey(credit, job.record_id(body.credit_id, credit_field)),
        invoice=RecordKey(invoice, job.record_id(body.invoice_id, invoice_field)),
        amount=amount,
        date=job.date,
    )
    return [Operation("allocation", allocation)], amount


def _credit_note_application(job: _Job, body: ApplicationBody) -> tuple[list[Operation], int]:
    return _application(job, body, Kind.CREDIT_NOTE, "credit_note_id", Kind.CLIENT_BILL, "bill_id")


def _supplier_credit_application(job: _Job, body: ApplicationBody) -> tuple[list[Operation], int]:
    return _application(
        job, body, Kind.SUPPLIER_CREDIT, "supplier_credit_id", Kind.SUPPLIER_INVOICE, "supplier_invoice_id"
    )


def _bank_transaction(
    job: _Job,
    type_: BankTransactionType,
    bank: str,
    items: tuple[LineItem, ...],
    line_amount_types: LineAmountTypes,
) -> BankTransaction:
    sub_total = sum(item.line_amount for item in items)
    tax_total = sum(item.tax_amount for item in items)
    return BankTransaction(
        type=type_,
        contact=job.contact(),
        bank_account_code=bank,
        date=job.date,
        reference=job.reference,
        line_amount_types=line_amount_types,
        line_items=items,
        sub_total=sub_total,
        total_tax=tax_total,
        total=sub_total + tax_total,
        currency_code=job.currency,
        currency_rate=job.rate,
    )


# A trust journal's note ends up in its narration: one line, bounded as a whole by the caller.
_NOTE_IN_NARRATION = TextRule(NARRATION.what)


def _note(job: _Job, description: str) -> tuple[str, str]:
    """The transaction's own description, else the header's memo, with the path of the one used."""
    if description:
        return description, f"{job.path}.description"
    return job.tx.header.memo, "transaction.header.memo"


def _single_line(description: str, account: str, tax_type: str, amount: int) -> tuple[LineItem, ...]:
    return (LineItem(description or f"Account {account}", "1", unit_amount(amount), account, tax_type, amount, 0),)


def _trust_money(
    job: _Job, body: BankAmountBody, type_: BankTransactionType, function: str, tax_type: str, ref: str
) -> tuple[list[Operation], int]:
    amount = job.money(body.amount, "amount")
    bank = job.account(body.bank_account, "trust_bank_account", TRUST_BANK, "the trust bank account")
    line_account = job.allocated(function, "the trust ledger line")
    description, path = _note(job, body.description)
    job.text(description, path, LINE_DESCRIPTION)
    items = _single_line(description, line_account, tax_type, amount)
    return [Operation(ref, _bank_transaction(job, type_, bank, items, LineAmountTypes.NO_TAX))], amount


def _trust_receipt(job: _Job, body: BankAmountBody) -> tuple[list[Operation], int]:
    return _trust_money(job, body, BankTransactionType.RECEIVE, TRUST_LIABILITY, TRUST_TAX_TYPE, "trust-receipt")


def _trust_payment(job: _Job, body: BankAmountBody) -> tuple[list[Operation], int]:
    return _trust_money(job, body, BankTransactionType.SPEND, TRUST_LIABILITY, TRUST_TAX_TYPE, "trust-payment")


def _trust_interest(job: _Job, body: BankAmountBody) -> tuple[list[Operation], int]:
    return _trust_money(job, body, BankTransactionType.RECEIVE, TRUST_INTEREST, INTEREST_TAX_TYPE, "trust-interest")


def _trust_journal(job: _Job, body: TrustJournalBody) -> tuple[list[Operation], int]:
    amount = job.money(body.amount, "amount")
    from_action = job.record_id(body.from_action_id, "from_action_id")
    to_action = job.record_id(body.to_action_id, "to_action_id")
    if from_action and from_action == to_action:
        job.problems.field(f"{job.path}.to_action_id", "is the same matter as from_action_id: nothing moves")
    liability = job.allocated(TRUST_LIABILITY, "the matters' trust ledger")
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
    journal = ManualJournal(
        narration=narration,
        date=job.date,
        line_amount_types=LineAmountTypes.NO_TAX,
        journal_lines=(
            # The paying matter's liability falls (debit), the receiving matter's rises (credit).
            JournalLine(liability, f"Matter {from_action}{suffix}", amount, TRUST_TAX_TYPE),
            JournalLine(liability, f"Matter {to_action}{suffix}", -amount, TRUST_TAX_TYPE),
        ),
    )
    return [Operation("trust-journal", journal)], amount


def _transfer(job: _Job, body: TransferBody, default_from: str | None) -> tuple[list[Operation], int]:
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
    transfer = BankTransfer(source, body.to_account, amount, job.date, job.reference)
    return [Operation("bank-transfer", transfer)], amount


def _trust_transfer(job: _Job, body: TransferBody) -> tuple[list[Operation], int]:
    return _transfer(job, body, TRUST_BANK)


def _office_bank_transfer(job: _Job, body: TransferBody) -> tuple[list[Operation], int]:
    return _transfer(job, body, None)


def _invoice_paid_from_trust(job: _Job, body: PaymentBody) -> tuple[list[Operation], int]:
    """The firm takes its fee out of trust: money leaves the trust bank against the matter's
    trust liability and arrives in the office bank as the payment of the invoice.

    The payment goes straight into the office bank rather than through a clearing account: a
    separate trust transfer to the office would map to a bank transfer out of the trust bank and
    credit it a second time, and Xero's bank transfers cannot clear a non-bank account."""
    amount = job.money(body.amount, "amount")
    bill = job.record_id(body.document_id, "bill_id")
    bank = job.account(body.bank_account, "trust_bank_account", TRUST_BANK, "the trust bank account")
    liability = job.allocated(TRUST_LIABILITY, "the matter's trust ledger")
    office = job.allocated(OFFICE_BANK, "the office bank the fee is paid into")
    items = _single_line(f"Payment of bill {bill} from trust", liability, TRUST_TAX_TYPE, amount)
    spend = _bank_transaction(job, BankTransactionType.SPEND, bank, items, LineAmountTypes.NO_TAX)
    payment = Payment(
        document=RecordKey(Kind.CLIENT_BILL, bill),
        document_type=DocumentType.INVOICE,
        account_code=office,
        date=job.date,
        amount=amount,
        reference=job.reference,
        currency_rate=job.rate,
    )
    return [Operation("trust-spend", spend), Operation("payment", payment)], amount


def _funds(job: _Job, body: FundsBody, function: str, ref: str, account_field: str) -> tuple[list[Operation], int]:
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
        items = _single_line(f"{function.replace('_', ' ').capitalize()}", funds, TRUST_TAX_TYPE, amount)
        return [Operation(ref, _bank_transaction(job, type_, trust, items, LineAmountTypes.NO_TAX))], amount
    source, target = (trust, funds) if out else (funds, trust)
    return [Operation("bank-transfer", BankTransfer(source, target, amount, job.date, job.reference))], amount


def _statutory_funds(job: _Job, body: FundsBody) -> tuple[list[Operation], int]:
    return _funds(job, body, STATUTORY_DEPOSIT, "statutory-funds", "statutory_account")


def _advanced_funds(job: _Job, body: FundsBody) -> tuple[list[Operation], int]:
    return _funds(job, body, ADVANCED_FUNDS, "advanced-funds", "advanced_funds_account")


def _overpayment_refund(job: _Job, body: OverpaymentRefundBody) -> tuple[list[Operation], int]:
    """The excess the client paid becomes a Xero overpayment (Xero books it to accounts
    receivable, so its line has no account code), then the refund pays it back."""
    overpaid = job.money(body.overpaid, "overpaid_amount")
    refund = job.money(body.refund, "refund_amount")
    if refund != overpaid and overpaid > 0:
        # Each refund creates the overpayment it pays: a second partial refund of the same receipt
        # would create the overpayment again and put the excess in the bank twice.
        job.problems.field(
            f"{job.path}.refund_amount",
            "must equal overpaid_amount: this version refunds an overpayment whole, in one refund; "
            "record a partial refund in Xero against the overpayment instead",
        )
    bank = job.account(body.bank_account, "bank_account", OFFICE_BANK, "the bank the overpayment was received into")
    receipt = f" (receipt {body.receipt_id})" if body.receipt_id else ""
    item = LineItem(f"Client overpayment{receipt}", "1", unit_amount(overpaid), "", "NONE", overpaid, 0)
    overpayment = _bank_transaction(job, BankTransactionType.RECEIVE_OVERPAYMENT, bank, (item,), LineAmountTypes.NO_TAX)
    payment = Payment(
        document=LocalRef("overpayment"),
        document_type=DocumentType.OVERPAYMENT,
        account_code=bank,
        date=job.date,
        amount=refund,
        reference=job.reference,
        currency_rate=job.rate,
    )
    return [Operation("overpayment", overpayment), Operation("refund", payment)], overpaid


def _bank_entry(job: _Job, body: BankEntryBody, deposit: bool) -> tuple[list[Operation], int]:
    bank = job.account(body.bank_account, "bank_account", OFFICE_BANK, "the office bank account")
    items, _sub, _tax, total = _document_lines(job, body, purchase=not deposit)
    type_ = BankTransactionType.RECEIVE if deposit else BankTransactionType.SPEND
    ref = "bank-deposit" if deposit else "bank-withdrawal"
    return [Operation(ref, _bank_transaction(job, type_, bank, items, LineAmountTypes.EXCLUSIVE))], total


def _bank_deposit(job: _Job, body: BankEntryBody) -> tuple[list[Operation], int]:
    return _bank_entry(job, body, deposit=True)


def _bank_withdrawal(job: _Job, body: BankEntryBody) -> tuple[list[Operation], int]:
    return _bank_entry(job, body, deposit=False)


def _general_journal(job: _Job, body: GeneralJournalBody) -> tuple[list[Operation], int]:
    """Lines summed per account, tax type and side (debits and credits stay apart, so the
    journal's debit total is conserved). Actionstep journal lines carry no tax amount: the
    journal is posted NoTax, debit lines' codes through the purchase map, credits' through the
    sales map."""
    path = f"{job.path}.lines"
    if not body.lines:
        job.problems.field(path, "has no lines: a journal needs at least two")
    sums: dict[tuple[str, str, bool], int] = {}
    texts: dict[tuple[str, str, bool], list[str]] = {}
    balance = 0
    debits = 0
    for i, line in enumerate(body.lines):
        at = f"{path}[{i}]"
        amount = money(line.amount, f"{at}.amount", job.currency, job.problems, positive=False)
        if amount == 0:
            job.problems.field(f"{at}.amount", "is zero: a journal line must move money; remove it")
        if not line.gl_account:
            job.problems.field(f"{at}.gl_account", "is required: allocate the line to a general-ledger account")
        job.text(line.gl_account, f"{at}.gl_account", ACCOUNT_CODE)
        job.text(line.description, f"{at}.description", LINE_DESCRIPTION)
        debit = amount > 0
        if line.tax_code:
            tax_map, name = (
                (job.ctx.purchase_tax_code_map, PURCHASE_MAP) if debit else (job.ctx.tax_code_map, SALES_MAP)
            )
            tax_type = tax_type_for(line.tax_code, f"{at}.tax_code", tax_map, name, job.problems)
        else:
            tax_type = UNTAXED_JOURNAL_TAX_TYPE
        key = (line.gl_account, tax_type, debit)
        sums[key] = sums.get(key, 0) + amount
        texts.setdefault(key, []).append(line.description)
        balance += amount
        debits += max(amount, 0)
    if balance != 0:
        job.problems.field(path, f"do not balance: debits minus credits is {balance} cents; a journal sums to zero")
    lines = tuple(
        JournalLine(key[0], describe(texts[key], body.narration or key[0]), amount, key[1])
        for key, amount in sums.items()
    )
    if not body.narration:
        job.problems.field(f"{job.path}.narration", "is required: Xero manual journals need a narration")
    job.text(body.narration, f"{job.path}.narration", NARRATION)
    journal = ManualJournal(body.narration, job.date, LineAmountTypes.NO_TAX, lines)
    return [Operation("manual-journal", journal)], debits


_MAPPERS: dict[Kind, Callable[[_Job, object], tuple[list[Operation], int]]] = {
    Kind.CLIENT_BILL: _client_bill,  # type: ignore[dict-item]
    Kind.CLIENT_BILL_PAYMENT: _client_bill_payment,  # type: ignore[dict-item]
    Kind.CREDIT_NOTE: _credit_note,  # type: ignore[dict-item]
    Kind.CREDIT_NOTE_APPLICATION: _credit_note_application,  # type: ignore[dict-item]
    Kind.CREDIT_NOTE_REFUND: _credit_note_refund,  # type: ignore[dict-item]
    Kind.OVERPAYMENT_REFUND: _overpayment_refund,  # type: ignore[dict-item]
    Kind.TRUST_RECEIPT: _trust_receipt,  # type: ignore[dict-item]
    Kind.TRUST_PAYMENT: _trust_payment,  # type: ignore[dict-item]
    Kind.TRUST_JOURNAL: _trust_journal,  # type: ignore[dict-item]
    Kind.TRUST_TRANSFER: _trust_transfer,  # type: ignore[dict-item]
    Kind.TRUST_INTEREST: _trust_interest,  # type: ignore[dict-item]
    Kind.INVOICE_PAID_FROM_TRUST: _invoice_paid_from_trust,  # type: ignore[dict-item]
    Kind.STATUTORY_FUNDS: _statutory_funds,  # type: ignore[dict-item]
    Kind.ADVANCED_FUNDS: _advanced_funds,  # type: ignore[dict-item]
    Kind.SUPPLIER_INVOICE: _supplier_invoice,  # type: ignore[dict-item]
    Kind.SUPPLIER_INVOICE_PAYMENT: _supplier_invoice_payment,  # type: ignore[dict-item]
    Kind.SUPPLIER_CREDIT: _supplier_credit,  # type: ignore[dict-item]
    Kind.SUPPLIER_CREDIT_APPLICATION: _supplier_credit_application,  # type: ignore[dict-item]
    Kind.BANK_DEPOSIT: _bank_deposit,  # type: ignore[dict-item]
    Kind.BANK_WITHDRAWAL: _bank_withdrawal,  # type: ignore[dict-item]
    Kind.OFFICE_BANK_TRANSFER: _office_bank_transfer,  # type: ignore[dict-item]
    Kind.GENERAL_JOURNAL: _general_journal,  # type: ignore[dict-item]
}
MAPPED_KINDS = frozenset(_MAPPERS)


def map_transaction(tx: Transaction, ctx: MappingContext) -> MapOutcome:
    """Decides, and when supported maps, one transaction. Raises XerolinkError
    (INVALID_ARGUMENT / FAILED_PRECONDITION) with every problem found; never guesses."""
    problems = Problems()
    check_context(ctx, problems)
    check_header(tx.header, ctx, problems)
    problems.raise_if_any()
    record = RecordKey(tx.kind, tx.header.id)
    decision: Decision = decide(tx, ctx)
    if not decision.supported:
        return MapOutcome(record, decision, (), 0, tx.header.currency_code)
    job = _Job(tx, ctx, problems)
    operations, total = _MAPPERS[tx.kind](job, tx.body)
    if ctx.chart is not None and not problems:
        chart_checks.check_operations(operations, ctx.chart, ctx.chart_usable, problems)
    problems.raise_if_any()
    return MapOutcome(record, decision, tuple(operations), total, tx.header.currency_code)
