"""Dependencies: a payment whose bill is not linked waits, visibly, and is released when the
bill links; after an unlink, a reposted payment is recreated only once its bill is linked again
(the seed: "payments which are edited and reposted will be recreated in Xero assuming that the
invoice that is being paid is still linked")."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.service_layer.unlinking import unlink

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled, xero_objects

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
CREDIT_NOTE = common_pb2.TRANSACTION_KIND_CREDIT_NOTE
APPLICATION = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION


def _post(stub: poster_grpc.PosterServiceStub, transaction: transaction_pb2.Transaction) -> poster_pb2.Posting:
    posting: poster_pb2.Posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=transaction)
    ).posting
    return posting


def _link(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> poster_pb2.Link:
    link: poster_pb2.Link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=kind, id=record_id))  # type: ignore[arg-type]
    ).link
    return link


def _xero(emulator: EmulatorServer, org: dict[str, Any], path: str, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{emulator.base_url}/api.xro/2.0/{path}",
        json=body,
        headers={"Authorization": f"Bearer {org['access_token']}", "xero-tenant-id": org["tenant_id"]},
    )
    assert response.status_code == 200, response.text


def _active_payments(emulator: EmulatorServer, org: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in xero_objects(emulator, org["tenant_id"], "Payments") if p["Status"] != "DELETED"]


def test_a_payment_waits_for_its_bill_with_a_visible_reason_and_is_released_when_it_links(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(1100)
    payment, bill = sample["client_bill_payment"], sample["client_bill"]

    waiting = _post(stub, payment)

    assert waiting.state == poster_pb2.LINK_STATE_WAITING
    link = _link(stub, PAYMENT, payment.header.id)
    assert link.last_error.reason == "DEPENDENCY_NOT_LINKED"
    assert f"client-bill/{bill.header.id}" in link.last_error.message
    assert [(w.kind, w.id) for w in link.waiting_on] == [(BILL, bill.header.id)]
    time.sleep(0.3)
    assert _link(stub, PAYMENT, payment.header.id).state == poster_pb2.LINK_STATE_WAITING
    assert xero_objects(emulator, org["tenant_id"], "Payments") == []

    assert wait_settled(stub, _post(stub, bill).name).state == poster_pb2.LINK_STATE_LINKED
    assert wait_settled(stub, waiting.name).state == poster_pb2.LINK_STATE_LINKED

    released = _link(stub, PAYMENT, payment.header.id)
    assert not released.waiting_on and not released.HasField("last_error")
    [xero_payment] = xero_objects(emulator, org["tenant_id"], "Payments")
    invoice_id = _link(stub, BILL, bill.header.id).xero_objects[0].xero_id
    assert xero_payment["Invoice"]["InvoiceID"] == invoice_id
    assert released.xero_objects[0].xero_id == xero_payment["PaymentID"]


def test_after_an_unlink_a_reposted_payment_is_recreated_only_when_its_bill_is_linked_again(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(1200)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    for transaction in (bill, payment):
        assert wait_settled(stub, _post(stub, transaction).name).state == poster_pb2.LINK_STATE_LINKED
    first_payment = _link(stub, PAYMENT, payment.header.id).xero_objects[0].xero_id

    # Payment corrected while the bill stays linked: delete it in Xero, unlink, edit, repost.
    _xero(emulator, org, f"Payments/{first_payment}", {"Status": "DELETED"})
    unlink(app.db, "firm-1", RecordRef(PAYMENT, payment.header.id), "operator:test")
    payment.client_bill_payment.amount.units = 40000
    assert wait_settled(stub, _post(stub, payment).name).state == poster_pb2.LINK_STATE_LINKED
    [second] = _active_payments(emulator, org)
    assert second["PaymentID"] != first_payment
    assert str(second["Amount"]) == "400.00"

    # Bill and payment both corrected: delete the payment, void the bill, unlink both.
    _xero(emulator, org, f"Payments/{second['PaymentID']}", {"Status": "DELETED"})
    _xero(emulator, org, f"Invoices/{_link(stub, BILL, bill.header.id).xero_objects[0].xero_id}", {"Status": "VOIDED"})
    unlink(app.db, "firm-1", RecordRef(PAYMENT, payment.header.id), "operator:test")
    unlink(app.db, "firm-1", RecordRef(BILL, bill.header.id), "operator:test")
    payment.client_bill_payment.amount.units = 30000
    reposted = _post(stub, payment)
    assert reposted.state == poster_pb2.LINK_STATE_WAITING
    time.sleep(0.3)
    assert _active_payments(emulator, org) == []

    bill.client_bill.bill_number = f"{bill.client_bill.bill_number}-R"
    assert wait_settled(stub, _post(stub, bill).name).state == poster_pb2.LINK_STATE_LINKED
    assert wait_settled(stub, reposted.name).state == poster_pb2.LINK_STATE_LINKED
    [third] = _active_payments(emulator, org)
    new_invoice = _link(stub, BILL, bill.header.id).xero_objects[0]
    assert new_invoice.number.endswith("-R")
    assert third["Invoice"]["InvoiceID"] == new_invoice.xero_id
    assert str(third["Amount"]) == "300.00"
    assert third["Reference"].endswith("#3")  # the third posting cycle of this payment


def test_an_allocation_waits_for_both_its_documents_and_is_released_when_the_last_links(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """A credit note applied to a bill, posted before either document: it waits on both, still
    waits (on the credit note alone) once the bill links, and is allocated once both are linked."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(1200)
    application, bill, note = sample["credit_note_application"], sample["client_bill"], sample["credit_note"]
    applied = (APPLICATION, application.header.id)

    waiting = _post(stub, application)

    assert waiting.state == poster_pb2.LINK_STATE_WAITING
    link = _link(stub, *applied)
    assert link.last_error.reason == "DEPENDENCY_NOT_LINKED"
    assert sorted((w.kind, w.id) for w in link.waiting_on) == sorted(
        [(BILL, bill.header.id), (CREDIT_NOTE, note.header.id)]
    )

    assert wait_settled(stub, _post(stub, bill).name).state == poster_pb2.LINK_STATE_LINKED
    time.sleep(0.3)
    still = _link(stub, *applied)
    assert still.state == poster_pb2.LINK_STATE_WAITING
    assert xero_objects(emulator, org["tenant_id"], "CreditNotes") == []

    assert wait_settled(stub, _post(stub, note).name).state == poster_pb2.LINK_STATE_LINKED
    assert wait_settled(stub, waiting.name).state == poster_pb2.LINK_STATE_LINKED

    [credit_note] = xero_objects(emulator, org["tenant_id"], "CreditNotes")
    [allocation] = [a for a in credit_note["Allocations"] if not a.get("IsDeleted")]
    invoice_id = _link(stub, BILL, bill.header.id).xero_objects[0].xero_id
    assert allocation["Invoice"]["InvoiceID"] == invoice_id
    assert Decimal(str(allocation["Amount"])) == Decimal(application.credit_note_application.amount.units) / 100
    assert _link(stub, *applied).xero_objects[0].xero_id == allocation["AllocationID"]
