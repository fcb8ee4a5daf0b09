"""Attacks on the safety net for waits spaced by its own cost (`Dispatcher._run` and `sweep_pause`
of service_layer/dispatch/supervisor.py): after a sweep of `release_satisfied_waits` that took
`took` seconds the next starts `sweep_pause(took)` (0.5 s to 30 s) later, while the app minute's
moves keep their half second. From outside, with a real supervisor thread on a real registry:
the race the net exists for built with two transactions at once on PostgreSQL (a bill linking
while its payment's waiting entry is being written), a waiting entry whose dependency already
linked, a sweep blocked for a minute (a clock that jumps), a sweep or a write of the moves that
raises a database error, and a stop while the next sweep is half a minute away. What a user must
see: no payment left waiting for good behind a bill that linked, and a dispatcher that keeps
starting workers whatever the net does. Every wait has a timeout: a test fails, never hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer import outcomes
from xerolink_poster.service_layer.dispatch import supervisor
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import SWEEP_PAUSE_CAP, Dispatcher
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import wait_for
from tests.fixtures.registry_rows import link_with_posting, unreachable_connection
from tests.fixtures.threads import Call

BILL = RecordRef(1, 1)
PAYMENT = RecordRef(1, 2)


# -- the registry, through its repositories ----------------------------------------------------------


def _pending_bill(database: Database) -> None:
    """Connection c1 (tenant t1) with the bill (record 1) accepted: pending."""

    def write(uow: UnitOfWork) -> None:
        uow.connections.add_connection(unreachable_connection("c1", "t1"))
        bill = link_with_posting(uow, BILL.id)
        uow.links.change_state(bill, Event.ACCEPTED, "caller:test", now_us())

    run_in_transaction(database, write)


def _write_waiting_payment(uow: UnitOfWork) -> int:
    """What a Post of the payment writes when it reads its bill unlinked: its link waiting and an
    outbox entry waiting for the bill (posting_writes.py). Its id."""
    bill = uow.links.get_link("c1", BILL)
    assert bill is not None and bill.state == LinkState.PENDING.value, "the bill must read unlinked here"
    link = link_with_posting(uow, PAYMENT.id)
    uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us())
    uow.links.change_state(link, Event.BLOCKED, "caller:test", now_us(), "waiting for the bill")
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
    # One statement, sent at once, as posting_writes.py writes the waits.
    uow.outbox.insert_waits([{"outbox_id": box.id, "connection_id": "c1", "kind": BILL.kind, "record_id": BILL.id}])
    return box.id or 0


def _link_bill(uow: UnitOfWork) -> list[int]:
    """What applying Xero's answer for the bill writes: the bill linked, and its waiters released
    (outcomes.record_created). The waiters it released."""
    bill = uow.links.get_link("c1", BILL)
    assert bill is not None
    uow.links.change_state(bill, Event.POSTED, "dispatcher:other", now_us())
    return outcomes.release_waiters(uow, "c1", BILL, now_us())


def _link_bill_without_release(database: Database) -> None:
    """The bill linked in a transaction that releases none of its waiters: what the race leaves,
    and only the net can release them."""
    with UnitOfWork(database) as uow:
        bill = uow.links.get_link("c1", BILL)
        assert bill is not None
        uow.links.change_state(bill, Event.POSTED, "dispatcher:other", now_us())
        uow.commit()


def _state(database: Database, outbox_id: int) -> str:
    with UnitOfWork(database, write=False) as uow:
        row = uow.outbox.get_outbox(outbox_id)
    assert row is not None
    return str(row.state)


def _link_state(database: Database, record: RecordRef) -> str:
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link("c1", record)
    assert link is not None
    return str(link.state)


def _released(database: Database, outbox_id: int) -> Callable[[], bool]:
    return lambda: _state(database, outbox_id) != OutboxState.WAITING


def _dispatcher(database: Database, **overrides: Any) -> Dispatcher:
    """A supervisor with no Xero that starts no worker (max_tenants=0): only its own loop runs."""
    values: dict[str, Any] = {"max_tenants": 0, "poll_interval": 0.02, **overrides}
    return Dispatcher(database, cast(XeroClient, None), DispatcherSettings(**values), "poster-a")


@contextmanager
def _running(dispatcher: Dispatcher) -> Iterator[Dispatcher]:
    """The dispatcher's loop, running until the block ends, however it ends."""
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        dispatcher.stop()


