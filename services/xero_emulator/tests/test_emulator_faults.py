"""Fault injection: server errors at a rate, latency, a connection dropped after the write
committed (and how an Idempotency-Key recovers it), and 429 storms."""

from __future__ import annotations

import time

import httpx
import pytest
from xero_emulator import FaultRule
from xero_emulator.testing import Tenant, invoice


def stored_invoices(tenant: Tenant) -> int:
    return len(tenant.server.state.organisation(tenant.tenant_id).objects["Invoices"])


def test_server_errors_at_a_rate_change_nothing(tenant: Tenant) -> None:
    tenant.server.faults.add(FaultRule("error", rate=0.5, status=503, methods=("PUT",)))
    statuses = [tenant.put("Invoices", invoice(InvoiceNumber=f"E-{n}")).status_code for n in range(40)]
    failures = statuses.count(503)
    assert 8 <= failures <= 32
    assert set(statuses) == {200, 503}
    assert stored_invoices(tenant) == statuses.count(200)


def test_counted_error_then_recovers(tenant: Tenant) -> None:
    tenant.server.faults.add(FaultRule("error", count=2, status=500))
    assert [tenant.client.get("/Organisation").status_code for _ in range(3)] == [500, 500, 200]


def test_latency(tenant: Tenant) -> None:
    tenant.server.faults.add(FaultRule("latency", seconds=0.25))
    started = time.monotonic()
    assert tenant.client.get("/Organisation").status_code == 200
    assert time.monotonic() - started >= 0.25


def test_dropped_after_commit_duplicates_a_naive_retry_but_not_a_keyed_one(tenant: Tenant) -> None:
    tenant.server.faults.add(FaultRule("drop_after_commit", count=1))
    element = invoice("10.00", kind="ACCPAY", InvoiceNumber="SUP-1")  # bill numbers are not unique
    with pytest.raises(httpx.RemoteProtocolError):
        tenant.put("Invoices", element)
    assert stored_invoices(tenant) == 1  # committed although the client heard nothing
    assert tenant.put("Invoices", element).status_code == 200
    assert stored_invoices(tenant) == 2  # the naive retry duplicated the bill

    tenant.server.faults.add(FaultRule("drop_after_commit", count=1))
    keyed = {"Idempotency-Key": "bill-SUP-2"}
    with pytest.raises(httpx.RemoteProtocolError):
        tenant.send("PUT", "/Invoices", {"Invoices": [element]}, headers=keyed)
    retried = tenant.send("PUT", "/Invoices", {"Invoices": [element]}, headers=keyed)
    assert retried.status_code == 200
    assert stored_invoices(tenant) == 3  # the keyed retry replayed the committed result


def test_rate_limit_storm(tenant: Tenant) -> None:
    tenant.server.faults.add(FaultRule("rate_limit", count=3, retry_after=2, problem="minute"))
    responses = [tenant.client.get("/Organisation") for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 200]
    assert responses[0].headers["Retry-After"] == "2"
    assert responses[0].headers["X-Rate-Limit-Problem"] == "minute"


def test_faults_can_target_one_tenant_and_be_cleared(tenant: Tenant) -> None:
    tenant.server.faults.add(FaultRule("error", tenant_id="00000000-0000-0000-0000-000000000000"))
    assert tenant.client.get("/Organisation").status_code == 200
    tenant.server.faults.set([FaultRule("error")])
    assert tenant.client.get("/Organisation").status_code == 503
    tenant.server.faults.clear()
    assert tenant.client.get("/Organisation").status_code == 200


def test_fault_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        FaultRule("meteor")
    with pytest.raises(ValueError, match="5xx"):
        FaultRule("error", status=404)
