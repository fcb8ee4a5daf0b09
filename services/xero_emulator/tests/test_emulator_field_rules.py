"""Field rules from Xero's OpenAPI description, applied as Xero applies them: Reference is kept
only on the Types its description names (so a bill is never found by it), readOnly fields a client
sends are ignored, over-long fields are a ValidationException, and a voided sales invoice keeps
its number. tests/contract/test_emulator_openapi_rules.py checks every such rule derived from the
description; these are the cases xerolink depends on, spelled out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from xero_emulator.testing import Tenant, credit_note, invoice, line


def messages(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["Type"] == "ValidationException"
    return [e["Message"] for element in body["Elements"] for e in element["ValidationErrors"]]


def found_by_reference(tenant: Tenant, resource: str, reference: str) -> list[dict[str, Any]]:
    response = tenant.client.get(f"/{resource}", params={"where": f'Reference=="{reference}"'})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()[resource]
    return found


def test_a_bill_keeps_no_reference_and_is_never_found_by_it(tenant: Tenant) -> None:
    bill = tenant.create("Invoices", invoice(kind="ACCPAY", Reference="Bill 7 [AS-SB-7]"))
    sale = tenant.create("Invoices", invoice(Reference="Sale 8 [AS-CB-8]"))
    assert "Reference" not in bill
    assert "Reference" not in tenant.client.get(f"/Invoices/{bill['InvoiceID']}").json()["Invoices"][0]
    assert found_by_reference(tenant, "Invoices", "Bill 7 [AS-SB-7]") == []
    assert [i["InvoiceID"] for i in found_by_reference(tenant, "Invoices", "Sale 8 [AS-CB-8]")] == [sale["InvoiceID"]]


def test_a_supplier_credit_keeps_no_reference(tenant: Tenant) -> None:
    credit = tenant.create("CreditNotes", credit_note(kind="ACCPAYCREDIT", Reference="Refund 9"))
    assert "Reference" not in credit
    assert found_by_reference(tenant, "CreditNotes", "Refund 9") == []
    assert tenant.create("CreditNotes", credit_note(Reference="Credit 10"))["Reference"] == "Credit 10"


def test_an_overpayment_keeps_no_reference(tenant: Tenant) -> None:
    spend = tenant.create(
        "BankTransactions",
        {
            "Type": "SPEND-OVERPAYMENT",
            "Contact": {"Name": "Supplier Pty Ltd"},
            "BankAccount": {"Code": "090"},
            "Date": "2026-07-01",
            "LineItems": [{"Description": "Paid twice", "LineAmount": Decimal("30.00")}],
            "Reference": "Over 11",
        },
    )
    assert spend["Reference"] == ""
    assert found_by_reference(tenant, "BankTransactions", "Over 11") == []


def test_discounts_are_dropped_off_bills(tenant: Tenant) -> None:
    bill = tenant.create(
        "Invoices", invoice(kind="ACCPAY", LineItems=[line("100.00", "420", "INPUT", DiscountRate=Decimal("10"))])
    )
    assert "DiscountRate" not in bill["LineItems"][0]
    assert bill["Total"] == 110.00


def test_read_only_fields_sent_are_ignored(tenant: Tenant) -> None:
    sent_id = "0e2b7f5c-1111-4c2e-9a55-5e1f00d0b0b0"
    transfer = tenant.create(
        "BankTransfers",
        {
            "BankTransferID": sent_id,
            "FromBankAccount": {"Code": "090"},
            "ToBankAccount": {"Code": "094"},
            "Amount": Decimal("25.00"),
            "Date": "2026-07-01",
        },
    )
    assert transfer["BankTransferID"] != sent_id
    sale = tenant.create("Invoices", invoice("100.00", Total=Decimal("5.00"), AmountDue=Decimal("0.00")))
    assert (sale["Total"], sale["AmountDue"]) == (110.00, 110.00)


def test_lengths_are_enforced_per_element(tenant: Tenant) -> None:
    long_line = invoice(LineItems=[line("10.00", Description="d" * 4001)])
    assert messages(tenant.put("Invoices", long_line)) == [
        "Line 1: Description must not be more than 4000 characters long."
    ]
    kept = tenant.create("Invoices", invoice(LineItems=[line("10.00", Description="d" * 4000)]))
    assert len(kept["LineItems"][0]["Description"]) == 4000
    assert messages(tenant.put("Contacts", {"Name": "Long Number", "ContactNumber": "n" * 51})) == [
        "ContactNumber must not be more than 50 characters long."
    ]
    named = invoice(Contact={"Name": "New Client", "ContactNumber": "n" * 51})
    assert messages(tenant.put("Invoices", named)) == ["ContactNumber must not be more than 50 characters long."]


def test_a_voided_sales_invoice_keeps_its_number(tenant: Tenant) -> None:
    first = tenant.create("Invoices", invoice(InvoiceNumber="INV-77"))
    voided = tenant.post(f"/Invoices/{first['InvoiceID']}", {"Status": "VOIDED"})
    assert voided.status_code == 200, voided.text
    assert messages(tenant.put("Invoices", invoice(InvoiceNumber="INV-77"))) == ["Invoice # must be unique."]
