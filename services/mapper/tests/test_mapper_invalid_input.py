"""Bad input and incomplete configuration: INVALID_ARGUMENT or FAILED_PRECONDITION naming what to
fix, every problem at once, never a guess."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pytest
from mapper_factories import cents, context, line, totals_of, transaction
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import (
    BankAmountBody,
    BankEntryBody,
    DocumentBody,
    FundsBody,
    FundsDirection,
    GeneralJournalBody,
    JournalLine,
    Kind,
    Line,
    MappingContext,
    PaymentBody,
    Profile,
    Totals,
    Transaction,
    TransferBody,
)


def bill(lines: list[Line], totals: Totals | None = None, **header_changes: Any) -> Transaction:
    body = DocumentBody("INV-7", tuple(lines), totals or totals_of(lines), due_date=date(2026, 4, 1))
    return transaction(Kind.CLIENT_BILL, body, **header_changes)


def error_of(tx: Transaction, ctx: MappingContext | None = None) -> XerolinkError:
    with pytest.raises(XerolinkError) as caught:
        map_transaction(tx, ctx or context())
    return caught.value


def fields(err: XerolinkError) -> list[str]:
    assert err.code is ErrorCode.INVALID_ARGUMENT, err
    return [v.field for v in err.field_violations]


def subjects(err: XerolinkError) -> list[tuple[str, str]]:
    assert err.code is ErrorCode.FAILED_PRECONDITION, err
    return [(v.type, v.subject) for v in err.precondition_violations]


def test_negative_quantity_on_a_bill_line_is_refused() -> None:
    bad = replace(line("200", "GST", 10000, 1000), quantity="-2")
    err = error_of(bill([line("200", "GST", 500, 50), bad]))
    assert fields(err) == ["transaction.client_bill.lines[1].quantity"]
    assert "negative" in err.field_violations[0].description


def test_lines_that_do_not_add_up_to_the_stated_totals_name_each_total() -> None:
    lines = [line("200", "GST", 10000, 1000), line("210", "GST", 2000, 200)]
    stated = Totals(cents(12000), cents(1201), cents(13201))
    err = error_of(bill(lines, stated))
    assert fields(err) == ["transaction.client_bill.totals.tax", "transaction.client_bill.totals.inclusive"]
    assert "1200" in err.field_violations[0].description


def test_an_unmapped_tax_code_is_a_precondition_naming_the_code_and_the_line() -> None:
    err = error_of(bill([line("200", "GST", 100, 10), line("200", "VAT20", 100, 20)]))
    assert subjects(err) == [("TAX_CODE_NOT_MAPPED", "VAT20")]
    assert "lines[1].tax_code" in err.precondition_violations[0].description
    assert "tax_code_map" in err.precondition_violations[0].description


def test_the_purchase_side_uses_its_own_map_without_falling_back_to_the_sales_map() -> None:
    lines = [line("420", "GST", 100, 10)]
    supplier = transaction(
        Kind.SUPPLIER_INVOICE, DocumentBody("S-1", tuple(lines), totals_of(lines), due_date=date(2026, 4, 1))
    )
    outcome = map_transaction(supplier, context())
    assert outcome.operations[0].body.line_items[0].tax_type == "INPUT"  # type: ignore[union-attr]
    err = error_of(supplier, context(purchase_tax_code_map={}))
    assert subjects(err) == [("TAX_CODE_NOT_MAPPED", "GST")]
    assert "purchase_tax_code_map" in err.precondition_violations[0].description


def test_a_line_without_account_or_tax_code_is_invalid() -> None:
    err = error_of(bill([replace(line("200", "GST", 100, 10), gl_account="", tax_code="")]))
    assert fields(err) == ["transaction.client_bill.lines[0].gl_account", "transaction.client_bill.lines[0].tax_code"]


def test_an_empty_bill_is_invalid() -> None:
    assert fields(error_of(bill([]))) == ["transaction.client_bill.lines"]


def test_a_missing_account_allocation_is_a_precondition_naming_the_function() -> None:
    receipt = transaction(Kind.TRUST_RECEIPT, BankAmountBody(cents(5000)))
    allocation = {k: v for k, v in context().account_allocation.items() if k != "trust_bank"}
    err = error_of(receipt, context(account_allocation=allocation))
    assert subjects(err) == [("ACCOUNT_ALLOCATION_MISSING", "trust_bank")]
    # Naming the bank on the transaction itself needs no allocation.
    named = transaction(Kind.TRUST_RECEIPT, BankAmountBody(cents(5000), "091"))
    assert map_transaction(named, context(account_allocation=allocation)).operations


def test_office_lines_and_transfers_name_no_trust_account() -> None:
    """Clients' money and the firm's never share an account: a deposit into the office bank with its
    line on the trust liability, or an office transfer into the trust bank, is refused naming the
    field. Trust interest's account is where interest is booked as income: office lines may use it."""
    extended = context(Profile.EXTENDED)
    deposit = [line("850", "NTR", 5000, 0)]
    into_office = transaction(Kind.BANK_DEPOSIT, BankEntryBody("", tuple(deposit), totals_of(deposit)))
    assert fields(error_of(into_office, extended)) == ["transaction.bank_deposit.lines[0].gl_account"]
    to_trust = transaction(Kind.OFFICE_BANK_TRANSFER, TransferBody("090", "091", cents(100)))
    assert fields(error_of(to_trust, extended)) == ["transaction.office_bank_transfer.to_bank_account"]
    assert map_transaction(bill([line("270", "FRE", 100, 0)]), context()).operations
    between_trust_accounts = transaction(Kind.TRUST_TRANSFER, TransferBody("091", "092", cents(100)))
    assert map_transaction(between_trust_accounts, context()).operations


