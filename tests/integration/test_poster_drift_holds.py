"""Work on a drifted document is held, not failed (docs/drift.md "Holds and resolution"): a
payment for a bill paid by a bank-feed match or voided in Xero waits with XERO_DOCUMENT_CHANGED
and is never sent; when no drift was known, Xero's refusal of the payment makes the poster read the
bill, record the drift and hold the payment; resolving the drift (ResolveDrift) fails or releases
it, and unlinking the bill resolves its drift. Each change is made in the emulator as a person
would (its admin API over HTTP) and found by a read of Xero. Real poster on loopback, real
emulator, both registries."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from xero_emulator import EmulatorServer
from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.service_layer.drift_rereads import RATE_LIMIT_RETRIES
from xerolink_poster.service_layer.unit_of_work import UnitOfWork
from xerolink_poster.service_layer.unlinking import unlink

from tests.fixtures.contacts import Handler, intercept
from tests.fixtures.drift_firm import Firm
from tests.fixtures.hand_edits import hand_edit
from tests.fixtures.poster import PosterFactory, settings, wait_for, wait_settled

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
ACCEPT_XERO = drift_pb2.DRIFT_RESOLUTION_ACCEPT_XERO
CORRECTED = drift_pb2.DRIFT_RESOLUTION_CORRECTED


def test_a_payment_for_a_bill_paid_by_a_bank_feed_match_waits_and_is_never_sent(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator, 3100)
    invoice = firm.linked_bill()
    firm.pay_in_full_by_bank_feed(invoice)
    assert firm.observe_bill(invoice) == ["PAID_IN_XERO"]
    [drift] = firm.drifts()
    emulator.state.requests.clear()

    link = firm.held()

    assert link.last_error.code == 9  # FAILED_PRECONDITION
    message = link.last_error.message
    assert f"invoice {invoice['InvoiceNumber']} was paid in Xero by a payment xerolink did not make" in message
    assert drift.name in message
    assert "not sent to Xero" in message and "--accept-xero" in message and "--corrected" in message
    assert [(v.field, v.description) for v in link.last_error.field_violations] == [("drift", drift.name)]
    assert [(w.kind, w.id) for w in link.waiting_on] == [(BILL, firm.bill.header.id)]
    assert firm.payment_calls() == []
    # The sweep of satisfied waits leaves a held payment alone (its bill is linked).
    firm.app.dispatcher.release_satisfied_waits()  # type: ignore[union-attr]
    time.sleep(0.2)
    assert firm.payment_link().last_error.reason == "XERO_DOCUMENT_CHANGED"
    assert firm.payment_calls() == []


def test_a_payment_for_a_bill_voided_in_xero_waits_and_unlinking_the_bill_resolves_its_drift(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator, 3200)
    invoice = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Status": "VOIDED"})
    assert firm.observe_bill(invoice) == ["VOIDED_IN_XERO"]
    emulator.state.requests.clear()

    link = firm.held()

    assert "was voided in Xero" in link.last_error.message
    assert "Xero does not undo a void" in link.last_error.message
    assert firm.payment_calls() == []

    unlink(firm.app.db, "firm-1", RecordRef(BILL, firm.bill.header.id), "operator:test")

    [drift] = firm.drifts()
    assert (drift.state, drift.resolution, drift.resolved_by) == (
        drift_pb2.DRIFT_STATE_RESOLVED,
        drift_pb2.DRIFT_RESOLUTION_UNLINKED,
        "operator:test",
    )
    after = firm.payment_link()
    assert after.state == poster_pb2.LINK_STATE_WAITING
    assert after.last_error.reason == "DEPENDENCY_NOT_LINKED"
    assert firm.payment_calls() == []
    # The unlinked invoice is watched no more: another read finds nothing.
    assert firm.observe_bill(invoice) == []


def test_a_sweep_that_found_the_held_payment_before_its_bill_was_unlinked_leaves_it_waiting(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """The safety net for waits reads, then writes: an unlink between the two must not release an
    entry whose bill is no longer linked (found once in CI: the payment was PENDING after the unlink)."""
    firm = Firm(poster_factory(), emulator, 3250)
    invoice = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Status": "VOIDED"})
    firm.observe_bill(invoice)
    firm.held()
    dispatcher = firm.app.dispatcher
    assert dispatcher is not None

    found = dispatcher.satisfied_waits()
    unlink(firm.app.db, "firm-1", RecordRef(BILL, firm.bill.header.id), "operator:test")
    dispatcher.release_waits(found)
    time.sleep(1.2)  # and the running sweep, twice a second, has had its turns

    after = firm.payment_link()
    assert (after.state, after.last_error.reason) == (poster_pb2.LINK_STATE_WAITING, "DEPENDENCY_NOT_LINKED")
    with UnitOfWork(firm.app.db, write=False) as uow:
        payment = uow.links.get_link("firm-1", RecordRef(PAYMENT, firm.payment.header.id))
        assert payment is not None
        assert "released" not in [a.event for a in uow.links.audit(payment.id or 0)]
    assert firm.payment_calls() == []


def test_accepting_xeros_version_fails_the_held_payment_saying_what_to_change_in_actionstep(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator, 3300)
    invoice = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Status": "VOIDED"})
    firm.observe_bill(invoice)
    [drift] = firm.drifts()
    firm.held()

    resolved = firm.resolve(drift.name, ACCEPT_XERO)

    assert (resolved.name, resolved.state, resolved.resolution) == (
        drift.name,
        drift_pb2.DRIFT_STATE_RESOLVED,
        ACCEPT_XERO,
    )
    assert (resolved.resolved_by, resolved.resolve_note) == ("caller:bookkeeper", "checked with the bookkeeper")
    failed = firm.payment_link()
    assert failed.state == poster_pb2.LINK_STATE_FAILED
    assert failed.last_error.reason == "XERO_DOCUMENT_CHANGED"
    assert "Xero's version was accepted" in failed.last_error.message
    assert "delete this record in Actionstep" in failed.last_error.message
    with UnitOfWork(firm.app.db, write=False) as uow:
        bill_link = uow.links.get_link("firm-1", RecordRef(BILL, firm.bill.header.id))
        assert bill_link is not None
        audit = [a for a in uow.links.audit(bill_link.id or 0) if a.event == "drift_resolved"]
        assert [a.actor for a in audit] == ["caller:bookkeeper"]
        detail = json.loads(audit[0].detail)
        assert (detail["resolution"], detail["drifts"], detail["note"]) == (
            "ACCEPT_XERO",
            drift.name,
            "checked with the bookkeeper",
        )
    # Xero's version is what xerolink compares with now: the voided invoice is no drift.
    assert firm.observe_bill(invoice) == []
    # Asked again the same way: the same answer, nothing more happens.
    assert firm.resolve(drift.name, ACCEPT_XERO) == resolved
    with pytest.raises(grpc.RpcError) as other:
        firm.resolve(drift.name, CORRECTED)
    assert other.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert from_rpc_error(other.value).reason == "DRIFT_ALREADY_RESOLVED"
    assert firm.payment_calls() == []


def test_a_drift_corrected_in_xero_releases_the_held_payment_which_is_posted_once(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator, 3400)
    invoice = firm.linked_bill()
    matched = firm.pay_in_full_by_bank_feed(invoice)
    firm.observe_bill(invoice)
    [drift] = firm.drifts()
    posting = firm.post(firm.payment)
    wait_for(lambda: firm.payment_link().last_error.reason == "XERO_DOCUMENT_CHANGED")

    # Still paid in Xero: CORRECTED is refused with the differences, and nothing changes.
    with pytest.raises(grpc.RpcError) as refused:
        firm.resolve(drift.name, CORRECTED)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = from_rpc_error(refused.value)
    assert error.reason == "DRIFT_NOT_CORRECTED"
    fields = [v.field for v in error.field_violations]
    assert "Status" in fields and f"Payments[PaymentID={matched['PaymentID'].lower()}].Amount" in fields
    assert firm.payment_link().state == poster_pb2.LINK_STATE_WAITING
    assert firm.drifts()[0].state == drift_pb2.DRIFT_STATE_OPEN

    hand_edit(emulator, firm.tenant, "Payments", matched["PaymentID"], {"Status": "DELETED"})
    resolved = firm.resolve(drift.name, CORRECTED)

    assert (resolved.state, resolved.resolution) == (drift_pb2.DRIFT_STATE_RESOLVED, CORRECTED)
    assert wait_settled(firm.stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    [ours] = firm.our_payments()
    assert ours["PaymentID"] == firm.payment_link().xero_objects[0].xero_id


@pytest.mark.parametrize("change", ["voided", "paid by a bank-feed match"])
def test_a_payment_xero_refuses_as_its_bill_changed_unseen_is_held_on_the_drift_the_poster_then_records(
    poster_factory: PosterFactory, emulator: EmulatorServer, change: str
) -> None:
    """No webhook or poll saw the change (neither is set up): Xero's refusal of the payment is
    what tells the poster, which reads the bill, records the drift and holds the payment."""
    firm = Firm(poster_factory(), emulator, 3500)
    invoice = firm.linked_bill()
    matched = ""
    if change == "voided":
        hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Status": "VOIDED"})
    else:
        matched = firm.pay_in_full_by_bank_feed(invoice)["PaymentID"]
    assert firm.drifts() == []
    emulator.state.requests.clear()

    link = firm.held()

    assert len(firm.payment_calls()) == 1  # sent once, refused: Xero holds no payment of it
    assert firm.our_payments(besides=matched) == []
    [drift] = firm.drifts()
    kind = drift_pb2.DRIFT_KIND_VOIDED_IN_XERO if change == "voided" else drift_pb2.DRIFT_KIND_PAID_IN_XERO
    assert (drift.kind, drift.state, drift.source) == (kind, drift_pb2.DRIFT_STATE_OPEN, drift_pb2.DRIFT_SOURCE_POSTING)
    assert drift.xero_id == invoice["InvoiceID"]
    assert drift.name in link.last_error.message
    assert link.attempts == 0
    assert [(w.kind, w.id) for w in link.waiting_on] == [(BILL, firm.bill.header.id)]
    time.sleep(0.3)
    assert len(firm.payment_calls()) == 1


def _rate_limit_reads(emulator: EmulatorServer, invoice_id: str, times: int) -> list[str]:
    """Xero answers the first `times` reads of the invoice 429 (with Retry-After); the paths read."""
    limited: list[str] = []

    def slow_down(request: Request, handle: Handler) -> Response:
        read = request.method == "GET" and request.path.rstrip("/").endswith(f"/Invoices/{invoice_id}")
        if read and len(limited) < times:
            limited.append(request.path)
            return Response.json(429, {"Title": "Too Many Requests", "Status": 429}, {"Retry-After": "0"})
        return handle(request)

    intercept(emulator, slow_down)
    return limited


def test_a_rate_limited_read_of_the_changed_bill_uses_up_none_of_the_payments_attempts(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Xero refuses the payment as its bill was voided, and answers the poster's reads of the bill
    429 (with Retry-After) through two rounds of them. A rate limit counts no attempt: the
    payment, allowed two, must still end held on the drift, not failed with XERO_RATE_LIMITED."""
    firm = Firm(poster_factory(settings(max_attempts=2)), emulator, 3700)
    invoice = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Status": "VOIDED"})
    limited = _rate_limit_reads(emulator, invoice["InvoiceID"], 2 * RATE_LIMIT_RETRIES)

    link = firm.held()

    assert len(limited) == 2 * RATE_LIMIT_RETRIES
    assert link.last_error.reason == "XERO_DOCUMENT_CHANGED", link.last_error.message
    assert firm.our_payments() == []


