"""The emulator's OpenAPI document against Xero's published description: every implemented
operation exists at Xero with the same path and method, its parameters are Xero's, and every field
the emulator reads or returns is a field of Xero's schema with a compatible type. Then real
responses from a running emulator are validated against Xero's own response schemas."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from xero_emulator import EmulatorServer
from xero_emulator.openapi.spec import openapi_document
from xero_emulator.testing import Tenant, credit_note, invoice, new_tenant, payment

from tests.contract.xero_description import xero_description

# Fields every real Xero response envelope carries that the published description leaves out.
UNDESCRIBED_ENVELOPE = {"Id", "Status", "ProviderName", "DateTimeUTC"}
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema:
        seen += 1
        assert seen < 50, "reference cycle"
        node: Any = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    if "allOf" in schema:
        merged: dict[str, Any] = {"properties": {}}
        for part in schema["allOf"]:
            resolved = resolve(document, part)
            merged["properties"].update(resolved.get("properties", {}))
            merged.setdefault("type", resolved.get("type"))
        return merged
    return schema


class ShapeCheck:
    def __init__(self, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
        self.ours, self.theirs = ours, theirs
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def compare(self, mine: dict[str, Any], xero: dict[str, Any], where: str, *, envelope: bool = False) -> None:
        mine, xero = resolve(self.ours, mine), resolve(self.theirs, xero)
        key = (id(mine), id(xero))
        if key in self._seen:
            return
        self._seen.add(key)
        if "oneOf" in mine:
            for branch in mine["oneOf"]:
                self._compare_branch(branch, xero, where)
            return
        mine_type, xero_type = mine.get("type"), xero.get("type")
        if mine_type and xero_type and mine_type != xero_type and {mine_type, xero_type} != {"integer", "number"}:
            self.problems.append(f"{where}: emulator type {mine_type}, Xero type {xero_type}")
            return
        if "enum" in mine and "enum" in xero:
            extra = set(mine["enum"]) - set(xero["enum"])
            if extra:
                self.problems.append(f"{where}: values {sorted(extra)} are not in Xero's enum")
        if "properties" in mine:
            theirs = xero.get("properties", {})
            for name, sub in mine["properties"].items():
                if name not in theirs:
                    if not (envelope and name in UNDESCRIBED_ENVELOPE):
                        self.problems.append(f"{where}.{name} is not a field of Xero's schema")
                    continue
                self.compare(sub, theirs[name], f"{where}.{name}")
        if mine_type == "array" and "items" in mine and "items" in xero:
            self.compare(mine["items"], xero["items"], f"{where}[]")

    def _compare_branch(self, branch: dict[str, Any], xero: dict[str, Any], where: str) -> None:
        """A POST to one item takes the element alone or wrapped; Xero describes the wrapped form."""
        resolved = resolve(self.ours, branch)
        wrapped = any(
            name in resolve(self.theirs, xero).get("properties", {}) for name in resolved.get("properties", {})
        )
        if wrapped:
            self.compare(branch, xero, where)
            return
        for value in resolve(self.theirs, xero).get("properties", {}).values():
            resolved_value = resolve(self.theirs, value)
            if resolved_value.get("type") == "array":
                self.compare(branch, resolved_value["items"], f"{where}(element)")
                return
        self.problems.append(f"{where}: cannot match the single-element body to Xero's")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item, item[method]


def parameter_names(document: dict[str, Any], item: dict[str, Any], operation: dict[str, Any]) -> set[tuple[str, str]]:
    names = set()
    for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
        resolved = resolve(document, parameter)
        names.add((resolved["in"], resolved["name"].lower() if resolved["in"] == "header" else resolved["name"]))
    return names


def test_every_operation_and_parameter_exists_at_xero() -> None:
    ours, theirs = openapi_document(), xero_description()
    problems = []
    for path, method, item, operation in operations(ours):
        xero_item = theirs["paths"].get(path)
        if xero_item is None or method not in xero_item:
            problems.append(f"{method.upper()} {path} is not an operation of Xero's Accounting API")
            continue
        extra = parameter_names(ours, item, operation) - parameter_names(theirs, xero_item, xero_item[method])
        if extra:
            problems.append(f"{method.upper()} {path}: parameters {sorted(extra)} are not Xero's")
    assert not problems, "\n".join(problems)


def test_request_and_response_fields_match_xeros_schemas() -> None:
    ours, theirs = openapi_document(), xero_description()
    check = ShapeCheck(ours, theirs)
    for path, method, _item, operation in operations(ours):
        xero_operation = theirs["paths"][path][method]
        label = f"{method.upper()} {path}"
        if "requestBody" in operation:
            mine = operation["requestBody"]["content"]["application/json"]["schema"]
            xero = resolve(theirs, xero_operation["requestBody"])["content"]["application/json"]["schema"]
            check.compare(mine, xero, f"{label} request")
        for status in ("200", "400"):
            mine = operation["responses"][status]["content"]["application/json"]["schema"]
            xero_response = resolve(theirs, xero_operation["responses"].get(status, {}))
            if "content" not in xero_response:
                continue  # Xero describes no such body (its GETs declare only 200)
            xero = xero_response["content"]["application/json"]["schema"]
            check.compare(mine, xero, f"{label} {status}", envelope=True)
    assert not check.problems, "\n".join(check.problems)


@pytest.fixture(scope="module")
def xero_schema() -> Any:
    return schemathesis.openapi.from_dict(xero_description())


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    server = EmulatorServer().start()
    try:
        t = new_tenant(server)
        with t.client:
            yield t
    finally:
        server.stop()


def test_live_responses_validate_against_xeros_response_schemas(tenant: Tenant, xero_schema: Any) -> None:
    """Real emulator answers, including a ValidationException, checked with Xero's own schemas."""
    calls: list[tuple[str, str, Any]] = []

    def record(method: str, path: str, response: Any) -> Any:
        assert response.status_code in (200, 400), response.text
        calls.append((method, path, response))
        return response.json()

    inv = record("PUT", "/Invoices", tenant.put("Invoices", invoice("100.00")))["Invoices"][0]
    record("PUT", "/Invoices", tenant.put("Invoices", invoice("1.00", Contact=None)))
    record("PUT", "/Invoices", tenant.put("Invoices", invoice("1.00", Contact=None), summarizeErrors="false"))
    record("PUT", "/Payments", tenant.put("Payments", payment(inv["InvoiceID"], "10.00")))
    note = record("PUT", "/CreditNotes", tenant.put("CreditNotes", credit_note("10.00")))["CreditNotes"][0]
    allocation = {"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": Decimal("11.00"), "Date": "2026-07-03"}
    record(
        "PUT",
        "/CreditNotes/{CreditNoteID}/Allocations",
        tenant.put(f"CreditNotes/{note['CreditNoteID']}/Allocations", allocation),
    )
    receipt = {
        "Type": "RECEIVE-OVERPAYMENT",
        "Contact": {"Name": "Jane Citizen"},
        "BankAccount": {"Code": "090"},
        "Date": "2026-07-02",
        "LineItems": [{"Description": "Overpaid", "LineAmount": Decimal("5.00")}],
    }
    record("PUT", "/BankTransactions", tenant.put("BankTransactions", receipt))
    transfer = {"FromBankAccount": {"Code": "091"}, "ToBankAccount": {"Code": "090"}, "Amount": Decimal("5.00")}
    record("PUT", "/BankTransfers", tenant.put("BankTransfers", transfer))
    journal = {
        "Narration": "Trust journal",
        "Status": "POSTED",
        "JournalLines": [
            {"LineAmount": Decimal("5.00"), "AccountCode": "850"},
            {"LineAmount": Decimal("-5.00"), "AccountCode": "855"},
        ],
    }
    record("PUT", "/ManualJournals", tenant.put("ManualJournals", journal))
    record("PUT", "/Contacts", tenant.put("Contacts", {"Name": "Bob Client", "ContactNumber": "P-1"}))
    category = record("PUT", "/TrackingCategories", tenant.send("PUT", "/TrackingCategories", {"Name": "Matter"}))
    category_id = category["TrackingCategories"][0]["TrackingCategoryID"]
    options_path = "/TrackingCategories/{TrackingCategoryID}/Options"
    option = record(
        "PUT", options_path, tenant.send("PUT", f"/TrackingCategories/{category_id}/Options", {"Name": "M-1"})
    )
    option_id = option["Options"][0]["TrackingOptionID"]
    tracked = invoice("100.00")
    tracked["LineItems"][0]["Tracking"] = [{"TrackingCategoryID": category_id, "TrackingOptionID": option_id}]
    record("PUT", "/Invoices", tenant.put("Invoices", tracked))
    record(
        "POST",
        "/TrackingCategories/{TrackingCategoryID}/Options/{TrackingOptionID}",
        tenant.send("POST", f"/TrackingCategories/{category_id}/Options/{option_id}", {"Name": "M-1 renamed"}),
    )
    record("GET", "/TrackingCategories/{TrackingCategoryID}", tenant.client.get(f"/TrackingCategories/{category_id}"))
    report_params = {"fromDate": "2026-07-01", "toDate": "2026-07-31", "trackingCategoryID": category_id}
    record("GET", "/Reports/ProfitAndLoss", tenant.client.get("/Reports/ProfitAndLoss", params=report_params))
    get = tenant.client.get
    for path in (
        "/Invoices",
        "/CreditNotes",
        "/Payments",
        "/BankTransactions",
        "/BankTransfers",
        "/ManualJournals",
        "/Overpayments",
        "/Contacts",
        "/Accounts",
        "/TaxRates",
        "/Organisation",
        "/TrackingCategories",
    ):
        record("GET", path, get(path))
    record("GET", "/Invoices/{InvoiceID}", get(f"/Invoices/{inv['InvoiceID']}"))
    problems = []
    for method, path, response in calls:
        try:
            xero_schema[path][method].validate_response(response)
        except Exception as exc:
            problems.append(f"{method} {path} [{response.status_code}]: {exc}")
    assert not problems, "\n\n".join(problems)


def test_a_missing_description_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("XEROLINK_XERO_OPENAPI", str(tmp_path / "absent.yaml"))
    with pytest.raises(pytest.fail.Exception, match=r"Xero's OpenAPI description was not found at .*absent\.yaml"):
        xero_description()
