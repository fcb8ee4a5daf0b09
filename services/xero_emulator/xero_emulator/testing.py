"""Test support for anyone testing against the emulator in-process: a connected tenant with an
httpx client, and small builders for Xero request bodies."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from xero_emulator.jsonio import dumps
from xero_emulator.server import EmulatorServer


@dataclass
class Tenant:
    server: EmulatorServer
    info: dict[str, Any]
    client: httpx.Client

    @property
    def tenant_id(self) -> str:
        return str(self.info["tenant_id"])

    def ledger(self) -> dict[str, Any]:
        return self.server.ledger(self.tenant_id)

    def put(self, resource: str, *elements: dict[str, Any], **params: str) -> httpx.Response:
        return self.send("PUT", f"/{resource}", {resource.rsplit("/", maxsplit=1)[-1]: list(elements)}, params=params)

    def post(self, path: str, body: dict[str, Any], **params: str) -> httpx.Response:
        return self.send("POST", path, body, params=params)

    def send(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Sends Decimal amounts as exact JSON numbers (httpx's json= would need floats)."""
        return self.client.request(
            method,
            path,
            content=dumps(body),
            params=params,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def create(self, resource: str, element: dict[str, Any]) -> dict[str, Any]:
        """PUTs one element and returns it as created; fails the test with the body otherwise."""
        response = self.put(resource, element)
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()[resource.rsplit("/", maxsplit=1)[-1]][0]
        return created

    def hand_edit(self, resource: str, object_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """A change made by a person in Xero's web app (not an API call); ValidationFailure if refused."""
        return self.server.hand_edit(self.tenant_id, resource, object_id, changes)

    def bank_feed_match(self, match: dict[str, Any]) -> dict[str, Any]:
        """A payment made in Xero's web app by reconciling a bank-feed line; returns the payment."""
        return self.server.bank_feed_match(self.tenant_id, match)

    def profit_by_option(
        self, category_id: str, from_date: str | None = None, to_date: str | None = None
    ) -> dict[str, int]:
        """Profit (income - expenses, accrual basis) in integer cents per TrackingOptionID of a
        tracking category, and "unassigned" for lines without one; all time unless dated."""
        figures = self.server.state.profit_by_option(self.tenant_id, category_id, from_date, to_date)
        out = {o["TrackingOptionID"]: int(o["profit_cents"]) for o in figures["options"]}
        out["unassigned"] = int(figures["unassigned"]["profit_cents"])
        return out

    def balance(self, code: str) -> str:
        """The account's balance (debit positive) as a decimal string; "0.00" if untouched."""
        for account in self.ledger()["accounts"]:
            if account["Code"] == code:
                return str(account["Balance"])
        return "0.00"


def connect(server: EmulatorServer, info: dict[str, Any], **client_options: Any) -> httpx.Client:
    return httpx.Client(
        base_url=server.api_url,
        headers={"Authorization": f"Bearer {info['access_token']}", "xero-tenant-id": info["tenant_id"]},
        **{"timeout": 10.0, **client_options},
    )


def new_tenant(
    server: EmulatorServer, name: str = "Smith & Co Lawyers", *, region: str = "AU", **client_options: Any
) -> Tenant:
    """A connected organisation of `region` (AU, NZ, UK, US or CA) and a client for it."""
    info = server.create_organisation(name, region=region)
    return Tenant(server, info, connect(server, info, **client_options))


def line(amount: str, account: str = "200", tax: str | None = "OUTPUT", **extra: Any) -> dict[str, Any]:
    """A one-unit line; amounts go out as JSON numbers parsed from exact strings."""
    item: dict[str, Any] = {"Description": "Line", "Quantity": 1, "UnitAmount": _num(amount), "AccountCode": account}
    if tax:
        item["TaxType"] = tax
    item.update(extra)
    return item


def invoice(
    amount: str = "100.00",
    *,
    kind: str = "ACCREC",
    contact: str = "Jane Citizen",
    status: str = "AUTHORISED",
    **extra: Any,
) -> dict[str, Any]:
    account, tax = ("200", "OUTPUT") if kind in ("ACCREC", "ACCRECCREDIT") else ("420", "INPUT")
    return {
        "Type": kind,
        "Contact": {"Name": contact},
        "Date": "2026-07-01",
        "DueDate": "2026-07-31",
        "Status": status,
        "LineAmountTypes": "Exclusive",
        "LineItems": [line(amount, account, tax)],
        **extra,
    }


def credit_note(amount: str = "100.00", *, kind: str = "ACCRECCREDIT", **extra: Any) -> dict[str, Any]:
    body = invoice(amount, kind=kind, **extra)
    body.pop("DueDate")
    return body


def payment(invoice_id: str, amount: str, account: str = "090", date: str = "2026-07-02") -> dict[str, Any]:
    return {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": account}, "Date": date, "Amount": _num(amount)}


def _num(amount: str) -> Decimal:
    return Decimal(amount)
