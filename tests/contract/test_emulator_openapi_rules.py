"""The emulator applies the field rules Xero's OpenAPI description states for what xerolink writes,
checked over real HTTP against a running emulator. The rules are derived from the description
(tests/contract/xero_rules.py), not listed here:

- readOnly: a value a client sends is ignored; the answer and a later GET show the emulator's own.
- maxLength: one character more is a ValidationException naming the field; the limit itself is kept.
  Checked for the fields the emulator reads (its own request schema, which covers xerolink's).
- "<TYPE> only": the field is kept on those Types and dropped on the others, so the answer does not
  carry it and a where-filter on it finds nothing (Reference on bills: XeroAPI/xero-mcp-server#121,
  XeroAPI/Xero-NetStandard#249).

The test prints how many rules it derived and checked, and fails below a floor so that a broken
derivation cannot pass by checking nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.testing import Tenant, credit_note, invoice, line, new_tenant, payment

from tests.contract.xero_rules import Rule, derive_rules, emulator_reads, emulator_types

CHECKED_FLOOR = 40
BOGUS_ID = "0e2b7f5c-1111-4c2e-9a55-5e1f00d0b0b0"
ID_FIELDS = {
    "Invoices": "InvoiceID",
    "CreditNotes": "CreditNoteID",
    "Payments": "PaymentID",
    "BankTransactions": "BankTransactionID",
    "BankTransfers": "BankTransferID",
    "ManualJournals": "ManualJournalID",
    "Contacts": "ContactID",
}


@pytest.fixture(scope="module")
def tenant() -> Iterator[Tenant]:
    server = EmulatorServer(EmulatorConfig(minute_seconds=1.0, minute_limit=100000, day_limit=1000000)).start()
    try:
        t = new_tenant(server)
        with t.client:
            yield t
    finally:
        server.stop()


def _unique(length: int) -> str:
    return (uuid.uuid4().hex + "x" * length)[:length]


def _bank_transaction(doc_type: str) -> dict[str, Any]:
    element: dict[str, Any] = {
        "Type": doc_type,
        "Contact": {"Name": "Jane Citizen"},
        "BankAccount": {"Code": "090"},
        "Date": "2026-07-01",
    }
    if doc_type.endswith("OVERPAYMENT"):
        return {**element, "LineAmountTypes": "NoTax", "LineItems": [{"Description": "Over", "LineAmount": 25}]}
    account, tax = ("200", "OUTPUT") if doc_type == "RECEIVE" else ("420", "INPUT")
    return {**element, "LineAmountTypes": "Exclusive", "LineItems": [line("100.00", account, tax)]}


def _element(tenant: Tenant, resource: str, doc_type: str | None) -> tuple[str, dict[str, Any]]:
    """(PUT path, a valid element of that Type) for each resource xerolink writes."""
    if resource == "Invoices":
        return resource, invoice("100.00", kind=doc_type or "ACCREC")
    if resource == "CreditNotes":
        return resource, credit_note("100.00", kind=doc_type or "ACCRECCREDIT")
    if resource == "Payments":
        target = tenant.create("Invoices", invoice("100.00"))
        return resource, payment(target["InvoiceID"], "10.00")
    if resource == "Allocations":
        source = tenant.create("CreditNotes", credit_note("20.00"))
        target = tenant.create("Invoices", invoice("100.00"))
        path = f"CreditNotes/{source['CreditNoteID']}/Allocations"
        return path, {"Invoice": {"InvoiceID": target["InvoiceID"]}, "Amount": Decimal("10.00"), "Date": "2026-07-02"}
    if resource == "BankTransactions":
        return resource, _bank_transaction(doc_type or "RECEIVE")
    if resource == "BankTransfers":
        return resource, {
            "FromBankAccount": {"Code": "090"},
            "ToBankAccount": {"Code": "094"},
            "Amount": Decimal("50.00"),
            "Date": "2026-07-01",
        }
    if resource == "ManualJournals":
        lines = [
            {"LineAmount": Decimal("75.00"), "AccountCode": "850"},
            {"LineAmount": Decimal("-75.00"), "AccountCode": "880"},
        ]
        return resource, {"Narration": f"Rule {_unique(8)}", "Date": "2026-07-01", "JournalLines": lines}
    assert resource == "Contacts"
    return resource, {"Name": f"Rule contact {_unique(12)}"}


def _json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _put(tenant: Tenant, path: str, element: dict[str, Any]) -> tuple[int, Any]:
    response = tenant.put(path, element)
    return response.status_code, _json(response.text)


def _created(tenant: Tenant, path: str, element: dict[str, Any]) -> dict[str, Any]:
    status, body = _put(tenant, path, element)
    assert status == 200, body
    created: dict[str, Any] = body[path.rsplit("/", maxsplit=1)[-1]][0]
    return created


def _stored(tenant: Tenant, resource: str, answer: dict[str, Any]) -> dict[str, Any] | None:
    """The object as a later GET returns it (allocations have no GET of their own)."""
    if resource not in ID_FIELDS:
        return None
    response = tenant.client.get(f"/{resource}/{answer[ID_FIELDS[resource]]}")
    assert response.status_code == 200, response.text
    stored: dict[str, Any] = _json(response.text)[resource][0]
    return stored


def _same(answered: Any, sent: Any) -> bool:
    numbers = (int, Decimal)
    if isinstance(answered, numbers) and isinstance(sent, numbers) and not isinstance(answered, bool):
        return Decimal(answered) == Decimal(sent)
    return bool(answered == sent)


def _bogus(schema: dict[str, Any]) -> Any:
    """A value the emulator would never compute for a readOnly field of this schema."""
    if schema.get("enum"):
        return schema["enum"][-1]
    kind = schema.get("type")
    if kind == "boolean":
        return not schema.get("default", False)
    if kind == "number":
        return Decimal("98765.43")
    if kind == "array":
        return [{"Bogus": "readonly"}]
    if kind == "string" and schema.get("format") == "uuid":
        return BOGUS_ID
    if kind == "string" and (schema.get("x-is-msdate") or schema.get("x-is-msdate-time")):
        return "/Date(0+0000)/"
    if kind == "string":
        return "readonly-bogus"
    return {"Bogus": "readonly"}


def _messages(body: Any) -> list[str]:
    return [error["Message"] for element in body.get("Elements", []) for error in element.get("ValidationErrors", [])]


def _where_count(tenant: Tenant, resource: str, field: str, value: str) -> int:
    response = tenant.client.get(f"/{resource}", params={"where": f'{field}=="{value}"'})
    assert response.status_code == 200, response.text
    return len(response.json()[resource])


def check_read_only(tenant: Tenant, rule: Rule) -> str | None:
    """None when checked; otherwise why the rule was not checked."""
    if len(rule.path) > 1:
        return "nested readOnly field"
    field = rule.path[0]
    types = emulator_types(rule.resource)
    path, element = _element(tenant, rule.resource, types[0] if types else None)
    sent = _bogus(rule.schema)
    element[field] = sent
    answer = _created(tenant, path, element)
    assert not _same(answer.get(field), sent), f"{rule.name}: the answer kept the client's {field}={sent!r}"
    stored = _stored(tenant, rule.resource, answer)
    if stored is not None:
        assert not _same(stored.get(field), sent), f"{rule.name}: a GET shows the client's {field}={sent!r}"
    return None


def check_max_length(tenant: Tenant, rule: Rule) -> str | None:
    if not emulator_reads(rule.resource, rule.path):
        return "field not read by the emulator (xerolink does not send it)"
    if len(rule.path) > 1:
        return "nested length"
    field = rule.path[0]
    path, element = _element(tenant, rule.resource, "ACCREC" if rule.resource == "Invoices" else None)
    status, body = _put(tenant, path, {**element, field: _unique(rule.max_length + 1)})
    assert status == 400, f"{rule.name}: {rule.max_length + 1} characters were accepted"
    assert body["Type"] == "ValidationException", body
    assert any(field in message for message in _messages(body)), f"{rule.name}: {_messages(body)}"
    at_limit = _unique(rule.max_length)
    answer = _created(tenant, path, {**element, field: at_limit})
    assert answer[field] == at_limit, f"{rule.name}: {rule.max_length} characters were not kept"
    return None


def check_type_only(tenant: Tenant, rule: Rule) -> str | None:
    types = emulator_types(rule.resource)
    if not types:
        return "resource without Types"
    reads = emulator_reads(rule.resource, rule.path)
    for doc_type in types:
        kept = doc_type in rule.types
        path, element = _element(tenant, rule.resource, doc_type)
        if len(rule.path) == 1:
            field = rule.path[0]
            value = f"rule-{_unique(16)}"
            answer = _created(tenant, path, {**element, field: value})
            stored = _stored(tenant, rule.resource, answer)
            assert stored is not None
            if kept and reads:
                assert answer.get(field) == value == stored.get(field), f"{rule.name}: {doc_type} lost {field}"
                assert _where_count(tenant, rule.resource, field, value) == 1, f"{rule.name}: {doc_type} not found"
            elif not kept:
                for seen in (answer, stored):
                    assert seen.get(field) in (None, ""), f"{rule.name}: {doc_type} kept {field}={seen.get(field)!r}"
                assert _where_count(tenant, rule.resource, field, value) == 0, (
                    f"{rule.name}: {doc_type} found by {field}"
                )
        else:
            holder, field = rule.path
            sent = Decimal("10")
            element[holder] = [{**item, field: sent} for item in element[holder]]
            answer = _created(tenant, path, element)
            for item in answer[holder]:
                if kept and reads:
                    assert _same(item.get(field), sent), f"{rule.name}: {doc_type} lost {field}"
                elif not kept:
                    assert field not in item, f"{rule.name}: {doc_type} kept {field}"
                    assert _same(item["LineAmount"], Decimal("100.00")), f"{rule.name}: {doc_type} applied {field}"
    return None


CHECKS = {"readOnly": check_read_only, "maxLength": check_max_length, "typeOnly": check_type_only}


def test_the_description_yields_the_rules_xero_is_known_for() -> None:
    names = {rule.name for rule in derive_rules()}
    assert "Invoices.Reference typeOnly=['ACCREC']" in names
    assert "CreditNotes.Reference typeOnly=['ACCRECCREDIT']" in names
    assert "BankTransactions.Reference typeOnly=['RECEIVE', 'SPEND']" in names
    assert "Invoices.InvoiceNumber maxLength=255" in names
    assert "Contacts.ContactNumber maxLength=50" in names
    assert "Invoices.Total readOnly" in names


def test_emulator_applies_every_rule_xero_describes(tenant: Tenant) -> None:
    rules = derive_rules()
    checked: list[str] = []
    skipped: list[str] = []
    failures: list[str] = []
    for rule in rules:
        try:
            reason = CHECKS[rule.kind](tenant, rule)
        except AssertionError as failure:
            failures.append(str(failure).splitlines()[0])
            continue
        if reason is None:
            checked.append(rule.name)
        else:
            skipped.append(f"{rule.name} ({reason})")
    print(f"OpenAPI rules: {len(rules)} derived, {len(checked)} checked, {len(skipped)} not applicable")
    for name in skipped:
        print(f"  not checked: {name}")
    assert not failures, "\n".join(failures)
    assert len(checked) >= CHECKED_FLOOR, f"only {len(checked)} rules checked; the derivation may be broken"
