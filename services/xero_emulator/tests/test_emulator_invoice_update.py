"""Updating an existing invoice with POST Invoices/{InvoiceID} (Xero's updateInvoice): which
statuses may be edited, and an InvoiceNumber that stays unique, voided invoices included.

Xero's rules, as its help states them ("Edit, delete or void an invoice, bill or credit note",
help.xero.com Payments_EditDeleteInvoice): draft, awaiting-approval and approved invoices can be
edited "provided no payment or credit notes have been allocated against them"; a part-paid
invoice has the restrictions of a paid one; voided and deleted ones cannot be edited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from xero_emulator.testing import Tenant, credit_note, invoice, payment


def errors_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["Type"] == "ValidationException"
    return [e["Message"] for element in body["Elements"] for e in element["ValidationErrors"]]


def renumber(tenant: Tenant, invoice_id: str, number: str) -> httpx.Response:
    return tenant.post(f"/Invoices/{invoice_id}", {"Invoices": [{"InvoiceID": invoice_id, "InvoiceNumber": number}]})


def updated(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["Invoices"][0]
    return found


def test_an_approved_invoice_without_payments_is_renumbered_and_its_old_number_can_be_reused(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00", InvoiceNumber="B-1"))
    ledger_before = tenant.ledger()["accounts"]

    renamed = updated(renumber(tenant, created["InvoiceID"], "B-1-void-1"))

    assert renamed["InvoiceNumber"] == "B-1-void-1" and renamed["Status"] == "AUTHORISED"
    assert (renamed["Total"], renamed["AmountDue"]) == (Decimal("110.00"), Decimal("110.00"))
    assert tenant.ledger()["accounts"] == ledger_before  # a new number moves no money
    voided = updated(tenant.post(f"/Invoices/{created['InvoiceID']}", {"Invoices": [{"Status": "VOIDED"}]}))
    assert (voided["Status"], voided["InvoiceNumber"]) == ("VOIDED", "B-1-void-1")
    again = tenant.create("Invoices", invoice("120.00", InvoiceNumber="B-1"))
    assert again["InvoiceNumber"] == "B-1" and again["InvoiceID"] != created["InvoiceID"]
    assert tenant.balance("610") == "132.00"  # only the new invoice is receivable


def test_an_invoice_number_stays_unique_against_voided_invoices(tenant: Tenant) -> None:
    kept = tenant.create("Invoices", invoice(InvoiceNumber="B-2"))
    updated(tenant.post(f"/Invoices/{kept['InvoiceID']}", {"Invoices": [{"Status": "VOIDED"}]}))
    other = tenant.create("Invoices", invoice(InvoiceNumber="B-3"))

    assert errors_of(renumber(tenant, other["InvoiceID"], "B-2")) == ["Invoice # must be unique."]
    assert errors_of(renumber(tenant, other["InvoiceID"], "b-2")) == ["Invoice # must be unique."]
    assert errors_of(tenant.put("Invoices", invoice(InvoiceNumber="B-2"))) == ["Invoice # must be unique."]
    assert updated(renumber(tenant, other["InvoiceID"], "B-3"))["InvoiceNumber"] == "B-3"  # its own number


def test_a_part_paid_or_paid_invoice_cannot_be_renumbered(tenant: Tenant) -> None:
    part = tenant.create("Invoices", invoice("100.00", InvoiceNumber="P-1"))
    tenant.create("Payments", payment(part["InvoiceID"], "10.00"))
    full = tenant.create("Invoices", invoice("100.00", InvoiceNumber="P-2"))
    tenant.create("Payments", payment(full["InvoiceID"], "110.00"))

    assert errors_of(renumber(tenant, part["InvoiceID"], "P-1-void")) == [
        "This document cannot be edited as it has a payment or credit note allocated to it."
    ]
    assert errors_of(renumber(tenant, full["InvoiceID"], "P-2-void")) == [
        "Invoice not of valid status for modification"
    ]
    assert tenant.client.get(f"/Invoices/{part['InvoiceID']}").json()["Invoices"][0]["InvoiceNumber"] == "P-1"


def test_a_credited_invoice_cannot_be_renumbered(tenant: Tenant) -> None:
    credited = tenant.create("Invoices", invoice("100.00", InvoiceNumber="C-1"))
    note = tenant.create("CreditNotes", credit_note("10.00"))
    allocated = tenant.put(
        f"CreditNotes/{note['CreditNoteID']}/Allocations",
        {"Invoice": {"InvoiceID": credited["InvoiceID"]}, "Amount": Decimal("11.00"), "Date": "2026-07-02"},
    )
    assert allocated.status_code == 200, allocated.text

    assert "payment or credit note" in errors_of(renumber(tenant, credited["InvoiceID"], "C-1-void"))[0]


def test_voided_and_deleted_invoices_cannot_be_renumbered(tenant: Tenant) -> None:
    voided = tenant.create("Invoices", invoice(InvoiceNumber="V-1"))
    updated(tenant.post(f"/Invoices/{voided['InvoiceID']}", {"Invoices": [{"Status": "VOIDED"}]}))
    draft = tenant.create("Invoices", invoice(status="DRAFT", InvoiceNumber="D-1"))
    updated(tenant.post(f"/Invoices/{draft['InvoiceID']}", {"Invoices": [{"Status": "DELETED"}]}))

    for gone in (voided, draft):
        assert errors_of(renumber(tenant, gone["InvoiceID"], "X-1")) == ["Invoice not of valid status for modification"]


def test_drafts_and_submitted_invoices_can_be_renumbered(tenant: Tenant) -> None:
    for status in ("DRAFT", "SUBMITTED"):
        created = tenant.create("Invoices", invoice(status=status, InvoiceNumber=f"{status}-1"))
        assert updated(renumber(tenant, created["InvoiceID"], f"{status}-2"))["InvoiceNumber"] == f"{status}-2"
