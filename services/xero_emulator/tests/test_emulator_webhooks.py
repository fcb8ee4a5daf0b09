"""Xero's webhooks from the emulator to a real HTTP receiver on loopback: the payload shape, the
signature, the events each change makes (payments show as invoice UPDATEs), retries that keep each
organisation's sequence, the admin routes and the intent-to-receive check."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.domain.errors import ValidationFailure
from xero_emulator.testing import Tenant, credit_note, invoice, new_tenant, payment
from xero_emulator.webhooks import sign

from tests.fixtures.processes import child_env, console_script, free_port, wait_for_port

KEY = "test-webhook-key-0123456789"
FLUSH = 20.0  # seconds a flush may wait for deliveries; a pass takes milliseconds


@dataclass
class Receiver:
    """Records every POST; answers the queued statuses first, then `default` (or, when
    `verify` is set, 200 for a good signature and 401 for a bad one)."""

    statuses: list[int] = field(default_factory=list)
    default: int = 200
    verify: bool = False
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/xero/webhooks"

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.received]

    def events(self) -> list[dict[str, Any]]:
        return [event for payload in self.payloads() for event in payload["events"]]


def start_receiver(receiver: Receiver) -> Receiver:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
            if receiver.verify:
                expected = base64.b64encode(hmac.new(KEY.encode(), body, hashlib.sha256).digest()).decode()
                status = 200 if hmac.compare_digest(expected, self.headers.get("x-xero-signature", "")) else 401
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = start_receiver(Receiver())
    try:
        yield started
    finally:
        assert started.server is not None
        started.server.shutdown()
        started.server.server_close()


@pytest.fixture
def hooked(receiver: Receiver) -> Iterator[Tenant]:
    """An organisation of an emulator whose webhooks go to `receiver`; retries every few ms."""
    config = EmulatorConfig(
        minute_seconds=0.01,
        minute_limit=100000,
        access_token_minutes=1e6,
        webhook_url=receiver.url,
        webhook_key=KEY,
    )
    server = EmulatorServer(config).start()
    tenant = new_tenant(server)
    try:
        yield tenant
    finally:
        tenant.client.close()
        server.stop()


def flushed(tenant: Tenant) -> None:
    assert tenant.server.state.webhooks.flush(FLUSH), tenant.server.state.webhooks.view()


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in events]


def test_a_created_invoice_arrives_signed_in_xeros_shape(hooked: Tenant, receiver: Receiver) -> None:
    created = hooked.create("Invoices", invoice("100.00", contact="New Client"))
    flushed(hooked)
    for headers, body in receiver.received:
        expected = base64.b64encode(hmac.new(KEY.encode(), body, hashlib.sha256).digest()).decode()
        assert headers["x-xero-signature"] == expected == sign(KEY, body)
        assert headers["content-type"] == "application/json"
        payload = json.loads(body)
        assert set(payload) == {"events", "firstEventSequence", "lastEventSequence", "entropy"}
        assert payload["entropy"]
    sequences = [(p["firstEventSequence"], p["lastEventSequence"]) for p in receiver.payloads()]
    assert sequences in ([(1, 2)], [(1, 1), (2, 2)])  # one payload, or two if the sender was quick
    contact_event, invoice_event = receiver.events()
    invoice_id = created["InvoiceID"]
    assert invoice_event == {
        "resourceUrl": f"{hooked.server.base_url}/api.xro/2.0/Invoices/{invoice_id}",
        "resourceId": invoice_id,
        "eventDateUtc": invoice_event["eventDateUtc"],
        "eventType": "CREATE",
        "eventCategory": "INVOICE",
        "tenantId": hooked.tenant_id,
        "tenantType": "ORGANISATION",
    }
    # The contact Xero made for a new name is created first.
    assert (contact_event["eventCategory"], contact_event["eventType"]) == ("CONTACT", "CREATE")
    assert contact_event["resourceId"] == created["Contact"]["ContactID"]
    # eventDateUtc is the UpdatedDateUTC instant in Xero's form ("2024-06-21T01:15:39.902", UTC).
    millis = int(created["UpdatedDateUTC"][6:].split("+")[0])
    moment = invoice_event["eventDateUtc"]
    assert len(moment) == 23 and moment[10] == "T"
    parsed = dt.datetime.fromisoformat(moment).replace(tzinfo=dt.UTC)
    assert int(parsed.timestamp() * 1000) == millis
    # The resource URL answers with the invoice.
    fetched = hooked.client.get(invoice_event["resourceUrl"].removeprefix(hooked.server.api_url))
    assert fetched.json()["Invoices"][0]["InvoiceID"] == invoice_id


def test_payments_and_allocations_show_as_document_updates(hooked: Tenant, receiver: Receiver) -> None:
    bill = hooked.create("Invoices", invoice("100.00"))
    credit = hooked.create("CreditNotes", credit_note("10.00"))
    flushed(hooked)
    seen = len(receiver.events())
    paid = hooked.create("Payments", payment(bill["InvoiceID"], "50.00"))
    allocation = {"Invoice": {"InvoiceID": bill["InvoiceID"]}, "Amount": Decimal("11.00")}
    allocated = hooked.send("PUT", f"/CreditNotes/{credit['CreditNoteID']}/Allocations", {"Allocations": [allocation]})
    allocation_id = allocated.json()["Allocations"][0]["AllocationID"]
    hooked.client.delete(f"/CreditNotes/{credit['CreditNoteID']}/Allocations/{allocation_id}")
    hooked.post(f"/Payments/{paid['PaymentID']}", {"Status": "DELETED"})
    flushed(hooked)
    invoice_id, credit_id = bill["InvoiceID"], credit["CreditNoteID"]
    assert kinds(receiver.events()[seen:]) == [
        ("INVOICE", "UPDATE", invoice_id),  # the payment
        ("CREDITNOTE", "UPDATE", credit_id),  # the allocation, both sides
        ("INVOICE", "UPDATE", invoice_id),
        ("CREDITNOTE", "UPDATE", credit_id),  # the allocation deleted
        ("INVOICE", "UPDATE", invoice_id),
        ("INVOICE", "UPDATE", invoice_id),  # the payment deleted
    ]
    credit_events = [e for e in receiver.events() if e["eventCategory"] == "CREDITNOTE"]
    # Xero's webhooks description: a credit note event carries data with its Type and Status.
    assert credit_events[0]["data"] == {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}
    assert credit_events[-1]["resourceUrl"].endswith(f"/api.xro/2.0/CreditNotes/{credit_id}")
    assert not any(e["eventCategory"] == "PAYMENT" for e in receiver.events())


def test_hand_edits_and_bank_feed_matches_are_reported(hooked: Tenant, receiver: Receiver) -> None:
    voided = hooked.create("Invoices", invoice("100.00"))
    matched = hooked.create("Invoices", invoice("100.00"))
    flushed(hooked)
    seen = len(receiver.events())
    admin = f"{hooked.server.base_url}/emulator/organisations/{hooked.tenant_id}"
    httpx.post(f"{admin}/hand-edits/Invoices/{voided['InvoiceID']}", json={"Status": "VOIDED"})
    match = {"InvoiceID": matched["InvoiceID"], "Amount": "110.00", "Date": "2026-07-03", "AccountCode": "090"}
    made = httpx.post(f"{admin}/bank-feed-match", json=match).json()
    hooked.hand_edit("Payments", made["PaymentID"], {"Status": "DELETED"})
    hooked.hand_edit("Invoices", matched["InvoiceID"], {"Reference": "Changed by hand"})
    contact = hooked.create("Contacts", {"Name": "Archived Later"})
    hooked.post("/Contacts", {"Contacts": [{"ContactID": contact["ContactID"], "ContactStatus": "ARCHIVED"}]})
    flushed(hooked)
    assert kinds(receiver.events()[seen:]) == [
        ("INVOICE", "UPDATE", voided["InvoiceID"]),
        ("INVOICE", "UPDATE", matched["InvoiceID"]),
        ("INVOICE", "UPDATE", matched["InvoiceID"]),
        ("INVOICE", "UPDATE", matched["InvoiceID"]),
        ("CONTACT", "CREATE", contact["ContactID"]),
        ("CONTACT", "UPDATE", contact["ContactID"]),
    ]


def test_refused_writes_and_reads_make_no_events(hooked: Tenant, receiver: Receiver) -> None:
    created = hooked.create("Invoices", invoice("100.00"))
    hooked.create("Payments", payment(created["InvoiceID"], "110.00"))
    flushed(hooked)
    seen = len(receiver.events())
    assert hooked.post(f"/Invoices/{created['InvoiceID']}", {"Status": "VOIDED"}).status_code == 400
    assert hooked.client.get("/Invoices").status_code == 200
    with pytest.raises(ValidationFailure, match="PAID"):
        hooked.hand_edit("Invoices", created["InvoiceID"], {"Status": "VOIDED"})
    hooked.create(
        "BankTransfers",
        {"FromBankAccount": {"Code": "090"}, "ToBankAccount": {"Code": "094"}, "Amount": Decimal("1.00")},
    )
    flushed(hooked)
    assert receiver.events()[seen:] == []


def test_failed_deliveries_are_retried_in_sequence(hooked: Tenant, receiver: Receiver) -> None:
    receiver.statuses.extend([500, 503, 204])  # Xero wants "a 200 O.K status code": 204 is a failure too
    first = hooked.create("Contacts", {"Name": "First"})
    # Wait for the first attempt to fail, then change more while the first payload is retried.
    hooks = hooked.server.state.webhooks
    for _ in range(2000):
        if hooks.counters()["attempts_failed"]:
            break
        threading.Event().wait(0.005)
    second = hooked.create("Contacts", {"Name": "Second"})
    third = hooked.create("Contacts", {"Name": "Third"})
    flushed(hooked)
    attempts = [(d.first_sequence, d.last_sequence, d.attempt, d.status, d.delivered) for d in hooks.deliveries()]
    assert attempts[:4] == [(1, 1, 1, 500, False), (1, 1, 2, 503, False), (1, 1, 3, 204, False), (1, 1, 4, 200, True)]
    assert [(a[0], a[4]) for a in attempts[4:]] == [(a[0], True) for a in attempts[4:]]
    assert kinds(receiver.events()[-3:]) == [
        ("CONTACT", "CREATE", first["ContactID"]),
        ("CONTACT", "CREATE", second["ContactID"]),
        ("CONTACT", "CREATE", third["ContactID"]),
    ]
    delivered = [p for p in receiver.payloads()[3:]]
    sequences = [n for p in delivered for n in range(p["firstEventSequence"], p["lastEventSequence"] + 1)]
    assert sequences == [1, 2, 3]
    counters = hooks.counters()
    assert (counters["events_delivered"], counters["attempts_failed"], counters["events_pending"]) == (3, 3, 0)


def test_a_receiver_that_cannot_be_reached_keeps_its_events_until_it_can(receiver: Receiver) -> None:
    unreachable = start_receiver(Receiver())
    assert unreachable.server is not None
    dead_url = unreachable.url
    unreachable.server.shutdown()
    unreachable.server.server_close()
    config = EmulatorConfig(minute_seconds=0.01, access_token_minutes=1e6, webhook_url=dead_url, webhook_key=KEY)
    server = EmulatorServer(config).start()
    try:
        tenant = new_tenant(server)
        created = tenant.create("Contacts", {"Name": "Waiting"})
        hooks = server.state.webhooks
        assert not hooks.flush(0.2)  # nothing can be delivered
        failed = hooks.deliveries()[0]
        assert (failed.status, failed.delivered) == (None, False) and failed.error
        hooks.configure(receiver.url, KEY)
        flushed(tenant)
        assert kinds(receiver.events()) == [("CONTACT", "CREATE", created["ContactID"])]
        assert receiver.payloads()[0]["firstEventSequence"] == 1
        tenant.client.close()
    finally:
        server.stop()


def test_each_organisation_has_its_own_sequence(hooked: Tenant, receiver: Receiver) -> None:
    other = new_tenant(hooked.server, "Other Firm")
    hooked.create("Contacts", {"Name": "A"})
    other.create("Contacts", {"Name": "B"})
    other.create("Contacts", {"Name": "C"})
    flushed(hooked)
    by_tenant: dict[str, list[int]] = {}
    for payload in receiver.payloads():
        tenants = {e["tenantId"] for e in payload["events"]}
        assert len(tenants) == 1
        span = range(payload["firstEventSequence"], payload["lastEventSequence"] + 1)
        assert len(span) == len(payload["events"])
        by_tenant.setdefault(tenants.pop(), []).extend(span)
    assert by_tenant == {hooked.tenant_id: [1], other.tenant_id: [1, 2]}
    other.client.close()


def test_admin_routes_configure_show_and_stop_webhooks(tenant: Tenant, receiver: Receiver) -> None:
    base = f"{tenant.server.base_url}/emulator/webhooks"
    assert httpx.get(base).json()["enabled"] is False
    tenant.create("Contacts", {"Name": "Before"})  # webhooks off: no event
    assert httpx.put(base, json={"url": receiver.url}).status_code == 400
    shown = httpx.put(base, json={"url": receiver.url, "key": KEY}).json()
    assert (shown["enabled"], shown["url"]) == (True, receiver.url)
    assert KEY not in httpx.get(base).text
    created = tenant.create("Contacts", {"Name": "After"})
    flushed(tenant)
    view = httpx.get(base).json()
    assert view["counters"]["events_delivered"] == 1 and view["counters"]["events_pending"] == 0
    assert view["deliveries"][-1]["status"] == 200 and view["deliveries"][-1]["delivered"] is True
    assert kinds(receiver.events()) == [("CONTACT", "CREATE", created["ContactID"])]
    assert httpx.delete(base).json()["enabled"] is False
    tenant.create("Contacts", {"Name": "Off again"})
    flushed(tenant)
    assert len(receiver.events()) == 1


def test_intent_to_receive_passes_a_verifying_endpoint_and_fails_a_careless_one(
    tenant: Tenant, receiver: Receiver
) -> None:
    base = f"{tenant.server.base_url}/emulator/webhooks"
    assert httpx.post(f"{base}/intent-to-receive").status_code == 400  # nothing configured
    httpx.put(base, json={"url": receiver.url, "key": KEY})
    careless = httpx.post(f"{base}/intent-to-receive").json()  # answers 200 to anything
    assert careless["passed"] is False
    assert [(c["signature"], c["status"], c["passed"]) for c in careless["checks"]] == [
        ("correct", 200, True),
        ("incorrect", 200, False),
    ]
    receiver.verify = True
    checked = httpx.post(f"{base}/intent-to-receive").json()
    assert checked["passed"] is True
    assert [(c["signature"], c["status"]) for c in checked["checks"]] == [("correct", 200), ("incorrect", 401)]
    # Xero's validation payload: no events, sequences 0.
    payload = receiver.payloads()[-1]
    assert (payload["events"], payload["firstEventSequence"], payload["lastEventSequence"]) == ([], 0, 0)


def test_reset_forgets_deliveries_and_returns_to_the_configured_webhook(hooked: Tenant, receiver: Receiver) -> None:
    hooked.create("Contacts", {"Name": "Before reset"})
    flushed(hooked)
    assert httpx.post(f"{hooked.server.base_url}/emulator/reset").status_code == 200
    view = hooked.server.state.webhooks.view()
    assert (view["enabled"], view["url"], view["deliveries"], view["counters"]["events_delivered"]) == (
        True,
        receiver.url,
        [],
        0,
    )


def test_the_console_script_takes_the_webhook_url_and_key(receiver: Receiver) -> None:
    port = free_port()
    command = [*console_script("xero-emulator"), "--port", str(port), "--seed-demo"]
    proc = subprocess.Popen(
        [*command, "--webhook-url", receiver.url, "--webhook-key", KEY], env=child_env(), stdout=subprocess.PIPE
    )
    try:
        wait_for_port(port, proc=proc)
        assert proc.stdout is not None
        lines = [proc.stdout.readline().decode().strip() for _ in range(7)]
        demo = dict(line.split("=", 1) for line in lines[1:])
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {demo['access_token']}", "xero-tenant-id": demo["tenant_id"]}
        created = httpx.put(f"{base}/api.xro/2.0/Contacts", json={"Contacts": [{"Name": "Console"}]}, headers=headers)
        assert created.status_code == 200, created.text
        contact_id = created.json()["Contacts"][0]["ContactID"]
        for _ in range(2000):  # the sender runs in the other process
            if httpx.get(f"{base}/emulator/webhooks").json()["counters"]["events_pending"] == 0 and receiver.events():
                break
            threading.Event().wait(0.01)
        assert kinds(receiver.events()) == [("CONTACT", "CREATE", contact_id)]
        assert receiver.events()[0]["resourceUrl"] == f"{base}/api.xro/2.0/Contacts/{contact_id}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lone = subprocess.run([*command, "--webhook-url", receiver.url], check=False, env=child_env(), capture_output=True)
    assert lone.returncode == 2 and b"go together" in lone.stderr