@pytest.mark.parametrize("bad", [date(1899, 12, 31), date(2502, 1, 1), date(1, 1, 1)])
def test_absurd_dates_are_invalid(bad: date) -> None:
    err = error_of(bill([line("200", "GST", 100, 10)], transaction_date=bad))
    assert fields(err) == ["transaction.header.transaction_date"]


def test_a_due_date_before_the_document_date_is_invalid() -> None:
    lines = [line("200", "GST", 100, 10)]
    body = DocumentBody("INV-8", tuple(lines), totals_of(lines), due_date=date(2026, 1, 1))
    assert fields(error_of(transaction(Kind.CLIENT_BILL, body))) == ["transaction.client_bill.due_date"]


def test_an_implausible_posting_time_is_invalid() -> None:
    err = error_of(bill([line("200", "GST", 100, 10)], posted_at=datetime(1066, 10, 14)))
    assert fields(err) == ["transaction.header.posted_at"]


@pytest.mark.parametrize("amount", [0, -1, 10**13])
def test_payment_amounts_must_be_positive_and_plausible(amount: int) -> None:
    payment = transaction(Kind.CLIENT_BILL_PAYMENT, PaymentBody(1001, cents(amount)))
    assert fields(error_of(payment)) == ["transaction.client_bill_payment.amount.units"]


def test_a_payment_must_name_the_bill_it_pays() -> None:
    payment = transaction(Kind.CLIENT_BILL_PAYMENT, PaymentBody(0, cents(100)))
    assert fields(error_of(payment)) == ["transaction.client_bill_payment.bill_id"]


def test_a_journal_that_does_not_balance_is_invalid() -> None:
    journal = GeneralJournalBody("Fix", (JournalLine("420", "", cents(100)), JournalLine("310", "", cents(-99))))
    err = error_of(transaction(Kind.GENERAL_JOURNAL, journal), context(Profile.EXTENDED))
    assert fields(err) == ["transaction.general_journal.lines"]
    assert "1 cents" in err.field_violations[0].description


def test_a_transfer_to_the_same_account_is_invalid() -> None:
    transfer = transaction(Kind.OFFICE_BANK_TRANSFER, TransferBody("090", "090", cents(100)))
    assert fields(error_of(transfer, context(Profile.EXTENDED))) == ["transaction.office_bank_transfer.to_bank_account"]


def test_a_line_in_another_currency_is_invalid() -> None:
    stray = replace(line("200", "GST", 100, 10), amount=cents(100, "USD"))
    assert fields(error_of(bill([stray]))) == ["transaction.client_bill.lines[0].amount.currency_code"]


# ISO 4217 codes are three ASCII capitals; str.isupper() alone also takes "ÀÉÎ" or "ΑΒΓ", which
# were then read as a foreign currency and recorded as unsupported instead of refused.
@pytest.mark.parametrize("code", ["ÀÉÎ", "ΑΒΓ", "AUDX", "AU", "aud", "A1D", ""])
def test_a_currency_code_that_is_not_three_ascii_capitals_is_invalid(code: str) -> None:
    err = error_of(bill([line("200", "GST", 100, 10)], currency_code=code))
    assert fields(err) == ["transaction.header.currency_code"]


def test_a_currency_code_xero_does_not_list_is_invalid() -> None:
    """Three capitals are not enough: Xero takes the ISO 4217 codes its CurrencyCode lists."""
    err = error_of(
        bill([line("200", "GST", 100, 10)], currency_code="QQQ", currency_rate="1.5"), context(Profile.EXTENDED)
    )
    assert fields(err) == ["transaction.header.currency_code"]


def test_a_bill_needs_a_participant_to_become_a_contact() -> None:
    assert fields(error_of(bill([line("200", "GST", 100, 10)], participant=None))) == ["transaction.header.participant"]


def test_a_foreign_transaction_in_the_extended_profile_needs_its_rate() -> None:
    err = error_of(bill([line("200", "GST", 100, 10)], currency_code="USD"), context(Profile.EXTENDED))
    assert fields(err) == ["transaction.header.currency_rate"]


