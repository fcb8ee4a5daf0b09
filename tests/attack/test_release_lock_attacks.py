"""Attacks on "a release never waits on a lock" (outcomes.release_entry: the entry FOR UPDATE SKIP
LOCKED, the links of what it waits for FOR SHARE SKIP LOCKED; docs/poster.md, "The safety net for
waits"). On the real PostgreSQL: another poster's Unlink of the waiting payment (the operator's
multi-record Unlink, which locks the links it plans for, and the single-record step), a Post of the
edited payment, and two posters each linking one of the payment's bills. The release skips what it
finds locked; it must not wait on, or deadlock with, what it did not skip (the payment's own link,
the entry's wait rows). Every wait has a timeout: a test fails, never hangs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer import outcomes, unlinking
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction
from xerolink_poster.service_layer.unlinking import unlink, unlink_links

from tests.fixtures.registry_rows import link_with_posting, linked_record, unreachable_connection, waiting_entry
from tests.fixtures.threads import Call

BILL = RecordRef(1, 1)
OTHER_BILL = RecordRef(1, 3)
PAYMENT = RecordRef(1, 2)

# PostgreSQL's deadlock_timeout is 1 s: a wait longer than this is a lock wait, not a skip.
NO_WAIT = 0.8


# -- the registry ----------------------------------------------------------------------------------


def _linked(uow: UnitOfWork, record: RecordRef, connection_id: str = "c1") -> None:
    linked_record(uow, record, connection_id)


def _waiting_payment(uow: UnitOfWork, waits: list[tuple[str, RecordRef]]) -> int:
    """The payment's link waiting and its outbox entry waiting for `waits`: its id."""
    return waiting_entry(uow, PAYMENT.id, waits)


def _registry(database: Database, write: Callable[[UnitOfWork], int]) -> int:
    def setup(uow: UnitOfWork) -> int:
        uow.connections.add_connection(unreachable_connection("c1", "t1"))
        return write(uow)

    return int(run_in_transaction(database, setup))


def _bill_linked_payment_waiting(database: Database) -> int:
    def setup(uow: UnitOfWork) -> int:
        _linked(uow, BILL)
        return _waiting_payment(uow, [("c1", BILL)])

    return _registry(database, setup)


def _state(database: Database, outbox_id: int) -> tuple[str, str, list[str]]:
    """The entry's state, the payment link's state and its audit events."""
    with UnitOfWork(database, write=False) as uow:
        row = uow.outbox.get_outbox(outbox_id)
        link = uow.links.get_link("c1", PAYMENT)
        assert row is not None and link is not None
        return str(row.state), str(link.state), [a.event for a in uow.links.audit(link.id or 0)]


def _dispatcher(database: Database) -> Dispatcher:
    """A supervisor with no Xero that starts no worker: its sweep is called by the test."""
    return Dispatcher(database, cast(XeroClient, None), DispatcherSettings(max_tenants=0), "poster-a")


def _consistent(entry: str, link: str) -> bool:
    """An entry done goes with a link not waiting nor pending; a released (ready) entry with a
    pending link; a waiting entry with a waiting link."""
    return (entry, link) in {
        (OutboxState.DONE.value, LinkState.UNLINKED.value),
        (OutboxState.READY.value, LinkState.PENDING.value),
        (OutboxState.WAITING.value, LinkState.WAITING.value),
    }


# -- the operator's Unlink holds the payment's link: the sweep's release waits on it ----------------


