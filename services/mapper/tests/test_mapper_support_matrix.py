"""The support matrix against the Actionstep help article, the conditions with their own reasons,
the profile chosen per request, and the generated document kept equal to the table."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from mapper_factories import CONNECTED, cents, context, line, totals_of, transaction
from xerolink_common.errors import XerolinkError
from xerolink_mapper import support_matrix_doc
from xerolink_mapper.domain import support_matrix as sm
from xerolink_mapper.domain.decisions import BASE_CURRENCY_ONLY_KINDS
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import (
    AccountingMethod,
    BankAmountBody,
    BankEntryBody,
    DocumentBody,
    FundsBody,
    FundsDirection,
    GeneralJournalBody,
    JournalLine,
    Kind,
    Ledgers,
    OpaqueBody,
    PaymentBody,
    Profile,
    Transaction,
    TransferBody,
    TrustJournalBody,
)
from xerolink_mapper.domain.xero import MapOutcome, Payment

# Read off the help article's "Supported Transactions" table ("Yes: Processed in Actionstep, posted
# to Xero."), independently of the implementation's table.
ARTICLE_YES = {
    Kind.CLIENT_BILL,
    Kind.CLIENT_BILL_PAYMENT,
    Kind.CREDIT_NOTE,
    Kind.CREDIT_NOTE_APPLICATION,
    Kind.TRUST_RECEIPT,
    Kind.TRUST_PAYMENT,
    Kind.TRUST_JOURNAL,
    Kind.TRUST_TRANSFER,
    Kind.TRUST_INTEREST,
    Kind.INVOICE_PAID_FROM_TRUST,
    Kind.STATUTORY_FUNDS,
    Kind.ADVANCED_FUNDS,
    Kind.SUPPLIER_INVOICE,
    Kind.SUPPLIER_INVOICE_PAYMENT,
    Kind.SUPPLIER_CREDIT,
    Kind.SUPPLIER_CREDIT_APPLICATION,
}
EXTENDED_ADDS = {
    Kind.CREDIT_NOTE_REFUND,
    Kind.OVERPAYMENT_REFUND,
    Kind.BANK_DEPOSIT,
    Kind.BANK_WITHDRAWAL,
    Kind.OFFICE_BANK_TRANSFER,
    Kind.GENERAL_JOURNAL,
}


def supported(profile: Profile) -> set[Kind]:
    return {row.kind for row in sm.ROWS if row.verdict(profile).supported}


def test_every_kind_has_exactly_one_row() -> None:
    assert [row.kind for row in sm.ROWS].count(Kind.CLIENT_BILL) == 1
    assert sorted(row.kind.value for row in sm.ROWS) == sorted(kind.value for kind in Kind)


def test_compatible_profile_posts_exactly_what_the_article_says_yes_to() -> None:
    assert supported(Profile.ACTIONSTEP_COMPATIBLE) == ARTICLE_YES


def test_extended_profile_adds_refunds_journals_unlinked_bank_entries_and_office_transfers() -> None:
    assert supported(Profile.EXTENDED) == ARTICLE_YES | EXTENDED_ADDS
    for kind in EXTENDED_ADDS:
        assert sm.ROWS_BY_KIND[kind].compatible.reason_code == sm.EXTENDED_ONLY


def test_office_bank_to_bank_transfer_follows_the_table_not_the_prose() -> None:
    row = sm.ROWS_BY_KIND[Kind.OFFICE_BANK_TRANSFER]
    assert not row.compatible.supported
    assert row.compatible.reason_code == sm.EXTENDED_ONLY
    assert "table wins" in sm.BANK_TO_BANK_CONFLICT
    assert sm.BANK_TO_BANK_CONFLICT in support_matrix_doc.render()


@pytest.mark.parametrize(
    ("kind", "reason_code"),
    [
        (Kind.PRINTED_CHEQUE, sm.DOCUMENT_NOT_POSTED),
        (Kind.DEPOSIT_SLIP, sm.DOCUMENT_NOT_POSTED),
        (Kind.TRUST_BANK_RECONCILIATION, sm.RECONCILED_IN_ACTIONSTEP),
        (Kind.BANK_RECONCILIATION, sm.RECONCILED_IN_ACTIONSTEP),
        (Kind.PURCHASE_ORDER, sm.NOT_POSTED_BY_ACTIONSTEP),
        (Kind.PURCHASE_CREDIT_ORDER, sm.NOT_POSTED_BY_ACTIONSTEP),
        (Kind.PRE_ENTERED_SUPPLIER_INVOICE, sm.NOT_POSTED_BY_ACTIONSTEP),
        (Kind.ELECTRONIC_PAYMENT_BATCH, sm.NOT_POSTED_BY_ACTIONSTEP),
        (Kind.SALES_TAX_RETURN, sm.NOT_POSTED_BY_ACTIONSTEP),
        (Kind.GENERAL_RETAINER, sm.GENERAL_RETAINER_NOT_SUPPORTED),
    ],
)
@pytest.mark.parametrize("profile", list(Profile))
def test_never_posted_kinds_give_their_reason_in_both_profiles(kind: Kind, reason_code: str, profile: Profile) -> None:
    outcome = map_transaction(transaction(kind, OpaqueBody()), context(profile))
    assert not outcome.decision.supported
    assert outcome.decision.reason_code == reason_code
    assert outcome.decision.reason
    assert outcome.operations == ()


def test_reason_codes_are_upper_snake_and_every_reason_is_a_sentence() -> None:
    verdicts = [v for row in sm.ROWS for v in (row.compatible, row.extended)]
    for code, reason in [(v.reason_code, v.reason) for v in verdicts] + [
        (c.reason_code, c.reason) for c in sm.CONDITIONS
    ]:
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", code)
        assert reason.endswith(".") and len(reason) > 20


def bill(record_id: int = 1001, **header_changes: Any) -> Transaction:
    lines = [line("200", "GST", 10000, 1000)]
    body = DocumentBody("INV-1", tuple(lines), totals_of(lines), due_date=CONNECTED.date() + timedelta(days=90))
    return transaction(Kind.CLIENT_BILL, body, record_id, **header_changes)


BEFORE = CONNECTED - timedelta(seconds=1)
# (condition, how to make it hold on a client bill: header changes, context changes)
CONDITIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    sm.PRE_INTEGRATION: ({"posted_at": BEFORE}, {}),
    sm.OTHER_DIVISION: ({"division_id": 2}, {}),
    sm.FOREIGN_CURRENCY: ({"currency_code": "NZD"}, {}),
    sm.MULTI_CURRENCY_DATABASE: ({}, {"multi_currency_database": True}),
    sm.CASH_ACCOUNTING: ({}, {"accounting_method": AccountingMethod.CASH}),
    sm.GENERAL_RETAINERS_CONFIGURED: ({}, {"general_retainers_configured": True}),
}


def test_every_condition_of_the_table_is_exercised() -> None:
    # The one condition about journals and transfers has its own test below.
    assert set(CONDITIONS) | {sm.FOREIGN_CURRENCY_NOT_REPRESENTABLE} == set(sm.CONDITIONS_BY_CODE)


def sample_of(kind: Kind, **header_changes: Any) -> Transaction:
    """A valid transaction of a kind that becomes a manual journal, a bank transfer or a receive
    or spend bank transaction."""
    amount = cents(10000, header_changes.get("currency_code", ""))
    entry = (line("200", "GST", 10000, 1000),)
    body: Any = {
        Kind.TRUST_RECEIPT: BankAmountBody(amount, "091"),
        Kind.TRUST_PAYMENT: BankAmountBody(amount, "091"),
        Kind.TRUST_INTEREST: BankAmountBody(amount, "091"),
        Kind.BANK_DEPOSIT: BankEntryBody("090", entry, totals_of(entry)),
        Kind.BANK_WITHDRAWAL: BankEntryBody("090", (line("420", "GST", 10000, 1000),), totals_of(entry)),
        Kind.INVOICE_PAID_FROM_TRUST: PaymentBody(4001, amount, "091"),
        Kind.GENERAL_JOURNAL: GeneralJournalBody(
            "Reclassify",
            (
                JournalLine("420", "to", amount, "GST"),
                JournalLine("489", "from", cents(-10000, amount.currency_code), "GST"),
            ),
        ),
        Kind.TRUST_JOURNAL: TrustJournalBody(3001, 3002, amount),
        Kind.TRUST_TRANSFER: TransferBody("091", "092", amount),
        Kind.OFFICE_BANK_TRANSFER: TransferBody("090", "094", amount),
        Kind.STATUTORY_FUNDS: FundsBody(FundsDirection.OUT_OF_TRUST, "091", "092", amount),
        Kind.ADVANCED_FUNDS: FundsBody(FundsDirection.OUT_OF_TRUST, "091", "093", amount),
    }[kind]
    return transaction(kind, body, **header_changes)


@pytest.mark.parametrize("kind", sorted(BASE_CURRENCY_ONLY_KINDS | {Kind.INVOICE_PAID_FROM_TRUST}, key=str))
def test_a_foreign_journal_transfer_or_bank_transaction_is_refused_in_the_extended_profile(kind: Kind) -> None:
    """Xero keeps manual journals in the base currency, a bank transfer carries no rate, and a
    receive or spend bank transaction is in its bank account's currency ("Setting currency is
    only supported on overpayments": BankTransaction.CurrencyRate in Xero's OpenAPI
    description): posted, USD 100.00 would be refused by Xero or booked as AUD 100.00."""
    tx = sample_of(kind, currency_code="USD", currency_rate="0.65")
    outcome = map_transaction(tx, context(Profile.EXTENDED))
    assert outcome.decision.reason_code == sm.FOREIGN_CURRENCY_NOT_REPRESENTABLE
    assert outcome.operations == ()
    in_base = map_transaction(sample_of(kind), context(Profile.EXTENDED))
    assert in_base.decision.supported


def test_a_foreign_invoice_paid_from_trust_in_an_office_only_organisation_posts_its_payment() -> None:
    """An organisation that keeps the office ledger alone posts only the payment half, which
    carries the invoice's rate: no bank transaction is made, so the foreign currency is kept."""
    tx = sample_of(Kind.INVOICE_PAID_FROM_TRUST, currency_code="USD", currency_rate="0.65")
    outcome = map_transaction(tx, context(Profile.EXTENDED, ledgers=Ledgers.OFFICE))
    assert outcome.decision.supported, outcome.decision
    [payment] = [op.body for op in outcome.operations]
    assert isinstance(payment, Payment) and payment.currency_rate == "0.65"


