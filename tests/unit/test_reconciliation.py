"""The pure part of reconciliation: each Xero object's ledger effect, the movement read from Trial
Balances across a financial year end, and the comparison with its explanations."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from xerolink_poster.domain import reconciliation as rec

ACCOUNTS = rec.SystemAccounts(receivable="610", payable="800", tax="820")
D = Decimal

amounts = st.decimals(min_value=D("-5000"), max_value=D("5000"), places=2, allow_nan=False, allow_infinity=False)
positive = st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2, allow_nan=False, allow_infinity=False)
rates = st.sampled_from([D("1"), D("1.5"), D("0.6532"), D("1.0931")])


@st.composite
def lines(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        amount = draw(positive)
        tax = draw(st.sampled_from([D("0"), (amount / 11).quantize(D("0.01"))]))
        out.append(
            {"AccountCode": draw(st.sampled_from(["200", "420", "260"])), "LineAmount": amount, "TaxAmount": tax}
        )
    return out


@st.composite
def documents(draw: st.DrawFn) -> tuple[int, dict[str, Any]]:
    object_type = draw(
        st.sampled_from(
            [rec.INVOICE, rec.CREDIT_NOTE, rec.BANK_TRANSACTION, rec.PAYMENT, rec.BANK_TRANSFER, rec.MANUAL_JOURNAL]
        )
    )
    items = draw(lines())
    types = draw(st.sampled_from(["Exclusive", "Inclusive"]))
    net = sum((i["LineAmount"] for i in items), D(0))
    tax = sum((i["TaxAmount"] for i in items), D(0))
    total = net if types == "Inclusive" else net + tax
    rate = draw(rates)
    if object_type in (rec.INVOICE, rec.CREDIT_NOTE):
        kinds = ["ACCREC", "ACCPAY"] if object_type == rec.INVOICE else ["ACCRECCREDIT", "ACCPAYCREDIT"]
        doc: dict[str, Any] = {"Type": draw(st.sampled_from(kinds)), "Status": "AUTHORISED", "LineAmountTypes": types}
        return object_type, {**doc, "LineItems": items, "Total": total, "CurrencyRate": rate}
    if object_type == rec.BANK_TRANSACTION:
        kind = draw(st.sampled_from(["RECEIVE", "SPEND"]))
        doc = {"Type": kind, "Status": "AUTHORISED", "LineAmountTypes": types, "BankAccount": {"Code": "090"}}
        return object_type, {**doc, "LineItems": items, "Total": total, "CurrencyRate": rate}
    if object_type == rec.PAYMENT:
        kind = draw(st.sampled_from(["ACCRECPAYMENT", "ACCPAYPAYMENT", "ARCREDITPAYMENT", "APCREDITPAYMENT"]))
        return object_type, {"PaymentType": kind, "Status": "AUTHORISED", "Amount": total, "Account": {"Code": "090"}}
    if object_type == rec.BANK_TRANSFER:
        return object_type, {"Amount": total, "FromBankAccount": {"Code": "090"}, "ToBankAccount": {"Code": "091"}}
    amounts_drawn = [draw(amounts) for _ in range(3)]
    journal: list[dict[str, Any]] = [{"AccountCode": "200", "LineAmount": a, "TaxAmount": D(0)} for a in amounts_drawn]
    journal.append({"AccountCode": "420", "LineAmount": -sum(amounts_drawn, D(0))})
    return object_type, {"Status": "POSTED", "LineAmountTypes": "NoTax", "JournalLines": journal}


@given(documents())
def test_every_object_moves_its_accounts_by_a_sum_of_zero_to_the_cent(drawn: tuple[int, dict[str, Any]]) -> None:
    object_type, doc = drawn
    effect = rec.ledger_effect(object_type, doc, ACCOUNTS)
    assert sum(effect.values(), D(0)) == 0
    assert all(amount == amount.quantize(D("0.01")) for amount in effect.values())
    assert all(amount for amount in effect.values())


def test_an_invoice_moves_receivables_against_its_lines_and_tax() -> None:
    doc = {
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "Total": D("110.00"),
        "LineItems": [{"AccountCode": "200", "LineAmount": D("100.00"), "TaxAmount": D("10.00")}],
    }
    assert rec.ledger_effect(rec.INVOICE, doc, ACCOUNTS) == {
        "610": D("110.00"),
        "200": D("-100.00"),
        "820": D("-10.00"),
    }
    assert rec.ledger_effect(rec.INVOICE, {**doc, "Status": "VOIDED"}, ACCOUNTS) == {}
    assert rec.ledger_effect(rec.INVOICE, {**doc, "Status": "DRAFT"}, ACCOUNTS) == {}
    bill = {**doc, "Type": "ACCPAY"}
    assert rec.ledger_effect(rec.INVOICE, bill, ACCOUNTS) == {
        "800": D("-110.00"),
        "200": D("100.00"),
        "820": D("10.00"),
    }
    payment = {
        "PaymentType": "ACCRECPAYMENT",
        "Status": "AUTHORISED",
        "Amount": D("110.00"),
        "Account": {"Code": "090"},
    }
    assert rec.ledger_effect(rec.PAYMENT, payment, ACCOUNTS) == {"090": D("110.00"), "610": D("-110.00")}
    assert rec.ledger_effect(rec.PAYMENT, {**payment, "Status": "DELETED"}, ACCOUNTS) == {}


def tb(**ytd: str) -> dict[str, rec.TrialBalanceRow]:
    return {code: rec.TrialBalanceRow("", code, code, D(value)) for code, value in ytd.items()}


def test_movement_across_a_financial_year_end_restarts_profit_and_loss() -> None:
    # Year end 30 June; the period 1 June to 31 July. Sales of 100 in June, 30 in July.
    balances = {
        dt.date(2026, 5, 31): tb(c200="-500", c610="500"),
        dt.date(2026, 6, 30): tb(c200="-600", c610="600"),
        dt.date(2026, 7, 31): tb(c200="-30", c610="630", c960="-600"),
    }
    dates = rec.report_dates(dt.date(2026, 6, 1), dt.date(2026, 7, 31), 30, 6)
    assert dates == [dt.date(2026, 5, 31), dt.date(2026, 6, 30), dt.date(2026, 7, 31)]
    moved = rec.xero_movement(balances, dt.date(2026, 6, 1), dt.date(2026, 7, 31), 30, 6, ["c200"], "c960")
    assert moved == {"c200": D("-130"), "c610": D("130")}


def test_the_first_days_of_the_calendar_read_no_year_end_before_it() -> None:
    assert set(rec.period_problems(dt.date.min, dt.date(1, 3, 31))) == {"from_date"}
    dates = rec.report_dates(dt.date(1, 1, 2), dt.date(2, 3, 1), 31, 12)
    assert dates == [dt.date(1, 1, 1), dt.date(1, 12, 31), dt.date(2, 3, 1)]
    assert rec.period_problems(dt.date(1, 1, 2), dt.date(1, 12, 31)) == {}


def test_a_period_is_at_most_ten_years_so_its_trial_balances_are_few() -> None:
    assert rec.period_problems(dt.date(2016, 3, 1), dt.date(2026, 2, 28)) == {}
    assert set(rec.period_problems(dt.date(2016, 3, 1), dt.date(2026, 3, 1))) == {"to_date"}
    assert rec.period_problems(dt.date(2016, 2, 29), dt.date(2026, 2, 28)) == {}
    assert set(rec.period_problems(dt.date(2026, 1, 1), dt.date.max)) == {"to_date"}
    assert rec.period_problems(dt.date(9990, 1, 1), dt.date.max) == {}
    assert len(rec.report_dates(dt.date(9990, 1, 1), dt.date.max, 30, 6)) == rec.MAX_YEARS + 2


def test_differences_carry_their_explanations_and_the_rest_is_unexplained() -> None:
    cause = rec.Cause("connections/c/links/1", "x1", rec.INVOICE, "VOIDED_IN_XERO", {"610": D("-110"), "200": D("100")})
    results = rec.compare({"610": D("110"), "200": D("-100")}, {"200": D("-100"), "090": D("5")}, [cause], {})
    by_code = {r.code: r for r in results}
    assert by_code["610"].difference == D("-110") and by_code["610"].unexplained == 0
    assert by_code["200"].difference == 0 and by_code["200"].unexplained == D("-100")
    assert by_code["090"].unexplained == D("5") and not by_code["090"].explanations


def test_trust_balances_per_matter_are_credits_on_the_liability() -> None:
    assert rec.trust_balances([(7, D("-500")), (7, D("120")), (8, D("-50")), (9, D("0"))]) == {7: D("380"), 8: D("50")}


def test_a_trimmed_snapshot_is_read_as_xero_answered_it() -> None:
    """A snapshot is booked as Xero's answer it was trimmed from, and one kept before snapshots held
    LineAmountTypes and PaymentType (SubTotal and the payment's document only) is too."""
    from xerolink_poster.domain import drift

    answered = {
        "InvoiceID": "AB",
        "Type": "ACCPAY",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Inclusive",
        "SubTotal": D("100.00"),
        "TotalTax": D("10.00"),
        "Total": D("110.00"),
        "LineItems": [{"AccountCode": "420", "LineAmount": D("110.00"), "TaxAmount": D("10.00")}],
    }
    trimmed = drift.trim(rec.INVOICE, answered)
    assert rec.ledger_effect(rec.INVOICE, trimmed, ACCOUNTS) == rec.ledger_effect(rec.INVOICE, answered, ACCOUNTS)
    assert rec.ledger_effect(rec.INVOICE, trimmed, ACCOUNTS) == {
        "800": D("-110.00"),
        "420": D("100.00"),
        "820": D("10.00"),
    }
    payment = drift.trim(
        rec.PAYMENT,
        {
            "PaymentID": "P",
            "Status": "AUTHORISED",
            "Amount": D("110.00"),
            "Invoice": {"InvoiceID": "AB"},
            "Account": {"Code": "090"},
        },
    )
    typed = rec.with_payment_type(payment, {"ab": "ACCPAY"})
    assert rec.ledger_effect(rec.PAYMENT, typed, ACCOUNTS) == {"090": D("-110.00"), "800": D("110.00")}
    old = {k: v for k, v in trimmed.items() if k != "LineAmountTypes"}
    assert rec.ledger_effect(rec.INVOICE, old, ACCOUNTS) == rec.ledger_effect(rec.INVOICE, answered, ACCOUNTS)


def test_a_refund_of_an_overpayment_or_prepayment_pays_money_out() -> None:
    from xerolink_poster.domain import drift

    refund = {
        "PaymentID": "R",
        "Status": "AUTHORISED",
        "Amount": D("50.00"),
        "Overpayment": {"OverpaymentID": "OP"},
        "Account": {"Code": "090"},
        "PaymentType": "AROVERPAYMENTPAYMENT",
        "CurrencyRate": 1.0,
    }
    trimmed = drift.trim(rec.PAYMENT, refund)
    assert trimmed["PaymentType"] == "AROVERPAYMENTPAYMENT" and trimmed["CurrencyRate"] == "1"
    assert rec.ledger_effect(rec.PAYMENT, trimmed, ACCOUNTS) == {"090": D("-50.00"), "610": D("50.00")}
    # A snapshot without the PaymentType learns it from the bank transaction that made the prepayment.
    old = {k: v for k, v in trimmed.items() if k != "PaymentType"}
    old = {**{k: v for k, v in old.items() if k != "Overpayment"}, "Prepayment": {"PrepaymentID": "pp"}}
    types = rec.document_types([("BT", {"Type": "RECEIVE-PREPAYMENT", "PrepaymentID": "PP"})])
    assert rec.ledger_effect(rec.PAYMENT, rec.with_payment_type(old, types), ACCOUNTS) == {
        "090": D("-50.00"),
        "610": D("50.00"),
    }


def test_a_journal_that_does_not_balance_is_not_balanced_by_moving_cents_onto_a_line() -> None:
    journal = {
        "Status": "POSTED",
        "JournalLines": [
            {"AccountCode": "200", "LineAmount": D("-100.00")},
            {"AccountCode": "400", "LineAmount": D("90.00")},
            {"AccountCode": "420", "LineAmount": D("5.00")},
        ],
    }
    effect = rec.ledger_effect(rec.MANUAL_JOURNAL, journal, ACCOUNTS)
    assert effect == {"200": D("-100.00"), "400": D("90.00"), "420": D("5.00")}
    assert rec.imbalance(effect) == D("-5.00")
    # A foreign document's conversion still rounds to a balanced effect.
    bill = {
        "Type": "ACCPAY",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "CurrencyRate": D("3"),
        "Total": D("1.00"),
        "LineItems": [{"AccountCode": "400", "LineAmount": D("0.50")}, {"AccountCode": "420", "LineAmount": D("0.50")}],
    }
    assert rec.imbalance(rec.ledger_effect(rec.INVOICE, bill, ACCOUNTS)) == 0
