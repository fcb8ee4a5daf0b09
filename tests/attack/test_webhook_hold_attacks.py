"""Attacks on Xero's webhooks, the If-Modified-Since poller and the holds on drifted documents,
from outside: a real poster on loopback (its own webhook endpoint), the real mapper, the emulator
over HTTP, on both registries. Each test states what a firm relying on drift detection and holds
would expect, and fails while the product gets it wrong."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from xero_emulator import EmulatorServer
from xero_emulator.testing import Tenant
from xero_emulator.testing import connect as emulator_client
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.service_layer.drift_polling import Poller, PollSettings
from xerolink_poster.service_layer.drift_reads import POLLED
from xerolink_poster.service_layer.unit_of_work import UnitOfWork
from xerolink_poster.service_layer.unlinking import unlink

from tests.fixtures.drift_firm import BILL, Firm
from tests.fixtures.hand_edits import bank_feed_match, hand_edit
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    scaled_limits,
    settings,
    stub_for,
    wait_for,
    wait_settled,
)
from tests.integration.test_poster_drift_watch import open_kinds
from tests.integration.test_poster_webhooks import delivery, event, events_in, hooks, linked_bill, reads_of, send

ACCEPT_XERO = drift_pb2.DRIFT_RESOLUTION_ACCEPT_XERO


def _settled(database_url: str) -> bool:
    return all(e.state != "pending" for e in events_in(database_url))


def test_a_storm_of_events_for_one_invoice_costs_one_read_of_it(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    """A bookkeeper saving one invoice 30 times makes Xero send 30 UPDATE events (each its own
    eventDateUtc). All 30 arrive in one delivery; every read returns the same current state (the
    docs: the comparison uses Xero's state at the time of the read, never the event's content), so
    one read of the invoice answers them all. The worker reads it once per event: 30 GETs out of
    the organisation's 60 a minute, taken from posting."""
    app = poster_factory(webhooks=hooks())
    tenant, invoice = linked_bill(stub_for(app), emulator)
    hand_edit(emulator, tenant, "Invoices", invoice, {"Date": "2026-03-20"})
    before = reads_of(emulator, tenant, invoice)
    storm = [event(tenant, invoice, when=f"2026-07-01T10:00:{second:02d}.000") for second in range(30)]

    assert send(app, delivery(*storm)).status_code == 200
    wait_for(lambda: _settled(database_url))

    assert open_kinds(database_url, invoice) == {"DATE_CHANGED"}
    assert reads_of(emulator, tenant, invoice) - before <= 2


