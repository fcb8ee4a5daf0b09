"""Post's rules at the service layer, on the fake unit of work (no database, no servers): a new
record is accepted and queued, the same content again is a duplicate, changed content reposts or
is refused by the link's state."""

from __future__ import annotations

from xerolink.actionstep.v1 import transaction_pb2
from xerolink_common.errors import ErrorCode
from xerolink_mapper import samples
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState, OutboxState
from xerolink_poster.service_layer.unlinking import unlink_record

from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes.posts import (
    accepted,
    connected,
    link_of,
    mapped,
    open_entry,
    post,
    post_all,
    refused,
    xero_created,
    xero_gave_up,
)

BILL_ID = 1101
BILL = RecordRef(1, BILL_ID)


def bill(reference: str = "") -> transaction_pb2.Transaction:
    transaction = samples.sample_transactions(1100)["client_bill"]
    if reference:  # changed content: a new version of the same record
        transaction.header.reference = reference
    return transaction


def test_a_new_record_is_accepted_pending_and_queued_ready() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)

    outcome = accepted(post(uow, connection, bill()))

    assert not outcome.duplicate and outcome.posting is not None
    link = link_of(uow, BILL)
    assert (link.state, link.generation, link.posting_id) == (LinkState.PENDING, 1, outcome.posting.posting_id)
    entry = open_entry(uow, BILL)
    assert (entry.state, entry.posting_id, entry.uncertain) == (OutboxState.READY, outcome.posting.posting_id, False)
    assert entry.tenant_id == connection.xero_tenant_id
    [audit] = uow.links.audit(link.id or 0)
    assert (audit.event, audit.from_state, audit.to_state) == ("accepted", "", "pending")


def test_the_same_version_again_is_a_duplicate_of_the_first_posting_and_queues_nothing() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    first = accepted(post(uow, connection, bill()))

    again = accepted(post(uow, connection, bill()))

    assert again.duplicate and again.posting is not None and first.posting is not None
    assert again.posting.posting_id == first.posting.posting_id
    assert len(uow.registry.outbox) == 1 and len(uow.registry.postings) == 1


def test_the_same_version_of_a_linked_record_is_a_duplicate() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, bill()))
    xero_created(uow, BILL)

    again = accepted(post(uow, connection, bill()))

    assert again.duplicate and link_of(uow, BILL).state == LinkState.LINKED
    assert uow.outbox.open_outbox_of_link(link_of(uow, BILL).id or 0) == []


def test_a_new_version_while_the_first_is_being_posted_is_refused_in_progress() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, bill()))

    failure = refused(post(uow, connection, bill("edited")))

    assert (failure.error.code, failure.error.reason) == (ErrorCode.FAILED_PRECONDITION, "POSTING_IN_PROGRESS")
    assert len(uow.registry.postings) == 1


def test_a_new_version_of_a_linked_record_is_locked_until_unlinked() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, bill()))
    xero_created(uow, BILL)

    failure = refused(post(uow, connection, bill("edited")))

    assert (failure.error.code, failure.error.reason) == (ErrorCode.FAILED_PRECONDITION, "LINK_LOCKED")
    assert link_of(uow, BILL).state == LinkState.LINKED


def test_a_new_version_of_a_failed_record_reposts_with_a_fresh_posting() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    first = accepted(post(uow, connection, bill()))
    xero_gave_up(uow, BILL)
    assert link_of(uow, BILL).last_error

    again = accepted(post(uow, connection, bill("edited")))

    assert not again.duplicate and again.posting is not None and first.posting is not None
    assert again.posting.posting_id != first.posting.posting_id
    link = link_of(uow, BILL)
    assert (link.state, link.attempts, link.last_error, link.generation) == (LinkState.PENDING, 0, None, 1)
    assert open_entry(uow, BILL).posting_id == again.posting.posting_id
    assert uow.links.audit(link.id or 0)[-1].event == "retry_accepted"


def test_the_same_version_of_a_record_whose_outcome_is_unknown_reposts_looking_xero_up_first() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, bill()))
    xero_gave_up(uow, BILL, outcome_unknown=True)

    accepted(post(uow, connection, bill()))

    assert open_entry(uow, BILL).uncertain
    assert not link_of(uow, BILL).outcome_unknown


def test_a_new_version_of_a_record_whose_outcome_is_unknown_is_refused() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, bill()))
    xero_gave_up(uow, BILL, outcome_unknown=True)

    failure = refused(post(uow, connection, bill("edited")))

    assert failure.error.reason == "LINK_OUTCOME_UNKNOWN"
    assert link_of(uow, BILL).outcome_unknown


def test_a_new_version_of_a_record_that_failed_part_way_into_xero_is_refused() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, bill()))
    link = link_of(uow, BILL)
    link.xero_objects = '[{"type": 2, "xero_id": "inv-1", "local_ref": "op-1", "number": ""}]'
    xero_gave_up(uow, BILL)

    assert refused(post(uow, connection, bill("edited"))).error.reason == "LINK_PARTIALLY_POSTED"


def test_an_unlinked_record_posted_again_starts_a_new_generation_with_no_xero_objects() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, bill()))
    xero_created(uow, BILL)
    uow.run(lambda u: unlink_record(u, connection.connection_id, BILL, "operator"))

    again = accepted(post(uow, connection, bill("edited")))

    link = link_of(uow, BILL)
    assert not again.duplicate
    assert (link.state, link.generation, uow.links.xero_objects(link)) == (LinkState.PENDING, 2, [])


def test_a_request_id_replays_its_first_answer_and_refuses_another_request() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    first = accepted(post(uow, connection, bill(), request_id="req-1"))

    replay = accepted(post(uow, connection, bill(), request_id="req-1"))
    other = refused(post(uow, connection, samples.sample_transactions(1100)["credit_note"], request_id="req-1"))

    assert replay.duplicate and replay.posting is not None and first.posting is not None
    assert replay.posting.posting_id == first.posting.posting_id
    assert (other.error.code, other.error.reason) == (ErrorCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")


def test_a_batch_answers_a_repeated_item_with_the_first_ones_posting_and_refuses_items_one_by_one() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    items = [mapped(connection, bill()), mapped(connection, bill()), mapped(connection, bill("edited"))]

    first, repeat, changed = post_all(uow, items)

    first, repeat = accepted(first), accepted(repeat)
    assert repeat.duplicate and repeat.posting is first.posting
    assert refused(changed).error.reason == "POSTING_IN_PROGRESS"
    assert len(uow.registry.outbox) == 1


def test_a_repost_closes_the_old_work_of_the_link() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    payment = samples.sample_transactions(1100)["client_bill_payment"]
    accepted(post(uow, connection, payment))  # waits for its bill
    payment_record = RecordRef(2, payment.header.id)
    old = open_entry(uow, payment_record)

    payment.header.reference = "edited"
    accepted(post(uow, connection, payment))

    assert uow.outbox.get_outbox(old.id or 0) is not None and old.state == OutboxState.DONE
    assert uow.outbox.connection_waits_of(old.id or 0) == []
    assert open_entry(uow, payment_record).id != old.id
