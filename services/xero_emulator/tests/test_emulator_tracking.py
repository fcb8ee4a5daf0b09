"""Tracking categories and options: the CRUD endpoints, Xero's documented limits, and tracking on
the lines of invoices, credit notes, bank transactions and manual journals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from xero_emulator.testing import Tenant, credit_note, invoice, line


def errors_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["Type"] == "ValidationException", body
    return [e["Message"] for element in body["Elements"] for e in element["ValidationErrors"]]


def new_category(tenant: Tenant, name: str = "Matter", *options: str) -> dict[str, Any]:
    response = tenant.send("PUT", "/TrackingCategories", {"Name": name})
    assert response.status_code == 200, response.text
    category: dict[str, Any] = response.json()["TrackingCategories"][0]
    if options:
        added = tenant.send(
            "PUT",
            f"/TrackingCategories/{category['TrackingCategoryID']}/Options",
            {"Options": [{"Name": o} for o in options]},
        )
        assert added.status_code == 200, added.text
        category["Options"] = added.json()["Options"]
    return category


def option_id(category: dict[str, Any], name: str) -> str:
    return str(next(o["TrackingOptionID"] for o in category["Options"] if o["Name"] == name))


def listed(tenant: Tenant, **params: str) -> list[dict[str, Any]]:
    response = tenant.client.get("/TrackingCategories", params=params)
    assert response.status_code == 200, response.text
    categories: list[dict[str, Any]] = response.json()["TrackingCategories"]
    return categories


# -- categories ------------------------------------------------------------------------------------


def test_create_get_and_list_a_category(tenant: Tenant) -> None:
    created = new_category(tenant, "Matter")
    assert created["Name"] == "Matter" and created["Status"] == "ACTIVE" and created["Options"] == []
    got = tenant.client.get(f"/TrackingCategories/{created['TrackingCategoryID']}")
    assert got.status_code == 200
    assert got.json()["TrackingCategories"][0]["TrackingCategoryID"] == created["TrackingCategoryID"]
    assert [c["Name"] for c in listed(tenant)] == ["Matter"]


def test_two_active_and_four_in_total(tenant: Tenant) -> None:
    first = new_category(tenant, "Matter")
    office = new_category(tenant, "Office")
    refused = tenant.send("PUT", "/TrackingCategories", {"Name": "Partner"})
    assert any("two ACTIVE tracking categories" in m for m in errors_of(refused))
    archived = tenant.send("POST", f"/TrackingCategories/{first['TrackingCategoryID']}", {"Status": "ARCHIVED"})
    assert archived.json()["TrackingCategories"][0]["Status"] == "ARCHIVED"
    third = new_category(tenant, "Partner")
    tenant.send("POST", f"/TrackingCategories/{third['TrackingCategoryID']}", {"Status": "ARCHIVED"})
    new_category(tenant, "Team")
    assert len(listed(tenant)) == 2
    assert len(listed(tenant, includeArchived="true")) == 4
    # Four in total: a fifth is refused even with only one active.
    tenant.send("POST", f"/TrackingCategories/{office['TrackingCategoryID']}", {"Status": "ARCHIVED"})
    assert any(
        "four tracking categories" in m for m in errors_of(tenant.send("PUT", "/TrackingCategories", {"Name": "X"}))
    )
    # Re-activating two archived ones would make three active.
    tenant.send("POST", f"/TrackingCategories/{office['TrackingCategoryID']}", {"Status": "ACTIVE"})
    again = tenant.send("POST", f"/TrackingCategories/{first['TrackingCategoryID']}", {"Status": "ACTIVE"})
    assert any("two ACTIVE tracking categories" in m for m in errors_of(again))


def test_category_names_are_unique_and_at_most_100_characters(tenant: Tenant) -> None:
    new_category(tenant, "Matter")
    assert errors_of(tenant.send("PUT", "/TrackingCategories", {"Name": "MATTER"}))
    assert any("100" in m for m in errors_of(tenant.send("PUT", "/TrackingCategories", {"Name": "x" * 101})))
    assert errors_of(tenant.send("PUT", "/TrackingCategories", {"Name": "  "}))
    assert new_category(tenant, "y" * 100)["Name"] == "y" * 100


def test_rename_and_delete_a_category(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter", "M-1")
    path = f"/TrackingCategories/{category['TrackingCategoryID']}"
    renamed = tenant.send("POST", path, {"Name": "Matters"})
    assert renamed.json()["TrackingCategories"][0]["Name"] == "Matters"
    deleted = tenant.client.delete(path)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["TrackingCategories"][0]["Status"] == "DELETED"
    assert listed(tenant, includeArchived="true") == []
    # A deleted category no longer counts towards the limits.
    new_category(tenant, "A")
    new_category(tenant, "B")


def test_where_filters_on_status_and_name(tenant: Tenant) -> None:
    new_category(tenant, "Matter")
    office = new_category(tenant, "Office")
    tenant.send("POST", f"/TrackingCategories/{office['TrackingCategoryID']}", {"Status": "ARCHIVED"})
    assert [c["Name"] for c in listed(tenant, where='Name=="Matter"')] == ["Matter"]
    assert [c["Name"] for c in listed(tenant, where='Status=="ARCHIVED"', includeArchived="true")] == ["Office"]
    assert listed(tenant, where='Status=="ARCHIVED"') == []


def test_idempotency_key_replays_a_create(tenant: Tenant) -> None:
    headers = {"Idempotency-Key": "create-matter-1"}
    first = tenant.send("PUT", "/TrackingCategories", {"Name": "Matter"}, headers=headers)
    second = tenant.send("PUT", "/TrackingCategories", {"Name": "Matter"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(listed(tenant)) == 1


def test_unknown_category_is_404(tenant: Tenant) -> None:
    response = tenant.client.get("/TrackingCategories/0e2b7f5c-1111-4c2e-9a55-5e1f00d0b0b0")
    assert response.status_code == 404


# -- options ---------------------------------------------------------------------------------------


def test_create_one_option_and_several(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter")
    path = f"/TrackingCategories/{category['TrackingCategoryID']}/Options"
    one = tenant.send("PUT", path, {"Name": "M-1"})
    assert one.status_code == 200, one.text
    assert [o["Name"] for o in one.json()["Options"]] == ["M-1"]
    assert one.json()["Options"][0]["Status"] == "ACTIVE"
    several = tenant.send("PUT", path, {"Options": [{"Name": "M-2"}, {"Name": "M-3"}]})
    assert [o["Name"] for o in several.json()["Options"]] == ["M-2", "M-3"]
    assert [o["Name"] for o in listed(tenant)[0]["Options"]] == ["M-1", "M-2", "M-3"]


def test_option_names_are_unique_within_a_category(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter", "M-1")
    path = f"/TrackingCategories/{category['TrackingCategoryID']}/Options"
    assert errors_of(tenant.send("PUT", path, {"Name": "m-1"})) == [
        "For each specified tracking option the name must be unique."
    ]
    assert any("100" in m for m in errors_of(tenant.send("PUT", path, {"Name": "o" * 101})))
    # Nothing of a refused batch is created.
    assert errors_of(tenant.send("PUT", path, {"Options": [{"Name": "M-2"}, {"Name": "M-2"}]}))
    assert [o["Name"] for o in listed(tenant)[0]["Options"]] == ["M-1"]


def test_at_most_100_active_options(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter", *[f"M-{n}" for n in range(100)])
    path = f"/TrackingCategories/{category['TrackingCategoryID']}/Options"
    assert any("100 ACTIVE" in m for m in errors_of(tenant.send("PUT", path, {"Name": "M-100"})))
    # An archived option frees a place.
    first = option_id(category, "M-0")
    archived = tenant.send("POST", f"{path}/{first}", {"Status": "ARCHIVED"})
    assert archived.json()["Options"][0]["Status"] == "ARCHIVED"
    assert tenant.send("PUT", path, {"Name": "M-100"}).status_code == 200
    back = tenant.send("POST", f"{path}/{first}", {"Status": "ACTIVE"})
    assert any("100 ACTIVE" in m for m in errors_of(back))


def test_archive_rename_reactivate_and_delete_an_option(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter", "M-1", "M-2")
    path = f"/TrackingCategories/{category['TrackingCategoryID']}/Options/{option_id(category, 'M-1')}"
    tenant.send("POST", path, {"Status": "ARCHIVED"})
    assert [o["Name"] for o in listed(tenant)[0]["Options"]] == ["M-2"]
    archived = listed(tenant, includeArchived="true")[0]["Options"]
    assert {o["Name"]: o["Status"] for o in archived} == {"M-1": "ARCHIVED", "M-2": "ACTIVE"}
    renamed = tenant.send("POST", path, {"Name": "M-1 (closed)", "Status": "ACTIVE"})
    assert renamed.json()["Options"][0] == {
        "TrackingOptionID": option_id(category, "M-1"),
        "Name": "M-1 (closed)",
        "Status": "ACTIVE",
    }
    deleted = tenant.client.delete(path)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["Options"][0]["Status"] == "DELETED"
    assert [o["Name"] for o in listed(tenant, includeArchived="true")[0]["Options"]] == ["M-2"]


# -- tracking on lines -----------------------------------------------------------------------------


def tracked(
    amount: str, category: dict[str, Any], option: str, account: str = "200", tax: str = "OUTPUT"
) -> dict[str, Any]:
    return line(
        amount,
        account,
        tax,
        Tracking=[
            {"TrackingCategoryID": category["TrackingCategoryID"], "TrackingOptionID": option_id(category, option)}
        ],
    )


def test_invoice_lines_carry_tracking_by_ids(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter", "M-1")
    created = tenant.create("Invoices", invoice(LineItems=[tracked("100.00", category, "M-1")]))
    expected = [
        {
            "Name": "Matter",
            "Option": "M-1",
            "TrackingCategoryID": category["TrackingCategoryID"],
            "TrackingOptionID": option_id(category, "M-1"),
        }
    ]
    assert created["LineItems"][0]["Tracking"] == expected
    fetched = tenant.client.get(f"/Invoices/{created['InvoiceID']}").json()["Invoices"][0]
    assert fetched["LineItems"][0]["Tracking"] == expected


def test_credit_note_lines_carry_tracking_by_names(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter", "M-1")
    element = credit_note(LineItems=[line("40.00", Tracking=[{"Name": "matter", "Option": "m-1"}])])
    created = tenant.create("CreditNotes", element)
    assert created["LineItems"][0]["Tracking"][0]["TrackingOptionID"] == option_id(category, "M-1")
    assert created["LineItems"][0]["Tracking"][0]["Name"] == "Matter"


def test_bank_transaction_and_manual_journal_lines_carry_tracking(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter", "M-1")
    tx = tenant.create(
        "BankTransactions",
        {
            "Type": "SPEND",
            "Contact": {"Name": "Supplier"},
            "BankAccount": {"Code": "090"},
            "Date": "2026-07-03",
            "LineAmountTypes": "Exclusive",
            "LineItems": [tracked("50.00", category, "M-1", "420", "INPUT")],
        },
    )
    assert tx["LineItems"][0]["Tracking"][0]["Option"] == "M-1"
    journal = tenant.create(
        "ManualJournals",
        {
            "Narration": "Reallocate",
            "Date": "2026-07-04",
            "Status": "POSTED",
            "JournalLines": [
                {
                    "LineAmount": Decimal("30.00"),
                    "AccountCode": "420",
                    "Tracking": [{"Name": "Matter", "Option": "M-1"}],
                },
                {"LineAmount": Decimal("-30.00"), "AccountCode": "489"},
            ],
        },
    )
    assert journal["JournalLines"][0]["Tracking"][0]["Option"] == "M-1"
    assert journal["JournalLines"][1]["Tracking"] == []


def test_line_tracking_is_validated(tenant: Tenant) -> None:
    matter = new_category(tenant, "Matter", "M-1", "M-2")
    office = new_category(tenant, "Office", "Sydney")
    m1 = {"TrackingCategoryID": matter["TrackingCategoryID"], "TrackingOptionID": option_id(matter, "M-1")}
    m2 = {"TrackingCategoryID": matter["TrackingCategoryID"], "TrackingOptionID": option_id(matter, "M-2")}
    sydney = {"Name": "Office", "Option": "Sydney"}
    cases = [
        ([{"Name": "Partner", "Option": "X"}], "no ACTIVE tracking category"),
        ([{"Name": "Matter", "Option": "M-9"}], "no ACTIVE tracking option"),
        (
            [{"TrackingCategoryID": matter["TrackingCategoryID"], "TrackingOptionID": option_id(office, "Sydney")}],
            "not",
        ),
        ([m1, m2], "one option"),
        ([m1, sydney, sydney], "maximum of 2"),
    ]
    for tracking, fragment in cases:
        messages = errors_of(tenant.put("Invoices", invoice(LineItems=[line("10.00", Tracking=tracking)])))
        assert any(fragment in m for m in messages), (tracking, messages)
    tenant.send(
        "POST",
        f"/TrackingCategories/{matter['TrackingCategoryID']}/Options/{option_id(matter, 'M-2')}",
        {"Status": "ARCHIVED"},
    )
    messages = errors_of(tenant.put("Invoices", invoice(LineItems=[line("10.00", Tracking=[m2])])))
    assert any("ARCHIVED" in m for m in messages), messages
    both = tenant.create("Invoices", invoice(LineItems=[line("10.00", Tracking=[m1, sydney])]))
    assert [t["Name"] for t in both["LineItems"][0]["Tracking"]] == ["Matter", "Office"]


def test_a_used_option_cannot_be_deleted_but_can_be_archived(tenant: Tenant) -> None:
    category = new_category(tenant, "Matter", "M-1")
    tenant.create("Invoices", invoice(LineItems=[tracked("100.00", category, "M-1")]))
    path = f"/TrackingCategories/{category['TrackingCategoryID']}"
    option_path = f"{path}/Options/{option_id(category, 'M-1')}"
    assert errors_of(tenant.client.delete(option_path))
    assert errors_of(tenant.client.delete(path))
    assert tenant.send("POST", option_path, {"Status": "ARCHIVED"}).status_code == 200
