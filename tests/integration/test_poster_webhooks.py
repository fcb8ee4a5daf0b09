"""Xero's webhooks at the poster's endpoint, over real HTTP on loopback, with the real emulator and
both registries: only a good signature is answered 200 and stores events (before answering); a
forged, missing or malformed delivery stores nothing; the same event delivered again is stored
once; events are processed after answering, by a worker reading Xero through the tenant's budget,
also when the poster that stored them stopped before processing; events of objects xerolink did
not make are ignored without a Xero call."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlmodel import col, select
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.drift_tables import WebhookEventRow
from xerolink_poster.domain.webhook_events import signature_of
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.drift_config import WebhookSettings

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_for, wait_settled, xero_objects

KEY = b"webhook-key-from-the-developer-portal"
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL


def hooks(max_bytes: int = 1_000_000) -> WebhookSettings:
    return WebhookSettings(address="127.0.0.1:0", key=KEY, max_bytes=max_bytes)


def event(
    tenant: str, resource_id: str, category: str = "INVOICE", when: str = "2026-07-01T10:00:00.000"
) -> dict[str, Any]:
    collection = {"INVOICE": "Invoices", "CREDITNOTE": "CreditNotes", "CONTACT": "Contacts"}[category]
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/{collection}/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": when,
        "eventType": "UPDATE",
        "eventCategory": category,
        "tenantId": tenant,
        "tenantType": "ORGANISATION",
    }


def delivery(*events: dict[str, Any]) -> bytes:
    return json.dumps(
        {"events": list(events), "firstEventSequence": 1, "lastEventSequence": len(events), "entropy": "ABCDEFGH"}
    ).encode()


def send(app: bootstrap.PosterApp, body: bytes, signature: str | None = "", method: str = "POST") -> httpx.Response:
    assert app.webhooks is not None
    headers = {"Content-Type": "application/json"}
    if signature == "":
        signature = signature_of(KEY, body)
    if signature is not None:
        headers["x-xero-signature"] = signature
    return httpx.request(method, app.webhooks.url, content=body, headers=headers, timeout=10)


@contextmanager
def registry(database_url: str) -> Iterator[Any]:
    db = open_database(database_url)
    try:
        with db.session(write=False) as session:
            yield session
    finally:
        db.dispose()


def events_in(database_url: str) -> list[WebhookEventRow]:
    with registry(database_url) as session:
        return list(session.exec(select(WebhookEventRow).order_by(col(WebhookEventRow.id))).all())


def linked_bill(stub: poster_grpc.PosterServiceStub, emulator: EmulatorServer) -> tuple[str, str]:
    """A connection with a client bill posted and linked: (tenant id, the invoice's Xero id)."""
    _, org = connect(stub, emulator)
    bill = samples.sample_transactions(7000)["client_bill"]
    posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill)).posting
    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=bill.header.id))
    ).link
    invoice = next(o.xero_id for o in link.xero_objects if o.type == xero_pb2.OBJECT_TYPE_INVOICE)
    return str(org["tenant_id"]), invoice


def reads_of(emulator: EmulatorServer, tenant: str, resource_id: str) -> int:
    return sum(
        1 for r in emulator.state.requests.entries(tenant) if r.method == "GET" and r.path.endswith(f"/{resource_id}")
    )


def test_only_a_good_signature_is_answered_200_and_stores_the_events(
    poster_factory: PosterFactory, database_url: str
) -> None:
    app = poster_factory(run_dispatcher=False, webhooks=hooks())
    tenant = str(uuid.uuid4())
    body = delivery(event(tenant, str(uuid.uuid4())))

    forged = send(app, body, signature=signature_of(b"another key", body))
    missing = send(app, body, signature=None)
    tampered = send(app, body.replace(b"UPDATE", b"CREATE"), signature=signature_of(KEY, body))
    assert [(r.status_code, r.content) for r in (forged, missing, tampered)] == [(401, b"")] * 3
    assert events_in(database_url) == []

    good = send(app, body)
    assert (good.status_code, good.content) == (200, b"")
    stored = events_in(database_url)
    assert [(e.tenant_id, e.category, e.event_type, e.state) for e in stored] == [
        (tenant, "INVOICE", "UPDATE", "pending")
    ]


def test_intent_to_receive_gets_200_signed_and_401_otherwise(poster_factory: PosterFactory, database_url: str) -> None:
    app = poster_factory(run_dispatcher=False, webhooks=hooks())
    empty = delivery()
    assert send(app, empty).status_code == 200
    assert send(app, empty, signature="bm90IHRoZSBzaWduYXR1cmU=").status_code == 401
    assert events_in(database_url) == []


def test_the_same_event_delivered_again_is_stored_once(poster_factory: PosterFactory, database_url: str) -> None:
    app = poster_factory(run_dispatcher=False, webhooks=hooks())
    tenant, resource = str(uuid.uuid4()), str(uuid.uuid4())
    first = event(tenant, resource, when="2026-07-01T10:00:00.000")
    later = event(tenant, resource, when="2026-07-01T10:05:00.000")
    assert send(app, delivery(first)).status_code == 200
    assert send(app, delivery(first)).status_code == 200  # Xero's retry
    assert send(app, delivery(later, first, first)).status_code == 200  # a replay beside a new event
    assert sorted(e.event_date for e in events_in(database_url)) == [
        "2026-07-01T10:00:00.000",
        "2026-07-01T10:05:00.000",
    ]