@pytest.mark.parametrize("rate", ["0", "-1.2", "abc", "NaN"])
def test_a_bad_rate_is_invalid(rate: str) -> None:
    tx = bill([line("200", "GST", 100, 10)], currency_code="USD", currency_rate=rate)
    assert fields(error_of(tx, context(Profile.EXTENDED))) == ["transaction.header.currency_rate"]


def test_a_rate_on_a_base_currency_transaction_is_refused_rather_than_ignored() -> None:
    tx = bill([line("200", "GST", 100, 10)], currency_rate="1.5")
    assert fields(error_of(tx)) == ["transaction.header.currency_rate"]


def test_every_problem_is_reported_at_once() -> None:
    bad = replace(line("200", "GST", 100, 10), gl_account="", quantity="x")
    err = error_of(bill([bad], Totals(cents(1), cents(10), cents(11)), transaction_date=None))
    assert fields(err) == [
        "transaction.header.transaction_date",
    ]
    # Header problems stop before the body is read; once fixed, the body's problems come together.
    err = error_of(bill([bad], Totals(cents(1), cents(10), cents(11))))
    assert fields(err) == [
        "transaction.client_bill.lines[0].gl_account",
        "transaction.client_bill.lines[0].quantity",
        "transaction.client_bill.totals.exclusive",
        "transaction.client_bill.totals.inclusive",
    ]


def test_field_problems_win_over_preconditions() -> None:
    bad = replace(line("200", "VAT20", 100, 10), gl_account="")
    assert fields(error_of(bill([bad]))) == ["transaction.client_bill.lines[0].gl_account"]


@pytest.mark.parametrize(
    ("changes", "subject"),
    [
        ({"connected_at": None}, "context.connected_at"),
        ({"base_currency_code": ""}, "context.base_currency_code"),
    ],
)
def test_a_connection_that_is_not_ready_is_a_precondition(changes: dict[str, Any], subject: str) -> None:
    err = error_of(bill([line("200", "GST", 100, 10)]), context(**changes))
    assert subjects(err) == [("CONNECTION_NOT_READY", subject)]


@pytest.mark.parametrize(
    ("account", "violation"),
    [("999", "ACCOUNT_NOT_IN_CHART"), ("499", "ACCOUNT_ARCHIVED")],
)
def test_an_account_unknown_to_or_archived_in_the_chart_is_a_precondition_naming_the_code(
    account: str, violation: str
) -> None:
    err = error_of(bill([line("200", "GST", 100, 10), line(account, "GST", 100, 10)]))
    assert subjects(err) == [(violation, account)]
    # Without a chart the mapper cannot know: the code is passed on for Xero to judge.
    assert map_transaction(bill([line(account, "GST", 100, 10)]), context(with_chart=False)).operations


def test_an_allocated_bank_that_is_not_a_bank_account_is_a_precondition() -> None:
    receipt = transaction(Kind.TRUST_RECEIPT, BankAmountBody(cents(100), "850"))
    assert subjects(error_of(receipt)) == [("ACCOUNT_NOT_A_BANK_ACCOUNT", "850")]


def test_a_payment_through_an_account_without_payments_is_a_precondition() -> None:
    payment = transaction(Kind.CLIENT_BILL_PAYMENT, PaymentBody(1001, cents(100), "200"))
    assert subjects(error_of(payment)) == [("ACCOUNT_PAYMENTS_NOT_ENABLED", "200")]


def test_funds_moved_to_the_trust_bank_itself_are_invalid() -> None:
    tx = transaction(Kind.STATUTORY_FUNDS, FundsBody(FundsDirection.OUT_OF_TRUST, "091", "091", cents(100)))
    assert fields(error_of(tx)) == ["transaction.statutory_funds.statutory_account"]


def test_a_missing_stated_total_is_reported_once() -> None:
    lines = [line("200", "GST", 100, 10)]
    stated = Totals(cents(100), None, cents(110))
    assert fields(error_of(bill(lines, stated))) == ["transaction.client_bill.totals.tax"]


def test_text_longer_than_xero_takes_is_refused_at_the_door() -> None:
    """Xero's contact names and document numbers take 255 characters: longer ones would only fail
    at Xero, after the poster had accepted and queued them."""
    lines = [line("200", "GST", 100, 10)]
    named = bill(lines)
    assert named.header.participant is not None
    named.header.participant.display_name = "N" * 256
    assert fields(error_of(named)) == ["transaction.header.participant.display_name"]
    numbered = replace(bill(lines), body=DocumentBody("I" * 256, tuple(lines), totals_of(lines), date(2026, 4, 1)))
    assert fields(error_of(numbered)) == ["transaction.client_bill.bill_number"]
    assert fields(error_of(bill(lines, reference="R" * 201))) == ["transaction.header.reference"]
