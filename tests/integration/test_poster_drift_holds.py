"""Work on a drifted document is held, not failed (docs/drift.md "Holds and resolution"): a
payment for a bill paid by a bank-feed match or voided in Xero waits with XERO_DOCUMENT_CHANGED
and is never sent; unlinking the drifted bill resolves its drift and the payment then waits for
the bill to link again. Real poster on loopback, real emulator, both registries."""

from __future__ import annotations

import json
import time

import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.errors import XerolinkError
from xerolink_mapper import samples
from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.entrypoints.bootstrap import PosterApp
from xerolink_poster.service_layer import drift_resolution
from xerolink_poster.service_layer.drift_resolution import XeroState
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction
from xerolink_poster.service_layer.unlinking import unlink

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_for, wait_settled, xero_objects

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT


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


def record_drift(app: PosterApp, record: RecordRef, kind: str, description: str, status: str) -> int:
    """An open drift on the record's invoice, as detection (a webhook or the poller) records it."""

    def write(uow: UnitOfWork) -> int:
        link = uow.links.get_link("firm-1", record)
        assert link is not None
        invoice = uow.links.xero_objects(link)[0]
        row = uow.drift.save_drift(
            DriftRow(
                connection_id="firm-1",
                link_id=link.id or 0,
                xero_id=invoice.xero_id,
                object_type=xero_pb2.OBJECT_TYPE_INVOICE,
                kind=kind,
                state="open",
                differences=json.dumps([{"field": "Status", "posted": "AUTHORISED", "xero": status}]),
                description=description,
                source="webhook",
                detected_us=now_us(),
            )
        )
        return row.id or 0

    return run_in_transaction(app.db, write)


def _payments_sent(emulator: EmulatorServer, tenant_id: str) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in emulator.state.requests.entries(tenant_id)
        if r.method in ("PUT", "POST") and "Payments" in r.path
    ]


def _linked_bill(stub: poster_grpc.PosterServiceStub, bill: transaction_pb2.Transaction) -> str:
    assert wait_settled(stub, _post(stub, bill).name).state == poster_pb2.LINK_STATE_LINKED
    return _link(stub, BILL, bill.header.id).xero_objects[0].xero_id


def _held(stub: poster_grpc.PosterServiceStub, payment: transaction_pb2.Transaction) -> poster_pb2.Link:
    posting = _post(stub, payment)
    wait_for(lambda: _link(stub, PAYMENT, payment.header.id).last_error.reason == "XERO_DOCUMENT_CHANGED")
    time.sleep(0.3)  # the dispatcher had every chance to send it
    link = _link(stub, PAYMENT, payment.header.id)
    assert link.state == poster_pb2.LINK_STATE_WAITING
    assert posting.name
    return link