@pytest.mark.parametrize("rate", ["0.6543215", "1.00000001"])
def test_a_currency_rate_with_more_than_six_decimal_places_is_refused_naming_the_field(rate: str) -> None:
    """Xero keeps a currency rate to six decimal places (Invoice.CurrencyRate, "max length =
    [18].[6]", Xero's OpenAPI description): a rate it rounded would book other base-currency
    amounts than Actionstep recorded. Trailing zeros are not places Xero loses."""
    with pytest.raises(XerolinkError) as invalid:
        map_transaction(bill(currency_code="USD", currency_rate=rate), context(Profile.EXTENDED))
    [violation] = invalid.value.field_violations
    assert violation.field == "transaction.header.currency_rate" and "six decimal places" in violation.description
    kept = bill(currency_code="USD", currency_rate="0.6543210000")
    assert map_transaction(kept, context(Profile.EXTENDED)).decision.supported


@pytest.mark.parametrize("code", sorted(CONDITIONS))
def test_each_condition_makes_a_supported_kind_unsupported_with_its_own_reason(code: str) -> None:
    header_changes, context_changes = CONDITIONS[code]
    outcome = map_transaction(bill(**header_changes), context(**context_changes))
    assert not outcome.decision.supported
    assert outcome.decision.reason_code == code
    assert outcome.decision.reason == sm.CONDITIONS_BY_CODE[code].reason
    assert outcome.operations == ()


