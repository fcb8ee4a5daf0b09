"""If-Modified-Since on the lists xerolink reads: "Only records created or modified since this
timestamp will be returned" (Xero's OpenAPI), compared with each object's UpdatedDateUTC (a
BankTransfer's CreatedDateUTC), and every change gives the object a fresh UpdatedDateUTC."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

from xero_emulator.testing import Tenant, credit_note, invoice, payment


def stamp(obj: dict[str, Any], field: str = "UpdatedDateUTC") -> dt.datetime:
    """An object's "/Date(ms+0000)/" timestamp as an aware datetime."""
    millis = int(obj[field][6:].split("+")[0].split(")")[0])
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)


def since(tenant: Tenant, resource: str, header: str, **params: str) -> list[dict[str, Any]]:
    response = tenant.client.get(f"/{resource}", headers={"If-Modified-Since": header}, params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()[resource]
    return found


def ids(items: list[dict[str, Any]], field: str) -> set[str]:
    return {str(i[field]) for i in items}


def after(moment: dt.datetime) -> str:
    """One millisecond after `moment`, in ISO 8601 UTC."""
    return (moment + dt.timedelta(milliseconds=1)).isoformat()


def settle() -> None:
    """Lets the millisecond clock move on, so the next change is stamped later than the last."""
    time.sleep(0.003)


def test_the_instant_itself_is_included_and_a_millisecond_later_is_not(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice())
    at = stamp(created)
    assert ids(since(tenant, "Invoices", at.isoformat()), "InvoiceID") == {created["InvoiceID"]}
    assert since(tenant, "Invoices", after(at)) == []


def test_the_sdk_form_with_an_offset_and_an_http_date_are_read(tenant: Tenant) -> None:
    created = tenant.create("Invoices", invoice())
    at = stamp(created)
    pacific = dt.timezone(dt.timedelta(hours=-8))
    # Xero's OpenAPI example form, "2020-02-06T12:17:43.202-08:00", as the SDKs send it.
    sdk_form = at.astimezone(pacific).isoformat(timespec="milliseconds")
    assert sdk_form.endswith("-08:00")
    assert ids(since(tenant, "Invoices", sdk_form), "InvoiceID") == {created["InvoiceID"]}
    later = (at + dt.timedelta(milliseconds=1)).astimezone(pacific).isoformat(timespec="milliseconds")
    assert since(tenant, "Invoices", later) == []
    # pyxero's form: an HTTP date, whole seconds, GMT; and a value in double quotes.
    whole_second = at.replace(microsecond=0)
    http_date = whole_second.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert ids(since(tenant, "Invoices", http_date), "InvoiceID") == {created["InvoiceID"]}
    next_second = (whole_second + dt.timedelta(seconds=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert since(tenant, "Invoices", next_second) == []
    assert ids(since(tenant, "Invoices", f'"{at.isoformat()}"'), "InvoiceID") == {created["InvoiceID"]}
    # No offset: UTC.
    assert ids(since(tenant, "Invoices", at.replace(tzinfo=None).isoformat()), "InvoiceID") == {created["InvoiceID"]}


def test_an_unreadable_value_is_a_400_that_names_the_forms(tenant: Tenant) -> None:
    for bad in ("yesterday", "2026-13-01", ""):
        response = tenant.client.get("/Invoices", headers={"If-Modified-Since": bad})
        assert response.status_code == 400, bad
        assert "ISO 8601" in response.json()["Message"] and "HTTP date" in response.json()["Message"]


def test_money_applied_or_removed_gives_the_document_a_fresh_update(tenant: Tenant) -> None:
    bill = tenant.create("Invoices", invoice("100.00"))
    credit = tenant.create("CreditNotes", credit_note("10.00"))
    untouched = tenant.create("Invoices", invoice("5.00"))
    mark = after(max(stamp(bill), stamp(credit), stamp(untouched)))
    settle()
    paid = tenant.create("Payments", payment(bill["InvoiceID"], "50.00"))
    assert ids(since(tenant, "Invoices", mark), "InvoiceID") == {bill["InvoiceID"]}
    assert ids(since(tenant, "Payments", mark), "PaymentID") == {paid["PaymentID"]}
    assert since(tenant, "CreditNotes", mark) == []

    mark = after(stamp(tenant.client.get(f"/Payments/{paid['PaymentID']}").json()["Payments"][0]))
    settle()
    allocation = {"Invoice": {"InvoiceID": bill["InvoiceID"]}, "Amount": Decimal("11.00")}
    allocated = tenant.send("PUT", f"/CreditNotes/{credit['CreditNoteID']}/Allocations", {"Allocations": [allocation]})
    assert allocated.status_code == 200, allocated.text
    assert ids(since(tenant, "Invoices", mark), "InvoiceID") == {bill["InvoiceID"]}
    assert ids(since(tenant, "CreditNotes", mark), "CreditNoteID") == {credit["CreditNoteID"]}

    mark = after(stamp(since(tenant, "CreditNotes", mark)[0]))
    settle()
    allocation_id = allocated.json()["Allocations"][0]["AllocationID"]
    assert tenant.client.delete(f"/CreditNotes/{credit['CreditNoteID']}/Allocations/{allocation_id}").status_code == 200
    assert ids(since(tenant, "Invoices", mark), "InvoiceID") == {bill["InvoiceID"]}
    assert ids(since(tenant, "CreditNotes", mark), "CreditNoteID") == {credit["CreditNoteID"]}

    mark = after(stamp(since(tenant, "CreditNotes", mark)[0]))
    settle()
    assert tenant.post(f"/Payments/{paid['PaymentID']}", {"Status": "DELETED"}).status_code == 200
    assert ids(since(tenant, "Invoices", mark), "InvoiceID") == {bill["InvoiceID"]}
    assert ids(since(tenant, "Payments", mark), "PaymentID") == {paid["PaymentID"]}


def test_hand_edits_and_bank_feed_matches_are_found_by_it(tenant: Tenant) -> None:
    bill = tenant.create("Invoices", invoice("100.00"))
    other = tenant.create("Invoices", invoice("100.00"))
    mark = after(max(stamp(bill), stamp(other)))
    settle()
    tenant.server.hand_edit(tenant.tenant_id, "Invoices", bill["InvoiceID"], {"Status": "VOIDED"})
    match = {"InvoiceID": other["InvoiceID"], "Amount": "10.00", "Date": "2026-07-03", "AccountCode": "090"}
    made = tenant.server.bank_feed_match(tenant.tenant_id, match)
    assert ids(since(tenant, "Invoices", mark), "InvoiceID") == {bill["InvoiceID"], other["InvoiceID"]}
    assert ids(since(tenant, "Payments", mark), "PaymentID") == {made["PaymentID"]}


def test_every_list_xerolink_reads_honours_it(tenant: Tenant) -> None:
    contact = tenant.create("Contacts", {"Name": "Client One"})
    tx = tenant.create(
        "BankTransactions",
        {
            "Type": "RECEIVE",
            "Contact": {"ContactID": contact["ContactID"]},
            "BankAccount": {"Code": "091"},
            "Date": "2026-07-01",
            "LineAmountTypes": "NoTax",
            "LineItems": [{"Description": "Trust", "LineAmount": Decimal("500.00"), "AccountCode": "850"}],
        },
    )
    journal = tenant.create(
        "ManualJournals",
        {
            "Narration": "Reclass",
            "Date": "2026-07-01",
            "JournalLines": [
                {"LineAmount": Decimal("25.00"), "AccountCode": "420"},
                {"LineAmount": Decimal("-25.00"), "AccountCode": "489"},
            ],
        },
    )
    transfer = tenant.create(
        "BankTransfers",
        {"FromBankAccount": {"Code": "090"}, "ToBankAccount": {"Code": "094"}, "Amount": Decimal("5.00")},
    )
    assert "UpdatedDateUTC" not in transfer  # Xero's BankTransfer carries CreatedDateUTC only
    mark = after(max(stamp(contact), stamp(tx), stamp(journal), stamp(transfer, "CreatedDateUTC")))
    settle()
    for resource in ("Contacts", "BankTransactions", "ManualJournals", "BankTransfers", "Invoices", "Payments"):
        assert since(tenant, resource, mark) == [], resource
    tenant.post("/Contacts", {"Contacts": [{"ContactID": contact["ContactID"], "EmailAddress": "one@example.com"}]})
    tenant.post(f"/BankTransactions/{tx['BankTransactionID']}", {"Status": "DELETED"})
    tenant.post(f"/ManualJournals/{journal['ManualJournalID']}", {"Status": "POSTED"})
    later = tenant.create(
        "BankTransfers",
        {"FromBankAccount": {"Code": "090"}, "ToBankAccount": {"Code": "094"}, "Amount": Decimal("6.00")},
    )
    assert ids(since(tenant, "Contacts", mark), "ContactID") == {contact["ContactID"]}
    assert ids(since(tenant, "BankTransactions", mark), "BankTransactionID") == {tx["BankTransactionID"]}
    assert ids(since(tenant, "ManualJournals", mark), "ManualJournalID") == {journal["ManualJournalID"]}
    assert ids(since(tenant, "BankTransfers", mark), "BankTransferID") == {later["BankTransferID"]}


def test_paging_works_with_it(tenant: Tenant) -> None:
    older = tenant.create("Invoices", invoice("1.00"))
    mark = after(stamp(older))
    settle()
    for batch in range(3):
        elements = [invoice("2.00", InvoiceNumber=f"P-{batch}-{n}") for n in range(35)]
        assert tenant.put("Invoices", *elements).status_code == 200
    first = since(tenant, "Invoices", mark, page="1")
    second = since(tenant, "Invoices", mark, page="2")
    assert (len(first), len(second)) == (100, 5)
    assert older["InvoiceID"] not in ids(first + second, "InvoiceID")
    assert len(ids(first + second, "InvoiceID")) == 105
    assert all(i["LineItems"] for i in first + second)  # a paged list comes with lines


def test_order_by_update_lets_a_reader_page_through_changes_in_the_order_they_happened(tenant: Tenant) -> None:
    """Xero's OpenAPI declares `order` ("Order by an any element") on every list xerolink polls:
    with `order=UpdatedDateUTC ASC` an object changed while a reader pages moves to the end of
    the list instead of shifting the objects the reader has not reached."""
    first, second, _ = (tenant.create("Invoices", invoice(InvoiceNumber=f"O-{n}")) for n in range(3))
    settle()
    tenant.post(f"/Invoices/{first['InvoiceID']}", {"Reference": "changed"})
    mark = stamp(second).isoformat()
    ascending = since(tenant, "Invoices", mark, order="UpdatedDateUTC ASC", page="1")
    assert [i["InvoiceNumber"] for i in ascending] == ["O-1", "O-2", "O-0"]
    descending = since(tenant, "Invoices", mark, order="UpdatedDateUTC DESC, InvoiceNumber")
    assert descending[0]["InvoiceNumber"] == "O-0"
    by_number = since(tenant, "Invoices", mark, order="InvoiceNumber desc")
    assert [i["InvoiceNumber"] for i in by_number] == ["O-2", "O-1", "O-0"]
    refused = tenant.client.get("/Invoices", params={"order": "UpdatedDateUTC SIDEWAYS"})
    assert refused.status_code == 400 and "order" in refused.json()["Message"]


def test_invoices_asked_for_in_no_order_come_by_last_update_then_id(tenant: Tenant) -> None:
    """XeroAPI/xero-mcp-server#21 (Xero's own): the default order of a list of invoices is
    "Ascending by Updated date and Id". An invoice edited moves to the end, and the one after it
    in a page that was full moves up onto that page."""
    made = [tenant.create("Invoices", invoice(InvoiceNumber=f"D-{n}")) for n in range(3)]
    settle()
    tenant.post(f"/Invoices/{made[0]['InvoiceID']}", {"Reference": "changed"})
    listed = tenant.client.get("/Invoices")
    assert listed.status_code == 200, listed.text
    numbers = [i["InvoiceNumber"] for i in listed.json()["Invoices"]]
    unchanged = sorted(made[1:], key=lambda i: (stamp(i), i["InvoiceID"]))
    assert numbers == [i["InvoiceNumber"] for i in unchanged] + ["D-0"]
    asked = tenant.client.get("/Invoices", params={"order": "InvoiceNumber ASC"})
    assert [i["InvoiceNumber"] for i in asked.json()["Invoices"]] == ["D-0", "D-1", "D-2"]