def test_a_rate_limited_read_of_the_orphan_holding_the_number_uses_up_none_of_the_bills_attempts(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """The bill, voided in Xero and unlinked, is posted again; Xero refuses its number as in use
    (it keeps a voided invoice's number), and the poster reads the voided orphan to decide whether
    the number is its own. Those reads are answered 429 (with Retry-After) through two rounds of
    them. A rate limit counts no attempt: the bill, allowed two, must still be posted under its
    repost number, not failed with XERO_RATE_LIMITED."""
    firm = Firm(poster_factory(settings(max_attempts=2)), emulator, 3800)
    invoice = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Status": "VOIDED"})
    unlink(firm.app.db, "firm-1", RecordRef(BILL, firm.bill.header.id), "operator:test")
    limited = _rate_limit_reads(emulator, invoice["InvoiceID"], 2 * RATE_LIMIT_RETRIES)

    posting = firm.post(firm.bill)
    bill = wait_settled(firm.stub, posting.name)

    assert len(limited) == 2 * RATE_LIMIT_RETRIES
    assert bill.state == poster_pb2.LINK_STATE_LINKED, firm.link(BILL, firm.bill.header.id).last_error
    [made] = firm.link(BILL, firm.bill.header.id).xero_objects
    assert made.number == f"{invoice['InvoiceNumber']}-repost-{firm.bill.header.id}-2"
    assert made.xero_id != invoice["InvoiceID"]
