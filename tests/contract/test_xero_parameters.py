"""The undeclared-parameter check itself (tests/contract/xero_parameters.py), against Xero's
description: it must flag what Xero does not declare and accept what it does, through path
templates, the /api.xro/2.0 prefix and any way of passing the parameters; and it must read the
emulator's record of a real run over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.testing import credit_note, invoice, new_tenant

from tests.contract.xero_parameters import (
    UnknownOperation,
    declared_parameters,
    undeclared_parameters,
    undeclared_requests,
)


def test_summarize_errors_is_not_declared_on_put_bank_transfers() -> None:
    assert undeclared_parameters("PUT", "/BankTransfers", {"summarizeErrors": "false"}) == ["summarizeErrors"]


def test_summarize_errors_is_declared_on_put_invoices() -> None:
    assert undeclared_parameters("PUT", "/api.xro/2.0/Invoices", [("summarizeErrors", "false")]) == []
    assert undeclared_parameters("post", "/invoices", ["SummarizeErrors", "unitdp"]) == []


def test_path_templates_match_item_and_allocation_paths() -> None:
    path = "/api.xro/2.0/CreditNotes/6b5c3f6e-0c84-4a59-9c4b-9a7f3c2d1e10/Allocations"
    assert undeclared_parameters("PUT", path, {"summarizeErrors": "false"}) == []
    assert undeclared_parameters("PUT", path, {"summarizeErrors": "false", "unitdp": "4"}) == ["unitdp"]
    assert "summarizeerrors" not in declared_parameters("POST", "/Payments")


def test_list_parameters_and_unknown_names() -> None:
    params = [("where", 'Type=="ACCREC"'), ("page", "2"), ("foo", "1"), ("foo", "2"), ("Statuses", "PAID")]
    assert undeclared_parameters("GET", "/Invoices", params) == ["foo"]


def test_an_operation_xero_does_not_offer_is_an_error() -> None:
    with pytest.raises(UnknownOperation):
        undeclared_parameters("DELETE", "/Invoices", {})
    with pytest.raises(UnknownOperation):
        undeclared_parameters("GET", "/NoSuchResource", {})


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(EmulatorConfig(minute_seconds=1.0, minute_limit=1000)).start()
    try:
        yield server
    finally:
        server.stop()


def test_requests_recorded_by_the_emulator_are_checked(emulator: EmulatorServer) -> None:
    tenant = new_tenant(emulator)
    with tenant.client:
        created = tenant.create("CreditNotes", credit_note("10.00"))
        target = tenant.create("Invoices", invoice("10.00"))
        tenant.put(
            f"CreditNotes/{created['CreditNoteID']}/Allocations",
            {"Invoice": {"InvoiceID": target["InvoiceID"]}, "Amount": 5, "Date": "2026-07-03"},
            summarizeErrors="false",
        )
        tenant.put(
            "BankTransfers",
            {"FromBankAccount": {"Code": "090"}, "ToBankAccount": {"Code": "094"}, "Amount": 5, "Date": "2026-07-01"},
            summarizeErrors="false",
        )
    recorded = emulator.state.requests.entries(tenant.tenant_id)
    assert len(recorded) == 4
    assert undeclared_requests(recorded) == ["PUT /api.xro/2.0/BankTransfers: summarizeErrors"]
