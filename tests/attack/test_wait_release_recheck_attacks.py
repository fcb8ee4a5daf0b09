"""Attacks on "release a waiting entry only when its records are linked in the releasing
transaction" (outcomes.release_entry and unlinked_waits; the supervisor's sweep split into
satisfied_waits, the read, and release_waits, the write). From outside, on both registries: another
poster (a second Database on the same registry) unlinking the bill, or releasing and posting the
payment, while the sweep re-checks; a dependency of another connection being corrected; two
dependencies linked by one call's answers (apply_batch, links written in bulk). What a user must
see: a payment released only while its bill is linked, posted once, and never left waiting behind
bills that linked. Every wait has a timeout: a test fails, never hangs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from xerolink_poster.adapters.correction_tables import CorrectionRow
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain.corrections import SagaState
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer import drift_holds, drift_resolution, outcomes
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction
from xerolink_poster.service_layer.unlinking import unlink

from tests.fixtures.registry_rows import link_with_posting, linked_record, unreachable_connection, waiting_entry
from tests.fixtures.threads import Call

BILL = RecordRef(1, 1)
OTHER_BILL = RecordRef(1, 3)
PAYMENT = RecordRef(1, 2)
HOLDER = "poster-a:worker"


# -- the registry, through its repositories ----------------------------------------------------------


def _linked(uow: UnitOfWork, record: RecordRef, connection_id: str = "c1") -> None:
    linked_record(uow, record, connection_id)


def _pending(uow: UnitOfWork, record: RecordRef, connection_id: str = "c1") -> None:
    link = link_with_posting(uow, record.id, connection_id)
    uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us())


def _waiting_payment(uow: UnitOfWork, waits: list[tuple[str, RecordRef]]) -> int:
    """The payment's link waiting and its outbox entry waiting for `waits`: its id."""
    return waiting_entry(uow, PAYMENT.id, waits)


def _registry(database: Database, write: Callable[[UnitOfWork], int]) -> int:
    def setup(uow: UnitOfWork) -> int:
        uow.connections.add_connection(unreachable_connection("c1", "t1"))
        uow.connections.add_connection(unreachable_connection("c2", "t2"))
        return write(uow)

    return int(run_in_transaction(database, setup))


def _entry(database: Database, outbox_id: int) -> str:
    with UnitOfWork(database, write=False) as uow:
        row = uow.outbox.get_outbox(outbox_id)
    assert row is not None
    return str(row.state)


def _link(database: Database, record: RecordRef, connection_id: str = "c1") -> str:
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link(connection_id, record)
    assert link is not None
    return str(link.state)


def _events(database: Database, record: RecordRef) -> list[str]:
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link("c1", record)
        assert link is not None
        return [a.event for a in uow.links.audit(link.id or 0)]


def _dispatcher(database: Database) -> Dispatcher:
    """A supervisor with no Xero that starts no worker: its sweep is called by the test."""
    return Dispatcher(database, cast(XeroClient, None), DispatcherSettings(max_tenants=0), "poster-a")


@pytest.fixture
def other_poster(database: Database) -> Iterator[Database]:
    """Another poster's registry handle: its own engines and pools on the same registry."""
    other = open_database(database.url)
    yield other
    other.dispose()


def _between_check_and_write(
    monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object], seconds: float = 3.0
) -> dict[str, Any]:
    """Runs `meanwhile` on another thread (a caller's) right after release_entry found, on this
    thread, that every wait is linked, and waits up to `seconds` for it: on PostgreSQL it commits
    there, on SQLite it waits for this writer. What happened: finished inside, and the Call."""
    real = outcomes.unlinked_waits
    me = threading.get_ident()
    seen: dict[str, Any] = {"inside": False, "call": None}

    def hooked(*args: Any, **kwargs: Any) -> list[tuple[str, RecordRef]]:
        found = real(*args, **kwargs)
        if threading.get_ident() == me and seen["call"] is None and not found:
            call = Call(meanwhile, callers=True)
            seen["call"] = call
            seen["inside"] = call.answered_within(seconds)
        return found

    monkeypatch.setattr(outcomes, "unlinked_waits", hooked)
    return seen


