"""Attacks on what a release skips (outcomes.release_entry: the entry, its wait rows and its link
FOR UPDATE SKIP LOCKED, the records' links FOR SHARE SKIP LOCKED; docs/poster.md, "The safety net
for waits"), on the real PostgreSQL where row locks are the point: a Post of the edited payment
superseding the waiting entry while the sweep releases it, entries whose wait rows are gone, and
many waiters on one bill released by several posters at once. Every wait has a timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.repositories.outbox import SqlOutboxRepository
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import LinkState, OutboxState
from xerolink_poster.service_layer import outcomes
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.posting import record_mapped
from xerolink_poster.service_layer.posting_values import Mapped
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.registry_rows import linked_record, unreachable_connection, waiting_entry
from tests.fixtures.threads import Call

BILL = RecordRef(1, 1)
PAYMENT = RecordRef(1, 2)
NO_WAIT = 0.8  # PostgreSQL's deadlock_timeout is 1 s: longer is a lock wait, not a skip


def _registry(database: Database, write: Callable[[UnitOfWork], Any]) -> Any:
    def setup(uow: UnitOfWork) -> Any:
        uow.connections.add_connection(unreachable_connection("c1", "t1"))
        return write(uow)

    return run_in_transaction(database, setup)


def _dispatcher(database: Database, name: str = "poster-a") -> Dispatcher:
    return Dispatcher(database, cast(XeroClient, None), DispatcherSettings(max_tenants=0), name)


def _entries_of(database: Database, record: RecordRef) -> list[tuple[int, str, str]]:
    """(id, state, claimed_by) of every outbox entry of the record's link."""
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link("c1", record)
        assert link is not None
        found = uow.outbox.outbox_by_ids(list(range(1, 200)))
        return sorted((r.id or 0, str(r.state), r.claimed_by) for r in found.values() if r.link_id == link.id)


def _link(database: Database, record: RecordRef) -> tuple[str, str, list[str]]:
    """The link's state, its xero_objects and its audit events."""
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link("c1", record)
        assert link is not None
        return str(link.state), link.xero_objects, [a.event for a in uow.links.audit(link.id or 0)]


# -- a Post of the edited payment supersedes the waiting entry while the sweep releases it ---------


def _edited_payment(database: Database) -> Mapped:
    with UnitOfWork(database, write=False) as uow:
        connection = uow.connections.get_connection("c1")
        assert connection is not None
    response = mapper_pb2.MapTransactionResponse()
    response.record.kind = PAYMENT.kind  # type: ignore[assignment]
    response.record.id = PAYMENT.id
    return Mapped(
        index=0,
        connection=connection,
        transaction=transaction_pb2.Transaction(),
        response=response,
        fingerprint="e" * 64,  # other content than the waiting posting's "f" * 64
        actor="caller:test",
        trace_context="",
    )


