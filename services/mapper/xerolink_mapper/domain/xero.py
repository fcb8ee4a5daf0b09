"""The Xero side of a mapping: the operations the poster performs, in order.

Amounts are integer cents of the transaction's currency, tax amounts are always explicit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from xerolink_mapper.domain.model import RecordKey, ValueEnum


class LineAmountTypes(ValueEnum):
    EXCLUSIVE = "Exclusive"
    INCLUSIVE = "Inclusive"
    NO_TAX = "NoTax"


class InvoiceType(ValueEnum):
    ACCREC = "ACCREC"
    ACCPAY = "ACCPAY"


class CreditNoteType(ValueEnum):
    ACCRECCREDIT = "ACCRECCREDIT"
    ACCPAYCREDIT = "ACCPAYCREDIT"


class BankTransactionType(ValueEnum):
    RECEIVE = "RECEIVE"
    SPEND = "SPEND"
    RECEIVE_OVERPAYMENT = "RECEIVE-OVERPAYMENT"
    SPEND_OVERPAYMENT = "SPEND-OVERPAYMENT"


class DocumentType(ValueEnum):
    """What a payment pays."""

    INVOICE = "Invoice"
    CREDIT_NOTE = "CreditNote"
    OVERPAYMENT = "Overpayment"


@dataclass(frozen=True, slots=True)
class LocalRef:
    """An earlier operation of the same mapping."""

    local_ref: str


# A document a payment or allocation refers to: an earlier operation, or another Actionstep
# record whose link holds the Xero document (the poster waits until it is linked).
DocumentRef = LocalRef | RecordKey


@dataclass(slots=True)
class Contact:
    contact_number: str
    name: str
    participant_id: int
    first_name: str = ""
    last_name: str = ""
    email_address: str = ""
    tax_number: str = ""


@dataclass(slots=True)
class LineItem:
    description: str
    quantity: str
    unit_amount: str
    account_code: str
    tax_type: str
    line_amount: int
    tax_amount: int
    # Reports by matter: the Actionstep matter (action) the line belongs to; 0 for none or when off.
    tracked_action_id: int = 0


@dataclass(slots=True)
class Invoice:
    type: InvoiceType
    contact: Contact
    date: dt.date
    due_date: dt.date | None
    invoice_number: str
    reference: str
    line_amount_types: LineAmountTypes
    line_items: tuple[LineItem, ...]
    sub_total: int
    total_tax: int
    total: int
    currency_code: str
    currency_rate: str = ""


@dataclass(slots=True)
class CreditNote:
    type: CreditNoteType
    contact: Contact
    date: dt.date
    credit_note_number: str
    reference: str
    line_amount_types: LineAmountTypes
    line_items: tuple[LineItem, ...]
    sub_total: int
    total_tax: int
    total: int
    currency_code: str
    currency_rate: str = ""


@dataclass(slots=True)
class Payment:
    document: DocumentRef
    document_type: DocumentType
    account_code: str
    date: dt.date
    amount: int
    reference: str = ""
    currency_rate: str = ""


@dataclass(slots=True)
class Allocation:
    credit_note: DocumentRef
    invoice: DocumentRef
    amount: int
    date: dt.date


@dataclass(slots=True)
class BankTransaction:
    type: BankTransactionType
    contact: Contact
    bank_account_code: str
    date: dt.date
    reference: str
    line_amount_types: LineAmountTypes
    line_items: tuple[LineItem, ...]
    sub_total: int
    total_tax: int
    total: int
    currency_code: str
    currency_rate: str = ""


@dataclass(slots=True)
class BankTransfer:
    from_bank_account_code: str
    to_bank_account_code: str
    amount: int
    date: dt.date
    reference: str = ""


@dataclass(slots=True)
class JournalLine:
    account_code: str
    description: str
    # Positive is a debit, negative a credit.
    line_amount: int
    tax_type: str
    tax_amount: int = 0
    # As LineItem.tracked_action_id.
    tracked_action_id: int = 0


@dataclass(slots=True)
class ManualJournal:
    narration: str
    date: dt.date
    line_amount_types: LineAmountTypes
    journal_lines: tuple[JournalLine, ...]


OperationBody = Invoice | CreditNote | Payment | Allocation | BankTransaction | BankTransfer | ManualJournal


@dataclass(slots=True)
class Operation:
    local_ref: str
    body: OperationBody


@dataclass(frozen=True, slots=True)
class Decision:
    supported: bool
    reason_code: str
    reason: str


@dataclass(slots=True)
class MapOutcome:
    """The answer for one transaction: the decision, and when supported the operations in the
    order they must be performed. `total` is the Actionstep amount the operations conserve."""

    record: RecordKey
    decision: Decision
    operations: tuple[Operation, ...]
    total: int
    currency_code: str
