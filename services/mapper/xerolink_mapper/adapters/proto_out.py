"""Domain results -> xerolink.xero.v1 operations and xerolink.mapper.v1 responses."""

from __future__ import annotations

from datetime import date
from typing import Any

from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.type.v1 import date_pb2, errors_pb2, money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.errors import XerolinkError, bounded

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


# Messages are filled in place (no nested constructors and CopyFrom): the response is built once
# per transaction on the hot path of the streaming RPC.


def _set_date(target: date_pb2.Date, value: date) -> None:
    target.year = value.year
    target.month = value.month
    target.day = value.day


def _set_money(target: money_pb2.Money, cents: int, currency: str) -> None:
    target.currency_code = currency
    target.units = cents


def _set_record(target: common_pb2.RecordKey, key: RecordKey) -> None:
    target.kind = KIND_TO_PROTO[key.kind]  # type: ignore[assignment]
    target.id = key.id


def _set_ref(target: xero_pb2.DocumentRef, ref: xero.DocumentRef) -> None:
    if isinstance(ref, xero.LocalRef):
        target.local_ref = ref.local_ref
    else:
        _set_record(target.record, ref)


def _set_contact(target: xero_pb2.Contact, c: xero.Contact) -> None:
    target.contact_number = c.contact_number
    target.name = c.name
    target.participant_id = c.participant_id
    # Optional fields are mostly empty: setting "" would only cost time.
    if c.first_name:
        target.first_name = c.first_name
    if c.last_name:
        target.last_name = c.last_name
    if c.email_address:
        target.email_address = c.email_address
    if c.tax_number:
        target.tax_number = c.tax_number


def _add_items(target: Any, items: tuple[xero.LineItem, ...], currency: str) -> None:
    for i in items:
        item = target.add(
            description=i.description,
            quantity=i.quantity,
            unit_amount=i.unit_amount,
            account_code=i.account_code,
            tax_type=i.tax_type,
        )
        _set_money(item.line_amount, i.line_amount, currency)
        _set_money(item.tax_amount, i.tax_amount, currency)
        if i.tracked_action_id:
            item.tracked_action_id = i.tracked_action_id


def _set_document(target: Any, body: xero.Invoice | xero.CreditNote | xero.BankTransaction, currency: str) -> None:
    """The fields invoices, credit notes and bank transactions share."""
    _set_contact(target.contact, body.contact)
    _set_date(target.date, body.date)
    target.reference = body.reference
    target.line_amount_types = _LINE_AMOUNT_TYPES[body.line_amount_types]
    _add_items(target.line_items, body.line_items, currency)
    _set_money(target.sub_total, body.sub_total, currency)
    _set_money(target.total_tax, body.total_tax, currency)
    _set_money(target.total, body.total, currency)
    target.currency_code = body.currency_code
    if body.currency_rate:
        target.currency_rate = body.currency_rate


def fill_operation(out: xero_pb2.Operation, op: xero.Operation, currency: str) -> None:
    out.local_ref = op.local_ref
    body = op.body
    if isinstance(body, xero.Invoice):
        invoice = out.invoice
        invoice.type = _INVOICE_TYPES[body.type]
        _set_document(invoice, body, currency)
        if body.due_date is not None:
            _set_date(invoice.due_date, body.due_date)
        invoice.invoice_number = body.invoice_number
        invoice.status = xero_pb2.DOCUMENT_STATUS_AUTHORISED
    elif isinstance(body, xero.CreditNote):
        credit = out.credit_note
        credit.type = _CREDIT_TYPES[body.type]
        _set_document(credit, body, currency)
        credit.credit_note_number = body.credit_note_number
        credit.status = xero_pb2.DOCUMENT_STATUS_AUTHORISED
    elif isinstance(body, xero.Payment):
        payment = out.payment
        _set_ref(payment.document, body.document)
        payment.document_type = _DOCUMENT_TYPES[body.document_type]
        payment.account_code = body.account_code
        _set_date(payment.date, body.date)
        _set_money(payment.amount, body.amount, currency)
        payment.reference = body.reference
        if body.currency_rate:
            payment.currency_rate = body.currency_rate
    elif isinstance(body, xero.Allocation):
        allocation = out.allocation
        _set_ref(allocation.credit_note, body.credit_note)
        _set_ref(allocation.invoice, body.invoice)
        _set_money(allocation.amount, body.amount, currency)
        _set_date(allocation.date, body.date)
    elif isinstance(body, xero.BankTransaction):
        bank = out.bank_transaction
        bank.type = _BANK_TYPES[body.type]
        bank.bank_account_code = body.bank_account_code
        _set_document(bank, body, currency)
    elif isinstance(body, xero.BankTransfer):
        transfer = out.bank_transfer
        transfer.from_bank_account_code = body.from_bank_account_code
        transfer.to_bank_account_code = body.to_bank_account_code
        _set_money(transfer.amount, body.amount, currency)
        _set_date(transfer.date, body.date)
        transfer.reference = body.reference
    else:
        journal = out.manual_journal
        journal.narration = body.narration
        _set_date(journal.date, body.date)
        journal.line_amount_types = _LINE_AMOUNT_TYPES[body.line_amount_types]
        for line in body.journal_lines:
            jl = journal.journal_lines.add(
                account_code=line.account_code, description=line.description, tax_type=line.tax_type
            )
            _set_money(jl.line_amount, line.line_amount, currency)
            _set_money(jl.tax_amount, line.tax_amount, currency)
            if line.tracked_action_id:
                jl.tracked_action_id = line.tracked_action_id
        journal.status = xero_pb2.MANUAL_JOURNAL_STATUS_POSTED


def fill_response(out: mapper_pb2.MapTransactionResponse, outcome: xero.MapOutcome, profile: Profile) -> None:
    currency = outcome.currency_code
    _set_record(out.record, outcome.record)
    decision = out.decision
    decision.supported = outcome.decision.supported
    decision.reason_code = outcome.decision.reason_code
    decision.reason = outcome.decision.reason
    decision.profile = PROFILE_TO_PROTO[profile]
    decision.outcome = (
        mapper_pb2.DECISION_OUTCOME_SUPPORTED if decision.supported else mapper_pb2.DECISION_OUTCOME_NOT_SUPPORTED
    )
    operations = out.operations
    for op in outcome.operations:
        fill_operation(operations.add(), op, currency)
    _set_money(out.total, outcome.total, currency)


def outcome_to_proto(outcome: xero.MapOutcome, profile: Profile) -> mapper_pb2.MapTransactionResponse:
    out = mapper_pb2.MapTransactionResponse()
    fill_response(out, outcome, profile)
    return out


def error_result(index: int, err: XerolinkError) -> mapper_pb2.MapResult:
    """The per-item form of the status a unary call would have returned."""
    err = bounded(err)
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
