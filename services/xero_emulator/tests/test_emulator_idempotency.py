"""Idempotency-Key: a replay returns the original result and creates nothing twice; a reused key
with a different body is refused; keys longer than 128 characters are refused; keys expire."""

from __future__ import annotations

import time

from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.testing import Tenant, invoice, new_tenant


def send(tenant: Tenant, key: str, element: dict[str, object]) -> tuple[int, str]:
    response = tenant.send("PUT", "/Invoices", {"Invoices": [element]}, headers={"Idempotency-Key": key})
    return response.status_code, response.text


def test_replay_returns_the_original_and_creates_once(tenant: Tenant) -> None:
    first = send(tenant, "post-bill-17-v1", invoice("10.00", InvoiceNumber="I-1"))
    again = send(tenant, "post-bill-17-v1", invoice("10.00", InvoiceNumber="I-1"))
    assert first == again
    assert first[0] == 200
    assert len(tenant.server.state.organisation(tenant.tenant_id).objects["Invoices"]) == 1


def test_errors_are_replayed_too(tenant: Tenant) -> None:
    bad = invoice("10.00", InvoiceNumber="I-2")
    bad["Contact"] = None
    first = send(tenant, "k-bad", bad)
    assert first[0] == 400
    assert send(tenant, "k-bad", bad) == first


def test_same_key_different_body_is_refused(tenant: Tenant) -> None:
    send(tenant, "k-1", invoice("10.00", InvoiceNumber="I-3"))
    status, text = send(tenant, "k-1", invoice("11.00", InvoiceNumber="I-3"))
    assert status == 400
    assert "already used for a different request" in text
    assert len(tenant.server.state.organisation(tenant.tenant_id).objects["Invoices"]) == 1


def test_key_length_limit(tenant: Tenant) -> None:
    assert send(tenant, "k" * 128, invoice(InvoiceNumber="I-4"))[0] == 200
    status, text = send(tenant, "k" * 129, invoice(InvoiceNumber="I-5"))
    assert status == 400
    assert "128" in text


def test_keys_are_per_tenant_and_expire() -> None:
    server = EmulatorServer(EmulatorConfig(minute_seconds=0.05)).start()  # keys live 6 "minutes": 0.3 s
    try:
        first, second = new_tenant(server, "A"), new_tenant(server, "B")
        assert send(first, "shared", invoice(InvoiceNumber="X-1"))[0] == 200
        assert send(second, "shared", invoice(InvoiceNumber="X-1"))[0] == 200
        time.sleep(0.4)
        # Past the window the key is forgotten: Xero then treats the call as new (here: a duplicate number).
        status, text = send(first, "shared", invoice(InvoiceNumber="X-1"))
        assert status == 400
        assert "must be unique" in text
    finally:
        server.stop()
