"""Trust-side objects (bank transactions, transfers, manual journals) and the ledger view:
totals per account that tests use to check what was really posted."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from xero_emulator.testing import Tenant, invoice, line, payment


def messages(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    return [e["Message"] for element in response.json()["Elements"] for e in element["ValidationErrors"]]


def trust_receipt(amount: str, **extra: object) -> dict[str, object]:
    return {
        "Type": "RECEIVE",
        "Contact": {"Name": "Jane Citizen"},
        "BankAccount": {"Code": "091"},
        "Date": "2026-07-01",
        "LineAmountTypes": "NoTax",
        "LineItems": [line(amount, "850", "BASEXCLUDED")],
        "Reference": "Trust receipt 17",
        **extra,
    }


def test_ledger_totals_across_a_firms_month(tenant: Tenant) -> None:
    tenant.create("BankTransactions", trust_receipt("1000.00"))
    spend = dict(trust_receipt("250.00"), Type="SPEND")
    tenant.create("BankTransactions", spend)
    tenant.create(
        "BankTransfers",
        {
            "FromBankAccount": {"Code": "091"},
            "ToBankAccount": {"Code": "090"},
            "Amount": Decimal("330.00"),
            "Date": "2026-07-04",
        },
    )
    inv = tenant.create("Invoices", invoice("300.00"))
    tenant.create("Payments", payment(inv["InvoiceID"], "330.00"))
    journal = tenant.create(
        "ManualJournals",
        {
            "Narration": "Matter 12 to matter 14",
            "Date": "2026-07-05",
            "Status": "POSTED",
            "JournalLines": [
                {"LineAmount": Decimal("75.00"), "AccountCode": "850", "Description": "Matter 12"},
                {"LineAmount": Decimal("-75.00"), "AccountCode": "850", "Description": "Matter 14"},
            ],
        },
    )
    assert journal["Status"] == "POSTED"
    ledger = tenant.ledger()
    balances = {a["Code"]: a["Balance"] for a in ledger["accounts"]}
    assert balances == {
        "090": Decimal("660.00"),  # 330 transfer in + 330 invoice payment
        "091": Decimal("420.00"),  # 1000 in - 250 out - 330 transferred
        "200": Decimal("-300.00"),
        "610": Decimal("0.00"),
        "820": Decimal("-30.00"),
        "850": Decimal("-750.00"),  # trust liability: 1000 received - 250 paid out; the journal nets to 0
    }
    assert ledger["balanced"] is True
    assert ledger["total_debit"] == ledger["total_credit"]
    assert ledger["objects"]["Payments"] == {"AUTHORISED": 1}


def test_bank_transaction_needs_a_bank_account_and_can_be_deleted(tenant: Tenant) -> None:
    assert (
        "is not a bank account"
        in messages(tenant.put("BankTransactions", trust_receipt("1.00", BankAccount={"Code": "200"})))[0]
    )
    tx = tenant.create("BankTransactions", trust_receipt("10.00"))
    assert (tx["Total"], tx["Status"], tx["BankAccount"]["Code"]) == (10.00, "AUTHORISED", "091")
    deleted = tenant.post(f"/BankTransactions/{tx['BankTransactionID']}", {"Status": "DELETED"})
    assert deleted.json()["BankTransactions"][0]["Status"] == "DELETED"
    assert tenant.ledger()["accounts"] == []


def test_reconciled_bank_transaction_cannot_be_deleted(tenant: Tenant) -> None:
    tx = tenant.create("BankTransactions", trust_receipt("10.00", IsReconciled=True))
    assert (
        "reconciled" in messages(tenant.post(f"/BankTransactions/{tx['BankTransactionID']}", {"Status": "DELETED"}))[0]
    )


def test_bank_transfer_between_the_same_account_is_refused(tenant: Tenant) -> None:
    response = tenant.put(
        "BankTransfers",
        {"FromBankAccount": {"Code": "091"}, "ToBankAccount": {"Code": "091"}, "Amount": Decimal("5.00")},
    )
    assert "must be different" in messages(response)[0]


def test_unbalanced_journal_is_refused_and_drafts_post_nothing(tenant: Tenant) -> None:
    unbalanced: dict[str, Any] = {
        "Narration": "Oops",
        "JournalLines": [
            {"LineAmount": Decimal("10.00"), "AccountCode": "850"},
            {"LineAmount": Decimal("-9.99"), "AccountCode": "880"},
        ],
    }
    assert messages(tenant.put("ManualJournals", unbalanced)) == [
        "The total debits (10.00) must equal total credits (9.99)."
    ]
    draft = tenant.create(
        "ManualJournals",
        {
            **unbalanced,
            "JournalLines": [unbalanced["JournalLines"][0], {"LineAmount": Decimal("-10.00"), "AccountCode": "880"}],
        },
    )
    assert draft["Status"] == "DRAFT"
    assert tenant.ledger()["accounts"] == []
    posted = tenant.post(f"/ManualJournals/{draft['ManualJournalID']}", {"Status": "POSTED"})
    assert posted.json()["ManualJournals"][0]["Status"] == "POSTED"
    assert tenant.balance("880") == "-10.00"
    voided = tenant.post(f"/ManualJournals/{draft['ManualJournalID']}", {"Status": "VOIDED"})
    assert voided.json()["ManualJournals"][0]["Status"] == "VOIDED"
    assert tenant.ledger()["accounts"] == []


def test_purchases_side_books_expense_and_gst_paid(tenant: Tenant) -> None:
    bill = tenant.create("Invoices", invoice("200.00", kind="ACCPAY", InvoiceNumber="SUP-1"))
    tenant.create("Payments", payment(bill["InvoiceID"], "220.00"))
    assert {a["Code"]: a["Balance"] for a in tenant.ledger()["accounts"]} == {
        "090": Decimal("-220.00"),
        "420": Decimal("200.00"),
        "800": Decimal("0.00"),
        "820": Decimal("20.00"),
    }
