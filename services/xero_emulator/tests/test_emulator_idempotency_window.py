"""The admin switch that ends Xero's idempotency window on demand, so a crash suite can retry as
if the minutes Xero keeps a key for had passed: the retry is then a new request."""

from __future__ import annotations

import httpx
from xero_emulator import EmulatorServer
from xero_emulator.testing import Tenant, invoice


def put_bill(tenant: Tenant, key: str) -> httpx.Response:
    # ACCPAY numbers are not unique at Xero: a retry past the window silently duplicates the bill.
    element = invoice("40.00", kind="ACCPAY", InvoiceNumber="SUP-88")
    return tenant.send("PUT", "/Invoices", {"Invoices": [element]}, headers={"Idempotency-Key": key})


def bills(tenant: Tenant) -> list[dict[str, object]]:
    response = tenant.client.get("/Invoices", params={"where": 'Type=="ACCPAY"'})
    assert response.status_code == 200, response.text
    found: list[dict[str, object]] = response.json()["Invoices"]
    return found


def admin(emulator: EmulatorServer) -> httpx.Client:
    return httpx.Client(base_url=emulator.base_url, timeout=10.0)


def test_forgetting_all_keys_makes_a_retry_a_new_request(emulator: EmulatorServer, tenant: Tenant) -> None:
    first = put_bill(tenant, "bill-88")
    assert put_bill(tenant, "bill-88").json()["Invoices"][0]["InvoiceID"] == first.json()["Invoices"][0]["InvoiceID"]
    with admin(emulator) as client:
        answer = client.post("/emulator/idempotency", json={"forget": True})
        assert answer.status_code == 200, answer.text
        assert answer.json()["forgotten"] == 1
        assert client.get("/emulator/idempotency").json()["keys"] == 0
    second = put_bill(tenant, "bill-88")
    assert second.status_code == 200
    assert second.json()["Invoices"][0]["InvoiceID"] != first.json()["Invoices"][0]["InvoiceID"]
    assert len(bills(tenant)) == 2


def test_a_zero_window_forgets_every_key_at_once_until_reset(emulator: EmulatorServer, tenant: Tenant) -> None:
    with admin(emulator) as client:
        assert client.post("/emulator/idempotency", json={"ttl_minutes": 0}).json()["ttl_minutes"] == 0
        put_bill(tenant, "bill-89")
        put_bill(tenant, "bill-89")
        assert len(bills(tenant)) == 2
        assert client.post("/emulator/idempotency", json={"ttl_minutes": 6}).json()["ttl_minutes"] == 6
        put_bill(tenant, "bill-90")
        put_bill(tenant, "bill-90")
        assert len(bills(tenant)) == 3
        client.post("/emulator/idempotency", json={"ttl_minutes": 0})
        client.post("/emulator/reset")
        assert client.get("/emulator/idempotency").json()["ttl_minutes"] == 6  # the configured window again


def test_a_negative_window_is_refused(emulator: EmulatorServer) -> None:
    with admin(emulator) as client:
        answer = client.post("/emulator/idempotency", json={"ttl_minutes": -1})
        assert answer.status_code == 400
        assert "ttl_minutes" in answer.json()["error"]
