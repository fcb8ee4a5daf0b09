"""Batches as Xero answers them: summarizeErrors=false reports each element; without it one bad
element turns the call into a 400 while the good ones are still created."""

from __future__ import annotations

from xero_emulator.testing import Tenant, invoice, line


def bad_invoice() -> dict[str, object]:
    element = invoice("5.00", InvoiceNumber="BAD-1")
    element["LineItems"] = [line("5.00", "999")]
    return element


def test_summarize_errors_false_reports_each_element(tenant: Tenant) -> None:
    response = tenant.put(
        "Invoices",
        invoice("10.00", InvoiceNumber="A-1"),
        bad_invoice(),
        invoice("20.00", InvoiceNumber="A-3"),
        summarizeErrors="false",
    )
    assert response.status_code == 200, response.text
    first, second, third = response.json()["Invoices"]
    assert (first["StatusAttributeString"], third["StatusAttributeString"]) == ("OK", "OK")
    assert second["StatusAttributeString"] == "ERROR"
    assert second["HasErrors"] is True
    assert second["InvoiceNumber"] == "BAD-1"
    assert second["ValidationErrors"] == [{"Message": "Account code '999' is not a valid code for this document."}]
    stored = tenant.server.state.organisation(tenant.tenant_id).objects["Invoices"]
    assert set(stored) == {first["InvoiceID"], third["InvoiceID"]}


def test_summarized_batch_is_a_400_but_valid_elements_are_created(tenant: Tenant) -> None:
    response = tenant.put("Invoices", invoice("10.00", InvoiceNumber="S-1"), bad_invoice())
    assert response.status_code == 400
    body = response.json()
    assert (body["ErrorNumber"], body["Type"], body["Message"]) == (
        10,
        "ValidationException",
        "A validation exception occurred",
    )
    assert [e.get("InvoiceNumber") for e in body["Elements"]] == ["BAD-1"]
    listed = tenant.client.get("/Invoices").json()["Invoices"]
    assert [i["InvoiceNumber"] for i in listed] == ["S-1"]


def test_one_element_lists_all_its_errors(tenant: Tenant) -> None:
    element = {"Type": "ACCREC", "LineItems": [line("1.00", "999"), line("1.00", "200", "BOGUS")]}
    response = tenant.put("Invoices", element, summarizeErrors="false")
    messages = [e["Message"] for e in response.json()["Invoices"][0]["ValidationErrors"]]
    assert messages == [
        "A Contact must be specified for this type of transaction",
        "Account code '999' is not a valid code for this document.",
        "The TaxType code 'BOGUS' does not exist or cannot be used for this type of transaction.",
    ]


def test_unreadable_bodies_are_post_data_invalid(tenant: Tenant) -> None:
    for content in (b"{not json", b"[]", b'{"Invoices": []}', b""):
        response = tenant.client.put("/Invoices", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, content
        assert response.json()["Type"] == "PostDataInvalidException"
