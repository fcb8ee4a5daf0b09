"""Domain results -> xerolink.xero.v1 operations and xerolink.mapper.v1 responses."""

from __future__ import annotations

from datetime import date

from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.type.v1 import date_pb2, errors_pb2, money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.errors import XerolinkError

from xerolink_mapper.adapters.proto_in import KIND_TO_PROTO
from xerolink_mapper.domain import xero
from xerolink_mapper.domain.model import Profile, RecordKey

PROFILE_TO_PROTO = {
    Profile.ACTIONSTEP_COMPATIBLE: mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE,
    Profile.EXTENDED: mapper_pb2.POLICY_PROFILE_EXTENDED,
}
_LINE_AMOUNT_TYPES = {
    xero.LineAmountTypes.EXCLUSIVE: xero_pb2.LINE_AMOUNT_TYPES_EXCLUSIVE,
    xero.LineAmountTypes.INCLUSIVE: xero_pb2.LINE_AMOUNT_TYPES_INCLUSIVE,
    xero.LineAmountTypes.NO_TAX: xero_pb2.LINE_AMOUNT_TYPES_NO_TAX,
}
_INVOICE_TYPES = {
    xero.InvoiceType.ACCREC: xero_pb2.INVOICE_TYPE_ACCREC,
    xero.InvoiceType.ACCPAY: xero_pb2.INVOICE_TYPE_ACCPAY,
}
_CREDIT_TYPES = {
    xero.CreditNoteType.ACCRECCREDIT: xero_pb2.CREDIT_NOTE_TYPE_ACCRECCREDIT,
    xero.CreditNoteType.ACCPAYCREDIT: xero_pb2.CREDIT_NOTE_TYPE_ACCPAYCREDIT,
}
_BANK_TYPES = {
    xero.BankTransactionType.RECEIVE: xero_pb2.BANK_TRANSACTION_TYPE_RECEIVE,
    xero.BankTransactionType.SPEND: xero_pb2.BANK_TRANSACTION_TYPE_SPEND,
    xero.BankTransactionType.RECEIVE_OVERPAYMENT: xero_pb2.BANK_TRANSACTION_TYPE_RECEIVE_OVERPAYMENT,
    xero.BankTransactionType.SPEND_OVERPAYMENT: xero_pb2.BANK_TRANSACTION_TYPE_SPEND_OVERPAYMENT,
}
_DOCUMENT_TYPES = {
    xero.DocumentType.INVOICE: xero_pb2.OBJECT_TYPE_INVOICE,
    xero.DocumentType.CREDIT_NOTE: xero_pb2.OBJECT_TYPE_CREDIT_NOTE,
    xero.DocumentType.OVERPAYMENT: xero_pb2.OBJECT_TYPE_OVERPAYMENT,
}