# -- another poster between the sweep's check and its write -----------------------------------------


def test_a_bill_unlinked_by_another_poster_while_the_sweep_rechecks_keeps_its_payment_waiting(
    database: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep read the payment's entry satisfied (its bill linked) and re-checks in its write:
    the bill is linked. Right then, an operator's unlink on another poster commits. The sweep then
    writes the release. Released, the payment is queued for a bill that is no longer linked: the
    very race the change says it closes ("a record unlinked between the two keeps its waiters
    waiting"). On PostgreSQL (READ COMMITTED, nothing locks the bill's row) the unlink commits
    inside the check's window; on SQLite it waits for the sweep's writer and comes after."""

    def setup(uow: UnitOfWork) -> int:
        _linked(uow, BILL)
        return _waiting_payment(uow, [("c1", BILL)])

    outbox_id = _registry(database, setup)
    dispatcher = _dispatcher(database)
    found = dispatcher.satisfied_waits()
    assert found == [outbox_id]

    seen = _between_check_and_write(monkeypatch, lambda: unlink(other_poster, "c1", BILL, "operator:test"))
    dispatcher.release_waits(found)
    call = seen["call"]
    assert call is not None, "release_entry never checked the waits"
    call.result(timeout=20.0)
    assert _link(database, BILL) == LinkState.UNLINKED.value

    if seen["inside"]:  # the unlink committed before the sweep wrote anything
        assert (_entry(database, outbox_id), _link(database, PAYMENT)) == (
            OutboxState.WAITING.value,
            LinkState.WAITING.value,
        ), f"released after its bill was unlinked: {_events(database, PAYMENT)}"
        assert "released" not in _events(database, PAYMENT)
    else:  # the unlink waited for the release to commit: SQLite's one writer, PostgreSQL's lock on the bill's link
        assert _events(database, PAYMENT)[-1] == "released"


def test_an_entry_another_poster_released_and_posted_while_the_sweep_rechecks_stays_done(
    database: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two posters sweep. Ours read the entry waiting and found its bill linked; meanwhile the
    other released it, claimed it and posted the payment (entry done, payment linked). Ours then
    writes its release: the entry, done, must stay done (ready again, it is claimed and the
    payment is sent a second time), and the payment stays linked, released once."""

    def setup(uow: UnitOfWork) -> int:
        _linked(uow, BILL)
        return _waiting_payment(uow, [("c1", BILL)])

    outbox_id = _registry(database, setup)
    dispatcher = _dispatcher(database)
    found = dispatcher.satisfied_waits()

    def other_releases_and_posts(uow: UnitOfWork) -> bool:
        if not outcomes.release_entry(uow, outbox_id, now_us(), "dependencies linked"):
            return False
        row = uow.outbox.get_outbox(outbox_id)
        assert row is not None
        link = uow.links.get_link_by_id(row.link_id)
        assert link is not None
        created = XeroObjectRef(2, "pay-1", "payment")
        outcomes.record_created(uow, row, link, created, True, now_us(), "dispatcher:poster-b")
        return True

    seen = _between_check_and_write(monkeypatch, lambda: run_in_transaction(other_poster, other_releases_and_posts))
    dispatcher.release_waits(found)
    call = seen["call"]
    assert call is not None, "release_entry never checked the waits"
    if not call.result(timeout=20.0):
        # Ours held the entry (SQLite's one writer; on PostgreSQL its row lock): the other poster's
        # release found it released, or held, and did nothing. The entry is ours to post, once.
        assert (_entry(database, outbox_id), _link(database, PAYMENT)) == (
            OutboxState.READY.value,
            LinkState.PENDING.value,
        )
        assert _events(database, PAYMENT).count("released") == 1
        return

    assert _link(database, PAYMENT) == LinkState.LINKED.value
    assert _events(database, PAYMENT).count("released") == 1
    assert _entry(database, outbox_id) == OutboxState.DONE.value, (
        "the sweep wrote the posted payment's done entry back to ready: it will be sent again"
    )


# -- a dependency of another connection ---------------------------------------------------------------


def test_the_sweep_leaves_waiting_an_entry_whose_dependency_of_another_connection_is_being_corrected(
    database: Database,
) -> None:
    """The office half waits for a record of the trust connection (c2). That record is linked and a
    correction of it is running: it is about to be voided and unlinked, and work waiting for it
    stays waiting (supervisor._waits_on_a_correction). The sweep must see the correction of the
    record the entry waits for, under the connection it waits for it in."""

    def setup(uow: UnitOfWork) -> int:
        _linked(uow, BILL, "c2")
        uow._session.add(  # a saga row as the correction writes it
            CorrectionRow(
                correction_id="corr-1",
                connection_id="c2",
                kind=BILL.kind,
                record_id=BILL.id,
                generation=1,
                intent=1,
                state=SagaState.RUNNING.value,
                create_us=now_us(),
                update_us=now_us(),
            )
        )
        return _waiting_payment(uow, [("c2", BILL)])

    outbox_id = _registry(database, setup)
    with UnitOfWork(database, write=False) as uow:
        bill = uow.links.get_link("c2", BILL)
        assert bill is not None
        assert uow.corrections.under_correction("c2", BILL, bill.generation)

    dispatcher = _dispatcher(database)
    dispatcher.release_waits(dispatcher.satisfied_waits())

    assert _entry(database, outbox_id) == OutboxState.WAITING.value, (
        f"released while its trust-side dependency is being corrected: {_events(database, PAYMENT)}"
    )


def test_an_entry_waiting_for_a_record_of_another_connection_is_released_when_it_links(
    database: Database,
) -> None:
    """The office half's wait on the trust half (c2): when the trust half's answer links it
    (apply_batch under c2), the office entry is released in that transaction, and not before."""

    def setup(uow: UnitOfWork) -> int:
        _pending(uow, BILL, "c2")
        return _waiting_payment(uow, [("c2", BILL)])

    outbox_id = _registry(database, setup)
    trust_entry = _claimed_entry(database, BILL, "c2")

    def answer(uow: UnitOfWork) -> None:
        result = outcomes.ElementResult(trust_entry, created=XeroObjectRef(3, "spend-1", "spend"))
        outcomes.apply_batch(uow, [result], HOLDER, "dispatcher:poster-a", now_us())

    run_in_transaction(database, answer)
    assert _link(database, BILL, "c2") == LinkState.LINKED.value
    assert _entry(database, outbox_id) == OutboxState.READY.value
    assert _link(database, PAYMENT) == LinkState.PENDING.value


# -- answers applied in bulk ---------------------------------------------------------------------------


def _claimed_entry(database: Database, record: RecordRef, connection_id: str = "c1") -> int:
    """A ready outbox entry of the record's pending link, claimed by HOLDER: its id."""

    def write(uow: UnitOfWork) -> int:
        link = uow.links.get_link(connection_id, record)
        assert link is not None
        now = now_us()
        box = uow.outbox.add_outbox(
            True,
            OutboxRow(
                tenant_id="t2" if connection_id == "c2" else "t1",
                connection_id=connection_id,
                link_id=link.id or 0,
                posting_id=link.posting_id,
                operations=b"",
                state=OutboxState.READY,
                available_us=now,
                claimed_by=HOLDER,
                lease_until_us=now + 60_000_000,
                create_us=now,
            ),
        )
        return box.id or 0

    return int(run_in_transaction(database, write))


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "other-bill-loaded-before"])
def test_two_bills_linked_by_one_calls_answers_release_the_payment_waiting_for_both(
    database: Database, stale: bool
) -> None:
    """One call's answers link both bills the payment waits for: apply_batch writes both links in
    bulk and releases waiters record by record, each counting only its own record as just linked.
    The payment must be released in that transaction, even when the unit of work had read the
    other bill's link (pending) before the bulk write."""

    def setup(uow: UnitOfWork) -> int:
        _pending(uow, BILL)
        _pending(uow, OTHER_BILL)
        return _waiting_payment(uow, [("c1", BILL), ("c1", OTHER_BILL)])

    outbox_id = _registry(database, setup)
    first, second = _claimed_entry(database, BILL), _claimed_entry(database, OTHER_BILL)

    def answer(uow: UnitOfWork) -> None:
        held = [uow.links.get_link("c1", r) for r in (BILL, OTHER_BILL)] if stale else []
        assert all(h is not None and h.state == LinkState.PENDING.value for h in held)
        results = [
            outcomes.ElementResult(first, created=XeroObjectRef(1, "inv-1", "bill")),
            outcomes.ElementResult(second, created=XeroObjectRef(1, "inv-3", "bill")),
        ]
        outcomes.apply_batch(uow, results, HOLDER, "dispatcher:poster-a", now_us())
        del held

    run_in_transaction(database, answer)
    assert (_link(database, BILL), _link(database, OTHER_BILL)) == (LinkState.LINKED.value,) * 2
    assert _entry(database, outbox_id) == OutboxState.READY.value, "left to the sweep, or waiting for good"
    assert _events(database, PAYMENT).count("released") == 1