@pytest.mark.parametrize(
    "code", [sm.PRE_INTEGRATION, sm.OTHER_DIVISION, sm.CASH_ACCOUNTING, sm.GENERAL_RETAINERS_CONFIGURED]
)
def test_connection_conditions_hold_in_the_extended_profile_too(code: str) -> None:
    header_changes, context_changes = CONDITIONS[code]
    outcome = map_transaction(bill(**header_changes), context(Profile.EXTENDED, **context_changes))
    assert outcome.decision.reason_code == code


def test_extended_profile_posts_foreign_currency_with_its_rate() -> None:
    tx = bill(currency_code="NZD", currency_rate="1.0875")
    ctx = context(Profile.EXTENDED, multi_currency_database=True)
    outcome = map_transaction(tx, ctx)
    assert outcome.decision.supported
    invoice = outcome.operations[0].body
    assert invoice.currency_code == "NZD" and invoice.currency_rate == "1.0875"  # type: ignore[union-attr]
    # The cents are NZD cents: never converted by the mapper.
    assert invoice.total == 11000  # type: ignore[union-attr]


def test_pre_integration_backfill_lifts_the_condition_for_bills_and_their_payments_only() -> None:
    ctx = context(pre_integration_backfill=True)
    assert map_transaction(bill(posted_at=BEFORE), ctx).decision.supported
    transfer = transaction(Kind.TRUST_TRANSFER, TransferBody("", "090", cents(100)), posted_at=BEFORE)
    assert map_transaction(transfer, ctx).decision.reason_code == sm.PRE_INTEGRATION


