"""Bills, supplier invoices and credit notes: each becomes one Xero invoice or credit note."""

from __future__ import annotations

from xerolink_mapper.domain.mapping_job import KindMapper, MappingJob, document_lines
from xerolink_mapper.domain.model import DocumentBody, Kind
from xerolink_mapper.domain.text import TextRule
from xerolink_mapper.domain.validation import check_date
from xerolink_mapper.domain.xero import CreditNote, CreditNoteType, Invoice, InvoiceType, LineAmountTypes, Operation
from xerolink_mapper.domain.xero_fields import CREDIT_NOTE_NUMBER, INVOICE_NUMBER, SUPPLIER_NUMBER


def _document_number(job: MappingJob, number: str, field: str, required: bool, rule: TextRule) -> None:
    """Sales documents need their number (Xero keeps it unique); any number must fit Xero's field."""
    if required and not number:
        job.problems.field(f"{job.path}.{field}", f"is required: it becomes {rule.what}")
    job.text(number, f"{job.path}.{field}", rule)


def _invoice(job: MappingJob, body: DocumentBody, type_: InvoiceType) -> tuple[list[Operation], int]:
    sales = type_ is InvoiceType.ACCREC
    rule = INVOICE_NUMBER if sales else SUPPLIER_NUMBER
    _document_number(job, body.number, "bill_number" if sales else "invoice_number", sales, rule)
    due = check_date(body.due_date, f"{job.path}.due_date", job.problems)
    if due is not None and job.tx.header.transaction_date is not None and due < job.tx.header.transaction_date:
        job.problems.field(f"{job.path}.due_date", "is before the transaction date")
    items, sub_total, tax_total, total = document_lines(job, body, purchase=type_ is InvoiceType.ACCPAY)
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


def _client_bill(job: MappingJob, body: DocumentBody) -> tuple[list[Operation], int]:
    return _invoice(job, body, InvoiceType.ACCREC)


def _supplier_invoice(job: MappingJob, body: DocumentBody) -> tuple[list[Operation], int]:
    return _invoice(job, body, InvoiceType.ACCPAY)


def _credit(job: MappingJob, body: DocumentBody, type_: CreditNoteType) -> tuple[list[Operation], int]:
    sales = type_ is CreditNoteType.ACCRECCREDIT
    number_field = "credit_note_number" if sales else "credit_number"
    _document_number(job, body.number, number_field, sales, CREDIT_NOTE_NUMBER if sales else SUPPLIER_NUMBER)
    items, sub_total, tax_total, total = document_lines(job, body, purchase=type_ is CreditNoteType.ACCPAYCREDIT)
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


def _credit_note(job: MappingJob, body: DocumentBody) -> tuple[list[Operation], int]:
    return _credit(job, body, CreditNoteType.ACCRECCREDIT)


def _supplier_credit(job: MappingJob, body: DocumentBody) -> tuple[list[Operation], int]:
    return _credit(job, body, CreditNoteType.ACCPAYCREDIT)


MAPPERS: dict[Kind, KindMapper] = {
    Kind.CLIENT_BILL: _client_bill,  # type: ignore[dict-item]
    Kind.CREDIT_NOTE: _credit_note,  # type: ignore[dict-item]
    Kind.SUPPLIER_INVOICE: _supplier_invoice,  # type: ignore[dict-item]
    Kind.SUPPLIER_CREDIT: _supplier_credit,  # type: ignore[dict-item]
}