class Clock:
    """The supervisor's clock (its module's `time`): the real monotonic clock plus `ahead`
    seconds, so a test can make a sweep seem to last a minute without waiting one."""

    def __init__(self) -> None:
        self.ahead = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return time.monotonic() + self.ahead

    def jump(self, seconds: float) -> None:
        with self._lock:
            self.ahead += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class Calls:
    """Times (on the real clock) a wrapped method was called, thread-safe."""

    def __init__(self) -> None:
        self.at: list[float] = []
        self._lock = threading.Lock()

    def note(self) -> None:
        with self._lock:
            self.at.append(time.monotonic())

    def count(self) -> int:
        with self._lock:
            return len(self.at)

    def since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for t in self.at if t >= moment)


def _count(dispatcher: Dispatcher, name: str, raising: BaseException | None = None, cost: float = 0.0) -> Calls:
    """Wraps the dispatcher's method `name`: each call is noted, takes `cost` seconds more, then
    raises `raising` when given, else runs the method."""
    calls = Calls()
    real = getattr(dispatcher, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.note()
        if cost:
            time.sleep(cost)
        if raising is not None:
            raise raising
        return real(*args, **kwargs)

    setattr(dispatcher, name, wrapped)
    return calls


def _db_error() -> OperationalError:
    return OperationalError(
        "SELECT ... FROM outbox WHERE state = 'waiting'", {}, Exception("server closed the connection")
    )


# -- the race the net exists for ---------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_race_the_net_exists_for_happens_on_postgresql_and_a_running_dispatcher_releases_it(
    database: Database,
) -> None:
    """A Post of the payment reads its bill pending and writes its entry waiting; meanwhile, in
    another transaction, the bill links and releases its waiters, before the payment's entry is
    committed, so it finds none. Both commit: the payment waits for a linked bill, and only the
    net can release it. A running dispatcher must, within a sweep's pause."""
    _pending_bill(database)
    written = threading.Event()
    go_on = threading.Event()

    def post_payment() -> int:
        with UnitOfWork(database) as uow:
            outbox_id = _write_waiting_payment(uow)
            written.set()
            assert go_on.wait(15.0), "the bill's transaction never ended"
            uow.commit()
        return outbox_id

    post = Call(post_payment, callers=True)
    assert written.wait(15.0), "the payment's transaction never wrote"
    linked = Call(lambda: run_in_transaction(database, _link_bill))
    try:
        released_by_the_bill = linked.result(timeout=15.0)
    finally:
        go_on.set()
    outbox_id = int(post.result(timeout=15.0))
    assert released_by_the_bill == [], "the bill's transaction saw the uncommitted wait: no race"
    assert _link_state(database, BILL) == LinkState.LINKED.value
    assert _state(database, outbox_id) == OutboxState.WAITING, "the race was not caught"

    dispatcher = _dispatcher(database)
    with _running(dispatcher):
        wait_for(_released(database, outbox_id), timeout=15.0, what="the net to release the payment")
    assert _state(database, outbox_id) == OutboxState.READY
    assert _link_state(database, PAYMENT) == LinkState.PENDING.value


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_race_after_a_sweep_blocked_for_a_minute_is_released_within_the_cap(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep before the race was blocked for a minute (the clock jumps 60 s inside it), so the
    next is put off for the cap, 30 s. The race happens right after. The payment must stay waiting
    no longer than the cap (plus a sweep): once the clock passes 30 s, it is released."""
    _pending_bill(database)
    clock = Clock()
    monkeypatch.setattr(supervisor, "time", clock)
    dispatcher = _dispatcher(database)
    real_sweep = dispatcher.release_satisfied_waits
    sweeps = Calls()

    def sweep() -> None:
        sweeps.note()
        if sweeps.count() == 1:
            clock.jump(60.0)  # blocked a minute behind the writer
        real_sweep()

    dispatcher.release_satisfied_waits = sweep  # type: ignore[method-assign]
    with _running(dispatcher):
        wait_for(lambda: sweeps.count() >= 1, timeout=10.0, what="the first sweep")
        # The race, committed in the order that leaves the payment waiting for a linked bill.
        outbox_id = run_in_transaction(database, _write_waiting_payment)
        _link_bill_without_release(database)
        time.sleep(1.5)
        assert sweeps.count() == 1, "a sweep came sooner than the pause after a blocked one"
        assert _state(database, outbox_id) == OutboxState.WAITING
        clock.jump(SWEEP_PAUSE_CAP)
        wait_for(_released(database, outbox_id), timeout=10.0, what="the release once the cap passed")


@pytest.mark.parametrize("linked_first", [True, False], ids=["bill-linked-before-start", "bill-linked-while-running"])
def test_a_waiting_payment_whose_bill_linked_is_released_by_a_running_dispatcher(
    database: Database, linked_first: bool
) -> None:
    """The race's outcome written straight (both registries): a payment waiting for a bill that is
    linked, with nothing left to release it but the net; before the dispatcher starts, or while it
    runs (after its first sweep, so the next one must come)."""
    _pending_bill(database)
    outbox_id = run_in_transaction(database, _write_waiting_payment)

    if linked_first:
        _link_bill_without_release(database)
    dispatcher = _dispatcher(database)
    sweeps = _count(dispatcher, "release_satisfied_waits")
    with _running(dispatcher):
        if not linked_first:
            wait_for(lambda: sweeps.count() >= 1, timeout=10.0, what="the first sweep")
            time.sleep(0.3)
            assert _state(database, outbox_id) == OutboxState.WAITING
            _link_bill_without_release(database)
        wait_for(_released(database, outbox_id), timeout=15.0, what="the net to release the payment")
    assert _link_state(database, PAYMENT) == LinkState.PENDING.value


def test_many_waiting_on_unlinked_records_do_not_keep_one_whose_bill_linked_waiting(database: Database) -> None:
    """2,000 entries waiting for records never posted make the sweep's read costlier; the one whose
    bill linked is still released, within a cheap sweep's pause and the cap."""
    _pending_bill(database)
    outbox_id = run_in_transaction(database, _write_waiting_payment)

    def many(uow: UnitOfWork) -> None:
        for n in range(2_000):
            box = uow.outbox.add_outbox(
                True,
                OutboxRow(
                    tenant_id="t1",
                    connection_id="c1",
                    link_id=0,
                    posting_id=f"x{n}",
                    operations=b"",
                    state=OutboxState.WAITING,
                    available_us=0,
                    create_us=now_us(),
                ),
            )
            uow.outbox.add_waits(box.id or 0, "c1", [RecordRef(1, 10_000 + n)])

    run_in_transaction(database, many)
    _link_bill_without_release(database)
    dispatcher = _dispatcher(database)
    with _running(dispatcher):
        wait_for(_released(database, outbox_id), timeout=15.0, what="the net to release the payment")


# -- errors ------------------------------------------------------------------------------------------


def test_a_sweep_that_raises_is_tried_again(database: Database) -> None:
    """A database error in the sweep leaves `next_sweep` where it was: the sweep must come again
    (not be given up), and once the database answers, the payment is released."""
    _pending_bill(database)
    outbox_id = run_in_transaction(database, _write_waiting_payment)
    _link_bill_without_release(database)
    failures = {"left": 3}

    def fail_the_sweeps_read(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "NOT IN" in statement.upper() and failures["left"] > 0:
            failures["left"] -= 1
            raise _db_error()

    event.listen(database.read, "before_cursor_execute", fail_the_sweeps_read)
    try:
        with _running(_dispatcher(database)):
            wait_for(_released(database, outbox_id), timeout=15.0, what="a sweep after the failed ones")
    finally:
        event.remove(database.read, "before_cursor_execute", fail_the_sweeps_read)
    assert failures["left"] == 0, "the injected failures were never hit: the sweep's read was not matched"


def test_a_failing_sweep_does_not_stop_the_dispatcher_starting_workers(database: Database) -> None:
    """The net raising a database error every time (its read over every wait is the costliest
    statement of the loop: it is the first to hit a statement timeout as waits pile up) must not
    stop the dispatcher from starting workers for ready work, nor from writing the app minute's
    moves: the net is a safety net, the workers are the poster."""
    dispatcher = _dispatcher(database)
    sweeps = _count(dispatcher, "release_satisfied_waits", raising=_db_error())
    rounds = _count(dispatcher, "_start_workers")
    moves = _count(dispatcher, "write_app_moves")
    with _running(dispatcher):
        wait_for(lambda: sweeps.count() >= 3, timeout=10.0, what="a few failed sweeps")
        time.sleep(1.0)
    assert rounds.count() >= 1, f"no worker round in {sweeps.count()} loops: the failing net starved them"
    assert moves.count() >= 1, "the app minute's moves were never written while the net failed"


def test_one_bad_row_under_the_net_does_not_stop_every_tenants_workers(database: Database) -> None:
    """Not an injected error: one open drift on a linked bill whose differences do not parse (a
    hand edit, a row of another version) makes every sweep raise (still_held reads it), for good.
    The loop must still start workers for the other tenants' ready work."""
    _pending_bill(database)
    outbox_id = run_in_transaction(database, _write_waiting_payment)

    def drifted_bill(uow: UnitOfWork) -> None:
        bill = uow.links.get_link("c1", BILL)
        assert bill is not None
        uow.links.change_state(bill, Event.POSTED, "dispatcher:other", now_us())
        uow.drift.save_drift(
            DriftRow(
                connection_id="c1",
                link_id=bill.id or 0,
                xero_id="00000000-0000-0000-0000-000000000001",
                object_type=1,
                kind="PAID_IN_XERO",
                state="open",
                differences="[{",
                source="poll",
                detected_us=now_us(),
            )
        )

    run_in_transaction(database, drifted_bill)
    dispatcher = _dispatcher(database)
    sweeps = Calls()
    real_sweep = dispatcher.release_satisfied_waits
    errors: list[str] = []

    def sweep() -> None:
        sweeps.note()
        try:
            real_sweep()
        except Exception as exc:
            errors.append(type(exc).__name__)
            raise

    dispatcher.release_satisfied_waits = sweep  # type: ignore[method-assign]
    rounds = _count(dispatcher, "_start_workers")
    with _running(dispatcher):
        wait_for(lambda: sweeps.count() >= 3, timeout=10.0, what="a few sweeps")
        time.sleep(1.0)
    assert errors, "the bad row did not make the sweep fail"
    assert _state(database, outbox_id) == OutboxState.WAITING
    assert rounds.count() >= 1, f"no worker round in {sweeps.count()} loops: one bad row ({errors[0]}) starved them"


def test_a_failing_costly_sweep_keeps_to_its_share_of_the_thread(database: Database) -> None:
    """A sweep that reads for 0.2 s and then fails (its write refused) must be spaced like one that
    succeeded: the point of the change is that the net takes at most about 5 % of the supervisor's
    thread; tried again every loop it takes most of it."""
    dispatcher = _dispatcher(database, poll_interval=0.02)
    sweeps = _count(dispatcher, "release_satisfied_waits", raising=_db_error(), cost=0.2)
    with _running(dispatcher):
        time.sleep(6.0)
    busy = 0.2 * sweeps.count()
    # 5 % of 6 s is 0.3 s: allow ten times that for a slow machine.
    assert busy <= 3.0, f"{sweeps.count()} failed sweeps of 0.2 s in 6 s: {busy / 6:.0%} of the thread"


def test_a_failing_write_of_the_moves_does_not_stop_the_sweep_or_the_workers(database: Database) -> None:
    """write_app_moves raising every time: the net keeps its pace (no tighter: it no longer shares
    the moves' step), and the dispatcher must still start workers."""
    dispatcher = _dispatcher(database)
    sweeps = _count(dispatcher, "release_satisfied_waits")
    moves = _count(dispatcher, "write_app_moves", raising=_db_error())
    rounds = _count(dispatcher, "_start_workers")
    with _running(dispatcher):
        wait_for(lambda: moves.count() >= 5, timeout=10.0, what="a few failed writes of the moves")
        started = time.monotonic()
        time.sleep(2.0)
        took = time.monotonic() - started
        swept = sweeps.since(started)
    # A cheap sweep every half second: at most about 4 in 2 s, however often the moves fail.
    assert swept <= took / 0.5 + 2, f"{swept} sweeps in {took:.1f} s: retried with the failing moves"
    assert rounds.count() >= 1, f"no worker round in {moves.count()} loops: the failing moves starved them"


# -- the clock ---------------------------------------------------------------------------------------


def test_a_sweep_that_takes_no_time_on_the_clock_keeps_the_half_second(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clock that does not move during a sweep (coarse, or a sweep with nothing to read): the
    next one comes at the half second, not at once in a loop."""
    frozen = {"at": time.monotonic()}

    class Coarse(Clock):
        def monotonic(self) -> float:
            return frozen["at"]

    monkeypatch.setattr(supervisor, "time", Coarse())
    dispatcher = _dispatcher(database)
    sweeps = _count(dispatcher, "release_satisfied_waits")
    with _running(dispatcher):
        wait_for(lambda: sweeps.count() >= 1, timeout=10.0, what="the first sweep")
        time.sleep(1.0)
        assert sweeps.count() == 1, "the clock did not move, yet the sweep ran again"
        frozen["at"] += 0.6
        wait_for(lambda: sweeps.count() >= 2, timeout=10.0, what="the sweep after half a second")


def test_a_sweep_blocked_a_minute_puts_the_next_off_for_the_cap_and_no_longer(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock jumps 60 s inside a sweep (blocked on SQLite's writer): the next sweep waits the
    cap, 30 s, and comes once the cap passes; the moves and the worker rounds go on meanwhile."""
    clock = Clock()
    monkeypatch.setattr(supervisor, "time", clock)
    dispatcher = _dispatcher(database)
    sweeps = Calls()
    real_sweep = dispatcher.release_satisfied_waits

    def sweep() -> None:
        sweeps.note()
        if sweeps.count() == 1:
            clock.jump(60.0)
        real_sweep()

    dispatcher.release_satisfied_waits = sweep  # type: ignore[method-assign]
    rounds = _count(dispatcher, "_start_workers")
    with _running(dispatcher):
        wait_for(lambda: sweeps.count() >= 1, timeout=10.0, what="the first sweep")
        before = rounds.count()
        time.sleep(1.0)
        clock.jump(SWEEP_PAUSE_CAP - 2.0)
        time.sleep(1.0)
        assert sweeps.count() == 1, "the sweep came before the cap passed"
        assert rounds.count() > before, "the worker rounds stopped while the sweep was put off"
        clock.jump(3.0)
        wait_for(lambda: sweeps.count() >= 2, timeout=10.0, what="the sweep once the cap passed")


# -- stop --------------------------------------------------------------------------------------------


def test_stop_ends_promptly_while_the_next_sweep_is_half_a_minute_away(database: Database) -> None:
    """A sweep of 2 s puts the next off for 30 s: stop must not wait for it."""
    dispatcher = _dispatcher(database)
    sweeps = _count(dispatcher, "release_satisfied_waits", cost=2.0)
    dispatcher.start()
    wait_for(lambda: sweeps.count() >= 1, timeout=10.0, what="the first sweep")
    time.sleep(2.5)  # the slow sweep ended: the next is about 30 s away
    began = time.monotonic()
    dispatcher.stop()
    took = time.monotonic() - began
    assert dispatcher._thread is not None and not dispatcher._thread.is_alive()
    assert took < 5.0, f"stop took {took:.1f} s"
    assert sweeps.count() == 1