# -- ResolveDrift's release of held work -------------------------------------------------------------


def _held_on_two_drifts(uow: UnitOfWork) -> int:
    """The bill linked with two open drifts that block payment (voided, and money applied in
    Xero), and the payment's entry held on it as the dispatcher holds it: its outbox id."""
    _linked(uow, BILL)
    bill = uow.links.get_link("c1", BILL)
    assert bill is not None
    drifts = [
        uow.drift.save_drift(
            DriftRow(
                connection_id="c1",
                link_id=bill.id or 0,
                xero_id=f"inv-c1-{BILL.id}",
                object_type=1,
                kind=kind,
                state="open",
                source="webhook",
                detected_us=now_us(),
            )
        )
        for kind in ("VOIDED_IN_XERO", "ALLOCATION_ADDED_IN_XERO")
    ]
    outbox_id = _waiting_payment(uow, [("c1", BILL)])
    row = uow.outbox.get_outbox(outbox_id)
    link = uow.links.get_link("c1", PAYMENT)
    assert row is not None and link is not None
    drift_holds.hold(uow, row, link, drift_holds.Hold(BILL, bill, drifts[0]), now_us(), "dispatcher:test")
    return outbox_id


def test_resolving_the_drift_as_corrected_releases_the_held_payment_once_its_bill_is_linked(
    database: Database,
) -> None:
    """ResolveDrift CORRECTED resolves every open drift of the invoice and releases the held
    payment through release_entry, which now checks its wait: the bill is linked, so it must go."""
    outbox_id = _registry(database, _held_on_two_drifts)
    dispatcher = _dispatcher(database)
    dispatcher.release_waits(dispatcher.satisfied_waits())
    assert _entry(database, outbox_id) == OutboxState.WAITING.value, "the sweep released a held payment"

    def resolve(uow: UnitOfWork) -> None:
        [drift, *_] = uow.drift.open_drifts_of_links([_bill_link_id(uow)])[_bill_link_id(uow)]
        drift_resolution.resolve(
            uow, drift, "CORRECTED", "put back", drift_resolution.XeroState("{}"), "bookkeeper", now_us()
        )

    run_in_transaction(database, resolve)
    assert _entry(database, outbox_id) == OutboxState.READY.value, "held for good after its drift was corrected"
    assert (_link(database, PAYMENT), _events(database, PAYMENT)[-1]) == (LinkState.PENDING.value, "released")


def _bill_link_id(uow: UnitOfWork) -> int:
    bill = uow.links.get_link("c1", BILL)
    assert bill is not None
    return bill.id or 0