@pytest.mark.timeout(60)
def test_a_post_of_the_edited_payment_never_closes_an_entry_the_sweep_released_and_a_worker_sent(
    pg: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller edits the waiting payment and posts it again on poster B. The Post reads the
    payment's link (WAITING, plain read: a Post locks no link) and the link's open entries
    (open_outbox_of_link: the waiting entry E). Right then poster A's sweep releases E (E READY,
    link PENDING: release_entry took E and the link, neither held by the Post) and A's worker claims
    E and sends the old payment to Xero. The Post goes on from what it read: it closes E (DONE,
    over the worker's claim) and queues the edited payment (a new entry). The worker's answer is
    then dropped (still_ours: E is no longer ready), so Xero holds the old payment, recorded
    nowhere, and gets the edited one too: money posted twice. A Post reading the link PENDING is
    refused (in_progress); the release changed that state under a Post that had read it."""
    outbox_id = _registry(pg, lambda uow: (linked_record(uow, BILL), waiting_entry(uow, PAYMENT.id, [("c1", BILL)]))[1])
    read, go = threading.Event(), threading.Event()
    real = SqlOutboxRepository.open_outbox_of_link

    def gated(self: SqlOutboxRepository, link_id: int) -> Any:
        found = real(self, link_id)
        if not read.is_set() and threading.current_thread() is not threading.main_thread():
            read.set()
            go.wait(15.0)
        return found

    monkeypatch.setattr(SqlOutboxRepository, "open_outbox_of_link", gated)
    item = _edited_payment(pg)
    post = Call(lambda: run_in_transaction(other_poster, lambda uow: record_mapped(uow, [item])), callers=True)
    assert read.wait(15.0), "the Post never read the payment's open entries"

    dispatcher = _dispatcher(pg)
    assert dispatcher.satisfied_waits() == [outbox_id]
    sweep = Call(lambda: dispatcher.release_waits([outbox_id]))
    sweep_in_time = sweep.answered_within(5.0)
    claimed: list[int] = []
    if sweep_in_time:
        sweep.result(timeout=5.0)
        claim = Call(
            lambda: run_in_transaction(
                pg, lambda uow: [e.id for e in uow.outbox.claim("t1", "poster-a", 10, now_us(), 60_000_000)]
            )
        )
        if claim.answered_within(5.0):
            claimed = claim.result(timeout=1.0)
    go.set()
    post_error: BaseException | None = None
    try:
        post.result(timeout=30.0)
    except BaseException as exc:  # reported below
        post_error = exc
    if outbox_id in claimed:  # Xero created the old payment: the worker's answer comes back
        answer = outcomes.ElementResult(outbox_id, created=XeroObjectRef(4, "pay-old", "payment"))
        run_in_transaction(pg, lambda uow: outcomes.apply_batch(uow, [answer], "poster-a", "dispatcher:a", now_us()))
    entries = _entries_of(pg, PAYMENT)
    state, objects, events = _link(pg, PAYMENT)
    facts = (
        f"sweep in time {sweep_in_time}, claimed {claimed}, post error {post_error!r}, entries {entries}, "
        f"link {state} {objects}, audit {events}"
    )
    sent_unrecorded = outbox_id in claimed and "pay-old" not in objects
    open_again = any(i != outbox_id and s != OutboxState.DONE.value for i, s, _ in entries)
    assert not (sent_unrecorded and open_again), "the payment is sent twice: " + facts
    assert not sent_unrecorded, "Xero's payment is recorded nowhere: " + facts


# -- an entry whose wait rows are gone, left waiting ---------------------------------------------


@pytest.mark.timeout(60)
def test_a_waiting_entry_with_no_wait_rows_left_is_released_by_the_sweep(database: Database) -> None:
    """A transaction deleted the entry's wait rows (as a hold re-writing them, or a Post closing
    it, does) and the entry stayed WAITING. It waits for nothing: the sweep must find it and
    release it, with its link, rather than leave it waiting forever."""

    def setup(uow: UnitOfWork) -> int:
        linked_record(uow, BILL)
        entry = waiting_entry(uow, PAYMENT.id, [("c1", BILL)])
        uow.outbox.clear_waits(entry)
        return entry

    outbox_id = _registry(database, setup)
    dispatcher = _dispatcher(database)
    found = dispatcher.satisfied_waits()
    assert outbox_id in found
    dispatcher.release_waits(found)
    entries = _entries_of(database, PAYMENT)
    state, _, events = _link(database, PAYMENT)
    assert entries == [(outbox_id, OutboxState.READY.value, "")], (entries, state, events)
    assert state == LinkState.PENDING.value, events


# -- many waiters on one bill released by several posters at once --------------------------------


@pytest.mark.timeout(120)
def test_many_waiters_on_one_bill_released_by_an_answer_and_two_sweeps_are_each_released_once(
    pg: Database, other_poster: Database
) -> None:
    """Forty payments wait on one bill. Poster A's answer links the bill and releases its waiters
    (release_waiters, in the linking transaction) while poster B's sweep, and then A's, release
    what they find. Nobody waits on a lock; every payment ends READY with its link PENDING,
    released exactly once; none is left waiting."""
    payments = [RecordRef(1, 100 + i) for i in range(40)]

    def setup(uow: UnitOfWork) -> list[int]:
        linked_record(uow, BILL)
        return [waiting_entry(uow, p.id, [("c1", BILL)]) for p in payments]

    ids = _registry(pg, setup)
    sweeps = [_dispatcher(pg, "poster-a"), _dispatcher(other_poster, "poster-b")]
    barrier = threading.Barrier(3, timeout=10.0)

    def sweep(dispatcher: Dispatcher) -> None:
        found = dispatcher.satisfied_waits()
        barrier.wait()
        dispatcher.release_waits(found)

    def answer() -> list[int]:
        def work(uow: UnitOfWork) -> list[int]:
            barrier.wait()
            return outcomes.release_waiters(uow, "c1", BILL, now_us())

        return list(run_in_transaction(pg, work))

    calls = [Call(lambda d=d: sweep(d)) for d in sweeps] + [Call(answer)]  # type: ignore[misc]
    in_time = [c.answered_within(10.0) for c in calls]
    for c in calls:
        c.result(timeout=30.0)
    assert all(in_time), [c.took for c in calls]
    # the safety net: one more sweep picks up anything skipped
    last = _dispatcher(pg)
    last.release_waits(last.satisfied_waits())
    for payment, outbox_id in zip(payments, ids, strict=True):
        entries = _entries_of(pg, payment)
        state, _, events = _link(pg, payment)
        assert entries == [(outbox_id, OutboxState.READY.value, "")], (payment, entries, state, events)
        assert state == LinkState.PENDING.value and events.count("released") == 1, (payment, events)
