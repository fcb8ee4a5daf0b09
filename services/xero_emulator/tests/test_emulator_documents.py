"""Invoices and credit notes: totals, validation against the chart, status rules."""

from __future__ import annotations

import datetime as dt

import httpx
from xero_emulator.testing import Tenant, credit_note, invoice, line


def errors_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["Type"] == "ValidationException"
    return [e["Message"] for element in body["Elements"] for e in element["ValidationErrors"]]


def test_exclusive_invoice_totals_and_computed_tax(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("123.45"))
    # 12.345 of GST rounds half away from zero to 12.35, as Xero rounds.
    assert (created["SubTotal"], created["TotalTax"], created["Total"], created["AmountDue"]) == (
        123.45,
        12.35,
        135.80,
        135.80,
    )
    assert created["InvoiceNumber"].startswith("INV-")
    assert created["Date"].startswith("/Date(")


def test_explicit_tax_amount_is_kept_and_amounts_have_two_decimals(tenant: Tenant) -> None:
    element = invoice("10.00")
    element["LineItems"][0]["TaxAmount"] = line("0.99")["UnitAmount"]
    response = tenant.put("Invoices", element)
    assert '"TotalTax":0.99' in response.text
    assert '"Total":10.99' in response.text
    assert '"SubTotal":10.00' in response.text


def test_inclusive_lines_carry_their_tax(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("110.00", LineAmountTypes="Inclusive"))
    assert (created["SubTotal"], created["TotalTax"], created["Total"]) == (100.00, 10.00, 110.00)


def test_unknown_archived_and_misused_accounts_are_refused(tenant: Tenant) -> None:
    for code, fragment in (("999", "not a valid code"), ("499", "archived"), ("090", "bank account")):
        element = invoice()
        element["LineItems"] = [line("10.00", code, None)]
        messages = errors_of(tenant.put("Invoices", element))
        assert any(fragment in message for message in messages), messages
    assert tenant.server.state.organisation(tenant.tenant_id).objects["Invoices"] == {}


def test_tax_type_must_suit_the_account(tenant: Tenant) -> None:
    element = invoice()
    element["LineItems"] = [line("10.00", "200", "INPUT")]
    assert "cannot be used with account code '200'" in errors_of(tenant.put("Invoices", element))[0]


def test_missing_tax_type_takes_the_accounts_default(tenant: Tenant) -> None:
    element = invoice()
    element["LineItems"] = [line("50.00", "270", None)]
    created = tenant.create("Invoices", element)
    assert created["LineItems"][0]["TaxType"] == "EXEMPTOUTPUT"
    assert created["TotalTax"] == 0


def test_accrec_invoice_numbers_are_unique_accpay_are_not(tenant: Tenant) -> None:
    tenant.create("Invoices", invoice(InvoiceNumber="B-1"))
    assert errors_of(tenant.put("Invoices", invoice(InvoiceNumber="B-1"))) == ["Invoice # must be unique."]
    bill = invoice(kind="ACCPAY", InvoiceNumber="SUP-9")
    tenant.create("Invoices", bill)
    tenant.create("Invoices", bill)
    found = tenant.client.get("/Invoices", params={"where": 'Type=="ACCPAY" AND InvoiceNumber=="SUP-9"'})
    assert len(found.json()["Invoices"]) == 2


def test_accreccredit_numbers_are_unique_while_voided_and_free_once_deleted(tenant: Tenant) -> None:
    """Xero's OpenAPI description: CreditNote.CreditNoteNumber is an "ACCRECCREDIT - Unique alpha
    numeric code identifying credit note"; Xero's answer is "Credit Note # must be unique."
    (XeroAPI/Xero-Net#257). A VOIDED one keeps its number, as a voided invoice does."""
    taken = tenant.create("CreditNotes", credit_note(CreditNoteNumber="CN-7"))
    assert errors_of(tenant.put("CreditNotes", credit_note(CreditNoteNumber="cn-7"))) == [
        "Credit Note # must be unique."
    ]
    voided = tenant.post(f"/CreditNotes/{taken['CreditNoteID']}", {"CreditNotes": [{"Status": "VOIDED"}]})
    assert voided.json()["CreditNotes"][0]["Status"] == "VOIDED"
    assert errors_of(tenant.put("CreditNotes", credit_note(CreditNoteNumber="CN-7"))) == [
        "Credit Note # must be unique."
    ]
    other = tenant.create("CreditNotes", credit_note(CreditNoteNumber="CN-8"))
    renamed = tenant.post(f"/CreditNotes/{other['CreditNoteID']}", {"CreditNotes": [{"CreditNoteNumber": "CN-7"}]})
    assert errors_of(renamed) == ["Credit Note # must be unique."]
    draft = tenant.create("CreditNotes", credit_note(CreditNoteNumber="CN-9", status="DRAFT"))
    tenant.post(f"/CreditNotes/{draft['CreditNoteID']}", {"CreditNotes": [{"Status": "DELETED"}]})
    assert tenant.create("CreditNotes", credit_note(CreditNoteNumber="CN-9"))["CreditNoteNumber"] == "CN-9"
    supplier = credit_note(kind="ACCPAYCREDIT", CreditNoteNumber="SC-1")
    tenant.create("CreditNotes", supplier)
    tenant.create("CreditNotes", supplier)