def test_the_profile_is_chosen_per_request() -> None:
    journal = transaction(Kind.OFFICE_BANK_TRANSFER, TransferBody("090", "094", cents(5000)))
    compatible: MapOutcome = map_transaction(journal, context(Profile.ACTIONSTEP_COMPATIBLE))
    extended = map_transaction(journal, context(Profile.EXTENDED))
    again = map_transaction(journal, context(Profile.ACTIONSTEP_COMPATIBLE))
    assert (compatible.decision.reason_code, extended.decision.reason_code) == (sm.EXTENDED_ONLY, sm.SUPPORTED)
    assert again == compatible


def test_kind_verdict_comes_before_conditions() -> None:
    cheque = transaction(Kind.PRINTED_CHEQUE, OpaqueBody(), division_id=9)
    assert map_transaction(cheque, context()).decision.reason_code == sm.DOCUMENT_NOT_POSTED


def test_conditions_are_checked_in_table_order() -> None:
    tx = bill(division_id=2, posted_at=BEFORE)
    ctx = context(accounting_method=AccountingMethod.CASH, general_retainers_configured=True)
    assert map_transaction(tx, ctx).decision.reason_code == sm.CONDITIONS[0].reason_code
    later = replace(tx, header=replace(tx.header, division_id=1))
    assert map_transaction(later, ctx).decision.reason_code == sm.CONDITIONS[1].reason_code


def test_docs_support_matrix_is_generated_from_the_table(tmp_path: Path) -> None:
    committed = support_matrix_doc.DEFAULT_OUTPUT
    assert committed.read_text() == support_matrix_doc.render(), (
        "docs/support-matrix.md is stale: run python -m xerolink_mapper.support_matrix_doc"
    )
    out = tmp_path / "matrix.md"
    assert support_matrix_doc.main(["--output", str(out)]) == 0
    assert support_matrix_doc.main(["--output", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("EXTENDED_ONLY", "SUPPORTED", 1))
    assert support_matrix_doc.main(["--output", str(out), "--check"]) == 1


def test_docs_list_every_row_and_condition() -> None:
    text = support_matrix_doc.render()
    for row in sm.ROWS:
        assert f"| {row.label} | `{row.kind.value}` |" in text.replace("\\|", "|")
    for condition in sm.CONDITIONS:
        assert f"| {condition.reason_code} |" in text
