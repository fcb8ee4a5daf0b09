"""Each kind of drift, made by a hand edit in the emulator (as a person in Xero's web app), is found
through Xero's webhooks (the emulator delivers them, signed, to the poster's endpoint) and, with
webhooks off, through the If-Modified-Since poller; both registries. Replayed and out-of-order
deliveries change nothing wrongly: each event reads Xero's current state."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select
from xero_emulator import EmulatorServer
from xero_emulator.testing import Tenant
from xero_emulator.testing import connect as emulator_client
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.service_layer.drift_polling import PollSettings

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    scaled_limits,
    settings,
    stub_for,
    wait_for,
    wait_settled,
    xero_objects,
)
from tests.integration.test_poster_webhooks import KEY, delivery, event, events_in, hooks, registry, send

# A short emulated minute, so the poller's share of it comes round quickly.
MINUTE = 3.0
TYPES = {
    "client_bill": xero_pb2.OBJECT_TYPE_INVOICE,
    "client_bill_payment": xero_pb2.OBJECT_TYPE_PAYMENT,
    "trust_receipt": xero_pb2.OBJECT_TYPE_BANK_TRANSACTION,
}


@dataclass
class Firm:
    stub: poster_grpc.PosterServiceStub
    emulator: EmulatorServer
    tenant: str
    ids: dict[str, str]
    org: dict[str, Any]  # sample name -> the Xero id of its object of TYPES

    def edit(self, resource: str, name: str, changes: dict[str, Any]) -> None:
        self.emulator.hand_edit(self.tenant, resource, self.ids[name], changes)

    def invoice(self) -> dict[str, Any]:
        return next(
            o for o in xero_objects(self.emulator, self.tenant, "Invoices") if o["InvoiceID"] == self.ids["client_bill"]
        )


def firm(app: bootstrap.PosterApp, emulator: EmulatorServer, *names: str) -> Firm:
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(8000)
    ids: dict[str, str] = {}
    for name in names:
        txn = sample[name]
        posting = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=txn)
        ).posting
        assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED, name
        kind = common_pb2.TransactionKind.Value(f"TRANSACTION_KIND_{name.upper()}")
        link = stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=kind, id=txn.header.id))
        ).link
        ids[name] = next(o.xero_id for o in link.xero_objects if o.type == TYPES[name])
    return Firm(stub, emulator, str(org["tenant_id"]), ids, org)


def drifts(database_url: str) -> list[DriftRow]:
    with registry(database_url) as session:
        return list(session.exec(select(DriftRow).order_by(col(DriftRow.id))).all())


def open_kinds(database_url: str, xero_id: str = "") -> set[str]:
    return {d.kind for d in drifts(database_url) if d.state == "open" and (not xero_id or d.xero_id == xero_id.lower())}


def pay_by_bank_feed(f: Firm) -> None:
    total = Decimal(str(f.invoice()["AmountDue"]))
    f.emulator.bank_feed_match(
        f.tenant, {"InvoiceID": f.ids["client_bill"], "Amount": total, "Date": "2026-04-02", "AccountCode": "090"}
    )


def change_lines(f: Firm) -> None:
    lines = [dict(line) for line in f.invoice()["LineItems"]]
    lines[0]["UnitAmount"] = Decimal(str(lines[0]["UnitAmount"])) + Decimal("100.00")
    lines[0].pop("LineAmount", None)
    lines[0].pop("TaxAmount", None)
    f.edit("Invoices", "client_bill", {"LineItems": lines})


def change_contact(f: Firm) -> None:
    other = Tenant(f.emulator, f.org, emulator_client(f.emulator, f.org)).create("Contacts", {"Name": "Another Client"})
    f.edit("Invoices", "client_bill", {"Contact": {"ContactID": other["ContactID"]}})


# (sample names to post, the edit, the object drifting, the kind expected)
EDITS: dict[str, tuple[tuple[str, ...], Callable[[Firm], None], str, str]] = {
    "paid by a bank-feed match": (("client_bill",), pay_by_bank_feed, "client_bill", "PAID_IN_XERO"),
    "voided": (
        ("client_bill",),
        lambda f: f.edit("Invoices", "client_bill", {"Status": "VOIDED"}),
        "client_bill",
        "VOIDED_IN_XERO",
    ),
    "amounts and lines edited": (("client_bill",), change_lines, "client_bill", "AMOUNT_CHANGED"),
    "contact changed": (("client_bill",), change_contact, "client_bill", "CONTACT_CHANGED"),
    "date changed": (
        ("client_bill",),
        lambda f: f.edit("Invoices", "client_bill", {"Date": "2026-03-20"}),
        "client_bill",
        "DATE_CHANGED",
    ),
    "payment deleted": (
        ("client_bill", "client_bill_payment"),
        lambda f: f.edit("Payments", "client_bill_payment", {"Status": "DELETED"}),
        "client_bill_payment",
        "PAYMENT_DELETED_IN_XERO",
    ),
}
# Bank transactions have no webhook events (Xero sends INVOICE, CREDITNOTE and CONTACT only): polling alone sees them.
# A bank transaction is money received or spent, so its deletion is a payment's (domain/drift.py).
POLL_ONLY = {
    "trust receipt deleted": (
        ("trust_receipt",),
        lambda f: f.edit("BankTransactions", "trust_receipt", {"Status": "DELETED"}),
        "trust_receipt",
        "PAYMENT_DELETED_IN_XERO",
    ),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_each_hand_edit_is_found_through_a_webhook(
    case: str, poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    names, edit, drifting, kind = EDITS[case]
    app = poster_factory(webhooks=hooks())
    f = firm(app, emulator, *names)
    assert app.webhooks is not None
    emulator.state.webhooks.configure(app.webhooks.url, KEY.decode())
    edit(f)
    assert emulator.state.webhooks.flush(10.0)
    wait_for(lambda: kind in open_kinds(database_url, f.ids[drifting]))
    found = next(d for d in drifts(database_url) if d.kind == kind)
    assert found.source == "webhook"
    assert json.loads(found.differences)
    wait_for(lambda: all(e.state != "pending" for e in events_in(database_url)))


@pytest.mark.parametrize("case", sorted({**EDITS, **POLL_ONLY}))
def test_each_hand_edit_is_found_by_polling_without_webhooks(
    case: str, poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    names, edit, drifting, kind = {**EDITS, **POLL_ONLY}[case]
    emulator = emulator_factory(minute_seconds=MINUTE)
    app = poster_factory(
        dispatcher=settings(limits=scaled_limits(MINUTE)), polling=PollSettings(interval=0.1, share=0.5)
    )
    assert app.webhooks is None
    f = firm(app, emulator, *names)
    edit(f)
    wait_for(lambda: kind in open_kinds(database_url, f.ids[drifting]), timeout=30.0)
    assert next(d for d in drifts(database_url) if d.kind == kind).source == "poll"


def test_replayed_and_out_of_order_deliveries_change_nothing_wrongly(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    app = poster_factory(webhooks=hooks())
    f = firm(app, emulator, "client_bill")
    invoice = f.ids["client_bill"]
    posted_date = f.invoice()["DateString"][:10]
    early = event(f.tenant, invoice, when="2026-07-01T10:00:00.000")
    late = event(f.tenant, invoice, when="2026-07-01T10:05:00.000")

    f.edit("Invoices", "client_bill", {"Date": "2026-03-20"})
    # The later event first, then the earlier one, then both again: one open drift.
    for body in (delivery(late), delivery(early), delivery(early, late)):
        assert send(app, body).status_code == 200
    wait_for(lambda: [e.state for e in events_in(database_url)] == ["done", "done"])
    assert [(d.kind, d.state) for d in drifts(database_url)] == [("DATE_CHANGED", "open")]

    # Put back by hand: a new event finds Xero as posted and resolves the drift; the old events
    # delivered once more (Xero retries for hours) do not open it again.
    f.edit("Invoices", "client_bill", {"Date": posted_date})
    assert send(app, delivery(event(f.tenant, invoice, when="2026-07-01T10:09:00.000"))).status_code == 200
    wait_for(lambda: [d.state for d in drifts(database_url)] == ["resolved"])
    for body in (delivery(late, early), delivery(early)):
        assert send(app, body).status_code == 200
    assert len(events_in(database_url)) == 3
    assert all(e.state == "done" for e in events_in(database_url))
    assert [(d.kind, d.state, d.resolution) for d in drifts(database_url)] == [
        ("DATE_CHANGED", "resolved", "XERO_RESTORED")
    ]


def test_a_forged_delivery_changes_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    app = poster_factory(webhooks=hooks())
    f = firm(app, emulator, "client_bill")
    f.edit("Invoices", "client_bill", {"Status": "VOIDED"})
    body = delivery(event(f.tenant, f.ids["client_bill"]))
    assert send(app, body, signature="Zm9yZ2Vk").status_code == 401
    assert send(app, body, signature=None).status_code == 401
    assert events_in(database_url) == []
    assert drifts(database_url) == []
