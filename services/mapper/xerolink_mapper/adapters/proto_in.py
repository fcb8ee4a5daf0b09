"""xerolink.actionstep.v1 / xerolink.mapper.v1 messages -> domain objects.

Only shape is checked here (a oneof that is unset, an enum value this version does not know,
an impossible calendar date); what the values mean is the domain's business."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

from xerolink.actionstep.v1 import common_pb2, transaction_pb2, trust_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.type.v1 import date_pb2, money_pb2

from xerolink_mapper.domain.model import (
    AccountingMethod,
    Amount,
    ApplicationBody,
    BankAmountBody,
    BankEntryBody,
    Body,
    ChartAccount,
    DocumentBody,
    FundsBody,
    FundsDirection,
    GeneralJournalBody,
    Header,
    JournalLine,
    Kind,
    Ledgers,
    Line,
    MappingContext,
    MatterTracking,
    OpaqueBody,
    OverpaymentRefundBody,
    Participant,
    PaymentBody,
    Profile,
    TaxRate,
    Totals,
    Transaction,
    TransferBody,
    TrustJournalBody,
    UntaxedTaxTypes,
)
from xerolink_mapper.domain.problems import Problems

PROFILE_FROM_PROTO: dict[int, Profile] = {
    mapper_pb2.POLICY_PROFILE_UNSPECIFIED: Profile.ACTIONSTEP_COMPATIBLE,
    mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE: Profile.ACTIONSTEP_COMPATIBLE,
    mapper_pb2.POLICY_PROFILE_EXTENDED: Profile.EXTENDED,
}
_METHOD = {
    mapper_pb2.ACCOUNTING_METHOD_UNSPECIFIED: AccountingMethod.UNSPECIFIED,
    mapper_pb2.ACCOUNTING_METHOD_ACCRUAL: AccountingMethod.ACCRUAL,
    mapper_pb2.ACCOUNTING_METHOD_CASH: AccountingMethod.CASH,
}
_LEDGERS = {
    mapper_pb2.ORGANISATION_LEDGERS_UNSPECIFIED: Ledgers.UNSPECIFIED,
    mapper_pb2.ORGANISATION_LEDGERS_OFFICE_AND_TRUST: Ledgers.OFFICE_AND_TRUST,
    mapper_pb2.ORGANISATION_LEDGERS_OFFICE: Ledgers.OFFICE,
    mapper_pb2.ORGANISATION_LEDGERS_TRUST: Ledgers.TRUST,
}
_DIRECTION = {
    trust_pb2.FUNDS_DIRECTION_UNSPECIFIED: FundsDirection.UNSPECIFIED,
    trust_pb2.FUNDS_DIRECTION_OUT_OF_TRUST: FundsDirection.OUT_OF_TRUST,
    trust_pb2.FUNDS_DIRECTION_INTO_TRUST: FundsDirection.INTO_TRUST,
}
KIND_FROM_PROTO: dict[int, Kind] = {
    common_pb2.TransactionKind.Value(f"TRANSACTION_KIND_{kind.value}"): kind for kind in Kind
}
KIND_TO_PROTO: dict[Kind, int] = {kind: number for number, kind in KIND_FROM_PROTO.items()}


def amount(message: Any, field: str) -> Amount | None:
    if not message.HasField(field):
        return None
    value: money_pb2.Money = getattr(message, field)
    return Amount(value.units, value.currency_code)


def calendar_date(message: Any, field: str, path: str, problems: Problems) -> date | None:
    if not message.HasField(field):
        return None
    value: date_pb2.Date = getattr(message, field)
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        problems.field(path, f"{value.year:04d}-{value.month:02d}-{value.day:02d} is not a calendar date")
        return None


def _line(line: common_pb2.Line) -> Line:
    # Inlined rather than two amount() calls: lines are the bulk of every document.
    has = line.HasField
    value, tax = line.amount, line.tax
    return Line(
        line.description,
        line.quantity,
        line.unit_price,
        line.gl_account,
        line.tax_code,
        Amount(value.units, value.currency_code) if has("amount") else None,
        Amount(tax.units, tax.currency_code) if has("tax") else None,
    )


def _lines(lines: Iterable[common_pb2.Line]) -> tuple[Line, ...]:
    return tuple(map(_line, lines))


def _totals(message: Any) -> Totals | None:
    if not message.HasField("totals"):
        return None
    totals = message.totals
    return Totals(amount(totals, "exclusive"), amount(totals, "tax"), amount(totals, "inclusive"))


def _document(number_field: str, related_field: str | None, due: bool) -> Callable[[Any, str, Problems], Body]:
    def convert(message: Any, path: str, problems: Problems) -> Body:
        return DocumentBody(
            number=getattr(message, number_field),
            lines=_lines(message.lines),
            totals=_totals(message),
            due_date=calendar_date(message, "due_date", f"{path}.due_date", problems) if due else None,
            related_id=getattr(message, related_field) if related_field else 0,
        )

    return convert


def _payment(id_field: str, bank_field: str) -> Callable[[Any, str, Problems], Body]:
    def convert(message: Any, _path: str, _problems: Problems) -> Body:
        return PaymentBody(getattr(message, id_field), amount(message, "amount"), getattr(message, bank_field))

    return convert


def _application(credit_field: str, invoice_field: str) -> Callable[[Any, str, Problems], Body]:
    def convert(message: Any, _path: str, _problems: Problems) -> Body:
        return ApplicationBody(
            getattr(message, credit_field), getattr(message, invoice_field), amount(message, "amount")
        )

    return convert


def _bank_amount(bank_field: str, has_description: bool) -> Callable[[Any, str, Problems], Body]:
    def convert(message: Any, _path: str, _problems: Problems) -> Body:
        return BankAmountBody(
            amount(message, "amount"),
            getattr(message, bank_field),
            message.description if has_description else "",
        )

    return convert


def _funds(account_field: str) -> Callable[[Any, str, Problems], Body]:
    def convert(message: Any, path: str, problems: Problems) -> Body:
        direction = _DIRECTION.get(message.direction)
        if direction is None:
            problems.field(f"{path}.direction", f"{message.direction} is not a known funds direction")
            direction = FundsDirection.UNSPECIFIED
        return FundsBody(
            direction, message.trust_bank_account, getattr(message, account_field), amount(message, "amount")
        )

    return convert


def _overpayment_refund(message: Any, _path: str, _problems: Problems) -> Body:
    return OverpaymentRefundBody(
        message.receipt_id,
        amount(message, "overpaid_amount"),
        amount(message, "refund_amount"),
        message.bank_account,
    )


def _trust_journal(message: Any, _path: str, _problems: Problems) -> Body:
    return TrustJournalBody(
        message.from_action_id, message.to_action_id, amount(message, "amount"), message.description
    )


def _transfer(message: Any, _path: str, _problems: Problems) -> Body:
    return TransferBody(message.from_bank_account, message.to_bank_account, amount(message, "amount"))


def _bank_entry(message: Any, _path: str, _problems: Problems) -> Body:
    return BankEntryBody(message.bank_account, _lines(message.lines), _totals(message))


def _general_journal(message: Any, _path: str, _problems: Problems) -> Body:
    lines = tuple(
        JournalLine(line.gl_account, line.description, amount(line, "amount"), line.tax_code, line.action_id)
        for line in message.lines
    )
    return GeneralJournalBody(message.narration, lines)


def _opaque(_message: Any, _path: str, _problems: Problems) -> Body:
    return OpaqueBody()


# oneof field name -> (kind, body converter)
_BODIES: dict[str, tuple[Kind, Callable[[Any, str, Problems], Body]]] = {
    "client_bill": (Kind.CLIENT_BILL, _document("bill_number", None, due=True)),
    "client_bill_payment": (Kind.CLIENT_BILL_PAYMENT, _payment("bill_id", "bank_account")),
    "credit_note": (Kind.CREDIT_NOTE, _document("credit_note_number", "bill_id", due=False)),
    "credit_note_application": (Kind.CREDIT_NOTE_APPLICATION, _application("credit_note_id", "bill_id")),
    "credit_note_refund": (Kind.CREDIT_NOTE_REFUND, _payment("credit_note_id", "bank_account")),
    "overpayment_refund": (Kind.OVERPAYMENT_REFUND, _overpayment_refund),
    "general_retainer": (Kind.GENERAL_RETAINER, _bank_amount("bank_account", has_description=False)),
    "trust_receipt": (Kind.TRUST_RECEIPT, _bank_amount("trust_bank_account", has_description=True)),
    "trust_payment": (Kind.TRUST_PAYMENT, _bank_amount("trust_bank_account", has_description=True)),
    "trust_journal": (Kind.TRUST_JOURNAL, _trust_journal),
    "trust_transfer": (Kind.TRUST_TRANSFER, _transfer),
    "trust_interest": (Kind.TRUST_INTEREST, _bank_amount("trust_bank_account", has_description=False)),
    "invoice_paid_from_trust": (Kind.INVOICE_PAID_FROM_TRUST, _payment("bill_id", "trust_bank_account")),
    "statutory_funds": (Kind.STATUTORY_FUNDS, _funds("statutory_account")),
    "advanced_funds": (Kind.ADVANCED_FUNDS, _funds("advanced_funds_account")),
    "trust_bank_reconciliation": (Kind.TRUST_BANK_RECONCILIATION, _opaque),
    "supplier_invoice": (Kind.SUPPLIER_INVOICE, _document("invoice_number", None, due=True)),
    "supplier_invoice_payment": (Kind.SUPPLIER_INVOICE_PAYMENT, _payment("supplier_invoice_id", "bank_account")),
    "supplier_credit": (Kind.SUPPLIER_CREDIT, _document("credit_number", "supplier_invoice_id", due=False)),
    "supplier_credit_application": (
        Kind.SUPPLIER_CREDIT_APPLICATION,
        _application("supplier_credit_id", "supplier_invoice_id"),
    ),
    "purchase_order": (Kind.PURCHASE_ORDER, _opaque),
    "purchase_credit_order": (Kind.PURCHASE_CREDIT_ORDER, _opaque),
    "pre_entered_supplier_invoice": (Kind.PRE_ENTERED_SUPPLIER_INVOICE, _opaque),
    "bank_deposit": (Kind.BANK_DEPOSIT, _bank_entry),
    "bank_withdrawal": (Kind.BANK_WITHDRAWAL, _bank_entry),
    "office_bank_transfer": (Kind.OFFICE_BANK_TRANSFER, _transfer),
    "electronic_payment_batch": (Kind.ELECTRONIC_PAYMENT_BATCH, _opaque),
    "bank_reconciliation": (Kind.BANK_RECONCILIATION, _opaque),
    "printed_cheque": (Kind.PRINTED_CHEQUE, _opaque),
    "deposit_slip": (Kind.DEPOSIT_SLIP, _opaque),
    "general_journal": (Kind.GENERAL_JOURNAL, _general_journal),
    "sales_tax_return": (Kind.SALES_TAX_RETURN, _opaque),
}
FIELD_OF_KIND: dict[Kind, str] = {kind: name for name, (kind, _) in _BODIES.items()}
assert set(FIELD_OF_KIND) == set(Kind), "every kind needs its oneof field"


def _participant(header: common_pb2.TransactionHeader) -> Participant | None:
    if not header.HasField("participant"):
        return None
    p = header.participant
    return Participant(p.participant_id, p.display_name, p.first_name, p.last_name, p.email, p.tax_number)


def _tax_rates(message: mapper_pb2.MappingContext, problems: Problems) -> dict[str, TaxRate] | None:
    if not len(message.tax_rates):
        return None
    for index, rate in enumerate(message.tax_rates):
        if not rate.tax_type:
            problems.field(f"context.tax_rates[{index}].tax_type", "is required: the Xero TaxType (e.g. 'OUTPUT')")
    return {
        r.tax_type: TaxRate(r.tax_type, r.name, r.status, frozenset(c.upper() for c in r.account_classes))
        for r in message.tax_rates
    }


def _timestamp(message: Any, field: str, path: str, problems: Problems) -> datetime | None:
    """The instant, or None with a field problem when it is not a valid Timestamp. Never a stand-in
    value: a connected_at read as some other instant would switch the pre-integration check off."""
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    try:
        if not 0 <= value.nanos < 1_000_000_000:
            raise ValueError("nanos out of range")
        return datetime.fromtimestamp(value.seconds, UTC).replace(microsecond=value.nanos // 1000)
    except (ValueError, OverflowError, OSError):
        problems.field(
            path,
            f"is not a valid timestamp (seconds {value.seconds}, nanos {value.nanos}): send an RFC 3339 instant "
            "with nanos from 0 to 999,999,999",
        )
        return None


def transaction_from_proto(message: transaction_pb2.Transaction, problems: Problems) -> Transaction | None:
    """The domain transaction, or None with the shape problems recorded."""
    name = message.WhichOneof("kind")
    if name is None:
        problems.field("transaction", "has no transaction kind: set exactly one of its kinds (e.g. client_bill)")
        return None
    kind, convert = _BODIES[name]
    path = f"transaction.{name}"
    h = message.header
    # Positional: this runs for every transaction of every stream.
    header = Header(
        h.id,
        h.division_id,
        h.currency_code,
        _timestamp(h, "posted_at", "transaction.header.posted_at", problems),
        calendar_date(h, "transaction_date", "transaction.header.transaction_date", problems),
        h.action_id,
        _participant(h),
        h.reference,
        h.memo,
        h.currency_rate,
    )
    if not message.HasField("header"):
        problems.field("transaction.header", "is required: send the id, division, currency and dates")
    body = convert(getattr(message, name), path, problems)
    return Transaction(kind, header, body, name)


def context_from_proto(message: mapper_pb2.MappingContext, problems: Problems) -> MappingContext:
    profile = PROFILE_FROM_PROTO.get(message.profile)
    if profile is None:
        problems.field("context.profile", f"{message.profile} is not a known policy profile")
        profile = Profile.ACTIONSTEP_COMPATIBLE
    method = _METHOD.get(message.accounting_method)
    if method is None:
        problems.field("context.accounting_method", f"{message.accounting_method} is not a known accounting method")
        method = AccountingMethod.UNSPECIFIED
    ledgers = _LEDGERS.get(message.ledgers)
    if ledgers is None:
        problems.field("context.ledgers", f"{message.ledgers} is not a known OrganisationLedgers value")
        ledgers = Ledgers.UNSPECIFIED
    listed: dict[str, int] = {}
    for index, account in enumerate(message.chart):
        if not account.code:
            # Keyed by code, an account without one would stand for no account at all.
            problems.field(f"context.chart[{index}].code", "is required: the Xero account code (e.g. '200')")
        elif account.code in listed:
            # Xero's codes are unique in a chart: one listed twice would be read as whichever came last.
            problems.field(
                f"context.chart[{index}].code",
                f"{account.code!r} is listed already, as context.chart[{listed[account.code]}]: a Xero account "
                "code is unique in its chart; send each account once",
            )
        else:
            listed[account.code] = index
    chart = (
        {
            a.code: ChartAccount(
                a.code, a.name, a.type, a.status, a.tax_type, a.enable_payments, a.account_class.upper()
            )
            for a in message.chart
        }
        if len(message.chart)
        else None
    )
    return MappingContext(
        profile=profile,
        linked_division_id=message.linked_division_id,
        connected_at=_timestamp(message, "connected_at", "context.connected_at", problems),
        base_currency_code=message.base_currency_code,
        multi_currency_database=message.multi_currency_database,
        accounting_method=method,
        general_retainers_configured=message.general_retainers_configured,
        account_allocation=dict(message.account_allocation),
        tax_code_map=dict(message.tax_code_map),
        purchase_tax_code_map=dict(message.purchase_tax_code_map),
        chart=chart,
        pre_integration_backfill=message.pre_integration_backfill,
        untaxed=UntaxedTaxTypes(
            trust_money=message.untaxed_line_tax_types.trust_money,
            interest_on_trust=message.untaxed_line_tax_types.interest_on_trust,
            journal_without_tax_code=message.untaxed_line_tax_types.journal_without_tax_code,
        ),
        tax_rates=_tax_rates(message, problems),
        matter_tracking=MatterTracking(message.matter_tracking.enabled, message.matter_tracking.category_name),
        ledgers=ledgers,
    )