def test_the_sweep_does_not_wait_on_or_deadlock_with_an_unlink_holding_the_waiting_payments_link(
    pg: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """An operator unlinks the waiting payment (Unlink, unlink_links) on another poster: it locks
    the payment's link (links_of, FOR UPDATE), plans, then closes the payment's open entry. The
    sweep, meanwhile, found the entry satisfied: it locks the entry (SKIP LOCKED: not locked yet),
    the bill's link (not locked) and then writes the payment's link, which the unlink holds: the
    release waits on a lock, against the doc's "a release never waits on a lock". When the unlink
    goes on to close the entry the release holds, the two deadlock (PostgreSQL aborts one)."""
    outbox_id = _bill_linked_payment_waiting(pg)
    holding, go = threading.Event(), threading.Event()
    real_plan: Callable[..., Any] = getattr(unlinking, "plan_unlink")  # noqa: B009

    def gated_plan(*args: Any, **kwargs: Any) -> Any:
        if not holding.is_set():  # the first attempt only: a retry goes straight on
            holding.set()
            go.wait(15.0)
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(unlinking, "plan_unlink", gated_plan)
    operator = Call(
        lambda: unlink_links(
            other_poster,
            "c1",
            [(PAYMENT.kind, PAYMENT.id)],
            validate_only=False,
            confirm=True,
            cascade=False,
            reason="wrong payment",
            actor="operator:test",
        ),
        callers=True,
    )
    assert holding.wait(10.0), "the unlink never got to its plan"

    dispatcher = _dispatcher(pg)
    found = dispatcher.satisfied_waits()
    assert found == [outbox_id]
    sweep = Call(lambda: dispatcher.release_waits(found))
    sweep_waited = not sweep.answered_within(NO_WAIT * 2)
    go.set()  # the unlink closes the payment's entry now
    sweep_error: BaseException | None = None
    operator_error: BaseException | None = None
    try:
        sweep.result(timeout=20.0)
    except BaseException as exc:  # reported below
        sweep_error = exc
    try:
        operator.result(timeout=20.0)
    except BaseException as exc:  # reported below
        operator_error = exc
    entry, link, events = _state(pg, outbox_id)
    facts = (
        f"sweep waited on a lock: {sweep_waited} (took {sweep.took}), retried conflicts: {conflicts}, "
        f"sweep error: {sweep_error!r}, unlink error: {operator_error!r}, entry {entry}, link {link}, "
        f"audit {events}"
    )
    assert not sweep_waited, facts
    assert "40P01" not in conflicts, facts
    assert sweep_error is None and operator_error is None, facts
    assert (entry, link) == (OutboxState.DONE.value, LinkState.UNLINKED.value), facts


# -- the single-record unlink between the release's check and its write ----------------------------


def test_unlinking_the_payment_between_the_releases_check_and_its_write_does_not_deadlock(
    pg: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The sweep locked the payment's entry and found its bill linked. Right then, another
    poster's unlink of the payment (unlink_record) deletes the entry's wait rows and waits to close
    the entry, which the release holds. The release goes on to delete the same wait rows
    (clear_waits): each waits for the other, a deadlock PostgreSQL breaks after deadlock_timeout by
    aborting one; a release that "never waits on a lock" would have no part in it."""
    outbox_id = _bill_linked_payment_waiting(pg)
    real = outcomes.unlinked_waits
    seen: dict[str, Any] = {"call": None}

    def hooked(*args: Any, **kwargs: Any) -> list[tuple[str, RecordRef]]:
        found = real(*args, **kwargs)
        if seen["call"] is None and not found:  # the sweep's first check, on the sweep's thread
            call = Call(lambda: unlink(other_poster, "c1", PAYMENT, "operator:test"), callers=True)
            seen["call"] = call
            call.answered_within(NO_WAIT)  # let it reach the entry the release holds
        return found

    monkeypatch.setattr(outcomes, "unlinked_waits", hooked)
    dispatcher = _dispatcher(pg)
    found = dispatcher.satisfied_waits()
    assert found == [outbox_id]
    sweep = Call(lambda: dispatcher.release_waits(found))
    sweep_error: BaseException | None = None
    try:
        sweep.result(timeout=20.0)
    except BaseException as exc:  # reported below
        sweep_error = exc
    call = seen["call"]
    assert call is not None, "release_entry never found the waits linked"
    operator_error: BaseException | None = None
    try:
        call.result(timeout=20.0)
    except BaseException as exc:  # reported below
        operator_error = exc
    entry, link, events = _state(pg, outbox_id)
    facts = (
        f"retried conflicts: {conflicts}, sweep took {sweep.took}, sweep error: {sweep_error!r}, "
        f"unlink error: {operator_error!r}, entry {entry}, link {link}, audit {events}"
    )
    assert _consistent(entry, link), facts
    assert "40P01" not in conflicts, facts
    assert sweep_error is None, facts
    if operator_error is not None:
        # The unlink waited for the release, which held the payment's link, and read it again:
        # released, it is being posted, and the operator is told so (never closed while sent).
        assert (entry, link) == (OutboxState.READY.value, LinkState.PENDING.value), facts
        assert getattr(operator_error, "reason", None) == "POSTING_IN_PROGRESS", facts
    else:
        # The unlink went first: nothing was released (an unlink that read the payment waiting
        # before a release, then closed the released entry, could close one being sent).
        assert "released" not in events, facts


# -- two posters each link one of the payment's bills: the sweep is the safety net -----------------


def test_two_posters_each_linking_one_bill_skip_the_release_and_the_sweep_releases_it_once(
    pg: Database, other_poster: Database
) -> None:
    """Poster A links bill 1 and poster B bill 3 at once, each in its transaction, each releasing
    the payment's waiters (release_waiters with just_linked). Each finds the other's bill locked
    (SKIP LOCKED: not linked) or the entry held, so neither releases and neither waits: the sweep
    must then find the entry satisfied and release it exactly once."""

    def setup(uow: UnitOfWork) -> int:
        for bill in (BILL, OTHER_BILL):
            link = link_with_posting(uow, bill.id)
            uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us())
        return _waiting_payment(uow, [("c1", BILL), ("c1", OTHER_BILL)])

    outbox_id = _registry(pg, setup)
    both_linked = threading.Barrier(2, timeout=10.0)
    released: dict[str, list[int]] = {}

    def link_and_release(db: Database, bill: RecordRef, name: str) -> None:
        def work(uow: UnitOfWork) -> None:
            link = uow.links.get_link("c1", bill)
            assert link is not None
            uow.links.change_state(link, Event.POSTED, "dispatcher:test", now_us())
            assert uow.links.get_link("c1", bill) is not None  # a query: the link's update is flushed
            both_linked.wait()  # both bills' links written, neither committed
            released[name] = outcomes.release_waiters(uow, "c1", bill, now_us())

        run_in_transaction(db, work)

    a = Call(lambda: link_and_release(pg, BILL, "a"))
    b = Call(lambda: link_and_release(other_poster, OTHER_BILL, "b"))
    a_in_time, b_in_time = a.answered_within(5.0), b.answered_within(5.0)
    a.result(timeout=20.0)
    b.result(timeout=20.0)
    assert a_in_time and b_in_time, f"a release waited on a lock: took {a.took}, {b.took}"
    entry, link, events = _state(pg, outbox_id)
    if not released.get("a") and not released.get("b"):
        assert (entry, link) == (OutboxState.WAITING.value, LinkState.WAITING.value)
        dispatcher = _dispatcher(pg)
        assert dispatcher.satisfied_waits() == [outbox_id]
        dispatcher.release_waits(dispatcher.satisfied_waits())
        entry, link, events = _state(pg, outbox_id)
    assert (entry, link) == (OutboxState.READY.value, LinkState.PENDING.value), events
    assert events.count("released") == 1, events
