"""Overpayments as Xero gives them: a RECEIVE- or SPEND-OVERPAYMENT bank transaction creates an
Overpayment with its own OverpaymentID, which the bank transaction carries (Xero's OpenAPI,
BankTransaction.OverpaymentID: "returned on BankTransactions with a Type of SPEND-OVERPAYMENT or
RECEIVE-OVERPAYMENT"). Only that id finds or refunds it; the bank transaction's id does not."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from xero_emulator.testing import Tenant


def received_overpayment(tenant: Tenant) -> dict[str, Any]:
    return tenant.create(
        "BankTransactions",
        {
            "Type": "RECEIVE-OVERPAYMENT",
            "Contact": {"Name": "Jane Citizen"},
            "BankAccount": {"Code": "090"},
            "Date": "2026-07-01",
            "LineItems": [{"Description": "Paid twice", "LineAmount": Decimal("60.00")}],
        },
    )


def refund(overpayment_id: str) -> dict[str, Any]:
    return {
        "Overpayment": {"OverpaymentID": overpayment_id},
        "Account": {"Code": "090"},
        "Date": "2026-07-05",
        "Amount": Decimal("60.00"),
    }


def test_the_overpayment_has_its_own_id(tenant: Tenant) -> None:
    tx = received_overpayment(tenant)
    assert tx["OverpaymentID"] != tx["BankTransactionID"]
    found = tenant.client.get(f"/Overpayments/{tx['OverpaymentID']}")
    assert found.status_code == 200
    assert found.json()["Overpayments"][0]["OverpaymentID"] == tx["OverpaymentID"]
    assert tenant.client.get(f"/Overpayments/{tx['BankTransactionID']}").status_code == 404
    again = tenant.client.get(f"/BankTransactions/{tx['BankTransactionID']}").json()["BankTransactions"][0]
    assert again["OverpaymentID"] == tx["OverpaymentID"]


def test_a_refund_naming_the_bank_transaction_is_refused(tenant: Tenant) -> None:
    tx = received_overpayment(tenant)
    response = tenant.put("Payments", refund(tx["BankTransactionID"]))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["Type"] == "ValidationException"
    assert body["Elements"][0]["ValidationErrors"] == [
        {"Message": f"The Overpayment with OverpaymentID {tx['BankTransactionID']} could not be found."}
    ]
    assert tenant.ledger()["objects"]["Payments"] == {}


def test_a_refund_naming_the_overpayment_refunds_it(tenant: Tenant) -> None:
    tx = received_overpayment(tenant)
    paid = tenant.create("Payments", refund(tx["OverpaymentID"]))
    assert paid["PaymentType"] == "AROVERPAYMENTPAYMENT"
    overpayment = tenant.client.get(f"/Overpayments/{tx['OverpaymentID']}").json()["Overpayments"][0]
    assert (overpayment["Status"], overpayment["RemainingCredit"]) == ("PAID", 0)
    assert tenant.balance("090") == "0.00"
