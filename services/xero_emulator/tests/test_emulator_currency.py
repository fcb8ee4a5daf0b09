"""Foreign-currency documents keep their CurrencyCode and CurrencyRate and book in the base currency
(AUD) at amount / rate, to the cent; money applied at another rate leaves the difference on 497
Realised Currency Gains. Xero's CurrencyRate is units of the document's currency per AUD."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from xero_emulator.testing import Tenant, credit_note, invoice, line, payment


def balances(tenant: Tenant) -> dict[str, Decimal]:
    ledger = tenant.ledger()
    assert ledger["balanced"], ledger
    return {a["Code"]: a["Balance"] for a in ledger["accounts"] if a["Balance"] != 0}


def created(tenant: Tenant, resource: str, element: dict[str, Any]) -> dict[str, Any]:
    response = tenant.put(resource, element)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = json.loads(response.text, parse_float=Decimal)[resource][0]
    return answer


def refused(tenant: Tenant, resource: str, element: dict[str, Any]) -> list[str]:
    response = tenant.put(resource, element)
    assert response.status_code == 400, response.text
    return [e["Message"] for el in response.json()["Elements"] for e in el["ValidationErrors"]]


def usd_invoice(amount: str = "100.00", rate: str = "0.65", **extra: Any) -> dict[str, Any]:
    return invoice(amount, CurrencyCode="USD", CurrencyRate=Decimal(rate), **extra)


def test_a_foreign_invoice_keeps_its_currency_and_books_at_its_rate(tenant: Tenant) -> None:
    answer = created(tenant, "Invoices", usd_invoice())
    assert (answer["CurrencyCode"], answer["CurrencyRate"], answer["Total"]) == ("USD", Decimal("0.65"), 110)
    stored = json.loads(tenant.client.get(f"/Invoices/{answer['InvoiceID']}").text, parse_float=Decimal)
    assert (stored["Invoices"][0]["CurrencyCode"], stored["Invoices"][0]["CurrencyRate"]) == ("USD", Decimal("0.65"))
    # 110 / 0.65 = 169.23; 100 / 0.65 = 153.85; 10 / 0.65 = 15.38
    assert balances(tenant) == {"610": Decimal("169.23"), "200": Decimal("-153.85"), "820": Decimal("-15.38")}
    assert tenant.ledger()["receivables_outstanding"] == Decimal("169.23")


def test_payments_at_the_invoice_rate_clear_it_to_the_cent(tenant: Tenant) -> None:
    target = created(tenant, "Invoices", usd_invoice("100.00", "0.3", LineAmountTypes="NoTax"))
    for _ in range(2):  # 50 / 0.3 = 166.666...: each payment banks 166.67
        paid = created(tenant, "Payments", payment(target["InvoiceID"], "50.00"))
        assert (paid["CurrencyRate"], paid["BankAmount"]) == (Decimal("0.3"), Decimal("166.67"))
    # Receivables clear exactly (333.33 booked, 333.33 cleared); the bank's extra cent is a gain.
    assert balances(tenant) == {"090": Decimal("333.34"), "200": Decimal("-333.33"), "497": Decimal("-0.01")}


def test_a_payment_at_another_rate_books_the_difference_as_a_realised_gain(tenant: Tenant) -> None:
    target = created(tenant, "Invoices", usd_invoice())
    paid = created(tenant, "Payments", {**payment(target["InvoiceID"], "110.00"), "CurrencyRate": Decimal("0.6")})
    assert paid["BankAmount"] == Decimal("183.33")  # 110 / 0.6
    assert balances(tenant) == {
        "090": Decimal("183.33"),
        "200": Decimal("-153.85"),
        "497": Decimal("-14.10"),
        "820": Decimal("-15.38"),
    }


def test_a_credit_allocated_at_another_rate_books_the_difference(tenant: Tenant) -> None:
    target = created(tenant, "Invoices", usd_invoice("100.00", "0.5", LineAmountTypes="NoTax"))
    credit = created(
        tenant,
        "CreditNotes",
        credit_note("40.00", CurrencyCode="USD", CurrencyRate=Decimal("0.4"), LineAmountTypes="NoTax"),
    )
    allocated = tenant.put(
        f"CreditNotes/{credit['CreditNoteID']}/Allocations",
        {"Invoice": {"InvoiceID": target["InvoiceID"]}, "Amount": Decimal("40.00"), "Date": "2026-07-02"},
    )
    assert allocated.status_code == 200, allocated.text
    # Invoice 200.00 AUD; the credit took 100.00 AUD off sales but clears 80.00 of the invoice.
    assert balances(tenant) == {"610": Decimal("120.00"), "200": Decimal("-100.00"), "497": Decimal("-20.00")}


def test_a_base_currency_document_ignores_a_rate(tenant: Tenant) -> None:
    answer = created(tenant, "Invoices", invoice("100.00", CurrencyCode="AUD", CurrencyRate=Decimal("0.5")))
    assert (answer["CurrencyCode"], answer["CurrencyRate"]) == ("AUD", 1)
    paid = created(tenant, "Payments", {**payment(answer["InvoiceID"], "110.00"), "CurrencyRate": Decimal("0.5")})
    assert (paid["CurrencyRate"], paid["BankAmount"]) == (1, Decimal("110.00"))
    assert balances(tenant)["090"] == Decimal("110.00")


def test_unknown_currencies_and_missing_rates_are_refused(tenant: Tenant) -> None:
    assert "not set up" in refused(tenant, "Invoices", invoice(CurrencyCode="XYZ"))[0]
    assert "CurrencyRate is required" in refused(tenant, "Invoices", invoice(CurrencyCode="USD"))[0]
    assert "greater than zero" in refused(tenant, "Invoices", usd_invoice(rate="0"))[0]
    assert tenant.ledger()["accounts"] == []


def test_only_overpayments_set_a_bank_transactions_currency(tenant: Tenant) -> None:
    base = {
        "Contact": {"Name": "Jane Citizen"},
        "BankAccount": {"Code": "090"},
        "Date": "2026-07-01",
        "CurrencyCode": "USD",
        "CurrencyRate": Decimal("0.8"),
    }
    receive = {**base, "Type": "RECEIVE", "LineItems": [{"Description": "Fee", "LineAmount": 80, "AccountCode": "200"}]}
    assert "only supported on overpayments" in refused(tenant, "BankTransactions", receive)[0]
    over = {**base, "Type": "RECEIVE-OVERPAYMENT", "LineAmountTypes": "NoTax", "LineItems": [{"LineAmount": 80}]}
    answer = created(tenant, "BankTransactions", over)
    overpayment = json.loads(tenant.client.get(f"/Overpayments/{answer['OverpaymentID']}").text, parse_float=Decimal)[
        "Overpayments"
    ][0]
    assert (overpayment["CurrencyCode"], overpayment["CurrencyRate"]) == ("USD", Decimal("0.8"))
    assert balances(tenant) == {"090": Decimal("100.00"), "610": Decimal("-100.00")}


def test_the_cent_lines_lose_to_rounding_lands_on_the_first_line(tenant: Tenant) -> None:
    lines = [line("10.00", code, None) for code in ("200", "210", "210")]
    created(tenant, "Invoices", usd_invoice("10.00", "0.3", LineAmountTypes="NoTax", LineItems=lines))
    # 30 / 0.3 = 100.00 on receivables; each 10 / 0.3 = 33.33, so the first line takes 33.34.
    assert balances(tenant) == {"610": Decimal("100.00"), "200": Decimal("-33.34"), "210": Decimal("-66.66")}
