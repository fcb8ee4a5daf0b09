"""Changes a person makes in Xero's web app (admin routes and their in-process equivalents): the
same status and lock-date rules as the API, the ledger follows, and none of it is an API call."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.domain.errors import ValidationFailure
from xero_emulator.jsonio import dumps
from xero_emulator.testing import Tenant, invoice, line, new_tenant, payment
from xero_emulator.testing import credit_note as credit_note_body


def admin(tenant: Tenant) -> str:
    return f"{tenant.server.base_url}/emulator/organisations/{tenant.tenant_id}"


def hand_edit(tenant: Tenant, resource: str, object_id: str, changes: dict[str, Any]) -> httpx.Response:
    """Sends Decimal amounts as exact JSON numbers."""
    return httpx.post(
        f"{admin(tenant)}/hand-edits/{resource}/{object_id}",
        content=dumps(changes),
        headers={"Content-Type": "application/json"},
    )


def fetch(tenant: Tenant, resource: str, object_id: str) -> dict[str, Any]:
    response = tenant.client.get(f"/{resource}/{object_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()[resource][0]
    return found


def test_voiding_an_invoice_by_hand_takes_it_off_the_ledger(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    assert tenant.balance("610") == "110.00"
    answer = hand_edit(tenant, "Invoices", created["InvoiceID"], {"Status": "VOIDED"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["Status"] == "VOIDED"
    assert fetch(tenant, "Invoices", created["InvoiceID"])["Status"] == "VOIDED"
    assert (tenant.balance("610"), tenant.balance("200"), tenant.ledger()["balanced"]) == ("0.00", "0.00", True)


def test_a_paid_invoice_cannot_be_voided_by_hand_and_nothing_changes(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    tenant.create("Payments", payment(created["InvoiceID"], "110.00"))
    answer = hand_edit(tenant, "Invoices", created["InvoiceID"], {"Status": "VOIDED"})
    assert answer.status_code == 400
    assert "PAID and cannot be voided" in answer.json()["error"]
    assert fetch(tenant, "Invoices", created["InvoiceID"])["Status"] == "PAID"
    with pytest.raises(ValidationFailure, match="PAID"):
        tenant.server.hand_edit(tenant.tenant_id, "Invoices", created["InvoiceID"], {"Status": "VOIDED"})


def test_an_authorised_invoice_cannot_be_deleted_by_hand_but_a_draft_can(tenant: Tenant) -> None:
    authorised = tenant.create("Invoices", invoice("100.00"))
    assert hand_edit(tenant, "Invoices", authorised["InvoiceID"], {"Status": "DELETED"}).status_code == 400
    draft = tenant.create("Invoices", invoice("50.00", status="DRAFT"))
    assert hand_edit(tenant, "Invoices", draft["InvoiceID"], {"Status": "DELETED"}).json()["Status"] == "DELETED"


def test_editing_lines_by_hand_recomputes_totals_and_moves_the_ledger(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    lines = [line("60.00", "200"), line("40.00", "210")]
    answer = hand_edit(tenant, "Invoices", created["InvoiceID"], {"LineItems": lines, "Reference": "By hand"})
    assert answer.status_code == 200, answer.text
    stored = fetch(tenant, "Invoices", created["InvoiceID"])
    assert (stored["SubTotal"], stored["TotalTax"], stored["Total"], stored["Reference"]) == (
        100.0,
        10.0,
        110.0,
        "By hand",
    )
    assert (tenant.balance("200"), tenant.balance("210"), tenant.balance("610")) == ("-60.00", "-40.00", "110.00")
    tenant.server.hand_edit(tenant.tenant_id, "Invoices", created["InvoiceID"], {"LineItems": [line("10.00")]})
    assert (tenant.balance("200"), tenant.balance("210"), tenant.balance("610")) == ("-10.00", "0.00", "11.00")


def test_dates_and_contact_change_by_hand(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    other = tenant.create("Contacts", {"Name": "Other Client"})
    changes = {"Date": "2026-07-05", "DueDate": "2026-08-05", "Contact": {"ContactID": other["ContactID"]}}
    assert hand_edit(tenant, "Invoices", created["InvoiceID"], changes).status_code == 200
    stored = fetch(tenant, "Invoices", created["InvoiceID"])
    assert (stored["DateString"], stored["DueDateString"], stored["Contact"]["ContactID"]) == (
        "2026-07-05T00:00:00",
        "2026-08-05T00:00:00",
        other["ContactID"],
    )
    refused = hand_edit(tenant, "Invoices", created["InvoiceID"], {"Contact": {"Name": "By name"}})
    assert refused.status_code == 400 and "ContactID" in refused.json()["error"]


def test_hand_edits_obey_the_lock_date(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    httpx.post(f"{admin(tenant)}/settings", json={"PeriodLockDate": "2026-06-30"})
    moved = hand_edit(tenant, "Invoices", created["InvoiceID"], {"Date": "2026-06-15"})
    assert moved.status_code == 400 and "lock date" in moved.json()["error"]
    assert fetch(tenant, "Invoices", created["InvoiceID"])["DateString"] == "2026-07-01T00:00:00"


def test_unknown_fields_and_resources_are_refused_by_name(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    refused = hand_edit(tenant, "Invoices", created["InvoiceID"], {"Total": 5})
    assert refused.status_code == 400 and "not Total" in refused.json()["error"]
    assert hand_edit(tenant, "BankTransfers", created["InvoiceID"], {"Status": "DELETED"}).status_code == 400
    assert (
        hand_edit(tenant, "Invoices", "00000000-0000-0000-0000-000000000000", {"Status": "VOIDED"}).status_code == 404
    )


def test_deleting_a_payment_by_hand_makes_the_invoice_unpaid_again(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    paid = tenant.create("Payments", payment(created["InvoiceID"], "110.00"))
    assert tenant.balance("090") == "110.00"
    answer = hand_edit(tenant, "Payments", paid["PaymentID"], {"Status": "DELETED"})
    assert answer.status_code == 200 and answer.json()["Status"] == "DELETED"
    stored = fetch(tenant, "Invoices", created["InvoiceID"])
    assert (stored["Status"], stored["AmountDue"], stored["AmountPaid"]) == ("AUTHORISED", 110.0, 0.0)
    assert (tenant.balance("090"), tenant.balance("610")) == ("0.00", "110.00")
    assert hand_edit(tenant, "Payments", paid["PaymentID"], {"Amount": 5}).status_code == 400


def test_a_bank_feed_match_pays_the_invoice_reconciled(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    match = {"InvoiceID": created["InvoiceID"], "Amount": "60.00", "Date": "2026-07-03", "AccountCode": "090"}
    answer = httpx.post(f"{admin(tenant)}/bank-feed-match", json=match)
    assert answer.status_code == 200, answer.text
    made = answer.json()
    assert (made["Amount"], made["IsReconciled"], made["PaymentType"]) == (60.0, True, "ACCRECPAYMENT")
    assert fetch(tenant, "Invoices", created["InvoiceID"])["AmountDue"] == 50.0
    rest = tenant.server.bank_feed_match(tenant.tenant_id, {**match, "Amount": Decimal("50.00")})
    assert rest["IsReconciled"] is True
    assert fetch(tenant, "Invoices", created["InvoiceID"])["Status"] == "PAID"
    assert (tenant.balance("090"), tenant.balance("610")) == ("110.00", "0.00")
    # The API refuses to delete a reconciled payment; a person in Xero's web app unreconciles it.
    refused = tenant.post(f"/Payments/{rest['PaymentID']}", {"Status": "DELETED"})
    assert refused.status_code == 400
    assert hand_edit(tenant, "Payments", rest["PaymentID"], {"Status": "DELETED"}).status_code == 200
    assert fetch(tenant, "Invoices", created["InvoiceID"])["Status"] == "AUTHORISED"


def test_a_bank_feed_match_follows_xeros_rules(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice("100.00"))
    match = {"InvoiceID": created["InvoiceID"], "Amount": "60.00", "Date": "2026-07-03", "AccountCode": "090"}
    url = f"{admin(tenant)}/bank-feed-match"
    assert "not a bank account" in httpx.post(url, json={**match, "AccountCode": "200"}).json()["error"]
    assert "exceeds" in httpx.post(url, json={**match, "Amount": "500.00"}).json()["error"]
    with pytest.raises(ValidationFailure, match="decimal"):  # money is never a float
        tenant.server.bank_feed_match(tenant.tenant_id, {**match, "Amount": 60.5})
    voided = tenant.create("Invoices", invoice("10.00"))
    tenant.post(f"/Invoices/{voided['InvoiceID']}", {"Status": "VOIDED"})
    refused = httpx.post(url, json={**match, "InvoiceID": voided["InvoiceID"]})
    assert "Authorised" in refused.json()["error"]
    assert tenant.balance("090") == "0.00"


def test_a_credit_note_refund_by_bank_feed_match(tenant: Tenant) -> None:
    credit = tenant.create("CreditNotes", credit_note_body("100.00"))
    match = {"CreditNoteID": credit["CreditNoteID"], "Amount": "110.00", "Date": "2026-07-03", "AccountCode": "090"}
    made = tenant.server.bank_feed_match(tenant.tenant_id, match)
    assert made["PaymentType"] == "ARCREDITPAYMENT"
    assert fetch(tenant, "CreditNotes", credit["CreditNoteID"])["Status"] == "PAID"
    assert tenant.balance("090") == "-110.00"


def test_bank_transactions_are_edited_and_voided_by_hand(tenant: Tenant) -> None:
    spend = {
        "Type": "SPEND",
        "Contact": {"Name": "Supplier"},
        "BankAccount": {"Code": "090"},
        "Date": "2026-07-01",
        "LineAmountTypes": "Exclusive",
        "LineItems": [line("100.00", "420", "INPUT")],
    }
    tx = tenant.create("BankTransactions", spend)
    changes = {"Date": "2026-07-09", "LineItems": [line("50.00", "489", "INPUT")]}
    edited = hand_edit(tenant, "BankTransactions", tx["BankTransactionID"], changes)
    assert edited.status_code == 200, edited.text
    assert (edited.json()["Total"], tenant.balance("489"), tenant.balance("420"), tenant.balance("090")) == (
        55.0,
        "50.00",
        "0.00",
        "-55.00",
    )
    voided = hand_edit(tenant, "BankTransactions", tx["BankTransactionID"], {"Status": "VOIDED"})
    assert voided.json()["Status"] == "VOIDED"
    assert (tenant.balance("489"), tenant.balance("090")) == ("0.00", "0.00")
    assert hand_edit(tenant, "BankTransactions", tx["BankTransactionID"], {"Status": "DELETED"}).status_code == 400


def test_posted_manual_journals_are_edited_and_voided_by_hand(tenant: Tenant) -> None:
    journal = tenant.create(
        "ManualJournals",
        {
            "Narration": "Reclass",
            "Date": "2026-07-01",
            "Status": "POSTED",
            "JournalLines": [
                {"LineAmount": Decimal("25.00"), "AccountCode": "420"},
                {"LineAmount": Decimal("-25.00"), "AccountCode": "489"},
            ],
        },
    )
    lines = [
        {"LineAmount": Decimal("40.00"), "AccountCode": "420"},
        {"LineAmount": Decimal("-40.00"), "AccountCode": "310"},
    ]
    edited = hand_edit(tenant, "ManualJournals", journal["ManualJournalID"], {"JournalLines": lines})
    assert edited.status_code == 200, edited.text
    assert (tenant.balance("420"), tenant.balance("310"), tenant.balance("489")) == ("40.00", "-40.00", "0.00")
    assert hand_edit(tenant, "ManualJournals", journal["ManualJournalID"], {"Status": "DELETED"}).status_code == 400
    voided = hand_edit(tenant, "ManualJournals", journal["ManualJournalID"], {"Status": "VOIDED"})
    assert voided.json()["Status"] == "VOIDED"
    assert (tenant.balance("420"), tenant.balance("310")) == ("0.00", "0.00")


@pytest.fixture
def tight() -> Iterator[Tenant]:
    """An organisation whose app may make two calls a minute, with the minute at its full length."""
    server = EmulatorServer(EmulatorConfig(minute_seconds=60.0, minute_limit=2)).start()
    tenant = new_tenant(server)
    try:
        yield tenant
    finally:
        tenant.client.close()
        server.stop()


def test_hand_edits_are_not_api_calls(tight: Tenant) -> None:
    created = tight.create("Invoices", invoice("100.00"))
    for day in ("2026-07-02", "2026-07-03", "2026-07-04"):
        assert hand_edit(tight, "Invoices", created["InvoiceID"], {"Date": day}).status_code == 200
    match = {"InvoiceID": created["InvoiceID"], "Amount": "10.00", "Date": "2026-07-05", "AccountCode": "090"}
    assert httpx.post(f"{admin(tight)}/bank-feed-match", json=match).status_code == 200
    read = tight.client.get(f"/Invoices/{created['InvoiceID']}")
    assert read.status_code == 200 and read.headers["X-MinLimit-Remaining"] == "0"  # only the two API calls
    assert [(e.method, e.path) for e in tight.server.state.requests.entries(tight.tenant_id)] == [
        ("PUT", "/api.xro/2.0/Invoices"),
        ("GET", f"/api.xro/2.0/Invoices/{created['InvoiceID']}"),
    ]
    assert read.json()["Invoices"][0]["AmountDue"] == 100.0
    assert dt.date.fromisoformat(read.json()["Invoices"][0]["DateString"][:10]) == dt.date(2026, 7, 4)