def _date(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def _money(cents: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, units=cents)


def _record(key: RecordKey) -> common_pb2.RecordKey:
    return common_pb2.RecordKey(kind=KIND_TO_PROTO[key.kind], id=key.id)  # type: ignore[arg-type]


def _ref(ref: xero.DocumentRef) -> xero_pb2.DocumentRef:
    if isinstance(ref, xero.LocalRef):
        return xero_pb2.DocumentRef(local_ref=ref.local_ref)
    return xero_pb2.DocumentRef(record=_record(ref))


def _contact(c: xero.Contact) -> xero_pb2.Contact:
    return xero_pb2.Contact(
        contact_number=c.contact_number,
        name=c.name,
        first_name=c.first_name,
        last_name=c.last_name,
        email_address=c.email_address,
        tax_number=c.tax_number,
        participant_id=c.participant_id,
    )


def _items(items: tuple[xero.LineItem, ...], currency: str) -> list[xero_pb2.LineItem]:
    return [
        xero_pb2.LineItem(
            description=i.description,
            quantity=i.quantity,
            unit_amount=i.unit_amount,
            account_code=i.account_code,
            tax_type=i.tax_type,
            line_amount=_money(i.line_amount, currency),
            tax_amount=_money(i.tax_amount, currency),
        )
        for i in items
    ]


def operation_to_proto(op: xero.Operation, currency: str) -> xero_pb2.Operation:
    body = op.body
    out = xero_pb2.Operation(local_ref=op.local_ref)
    if isinstance(body, xero.Invoice):
        out.invoice.CopyFrom(
            xero_pb2.Invoice(
                type=_INVOICE_TYPES[body.type],
                contact=_contact(body.contact),
                date=_date(body.date),
                due_date=_date(body.due_date) if body.due_date else None,
                invoice_number=body.invoice_number,
                reference=body.reference,
                line_amount_types=_LINE_AMOUNT_TYPES[body.line_amount_types],
                line_items=_items(body.line_items, currency),
                sub_total=_money(body.sub_total, currency),
                total_tax=_money(body.total_tax, currency),
                total=_money(body.total, currency),
                status=xero_pb2.DOCUMENT_STATUS_AUTHORISED,
                currency_code=body.currency_code,
                currency_rate=body.currency_rate,
            )
        )
    elif isinstance(body, xero.CreditNote):
        out.credit_note.CopyFrom(
            xero_pb2.CreditNote(
                type=_CREDIT_TYPES[body.type],
                contact=_contact(body.contact),
                date=_date(body.date),
                credit_note_number=body.credit_note_number,
                reference=body.reference,
                line_amount_types=_LINE_AMOUNT_TYPES[body.line_amount_types],
                line_items=_items(body.line_items, currency),
                sub_total=_money(body.sub_total, currency),
                total_tax=_money(body.total_tax, currency),
                total=_money(body.total, currency),
                status=xero_pb2.DOCUMENT_STATUS_AUTHORISED,
                currency_code=body.currency_code,
                currency_rate=body.currency_rate,
            )
        )
    elif isinstance(body, xero.Payment):
        out.payment.CopyFrom(
            xero_pb2.Payment(
                document=_ref(body.document),
                document_type=_DOCUMENT_TYPES[body.document_type],
                account_code=body.account_code,
                date=_date(body.date),
                amount=_money(body.amount, currency),
                reference=body.reference,
                currency_rate=body.currency_rate,
            )
        )
    elif isinstance(body, xero.Allocation):
        out.allocation.CopyFrom(
            xero_pb2.Allocation(
                credit_note=_ref(body.credit_note),
                invoice=_ref(body.invoice),
                amount=_money(body.amount, currency),
                date=_date(body.date),
            )
        )
    elif isinstance(body, xero.BankTransaction):
        out.bank_transaction.CopyFrom(
            xero_pb2.BankTransaction(
                type=_BANK_TYPES[body.type],
                contact=_contact(body.contact),
                bank_account_code=body.bank_account_code,
                date=_date(body.date),
                reference=body.reference,
                line_amount_types=_LINE_AMOUNT_TYPES[body.line_amount_types],
                line_items=_items(body.line_items, currency),
                sub_total=_money(body.sub_total, currency),
                total_tax=_money(body.total_tax, currency),
                total=_money(body.total, currency),
                currency_code=body.currency_code,
                currency_rate=body.currency_rate,
            )
        )
    elif isinstance(body, xero.BankTransfer):
        out.bank_transfer.CopyFrom(
            xero_pb2.BankTransfer(
                from_bank_account_code=body.from_bank_account_code,
                to_bank_account_code=body.to_bank_account_code,
                amount=_money(body.amount, currency),
                date=_date(body.date),
                reference=body.reference,
            )
        )
    else:
        out.manual_journal.CopyFrom(
            xero_pb2.ManualJournal(
                narration=body.narration,
                date=_date(body.date),
                line_amount_types=_LINE_AMOUNT_TYPES[body.line_amount_types],
                journal_lines=[
                    xero_pb2.JournalLine(
                        account_code=line.account_code,
                        description=line.description,
                        line_amount=_money(line.line_amount, currency),
                        tax_type=line.tax_type,
                        tax_amount=_money(line.tax_amount, currency),
                    )
                    for line in body.journal_lines
                ],
                status=xero_pb2.MANUAL_JOURNAL_STATUS_POSTED,
            )
        )
    return out


def outcome_to_proto(outcome: xero.MapOutcome, profile: Profile) -> mapper_pb2.MapTransactionResponse:
    currency = outcome.currency_code
    return mapper_pb2.MapTransactionResponse(
        record=_record(outcome.record),
        decision=mapper_pb2.Decision(
            supported=outcome.decision.supported,
            reason_code=outcome.decision.reason_code,
            reason=outcome.decision.reason,
            profile=PROFILE_TO_PROTO[profile],
        ),
        operations=[operation_to_proto(op, currency) for op in outcome.operations],
        total=_money(outcome.total, currency),
    )


def error_result(index: int, err: XerolinkError) -> mapper_pb2.MapResult:
    """The per-item form of the status a unary call would have returned."""
    return mapper_pb2.MapResult(
        index=index,
        error=errors_pb2.ItemError(
            code=err.code.value,
            reason=err.reason,
            message=err.message,
            field_violations=[
                errors_pb2.FieldViolation(field=v.field, description=v.description) for v in err.field_violations
            ],
        ),
        precondition_violations=[
            mapper_pb2.PreconditionViolation(type=v.type, subject=v.subject, description=v.description)
            for v in err.precondition_violations
        ],
    )