def test_a_payment_for_a_bill_paid_by_a_bank_feed_match_waits_and_is_never_sent(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(3100)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    invoice_id = _linked_bill(stub, bill)
    [invoice] = [i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["InvoiceID"] == invoice_id]
    emulator.bank_feed_match(
        org["tenant_id"],
        {"InvoiceID": invoice_id, "Amount": str(invoice["AmountDue"]), "Date": "2026-07-02", "AccountCode": "090"},
    )
    drift = record_drift(
        app,
        RecordRef(BILL, bill.header.id),
        "PAID_IN_XERO",
        f"invoice {invoice['InvoiceNumber']} was paid in Xero on 2026-07-02 by a payment xerolink did not make "
        "(bank-feed match or by hand)",
        "PAID",
    )
    emulator.state.requests.clear()

    link = _held(stub, payment)

    assert link.last_error.code == 9  # FAILED_PRECONDITION
    message = link.last_error.message
    assert f"invoice {invoice['InvoiceNumber']} was paid in Xero on 2026-07-02" in message
    assert f"connections/firm-1/drifts/{drift}" in message
    assert "not sent to Xero" in message and "--accept-xero" in message and "--corrected" in message
    assert [(w.kind, w.id) for w in link.waiting_on] == [(BILL, bill.header.id)]
    assert _payments_sent(emulator, org["tenant_id"]) == []
    # The sweep of satisfied waits leaves a held payment alone (its bill is linked).
    app.dispatcher.release_satisfied_waits()  # type: ignore[union-attr]
    time.sleep(0.2)
    assert _link(stub, PAYMENT, payment.header.id).last_error.reason == "XERO_DOCUMENT_CHANGED"
    assert _payments_sent(emulator, org["tenant_id"]) == []


def test_a_payment_for_a_bill_voided_in_xero_waits_and_unlinking_the_bill_resolves_its_drift(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(3200)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    invoice_id = _linked_bill(stub, bill)
    emulator.hand_edit(org["tenant_id"], "Invoices", invoice_id, {"Status": "VOIDED"})
    record_drift(app, RecordRef(BILL, bill.header.id), "VOIDED_IN_XERO", "", "VOIDED")
    emulator.state.requests.clear()

    link = _held(stub, payment)

    assert "was voided in Xero" in link.last_error.message
    assert "Xero does not undo a void" in link.last_error.message
    assert _payments_sent(emulator, org["tenant_id"]) == []

    unlink(app.db, "firm-1", RecordRef(BILL, bill.header.id), "operator:test")

    with UnitOfWork(app.db, write=False) as uow:
        bill_link = uow.links.get_link("firm-1", RecordRef(BILL, bill.header.id))
        assert bill_link is not None
        drifts = uow.drift.list_drifts("firm-1", None, [], bill_link.id, None, 10)
        assert [(d.state, d.resolution, d.resolved_by) for d in drifts] == [("resolved", "UNLINKED", "operator:test")]
    after = _link(stub, PAYMENT, payment.header.id)
    assert after.state == poster_pb2.LINK_STATE_WAITING
    assert after.last_error.reason == "DEPENDENCY_NOT_LINKED"
    assert _payments_sent(emulator, org["tenant_id"]) == []


def _resolve(app: PosterApp, drift_id: int, resolution: str, xero: XeroState) -> None:
    def write(uow: UnitOfWork) -> None:
        drift = drift_resolution.get_drift(uow, "firm-1", drift_id)
        drift_resolution.resolve(uow, drift, resolution, "checked with the bookkeeper", xero, "operator:test", now_us())

    run_in_transaction(app.db, write)
    app.dispatcher.changes.notify()  # type: ignore[union-attr]


def test_accepting_xeros_version_fails_the_held_payment_saying_what_to_change_in_actionstep(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(3300)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    invoice_id = _linked_bill(stub, bill)
    emulator.hand_edit(org["tenant_id"], "Invoices", invoice_id, {"Status": "VOIDED"})
    drift = record_drift(app, RecordRef(BILL, bill.header.id), "VOIDED_IN_XERO", "", "VOIDED")
    _held(stub, payment)

    _resolve(app, drift, "ACCEPT_XERO", XeroState(document=json.dumps({"Status": "VOIDED"})))

    failed = _link(stub, PAYMENT, payment.header.id)
    assert failed.state == poster_pb2.LINK_STATE_FAILED
    assert failed.last_error.reason == "XERO_DOCUMENT_CHANGED"
    assert "Xero's version was accepted" in failed.last_error.message
    assert "delete this record in Actionstep" in failed.last_error.message
    with UnitOfWork(app.db, write=False) as uow:
        bill_link = uow.links.get_link("firm-1", RecordRef(BILL, bill.header.id))
        assert bill_link is not None
        [row] = uow.drift.list_drifts("firm-1", None, [], bill_link.id, None, 10)
        assert (row.state, row.resolution, row.resolve_note) == (
            "resolved",
            "ACCEPT_XERO",
            "checked with the bookkeeper",
        )
        audit = [a for a in uow.links.audit(bill_link.id or 0) if a.event == "drift_resolved"]
        assert len(audit) == 1 and audit[0].actor == "operator:test"
        assert json.loads(audit[0].detail)["resolution"] == "ACCEPT_XERO"
    assert _payments_sent(emulator, org["tenant_id"]) == []


def test_a_drift_corrected_in_xero_releases_the_held_payment_which_is_posted_once(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(3400)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    invoice_id = _linked_bill(stub, bill)
    [invoice] = [i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["InvoiceID"] == invoice_id]
    matched = emulator.bank_feed_match(
        org["tenant_id"],
        {"InvoiceID": invoice_id, "Amount": str(invoice["AmountDue"]), "Date": "2026-07-02", "AccountCode": "090"},
    )
    drift = record_drift(app, RecordRef(BILL, bill.header.id), "PAID_IN_XERO", "", "PAID")
    posting = _post(stub, payment)
    wait_for(lambda: _link(stub, PAYMENT, payment.header.id).last_error.reason == "XERO_DOCUMENT_CHANGED")

    # Still paid in Xero: CORRECTED is refused with the differences, and nothing changes.
    still = XeroState(document="{}", differences=[{"field": "Status", "posted": "AUTHORISED", "xero": "PAID"}])
    with pytest.raises(XerolinkError) as refused:
        _resolve(app, drift, "CORRECTED", still)
    assert refused.value.reason == "DRIFT_NOT_CORRECTED"
    assert [v.field for v in refused.value.field_violations] == ["Status"]
    assert _link(stub, PAYMENT, payment.header.id).state == poster_pb2.LINK_STATE_WAITING

    emulator.hand_edit(org["tenant_id"], "Payments", matched["PaymentID"], {"Status": "DELETED"})
    _resolve(app, drift, "CORRECTED", XeroState(document="{}"))

    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    ours = [p for p in xero_objects(emulator, org["tenant_id"], "Payments") if p["Status"] != "DELETED"]
    assert len(ours) == 1
    assert ours[0]["PaymentID"] == _link(stub, PAYMENT, payment.header.id).xero_objects[0].xero_id
