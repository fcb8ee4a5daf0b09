"""Attacks on the held first read of a Post or an unlink that replaces a record's work (b9c71ca:
posting_decisions._decide_against_links and unlinking.unlink_record read the record's link with
links_of(..., lock=True): SELECT ... FOR UPDATE, populate_existing; docs/unlinking.md, the
paragraph after the table). On the real PostgreSQL, with several posters: batches that replace
the same waiting records in other orders, a Post of a record whose Actionstep id another kind's
record shares, and a batch whose locked read refreshes a link it changed itself. The Post's
acknowledgement must stay fast and every record posted once. Every wait has a timeout."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.repositories.link_index import LinkIndex
from xerolink_poster.adapters.tables import LinkRow, OutboxRow, PostingRow
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer.posting import record_mapped
from xerolink_poster.service_layer.posting_values import ItemFailure, Mapped
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction
from xerolink_poster.service_layer.unlinking import unlink, unlink_record

from tests.fixtures.registry_rows import unreachable_connection
from tests.fixtures.threads import Call

BILL = RecordRef(1, 1)
# PostgreSQL's deadlock_timeout is 1 s: an answer later than this waited on a lock.
NO_WAIT = 0.8
# How long a transaction holding its first lock waits for the other to hold its own.
HOLD = 0.3
OLD = "f" * 64


# -- the registry ------------------------------------------------------------------------------


def _registry(database: Database, write: Callable[[UnitOfWork], Any]) -> Any:
    def setup(uow: UnitOfWork) -> Any:
        uow.connections.add_connection(unreachable_connection("c1", "t1"))
        return write(uow)

    return run_in_transaction(database, setup)


def _link_of(uow: UnitOfWork, record: RecordRef, events: list[Event]) -> LinkRow:
    """The record's link (any kind) taken through `events`, with its posting."""
    now = now_us()
    posting_id = f"p{record.kind}-{record.id}"
    link = uow.links.add_link(
        LinkRow(
            connection_id="c1",
            kind=record.kind,
            record_id=record.id,
            link_group=1,
            state="",
            fingerprint=OLD,
            posting_id=posting_id,
            create_us=now,
            update_us=now,
        )
    )
    uow.links.add_posting(
        PostingRow(
            posting_id=posting_id,
            connection_id="c1",
            kind=record.kind,
            record_id=record.id,
            link_id=link.id,
            fingerprint=OLD,
            decision=b"",
            state="",
            create_us=now,
        )
    )
    for event in events:
        uow.links.change_state(link, event, "caller:test", now_us(), "waiting" if event == Event.BLOCKED else "")
    return link


def _waiting(uow: UnitOfWork, record: RecordRef) -> int:
    """The record's link waiting on BILL (not linked) and its waiting entry: the entry's id."""
    link = _link_of(uow, record, [Event.ACCEPTED, Event.BLOCKED])
    now = now_us()
    box = uow.outbox.add_outbox(
        True,
        OutboxRow(
            tenant_id="t1",
            connection_id="c1",
            link_id=link.id or 0,
            posting_id=link.posting_id,
            operations=b"",
            state=OutboxState.WAITING,
            available_us=now,
            create_us=now,
        ),
    )
    uow.outbox.insert_waits([{"outbox_id": box.id, "connection_id": "c1", "kind": BILL.kind, "record_id": BILL.id}])
    return box.id or 0


def _mapped(database: Database, record: RecordRef, fingerprint: str, index: int = 0) -> Mapped:
    with UnitOfWork(database, write=False) as uow:
        connection = uow.connections.get_connection("c1")
        assert connection is not None
    response = mapper_pb2.MapTransactionResponse()
    response.record.kind = record.kind  # type: ignore[assignment]
    response.record.id = record.id
    response.decision.supported = True
    return Mapped(
        index=index,
        connection=connection,
        transaction=transaction_pb2.Transaction(),
        response=response,
        fingerprint=fingerprint,
        actor="caller:test",
        trace_context="",
    )


def _post(database: Database, items: list[Mapped]) -> list[Any]:
    """A BatchPostTransactions' write: the mapped items in one transaction (Poster._post_many_to)."""
    return run_in_transaction(database, lambda uow: record_mapped(uow, items))


def _state(database: Database, record: RecordRef) -> tuple[str, str, int, list[tuple[int, str]]]:
    """The link's state, fingerprint, attempts and its open outbox entries (id, state)."""
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link("c1", record)
        assert link is not None
        found = uow.outbox.outbox_by_ids(list(range(1, 200)))
        open_ = sorted(
            (r.id or 0, str(r.state))
            for r in found.values()
            if r.link_id == link.id and r.state != OutboxState.DONE.value
        )
        return str(link.state), link.fingerprint, link.attempts, open_