def test_a_signed_body_that_is_not_a_delivery_gets_400_and_stores_nothing(
    poster_factory: PosterFactory, database_url: str
) -> None:
    app = poster_factory(run_dispatcher=False, webhooks=hooks())
    tenant = str(uuid.uuid4())
    no_id = event(tenant, "x")
    del no_id["resourceId"]
    for body, says in [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"entropy": "X"}', "no 'events' list"),
        (delivery(event(tenant, str(uuid.uuid4())), no_id), "events[1].resourceId"),
        (delivery({**event(tenant, "y"), "eventCategory": "PAYMENT"}), "eventCategory"),
    ]:
        answer = send(app, body)
        assert answer.status_code == 400, body
        assert says in answer.text
        assert send(app, body, signature=None).status_code == 401
    assert events_in(database_url) == []


def test_other_methods_paths_and_oversized_bodies_store_nothing(
    poster_factory: PosterFactory, database_url: str
) -> None:
    app = poster_factory(run_dispatcher=False, webhooks=hooks(max_bytes=2048))
    assert app.webhooks is not None
    signed_get = send(app, b"", method="GET")
    assert (signed_get.status_code, signed_get.headers["allow"]) == (405, "POST")
    assert send(app, b"", signature=None, method="GET").status_code == 401
    assert send(app, b"", signature="forged", method="PUT").status_code == 401
    elsewhere = httpx.post(app.webhooks.url + "/other", content=delivery(), timeout=10)
    assert elsewhere.status_code == 404
    tenant = str(uuid.uuid4())
    big = delivery(*[event(tenant, str(uuid.uuid4())) for _ in range(20)])
    assert len(big) > 2048
    assert send(app, big).status_code == 413
    assert events_in(database_url) == []


def test_the_endpoint_refuses_to_start_without_a_key() -> None:
    from xerolink_poster.entrypoints.drift_config import load_webhooks

    with pytest.raises(SystemExit, match="no webhook key"):
        load_webhooks({"XEROLINK_WEBHOOK_ADDRESS": "127.0.0.1:0"})
    assert not load_webhooks({}).enabled
    assert load_webhooks({"XEROLINK_WEBHOOK_ADDRESS": "127.0.0.1:0", "XEROLINK_WEBHOOK_KEY": "k"}).key == b"k"


def test_an_event_stored_before_a_stop_is_processed_after_the_restart(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    posting = poster_factory()
    tenant, invoice = linked_bill(stub_for(posting), emulator)
    posting.stop(0)

    # A poster that stores and answers, and stops before anything processes the event.
    receiving = poster_factory(run_dispatcher=False, webhooks=hooks())
    before = reads_of(emulator, tenant, invoice)
    assert send(receiving, delivery(event(tenant, invoice))).status_code == 200
    assert [e.state for e in events_in(database_url)] == ["pending"]
    receiving.stop(0)
    assert reads_of(emulator, tenant, invoice) == before  # no Xero call on the request path

    poster_factory()  # a restart with the worker
    wait_for(lambda: [e.state for e in events_in(database_url)] == ["done"])
    assert reads_of(emulator, tenant, invoice) == before + 1
    assert events_in(database_url)[0].last_error == ""


def test_events_of_objects_xerolink_did_not_make_are_ignored_without_a_call(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    app = poster_factory(webhooks=hooks())
    tenant, invoice = linked_bill(stub_for(app), emulator)
    stranger, someone = str(uuid.uuid4()), str(uuid.uuid4())
    contact = str(uuid.uuid4())
    (client,) = {o["Contact"]["ContactID"] for o in xero_objects(emulator, tenant, "Invoices")}
    body = delivery(
        event(tenant, stranger),  # an invoice someone made in Xero
        event(str(uuid.uuid4()), someone),  # an organisation no connection reaches
        event(tenant, contact, category="CONTACT"),  # a contact xerolink never used
        event(tenant, client, category="CONTACT"),  # the bill's client: compared with the bill
        event(tenant, invoice),
    )
    assert send(app, body).status_code == 200
    wait_for(lambda: all(e.state != "pending" for e in events_in(database_url)))
    states = {e.resource_id: e.state for e in events_in(database_url)}
    assert states == {stranger: "ignored", someone: "ignored", contact: "ignored", client: "done", invoice: "done"}
    assert reads_of(emulator, tenant, stranger) == reads_of(emulator, tenant, contact) == 0
    assert reads_of(emulator, tenant, client) == 0


def test_a_failing_read_stays_pending_with_its_error_and_is_retried(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    from xero_emulator.faults import FaultRule

    app = poster_factory(webhooks=hooks())
    tenant, invoice = linked_bill(stub_for(app), emulator)
    assert app.events is not None
    app.events.backoff_base = 0.05
    emulator.faults.add(FaultRule("error", count=2, methods=("GET",), path_contains=f"Invoices/{invoice}"))
    assert send(app, delivery(event(tenant, invoice))).status_code == 200
    wait_for(lambda: [e.state for e in events_in(database_url)] == ["done"])
    row = events_in(database_url)[0]
    assert row.attempts == 3
