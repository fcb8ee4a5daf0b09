"""Domain transactions written back as v1 protobuf requests, so generated transactions can be sent
through the service's own adapters (and over gRPC)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from google.protobuf import timestamp_pb2
from xerolink.actionstep.v1 import common_pb2, transaction_pb2, trust_pb2
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink_mapper.domain.model import (
    Amount,
    ApplicationBody,
    BankAmountBody,
    BankEntryBody,
    DocumentBody,
    FundsBody,
    FundsDirection,
    GeneralJournalBody,
    Line,
    OverpaymentRefundBody,
    PaymentBody,
    Totals,
    Transaction,
    TransferBody,
    TrustJournalBody,
)

# Per oneof field: the proto names of the fields the domain body's generic names stand for.
DOCUMENT_FIELDS = {
    "client_bill": ("bill_number", None),
    "credit_note": ("credit_note_number", "bill_id"),
    "supplier_invoice": ("invoice_number", None),
    "supplier_credit": ("credit_number", "supplier_invoice_id"),
}
PAYMENT_FIELDS = {
    "client_bill_payment": ("bill_id", "bank_account"),
    "credit_note_refund": ("credit_note_id", "bank_account"),
    "supplier_invoice_payment": ("supplier_invoice_id", "bank_account"),
    "invoice_paid_from_trust": ("bill_id", "trust_bank_account"),
}
APPLICATION_FIELDS = {
    "credit_note_application": ("credit_note_id", "bill_id"),
    "supplier_credit_application": ("supplier_credit_id", "supplier_invoice_id"),
}
DIRECTIONS = {
    FundsDirection.OUT_OF_TRUST: trust_pb2.FUNDS_DIRECTION_OUT_OF_TRUST,
    FundsDirection.INTO_TRUST: trust_pb2.FUNDS_DIRECTION_INTO_TRUST,
}


def _money(target: money_pb2.Money, value: Amount | None) -> None:
    if value is not None:
        target.units = value.cents
        target.currency_code = value.currency_code


def _date(target: date_pb2.Date, value: date | None) -> None:
    if value is not None:
        target.year, target.month, target.day = value.year, value.month, value.day


def _lines(target: Any, lines: tuple[Line, ...]) -> None:
    for line in lines:
        out = target.add(
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            gl_account=line.gl_account,
            tax_code=line.tax_code,
        )
        _money(out.amount, line.amount)
        _money(out.tax, line.tax)


def _totals(target: common_pb2.Totals, totals: Totals | None) -> None:
    if totals is not None:
        _money(target.exclusive, totals.exclusive)
        _money(target.tax, totals.tax)
        _money(target.inclusive, totals.inclusive)


def _timestamp(target: timestamp_pb2.Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def to_proto(tx: Transaction) -> transaction_pb2.Transaction:
    out = transaction_pb2.Transaction()
    h, header = tx.header, out.header
    header.id, header.division_id, header.currency_code = h.id, h.division_id, h.currency_code
    _timestamp(header.posted_at, h.posted_at)
    _date(header.transaction_date, h.transaction_date)
    header.action_id, header.reference, header.memo, header.currency_rate = (
        h.action_id,
        h.reference,
        h.memo,
        h.currency_rate,
    )
    if h.participant is not None:
        p = h.participant
        header.participant.participant_id, header.participant.display_name = p.participant_id, p.display_name
    name = tx.field_name
    body: Any = getattr(out, name)
    body.SetInParent()
    source = tx.body
    if isinstance(source, DocumentBody):
        number, related = DOCUMENT_FIELDS[name]
        setattr(body, number, source.number)
        if related:
            setattr(body, related, source.related_id)
        if source.due_date is not None:
            _date(body.due_date, source.due_date)
        _lines(body.lines, source.lines)
        _totals(body.totals, source.totals)
    elif isinstance(source, PaymentBody):
        id_field, bank_field = PAYMENT_FIELDS[name]
        setattr(body, id_field, source.document_id)
        setattr(body, bank_field, source.bank_account)
        _money(body.amount, source.amount)
    elif isinstance(source, ApplicationBody):
        credit_field, invoice_field = APPLICATION_FIELDS[name]
        setattr(body, credit_field, source.credit_id)
        setattr(body, invoice_field, source.invoice_id)
        _money(body.amount, source.amount)
    elif isinstance(source, OverpaymentRefundBody):
        body.receipt_id, body.bank_account = source.receipt_id, source.bank_account
        _money(body.overpaid_amount, source.overpaid)
        _money(body.refund_amount, source.refund)
    elif isinstance(source, BankAmountBody):
        _money(body.amount, source.amount)
        body.trust_bank_account = source.bank_account
        if name != "trust_interest":
            body.description = source.description
    elif isinstance(source, TrustJournalBody):
        body.from_action_id, body.to_action_id, body.description = (
            source.from_action_id,
            source.to_action_id,
            source.description,
        )
        _money(body.amount, source.amount)
    elif isinstance(source, TransferBody):
        body.from_bank_account, body.to_bank_account = source.from_account, source.to_account
        _money(body.amount, source.amount)
    elif isinstance(source, FundsBody):
        body.direction = DIRECTIONS[source.direction]
        body.trust_bank_account = source.trust_bank_account
        setattr(
            body, "statutory_account" if name == "statutory_funds" else "advanced_funds_account", source.funds_account
        )
        _money(body.amount, source.amount)
    elif isinstance(source, BankEntryBody):
        body.bank_account = source.bank_account
        _lines(body.lines, source.lines)
        _totals(body.totals, source.totals)
    elif isinstance(source, GeneralJournalBody):
        body.narration = source.narration
        for line in source.lines:
            out_line = body.lines.add(
                gl_account=line.gl_account,
                description=line.description,
                tax_code=line.tax_code,
                action_id=line.action_id,
            )
            _money(out_line.amount, line.amount)
    return out