def test_an_event_for_an_unlinked_invoice_is_ignored_without_a_xero_call(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    """The bill was unlinked: its invoice stays in Xero as an orphan that xerolink no longer
    watches (docs/drift.md: "objects of an unlinked link are no longer watched"; "an invoice or
    credit note no link holds ... is marked ignored without a Xero call"). An UPDATE event for the
    orphan is nevertheless read from Xero (the inactive snapshot, or the orphan row, counts as
    "linked") and marked done: a call of the organisation's budget spent on an object nobody
    compares."""
    app = poster_factory(webhooks=hooks())
    stub = stub_for(app)
    tenant, invoice = linked_bill(stub, emulator)
    record = next(lk.record for lk in stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1")).links)
    unlink(app.db, "firm-1", RecordRef(record.kind, record.id), "operator:test")
    before = reads_of(emulator, tenant, invoice)

    assert send(app, delivery(event(tenant, invoice))).status_code == 200
    wait_for(lambda: _settled(database_url))

    assert [e.state for e in events_in(database_url)] == ["ignored"]
    assert reads_of(emulator, tenant, invoice) == before


def test_an_event_naming_the_tenant_in_upper_case_still_finds_the_voided_invoice(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    """Xero's ids are GUIDs, which compare without case (the poster itself lowercases resource ids
    for exactly that reason). A delivery whose tenantId is the organisation's GUID in upper case
    names the same organisation; the invoice it names was voided in Xero. The event is marked
    ignored (the tenant lookup compares case-sensitively) and the void is never recorded, so a
    payment for it would be sent instead of held."""
    app = poster_factory(webhooks=hooks())
    tenant, invoice = linked_bill(stub_for(app), emulator)
    hand_edit(emulator, tenant, "Invoices", invoice, {"Status": "VOIDED"})

    assert send(app, delivery(event(tenant.upper(), invoice))).status_code == 200
    wait_for(lambda: _settled(database_url))

    assert "VOIDED_IN_XERO" in open_kinds(database_url, invoice)


def test_a_payment_held_on_a_paid_bill_fails_for_the_payment_when_xeros_date_change_is_accepted(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """The bill was paid by a bank-feed match (PAID_IN_XERO, the payment held on it) and its date
    was changed in Xero (DATE_CHANGED). The bookkeeper accepts Xero's date (ACCEPT_XERO on the
    DATE_CHANGED drift). The held payment fails; its error must say why it cannot be posted: the
    bill is already paid in Xero (the drift that held it). It speaks of the date drift instead
    ("invoice INV-… was changed in Xero ... cannot take it in Xero as it stands") and names the
    date drift, so the user is never told the money was already received in Xero."""
    firm = Firm(poster_factory(), emulator, 4200)
    invoice = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Date": "2026-03-25"})
    firm.pay_in_full_by_bank_feed(invoice)
    assert sorted(firm.observe_bill(invoice)) == ["DATE_CHANGED", "PAID_IN_XERO"]
    by_kind = {d.kind: d for d in firm.drifts()}
    paid = by_kind[drift_pb2.DRIFT_KIND_PAID_IN_XERO]
    dated = by_kind[drift_pb2.DRIFT_KIND_DATE_CHANGED]
    held = firm.held()
    assert paid.name in held.last_error.message

    firm.resolve(dated.name, ACCEPT_XERO)

    failed = firm.payment_link()
    assert failed.state == poster_pb2.LINK_STATE_FAILED
    assert "already paid in Xero" in failed.last_error.message
    assert [v.description for v in failed.last_error.field_violations] == [paid.name]


def test_a_payment_of_the_same_amount_as_a_bank_feed_part_payment_on_its_bill_is_not_paid_twice(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """The client paid 100.00 of the bill; the bank feed matched that deposit to the invoice in
    Xero (a part payment: ALLOCATION_ADDED_IN_XERO, recorded by a read). Actionstep then sends the
    same receipt of 100.00. The poster sends it and Xero takes it (it still fits what is owed): the
    invoice shows 200.00 received for 100.00 banked. A payment equal to money someone else already
    applied to its document in Xero must wait for a person to decide (as on a paid document), not
    be paid a second time."""
    firm = Firm(poster_factory(), emulator, 4300)
    firm.payment = transaction_pb2.Transaction(
        header=samples.header(4302),
        client_bill_payment=billing_pb2.ClientBillPayment(bill_id=4301, amount=samples.money(10000)),
    )
    invoice = firm.linked_bill()
    assert Decimal(str(invoice["AmountDue"])) > Decimal("200.00")
    matched = bank_feed_match(
        emulator,
        firm.tenant,
        {"InvoiceID": invoice["InvoiceID"], "Amount": "100.00", "Date": "2026-03-02", "AccountCode": "090"},
    )
    assert firm.observe_bill(invoice) == ["ALLOCATION_ADDED_IN_XERO"]

    firm.post(firm.payment)
    wait_for(
        lambda: (
            firm.payment_link().state in (poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED)
            or firm.payment_link().last_error.reason == "XERO_DOCUMENT_CHANGED"
        )
    )

    assert firm.our_payments(besides=matched["PaymentID"]) == []
    assert firm.payment_link().last_error.reason == "XERO_DOCUMENT_CHANGED"


def test_following_the_voided_bill_runbook_posts_the_bill_again_and_pays_the_held_payment_once(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """docs/drift.md, runbook VOIDED_IN_XERO: "if not [meant], unlink the record and post it again
    (a voided document cannot be un-voided in Xero)"; and a held payment, once its document is
    unlinked, "waits for the document to link again, and is posted against the new document".
    Done exactly so: the bill posted again fails with Xero's "Invoice # must be unique" (Xero keeps
    a voided invoice's number, as the correction plans know), and the held payment waits forever.
    The runbook's way must link the bill again and pay the payment once, on the new invoice."""
    firm = Firm(poster_factory(), emulator, 4400)
    invoice = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Status": "VOIDED"})
    firm.observe_bill(invoice)
    firm.held()
    unlink(firm.app.db, "firm-1", RecordRef(BILL, firm.bill.header.id), "operator:test")

    firm.post(firm.bill)
    wait_for(lambda: firm.link(BILL, firm.bill.header.id).state != poster_pb2.LINK_STATE_PENDING)
    bill = firm.link(BILL, firm.bill.header.id)
    assert bill.state == poster_pb2.LINK_STATE_LINKED, bill.last_error
    wait_for(lambda: firm.payment_link().state in (poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED))
    link = firm.payment_link()
    assert link.state == poster_pb2.LINK_STATE_LINKED, link.last_error.message
    new_invoice = bill.xero_objects[0].xero_id
    assert new_invoice != invoice["InvoiceID"]
    [paid] = firm.our_payments()
    assert paid["Invoice"]["InvoiceID"] == new_invoice
    # The voided invoice keeps the number, so the bill is posted under one naming the record and
    # its generation (docs/unlinking.md), shown on the link and said in its audit.
    number = f"{invoice['InvoiceNumber']}-repost-{firm.bill.header.id}-2"
    assert bill.xero_objects[0].number == number
    record = common_pb2.RecordKey(kind=BILL, id=firm.bill.header.id)
    audit = firm.stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=record, include_audit=True)
    ).link.audit
    [posted] = [a for a in audit if a.event == "posted" and new_invoice in a.detail]
    assert f"posted as invoice {number}" in posted.detail and invoice["InvoiceID"] in posted.detail


MINUTE = 1.0


def _fillers(emulator: EmulatorServer, org: dict[str, Any], count: int) -> list[str]:
    """Invoices someone entered in Xero by hand (xerolink links none of them): more than a page."""
    tenant = Tenant(emulator, org, emulator_client(emulator, org))
    line = {"Description": "Entered in Xero", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}
    answer = tenant.put("Invoices", *[{"Type": "ACCREC", "Contact": {"Name": "Walk-in"}, "LineItems": [line]}] * count)
    assert answer.status_code == 200, answer.text
    return [i["InvoiceID"] for i in answer.json()["Invoices"]]


def test_a_poller_allowed_one_call_a_minute_still_reads_past_the_first_page(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    """XEROLINK_POLL_SHARE=0.01 is valid ("above 0, at most 0.5") and gives the poller one call a
    minute. The organisation has 100 invoices entered by hand, then xerolink's bill (on page 2 of
    If-Modified-Since reads), which is voided in Xero. docs/drift.md: a read of more pages than the
    share allows "goes on at the next round from the page it reached, one page back": with one
    call a round, one page back is the page just read, so every round reads page 1 again and the
    void is never found, however long the poller runs."""
    emulator = emulator_factory(minute_seconds=MINUTE)
    app = poster_factory(
        dispatcher=settings(limits=scaled_limits(MINUTE)), polling=PollSettings(interval=0.1, share=0.01)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    _fillers(emulator, org, 100)
    bill = samples.sample_transactions(4500)["client_bill"]
    posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill)).posting
    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    invoice = (
        stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=bill.header.id))
        )
        .link.xero_objects[0]
        .xero_id
    )
    hand_edit(emulator, org["tenant_id"], "Invoices", invoice, {"Status": "VOIDED"})

    # Twenty emulated minutes: twenty calls of the poller's share.
    wait_for(lambda: "VOIDED_IN_XERO" in open_kinds(database_url, invoice), timeout=20 * MINUTE)


def test_a_hand_edit_made_while_the_poller_is_between_pages_is_found(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    """The poller's share (two calls a minute here) cuts a three-page If-Modified-Since read of
    Invoices after page 2; it goes on at the next round "from the page it reached, one page back".
    Between the two rounds a bookkeeper voids xerolink's bill (an invoice that had not changed since
    the cursor, so it was on no page read so far) and then edits another invoice. The resumed read
    never reaches the bill's place in the list, but the cursor moves to the newest change it saw
    (the later edit), past the void: the void is never read by any later poll, no drift is
    recorded, and payments for the voided bill would be sent."""
    emulator = emulator_factory(minute_seconds=MINUTE)
    app = poster_factory(dispatcher=settings(limits=scaled_limits(MINUTE)))
    assert app.dispatcher is not None
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    tenant = str(org["tenant_id"])
    bill = samples.sample_transactions(4600)["client_bill"]
    posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill)).posting
    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    invoice = (
        stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=bill.header.id))
        )
        .link.xero_objects[0]
        .xero_id
    )
    fillers = _fillers(emulator, org, 250)
    poller = Poller(app.db, app.dispatcher, PollSettings(interval=0.1, share=0.034))
    assert poller.per_minute == 2
    with UnitOfWork(app.db, write=False) as uow:
        connection = uow.connections.get_connection("firm-1")
    assert connection is not None
    invoices = [r for r in POLLED if r.collection == "Invoices"]

    def poll_to_the_end() -> None:
        while not poller.poll_connection(connection, invoices):
            time.sleep(MINUTE)
        time.sleep(MINUTE)

    poll_to_the_end()  # the cursor now stands after the hand-entered invoices
    time.sleep(0.01)
    # In the emulator's process: the admin API's own handler (emulator.state.hand_edit) without an
    # HTTP client built for each of the 250 (6 s). The edits still come in the fillers' order of
    # creation, which is the order of their listing; the two edits below go over HTTP.
    for filler in fillers:
        emulator.hand_edit(tenant, "Invoices", filler, {"Reference": "checked"})
    assert not poller.poll_connection(connection, invoices)  # pages 1 and 2, then the share is used

    hand_edit(emulator, tenant, "Invoices", invoice, {"Status": "VOIDED"})
    time.sleep(0.01)
    hand_edit(emulator, tenant, "Invoices", fillers[-1], {"Reference": "checked again"})
    time.sleep(MINUTE)
    poll_to_the_end()
    poll_to_the_end()

    assert "VOIDED_IN_XERO" in open_kinds(database_url, invoice)
