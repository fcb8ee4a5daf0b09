"""Payments, their deletion, credit-note and overpayment allocations, and the status rules that
tie them together (what must be removed before a document can be voided)."""

from __future__ import annotations

from decimal import Decimal

import httpx
from xero_emulator.testing import Tenant, credit_note, invoice, payment


def messages(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    return [e["Message"] for element in response.json()["Elements"] for e in element["ValidationErrors"]]


def test_partial_then_full_payment_moves_amount_due_and_status(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("100.00"))
    first = tenant.create("Payments", payment(inv["InvoiceID"], "60.00"))
    assert first["PaymentType"] == "ACCRECPAYMENT"
    assert first["Invoice"]["InvoiceID"] == inv["InvoiceID"]
    after = tenant.client.get(f"/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (after["AmountPaid"], after["AmountDue"], after["Status"]) == (60.00, 50.00, "AUTHORISED")
    tenant.create("Payments", payment(inv["InvoiceID"], "50.00"))
    paid = tenant.client.get(f"/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (paid["AmountDue"], paid["Status"]) == (0.00, "PAID")
    assert len(paid["Payments"]) == 2


def test_overpaying_and_paying_a_draft_are_refused(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("100.00"))
    assert messages(tenant.put("Payments", payment(inv["InvoiceID"], "110.01"))) == [
        "The payment amount exceeds the amount outstanding on this document"
    ]
    draft = tenant.create("Invoices", invoice("100.00", status="DRAFT"))
    assert messages(tenant.put("Payments", payment(draft["InvoiceID"], "1.00"))) == [
        "Payments can only be made against Authorised documents"
    ]


def test_payment_account_must_be_a_bank_or_allow_payments(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("100.00"))
    refused = messages(tenant.put("Payments", payment(inv["InvoiceID"], "10.00", account="200")))
    assert "does not have payments enabled" in refused[0]
    # 860 Trust Paid by Firm is not a bank account but has payments enabled.
    assert tenant.create("Payments", payment(inv["InvoiceID"], "10.00", account="860"))["Account"]["Code"] == "860"


def test_voiding_with_payments_is_refused_until_the_payment_is_deleted(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("100.00"))
    paid = tenant.create("Payments", payment(inv["InvoiceID"], "110.00"))
    refused = messages(tenant.post(f"/Invoices/{inv['InvoiceID']}", {"Status": "VOIDED"}))
    assert "PAID and cannot be voided" in refused[0]
    deleted = tenant.post(f"/Payments/{paid['PaymentID']}", {"Status": "DELETED"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["Payments"][0]["Status"] == "DELETED"
    restored = tenant.client.get(f"/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (restored["Status"], restored["AmountDue"], restored["Payments"]) == ("AUTHORISED", 110.00, [])
    voided = tenant.post(f"/Invoices/{inv['InvoiceID']}", {"Status": "VOIDED"})
    assert voided.json()["Invoices"][0]["Status"] == "VOIDED"
    assert tenant.ledger()["accounts"] == []


def test_partly_paid_invoice_cannot_be_voided(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("100.00"))
    tenant.create("Payments", payment(inv["InvoiceID"], "10.00"))
    assert (
        "Delete the payments and allocations first"
        in messages(tenant.post(f"/Invoices/{inv['InvoiceID']}", {"Status": "VOIDED"}))[0]
    )


def test_a_payment_can_only_be_deleted_not_edited_or_deleted_twice(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("100.00"))
    paid = tenant.create("Payments", payment(inv["InvoiceID"], "10.00"))
    assert "can only be deleted" in messages(tenant.post(f"/Payments/{paid['PaymentID']}", {"Reference": "x"}))[0]
    tenant.post(f"/Payments/{paid['PaymentID']}", {"Status": "DELETED"})
    assert "already been deleted" in messages(tenant.post(f"/Payments/{paid['PaymentID']}", {"Status": "DELETED"}))[0]


def test_fully_allocated_credit_note_is_paid_and_cannot_be_voided(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("100.00"))
    note = tenant.create("CreditNotes", credit_note("20.00"))
    assert (note["Total"], note["RemainingCredit"], note["CreditNoteNumber"][:3]) == (22.00, 22.00, "CN-")
    allocation = tenant.put(
        f"CreditNotes/{note['CreditNoteID']}/Allocations",
        {"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": Decimal("22.00"), "Date": "2026-07-03"},
    )
    assert allocation.status_code == 200, allocation.text
    after = tenant.client.get(f"/CreditNotes/{note['CreditNoteID']}").json()["CreditNotes"][0]
    assert (after["Status"], after["RemainingCredit"]) == ("PAID", 0.00)
    target = tenant.client.get(f"/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (target["AmountCredited"], target["AmountDue"]) == (22.00, 88.00)
    assert (
        "PAID and cannot be voided"
        in messages(tenant.post(f"/CreditNotes/{note['CreditNoteID']}", {"Status": "VOIDED"}))[0]
    )
    # Removing the allocation restores both documents; then the credit note can be voided.
    allocation_id = allocation.json()["Allocations"][0]["AllocationID"]
    removed = tenant.client.delete(f"/CreditNotes/{note['CreditNoteID']}/Allocations/{allocation_id}")
    assert removed.json()["IsDeleted"] is True
    assert tenant.client.get(f"/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]["AmountDue"] == 110.00
    voided = tenant.post(f"/CreditNotes/{note['CreditNoteID']}", {"Status": "VOIDED"})
    assert voided.json()["CreditNotes"][0]["Status"] == "VOIDED"


def test_allocation_must_stay_on_one_side_and_within_both_amounts(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("10.00"))
    bill = tenant.create("Invoices", invoice("10.00", kind="ACCPAY"))
    note = tenant.create("CreditNotes", credit_note("20.00"))
    path = f"CreditNotes/{note['CreditNoteID']}/Allocations"
    wrong_side = messages(tenant.put(path, {"Invoice": {"InvoiceID": bill["InvoiceID"]}, "Amount": Decimal("1.00")}))
    assert "both be sales" in wrong_side[0]
    too_much = messages(tenant.put(path, {"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": Decimal("11.01")}))
    assert "exceeds the amount due" in too_much[0]


def test_credit_note_refund_is_a_payment_on_the_credit_note(tenant: Tenant) -> None:
    note = tenant.create("CreditNotes", credit_note("100.00"))
    refund = tenant.create(
        "Payments",
        {
            "CreditNote": {"CreditNoteID": note["CreditNoteID"]},
            "Account": {"Code": "090"},
            "Date": "2026-07-05",
            "Amount": Decimal("110.00"),
        },
    )
    assert refund["PaymentType"] == "ARCREDITPAYMENT"
    assert tenant.client.get(f"/CreditNotes/{note['CreditNoteID']}").json()["CreditNotes"][0]["Status"] == "PAID"
    # Credit note: Dr revenue 100, Dr GST 10, Cr AR 110; refund: Dr AR 110, Cr bank 110.
    assert tenant.balance("610") == "0.00"
    assert tenant.balance("090") == "-110.00"
    assert tenant.balance("200") == "100.00"


def test_overpayment_allocated_then_refunded(tenant: Tenant) -> None:
    inv = tenant.create("Invoices", invoice("100.00"))
    tx = tenant.create(
        "BankTransactions",
        {
            "Type": "RECEIVE-OVERPAYMENT",
            "Contact": {"Name": "Jane Citizen"},
            "BankAccount": {"Code": "090"},
            "Date": "2026-07-02",
            "LineItems": [{"Description": "Overpaid", "LineAmount": Decimal("150.00")}],
        },
    )
    overpayment_id = tx["OverpaymentID"]
    overpayment = tenant.client.get(f"/Overpayments/{overpayment_id}").json()["Overpayments"][0]
    assert (overpayment["RemainingCredit"], overpayment["Type"]) == (150.00, "RECEIVE-OVERPAYMENT")
    allocated = tenant.put(
        f"Overpayments/{overpayment_id}/Allocations",
        {"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": Decimal("110.00")},
    )
    assert allocated.status_code == 200, allocated.text
    assert tenant.client.get(f"/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]["Status"] == "PAID"
    refund = tenant.create(
        "Payments",
        {
            "Overpayment": {"OverpaymentID": overpayment_id},
            "Account": {"Code": "090"},
            "Date": "2026-07-06",
            "Amount": Decimal("40.00"),
        },
    )
    assert refund["PaymentType"] == "AROVERPAYMENTPAYMENT"
    assert tenant.client.get(f"/Overpayments/{overpayment_id}").json()["Overpayments"][0]["Status"] == "PAID"
    # Received 150, refunded 40; the 110 settled the invoice, so receivables are clear.
    assert tenant.balance("090") == "110.00"
    assert tenant.balance("610") == "0.00"
    assert tenant.ledger()["balanced"] is True
