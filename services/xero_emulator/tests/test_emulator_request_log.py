"""The record of Accounting API requests received: method, path and every query parameter as sent,
per tenant, refused requests included, readable through the admin API and clearable."""

from __future__ import annotations

import httpx
from xero_emulator import EmulatorServer
from xero_emulator.testing import Tenant, invoice


def test_requests_are_recorded_with_their_query_parameters(emulator: EmulatorServer, tenant: Tenant) -> None:
    tenant.put("Invoices", invoice(), summarizeErrors="false")
    tenant.client.get("/Invoices", params={"where": 'Type=="ACCREC"', "page": "1"})
    tenant.client.get("/NoSuchThing")
    with httpx.Client(base_url=emulator.base_url, timeout=10.0) as admin:
        recorded = admin.get("/emulator/requests", params={"tenant_id": tenant.tenant_id.upper()}).json()["requests"]
        assert [(r["method"], r["path"], r["params"], r["status"]) for r in recorded] == [
            ("PUT", "/api.xro/2.0/Invoices", [["summarizeErrors", "false"]], 200),
            ("GET", "/api.xro/2.0/Invoices", [["where", 'Type=="ACCREC"'], ["page", "1"]], 200),
            ("GET", "/api.xro/2.0/NoSuchThing", [], 404),
        ]
        assert admin.delete("/emulator/requests").status_code == 200
        assert admin.get("/emulator/requests").json()["requests"] == []