def test_draft_can_be_deleted_authorised_only_voided(tenant: Tenant) -> None:
    draft = tenant.create("Invoices", invoice(status="DRAFT"))
    deleted = tenant.post(f"/Invoices/{draft['InvoiceID']}", {"Status": "DELETED"})
    assert deleted.json()["Invoices"][0]["Status"] == "DELETED"
    live = tenant.create("Invoices", invoice())
    assert "void it instead" in errors_of(tenant.post(f"/Invoices/{live['InvoiceID']}", {"Status": "DELETED"}))[0]
    voided = tenant.post(f"/Invoices/{live['InvoiceID']}", {"Invoices": [{"Status": "VOIDED"}]})
    assert voided.json()["Invoices"][0]["Status"] == "VOIDED"
    assert tenant.ledger()["accounts"] == []


def test_authorised_invoice_needs_a_due_date(tenant: Tenant) -> None:
    element = invoice()
    element.pop("DueDate")
    assert errors_of(tenant.put("Invoices", element)) == ["Due Date is required for an AUTHORISED invoice."]


def test_lock_date_refuses_documents_on_or_before_it(tenant: Tenant) -> None:
    tenant.server.state.organisation(tenant.tenant_id).period_lock_date = dt.date(2026, 7, 1)
    assert "lock date" in errors_of(tenant.put("Invoices", invoice()))[0]
    organisation = tenant.client.get("/Organisation").json()["Organisations"][0]
    assert organisation["PeriodLockDate"] == "/Date(1782864000000+0000)/"
    assert tenant.create("Invoices", invoice(Date="2026-07-02"))["Total"] == 110.00


def test_editing_an_authorised_invoice_recomputes_totals(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    updated = tenant.post(
        "/Invoices", {"Invoices": [{"InvoiceID": created["InvoiceID"], "LineItems": [line("200.00")]}]}
    )
    assert updated.json()["Invoices"][0]["Total"] == 220.00
    assert updated.json()["Invoices"][0]["AmountDue"] == 220.00


def test_tax_is_rounded_per_line_and_totals_sum_the_lines(tenant: Tenant) -> None:
    element = invoice()
    element["LineItems"] = [line("0.05"), line("0.05"), line("0.05")]
    created = tenant.create("Invoices", element)
    # Each line's 0.005 of GST rounds to 0.01; the document's tax is the sum of its lines (0.03),
    # not 10% of the subtotal (0.015 -> 0.02).
    assert [item["TaxAmount"] for item in created["LineItems"]] == [0.01, 0.01, 0.01]
    assert (created["SubTotal"], created["TotalTax"], created["Total"]) == (0.15, 0.03, 0.18)


def test_inclusive_credit_note_keeps_its_tax_inclusive_total(tenant: Tenant) -> None:
    note = tenant.create("CreditNotes", credit_note("55.00", LineAmountTypes="Inclusive"))
    assert (note["SubTotal"], note["TotalTax"], note["Total"], note["RemainingCredit"]) == (50.00, 5.00, 55.00, 55.00)
    assert tenant.balance("820") == "5.00"
    assert tenant.balance("610") == "-55.00"


def test_an_account_archived_after_set_up_is_refused_by_name(tenant: Tenant) -> None:
    archived = httpx.post(
        f"{tenant.server.base_url}/emulator/organisations/{tenant.tenant_id}/accounts",
        json={"Code": "420", "Status": "ARCHIVED"},
    )
    assert archived.json()["Status"] == "ARCHIVED"
    messages = errors_of(tenant.put("Invoices", invoice(kind="ACCPAY")))
    assert messages == [
        "The account code '420' has been archived, or deleted. Each line item must reference a valid account."
    ]
