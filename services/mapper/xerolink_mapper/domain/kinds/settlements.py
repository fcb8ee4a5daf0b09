"""What settles a document: payments and refunds of bills, invoices and credit notes, credit
applications, and the refund of a client's overpayment."""

from __future__ import annotations

from xerolink_mapper.domain.aggregation import unit_amount
from xerolink_mapper.domain.allocations import OFFICE_BANK
from xerolink_mapper.domain.mapping_job import KindMapper, MappingJob, bank_transaction
from xerolink_mapper.domain.model import ApplicationBody, Kind, OverpaymentRefundBody, PaymentBody, RecordKey
from xerolink_mapper.domain.xero import (
    Allocation,
    BankTransactionType,
    DocumentType,
    LineAmountTypes,
    LineItem,
    LocalRef,
    Operation,
    Payment,
)


def _payment(
    job: MappingJob, body: PaymentBody, document: Kind, id_field: str, document_type: DocumentType, why: str
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


def _client_bill_payment(job: MappingJob, body: PaymentBody) -> tuple[list[Operation], int]:
    return _payment(job, body, Kind.CLIENT_BILL, "bill_id", DocumentType.INVOICE, "the bank the client paid into")


def _supplier_invoice_payment(job: MappingJob, body: PaymentBody) -> tuple[list[Operation], int]:
    return _payment(
        job,
        body,
        Kind.SUPPLIER_INVOICE,
        "supplier_invoice_id",
        DocumentType.INVOICE,
        "the bank the supplier is paid from",
    )


def _credit_note_refund(job: MappingJob, body: PaymentBody) -> tuple[list[Operation], int]:
    return _payment(
        job, body, Kind.CREDIT_NOTE, "credit_note_id", DocumentType.CREDIT_NOTE, "the bank the refund is paid from"
    )


def _application(
    job: MappingJob, body: ApplicationBody, credit: Kind, credit_field: str, invoice: Kind, invoice_field: str
) -> tuple[list[Operation], int]:
    amount = job.money(body.amount, "amount")
    allocation = Allocation(
        credit_note=RecordKey(credit, job.record_id(body.credit_id, credit_field)),
        invoice=RecordKey(invoice, job.record_id(body.invoice_id, invoice_field)),
        amount=amount,
        date=job.date,
    )
    return [Operation("allocation", allocation)], amount


def _credit_note_application(job: MappingJob, body: ApplicationBody) -> tuple[list[Operation], int]:
    return _application(job, body, Kind.CREDIT_NOTE, "credit_note_id", Kind.CLIENT_BILL, "bill_id")


def _supplier_credit_application(job: MappingJob, body: ApplicationBody) -> tuple[list[Operation], int]:
    return _application(
        job, body, Kind.SUPPLIER_CREDIT, "supplier_credit_id", Kind.SUPPLIER_INVOICE, "supplier_invoice_id"
    )


def _overpayment_refund(job: MappingJob, body: OverpaymentRefundBody) -> tuple[list[Operation], int]:
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
    # No tax type either: the line is NoTax and Xero's own example sends only a description and an
    # amount (Xero's Overpayments documentation, "Creating an overpayment"); "NONE" is not a tax
    # type of every organisation's country.
    item = LineItem(f"Client overpayment{receipt}", "1", unit_amount(overpaid), "", "", overpaid, 0, job.matter)
    overpayment = bank_transaction(job, BankTransactionType.RECEIVE_OVERPAYMENT, bank, (item,), LineAmountTypes.NO_TAX)
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


MAPPERS: dict[Kind, KindMapper] = {
    Kind.CLIENT_BILL_PAYMENT: _client_bill_payment,  # type: ignore[dict-item]
    Kind.CREDIT_NOTE_APPLICATION: _credit_note_application,  # type: ignore[dict-item]
    Kind.CREDIT_NOTE_REFUND: _credit_note_refund,  # type: ignore[dict-item]
    Kind.OVERPAYMENT_REFUND: _overpayment_refund,  # type: ignore[dict-item]
    Kind.SUPPLIER_INVOICE_PAYMENT: _supplier_invoice_payment,  # type: ignore[dict-item]
    Kind.SUPPLIER_CREDIT_APPLICATION: _supplier_credit_application,  # type: ignore[dict-item]
}
