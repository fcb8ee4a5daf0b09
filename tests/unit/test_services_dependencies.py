"""Dependencies at the service layer, on the fake unit of work: a payment on a document that is
not linked waits, saying for what, and is released when the document links."""

from __future__ import annotations

import json

from xerolink_mapper import samples
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState, OutboxState

from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes.posts import accepted, connected, link_of, mapped, open_entry, post, post_all, xero_created

SAMPLE = samples.sample_transactions(1100)
BILL, PAYMENT = RecordRef(1, 1101), RecordRef(2, 1102)
CREDIT_NOTE, APPLICATION = RecordRef(3, 1103), RecordRef(4, 1104)


def test_a_payment_on_a_bill_never_posted_waits_with_its_reason() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)

    outcome = accepted(post(uow, connection, SAMPLE["client_bill_payment"]))

    assert outcome.posting is not None and outcome.posting.state == LinkState.WAITING
    link = link_of(uow, PAYMENT)
    assert link.state == LinkState.WAITING and link.waiting_on == "[[1, 1101]]"
    error = json.loads(link.last_error or "{}")
    assert error["reason"] == "DEPENDENCY_NOT_LINKED" and str(BILL) in error["message"]
    entry = open_entry(uow, PAYMENT)
    assert entry.state == OutboxState.WAITING and uow.outbox.connection_waits_of(entry.id or 0) == [
        (connection.connection_id, BILL)
    ]
    assert uow.links.audit(link.id or 0)[-1].event == "blocked"


def test_a_payment_on_a_pending_bill_waits_and_is_released_when_the_bill_links() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, SAMPLE["client_bill"]))
    accepted(post(uow, connection, SAMPLE["client_bill_payment"]))
    waiting = open_entry(uow, PAYMENT)
    assert waiting.state == OutboxState.WAITING

    released = xero_created(uow, BILL)

    assert released == [waiting.id]
    assert waiting.state == OutboxState.READY and uow.outbox.connection_waits_of(waiting.id or 0) == []
    link = link_of(uow, PAYMENT)
    assert (link.state, link.waiting_on, link.last_error) == (LinkState.PENDING, "[]", None)
    assert uow.links.audit(link.id or 0)[-1].event == "released"


def test_a_payment_on_a_linked_bill_is_queued_ready_at_once() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, SAMPLE["client_bill"]))
    xero_created(uow, BILL)

    accepted(post(uow, connection, SAMPLE["client_bill_payment"]))

    assert link_of(uow, PAYMENT).state == LinkState.PENDING
    assert open_entry(uow, PAYMENT).state == OutboxState.READY


def test_an_application_waits_for_both_its_documents_and_is_released_only_by_the_last() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    post_all(uow, [mapped(connection, SAMPLE[k]) for k in ("client_bill", "credit_note", "credit_note_application")])
    entry = open_entry(uow, APPLICATION)
    assert uow.outbox.connection_waits_of(entry.id or 0) == [(connection.connection_id, r) for r in (BILL, CREDIT_NOTE)]

    assert xero_created(uow, BILL) == []
    assert entry.state == OutboxState.WAITING and link_of(uow, APPLICATION).state == LinkState.WAITING

    assert xero_created(uow, CREDIT_NOTE) == [entry.id]
    assert entry.state == OutboxState.READY and link_of(uow, APPLICATION).state == LinkState.PENDING
