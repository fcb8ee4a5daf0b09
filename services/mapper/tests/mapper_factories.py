"""Domain objects for the mapper's pure-logic tests: a ready connection and well-formed headers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from xerolink_mapper.domain.model import (
    AccountingMethod,
    Amount,
    Body,
    ChartAccount,
    Header,
    Kind,
    Line,
    MappingContext,
    Participant,
    Profile,
    Totals,
    Transaction,
    UntaxedTaxTypes,
)
from xerolink_mapper.samples import DEMO_ALLOCATION, DEMO_CHART, DEMO_PURCHASE_TAX, DEMO_SALES_TAX, DEMO_UNTAXED

CURRENCY = "AUD"
CONNECTED = datetime(2026, 1, 1, tzinfo=UTC)
POSTED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DAY = date(2026, 3, 2)

# oneof field name of each kind, as request paths name it.
FIELD_NAMES = {
    Kind.CLIENT_BILL: "client_bill",
    Kind.CLIENT_BILL_PAYMENT: "client_bill_payment",
    Kind.CREDIT_NOTE: "credit_note",
    Kind.CREDIT_NOTE_APPLICATION: "credit_note_application",
    Kind.CREDIT_NOTE_REFUND: "credit_note_refund",
    Kind.OVERPAYMENT_REFUND: "overpayment_refund",
    Kind.GENERAL_RETAINER: "general_retainer",
    Kind.TRUST_RECEIPT: "trust_receipt",
    Kind.TRUST_PAYMENT: "trust_payment",
    Kind.TRUST_JOURNAL: "trust_journal",
    Kind.TRUST_TRANSFER: "trust_transfer",
    Kind.TRUST_INTEREST: "trust_interest",
    Kind.INVOICE_PAID_FROM_TRUST: "invoice_paid_from_trust",
    Kind.STATUTORY_FUNDS: "statutory_funds",
    Kind.ADVANCED_FUNDS: "advanced_funds",
    Kind.TRUST_BANK_RECONCILIATION: "trust_bank_reconciliation",
    Kind.SUPPLIER_INVOICE: "supplier_invoice",
    Kind.SUPPLIER_INVOICE_PAYMENT: "supplier_invoice_payment",
    Kind.SUPPLIER_CREDIT: "supplier_credit",
    Kind.SUPPLIER_CREDIT_APPLICATION: "supplier_credit_application",
    Kind.PURCHASE_ORDER: "purchase_order",
    Kind.PURCHASE_CREDIT_ORDER: "purchase_credit_order",
    Kind.PRE_ENTERED_SUPPLIER_INVOICE: "pre_entered_supplier_invoice",
    Kind.BANK_DEPOSIT: "bank_deposit",
    Kind.BANK_WITHDRAWAL: "bank_withdrawal",
    Kind.OFFICE_BANK_TRANSFER: "office_bank_transfer",
    Kind.ELECTRONIC_PAYMENT_BATCH: "electronic_payment_batch",
    Kind.BANK_RECONCILIATION: "bank_reconciliation",
    Kind.PRINTED_CHEQUE: "printed_cheque",
    Kind.DEPOSIT_SLIP: "deposit_slip",
    Kind.GENERAL_JOURNAL: "general_journal",
    Kind.SALES_TAX_RETURN: "sales_tax_return",
}


def context(
    profile: Profile = Profile.ACTIONSTEP_COMPATIBLE, *, with_chart: bool = True, **changes: Any
) -> MappingContext:
    ctx = MappingContext(
        profile=profile,
        linked_division_id=1,
        connected_at=CONNECTED,
        base_currency_code=CURRENCY,
        multi_currency_database=False,
        accounting_method=AccountingMethod.ACCRUAL,
        general_retainers_configured=False,
        account_allocation=dict(DEMO_ALLOCATION),
        tax_code_map=dict(DEMO_SALES_TAX),
        purchase_tax_code_map=dict(DEMO_PURCHASE_TAX),
        untaxed=UntaxedTaxTypes(**DEMO_UNTAXED),
        chart={c: ChartAccount(c, n, t, s, tax, pay) for c, n, t, s, tax, pay in DEMO_CHART} if with_chart else None,
    )
    return replace(ctx, **changes)


def header(record_id: int = 1001, **changes: Any) -> Header:
    base = Header(
        id=record_id,
        division_id=1,
        currency_code=CURRENCY,
        posted_at=POSTED,
        transaction_date=DAY,
        action_id=7001,
        participant=Participant(501, "Harper & Cole Pty Ltd"),
        reference=f"AS-{record_id}",
    )
    return replace(base, **changes)


def cents(value: int, currency: str = "") -> Amount:
    """An amount; an empty currency means the transaction's own."""
    return Amount(value, currency)


def line(account: str, tax_code: str, amount: int, tax: int, description: str = "") -> Line:
    return Line(description or f"work on {account}", "1", "", account, tax_code, cents(amount), cents(tax))


def totals_of(lines: list[Line] | tuple[Line, ...]) -> Totals:
    exclusive = sum(item.amount.cents for item in lines if item.amount)
    tax = sum(item.tax.cents for item in lines if item.tax)
    return Totals(cents(exclusive), cents(tax), cents(exclusive + tax))


def transaction(kind: Kind, body: Body, record_id: int = 1001, **header_changes: Any) -> Transaction:
    return Transaction(kind, header(record_id, **header_changes), body, FIELD_NAMES[kind])