def _consistent(database: Database, record: RecordRef) -> None:
    """Entry and link agree: a pending link has exactly one ready entry, a waiting one one
    waiting entry, and nothing else is open (the record is posted once)."""
    state, _, _, entries = _state(database, record)
    expected = {LinkState.PENDING.value: OutboxState.READY.value, LinkState.WAITING.value: OutboxState.WAITING.value}
    assert state in expected, (record, state, entries)
    assert [s for _, s in entries] == [expected[state]], (record, state, entries)


# -- two batches replace the same waiting records in other orders --------------------------------


def _meet_after_first_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads (not the test's) each take their first locked read of links, then wait up to
    HOLD for the other to have taken its own: the interleaving concurrent callers meet by chance.
    The wait breaks when the other is waiting on a lock this one holds (they lock in one order)."""
    barrier = threading.Barrier(2)
    locked_calls: dict[int, int] = {}
    real = LinkIndex.links_of

    def gated(self: LinkIndex, connection_id: str, records: Any, lock: bool) -> Any:
        found = real(self, connection_id, records, lock)
        me = threading.get_ident()
        if lock and threading.current_thread() is not threading.main_thread():
            locked_calls[me] = locked_calls.get(me, 0) + 1
            if locked_calls[me] == 1:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=HOLD)
        return found

    monkeypatch.setattr(LinkIndex, "links_of", gated)


@pytest.mark.timeout(60)
def test_two_batches_replacing_the_same_waiting_records_in_other_orders_neither_deadlock_nor_stall(
    pg: Database, other_poster: Database, conflicts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two callers each send a BatchPostTransactions with edits of the same two waiting payments,
    one as [P1, P2], the other as [P2, P1], to two posters. Each item's decision locks its own
    link as it comes to it (links_of(..., [record], lock=True), one record a call), so the locks
    are taken in the batch's order, not in one order for every transaction: each batch holds its
    first payment and waits for the other's. PostgreSQL finds the deadlock after deadlock_timeout
    (1 s), aborts one batch (40P01) and run_in_transaction runs it again. The acknowledgement of a
    Post is meant to be fast; a caller's batch must not wait a second on another caller's, nor
    be rolled back as a deadlock victim. (The barrier only fixes the interleaving that concurrent
    callers meet by chance.)"""
    p1, p2 = RecordRef(1, 11), RecordRef(1, 12)
    _registry(pg, lambda uow: [_waiting(uow, p1), _waiting(uow, p2)])
    _meet_after_first_locks(monkeypatch)
    forward = [_mapped(pg, p1, "a" * 64, 0), _mapped(pg, p2, "a" * 64, 1)]
    backward = [_mapped(pg, p2, "b" * 64, 0), _mapped(pg, p1, "b" * 64, 1)]
    calls = [
        Call(lambda: _post(pg, forward), callers=True),
        Call(lambda: _post(other_poster, backward), callers=True),
    ]
    fast = [c.answered_within(NO_WAIT + 0.5) for c in calls]
    answers = [c.result(timeout=30.0) for c in calls]
    took = [round(c.took or 0.0, 2) for c in calls]
    facts = f"took {took}, retried {conflicts}, answers {answers}"
    # Posted once, whatever the order: each payment pending or waiting with one open entry.
    for record in (p1, p2):
        _consistent(pg, record)
    assert "40P01" not in conflicts, "a batch was a deadlock victim: " + facts
    assert all(fast) and max(took) < NO_WAIT, "a batch waited on the other's locks: " + facts


# -- a Post waits for an unrelated record that shares its Actionstep id ---------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("caller", ["post", "unlink"])
def test_replacing_a_waiting_payment_does_not_wait_on_another_kinds_record_with_the_same_id(
    pg: Database, other_poster: Database, caller: str
) -> None:
    """Actionstep numbers each kind on its own: payment 2 and the bill of kind 5 numbered 2 are
    different records. Another poster holds bill 5/2's link (the dispatcher applying Xero's answer
    for it, an unlink or a Post of it: a row lock until its transaction ends). A Post of the edited
    payment 1/2, or an unlink of it, takes links_of(..., [RecordRef(1, 2)], lock=True), whose query
    selects `record_id IN (2)` of every kind FOR UPDATE before filtering by kind in Python: it
    locks, and waits for, the unrelated bill's link too. The Post's acknowledgement then lasts as
    long as someone else's transaction on an unrelated record (and a release relying on that bill
    is skipped meanwhile)."""
    payment, namesake = RecordRef(1, 2), RecordRef(5, 2)
    _registry(pg, lambda uow: (_waiting(uow, payment), _link_of(uow, namesake, [Event.ACCEPTED, Event.POSTED])))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with UnitOfWork(other_poster) as uow:
            assert namesake in uow.links.links_of("c1", [namesake], lock=True)
            holding.set()
            release.wait(10.0)

    holder = Call(hold)
    try:
        assert holding.wait(10.0), "the other poster never held the bill's link"
        if caller == "post":
            call = Call(lambda: _post(pg, [_mapped(pg, payment, "e" * 64)]), callers=True)
        else:
            call = Call(lambda: unlink(pg, "c1", payment, "operator:test"))
        in_time = call.answered_within(NO_WAIT + 1.0)
    finally:
        release.set()
    holder.result(timeout=15.0)
    answer = call.result(timeout=15.0)
    assert not any(isinstance(a, ItemFailure) for a in (answer if isinstance(answer, list) else [])), answer
    state, fingerprint, _, entries = _state(pg, payment)
    facts = f"took {call.took:.2f}s, payment {state} {fingerprint[:1]} {entries}"
    if caller == "post":
        assert (state, fingerprint) == (LinkState.PENDING.value, "e" * 64), facts
    else:
        assert state == LinkState.UNLINKED.value and entries == [], facts
    assert in_time, f"the {caller} of payment 1/2 waited for the lock on bill 5/2: " + facts


# -- a batch's locked read refreshes a link the batch already changed ----------------------------


@pytest.mark.timeout(60)
def test_a_batch_whose_locked_read_refreshes_a_link_it_changed_keeps_the_change(pg: Database) -> None:
    """One batch: first the failed bill 5/2 posted again with other content (its decision sets the
    loaded link's fingerprint, attempts, last_error, outcome_unknown in the session, unflushed),
    then the edited waiting payment 1/2, whose locked read selects record_id 2 of every kind with
    populate_existing: the bill's row comes back too and is refreshed from the database. Unless
    the session flushed the bill's changes first, the refresh discards them, and the bill is
    re-posted with the old fingerprint (entry and link disagree on what was posted)."""
    bill, payment = RecordRef(5, 2), RecordRef(1, 2)

    def setup(uow: UnitOfWork) -> None:
        failed = _link_of(uow, bill, [Event.ACCEPTED, Event.XERO_REJECTED])
        failed.attempts = 3
        failed.last_error = "rejected"
        _waiting(uow, payment)

    _registry(pg, setup)
    answers = _post(pg, [_mapped(pg, bill, "b" * 64, 0), _mapped(pg, payment, "e" * 64, 1)])
    assert not any(isinstance(a, ItemFailure) for a in answers), answers
    for record, fingerprint in ((bill, "b" * 64), (payment, "e" * 64)):
        state, stored, attempts, entries = _state(pg, record)
        assert (state, stored, attempts) == (LinkState.PENDING.value, fingerprint, 0), (record, state, attempts)
        assert [s for _, s in entries] == [OutboxState.READY.value], (record, entries)


# -- a Post batch against an unlink of the same records ------------------------------------------


@pytest.mark.timeout(60)
def test_a_batch_and_an_unlink_of_the_same_waiting_records_do_not_deadlock(
    pg: Database, other_poster: Database, conflicts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller's batch edits [P2, P1] (P1's link has the lower id) while the correction saga
    unlinks P1 and then P2 in one transaction on another poster. The batch locks P2 first (its
    order), the unlinks P1 first: each waits for the other. A deadlock costs the caller a second
    and a rollback; after it, each record must still be either unlinked with nothing open or
    posted once."""
    p1, p2 = RecordRef(1, 21), RecordRef(1, 22)
    _registry(pg, lambda uow: [_waiting(uow, p1), _waiting(uow, p2)])
    _meet_after_first_locks(monkeypatch)

    def saga() -> Any:
        def work(uow: UnitOfWork) -> Any:
            return [unlink_record(uow, "c1", r, "correction:test").state for r in (p1, p2)]

        return run_in_transaction(other_poster, work)

    batch = [_mapped(pg, p2, "b" * 64, 0), _mapped(pg, p1, "b" * 64, 1)]
    calls = [Call(lambda: _post(pg, batch), callers=True), Call(saga)]
    fast = calls[0].answered_within(NO_WAIT + 0.5)
    for c in calls:
        c.thread.join(30.0)  # an unlink refused (POSTING_IN_PROGRESS) is an answer: see c.error
        assert not c.thread.is_alive(), "still waiting"
    facts = f"took {[round(c.took or 0.0, 2) for c in calls]}, retried {conflicts}, errors {[c.error for c in calls]}"
    assert calls[0].error is None, facts
    for record in (p1, p2):
        state, _, _, entries = _state(pg, record)
        if state == LinkState.UNLINKED.value:
            assert entries == [], (record, entries, facts)
        else:
            _consistent(pg, record)
    assert "40P01" not in conflicts, "the Post and the unlink deadlocked: " + facts
    assert fast and (calls[0].took or 0.0) < NO_WAIT, "the Post waited on the unlink's locks: " + facts
