"""Attacks on `Dispatcher.hand_back` releasing a tenant's lease without the workers' lock.

The claim under attack: a worker calls hand_back as the last step of its run, and a worker is
replaced (in a round, in `tenant_calls`) only once it is no longer alive, so no newer worker of
this poster can hold the lease when hand_back finds the worker still current and releases it.

Each test holds this poster's writer (as the workers' writes do) so that a worker's hand back is
caught between its check and its release, then lets what could go wrong meanwhile happen: a
correction borrowing the tenant, a round starting workers, another poster taking the tenant over,
stop(). Borrowers and rounds run on a thread that answers callers, whose transactions go before
the dispatcher's (adapters/write_turns.py): a newer worker's lease, were one taken then, would be
taken ahead of the pending release, and the release would then end it. Each test asserts who holds
the lease and how many workers serve the tenant."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import cast

import pytest
from sqlalchemy import insert
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.outbox import ready_row
from tests.fixtures.poster import wait_for
from tests.fixtures.threads import started

# The write turns that order a hand back's release against other transactions are SQLite's.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

US = 1_000_000


def queue(database: Database, tenants: list[str], first: int = 0) -> None:
    """One ready entry for each tenant (numbered from `first`, so queues can be added to)."""
    now = now_us()
    rows = [ready_row(tenant, f"c-{tenant}", first + n, now - US, now) for n, tenant in enumerate(tenants)]
    with database.write.begin() as conn:
        conn.execute(insert(OutboxRow.__table__), rows)  # type: ignore[attr-defined]


def dispatcher(database: Database, holder: str = "poster-a", **overrides: float) -> Dispatcher:
    settings = DispatcherSettings(**overrides)  # type: ignore[arg-type]
    return Dispatcher(database, cast(XeroClient, None), settings, holder)


def lease_of(database: Database, tenant: str) -> tuple[str, int] | None:
    """(holder, expires_us) of the tenant's lease."""
    with UnitOfWork(database, write=False) as uow:
        lease = uow.leases.get_lease(tenant)
        return None if lease is None else (lease.holder, lease.expires_us)


def held_by(database: Database, tenant: str, holder: str) -> bool:
    """Whether `holder` holds a live lease on the tenant: what a worker's next call checks."""
    lease = lease_of(database, tenant)
    return lease is not None and lease[0] == holder and lease[1] >= now_us()


def released(database: Database, tenant: str) -> bool:
    lease = lease_of(database, tenant)
    return lease is not None and lease[1] == 0


def queued_writes(database: Database, callers: int, dispatcher: int) -> Callable[[], bool]:
    """Whether this many transactions (callers', the dispatcher's) wait for the writer."""
    assert database.write_turns is not None
    turns = database.write_turns
    return lambda: turns.waiting == (callers, dispatcher)


class Scripted:
    """TenantWorker.run replaced: a worker serves until the test ends it, then ends as the real
    run does: closing (never lent again), then handing its tenant back. A worker serves its tenant
    from the start of its run until its hand back returned."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: list[TenantWorker] = []
        self.serving: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self._ends: dict[TenantWorker, threading.Event] = {}
        self._handing: dict[TenantWorker, threading.Event] = {}
        self._ending_all = False

    def _end_of(self, worker: TenantWorker) -> threading.Event:
        with self.lock:
            event = self._ends.setdefault(worker, threading.Event())
            if self._ending_all:
                event.set()
            return event

    def _handing_of(self, worker: TenantWorker) -> threading.Event:
        with self.lock:
            return self._handing.setdefault(worker, threading.Event())

    def run(self, worker: TenantWorker) -> None:
        tenant = worker.tenant_id
        with self.lock:
            self.workers.append(worker)
            self.serving[tenant] += 1
            self.most[tenant] = max(self.most[tenant], self.serving[tenant])
        self._end_of(worker).wait(10)
        try:
            with worker.lock:
                worker.closing = True
            self._handing_of(worker).set()
            worker.d.hand_back(tenant, worker)
        finally:
            with self.lock:
                self.serving[tenant] -= 1

    def of(self, tenant: str) -> list[TenantWorker]:
        with self.lock:
            return [w for w in self.workers if w.tenant_id == tenant]

    def end(self, worker: TenantWorker) -> None:
        """Lets the worker end; returns once it is handing its tenant back."""
        self._end_of(worker).set()
        assert self._handing_of(worker).wait(5), "the worker did not get to its hand back"

    def end_all(self) -> None:
        with self.lock:
            self._ending_all = True
            events = list(self._ends.values())
        for event in events:
            event.set()


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    workers = Scripted()

    def run(worker: TenantWorker) -> None:
        workers.run(worker)

    monkeypatch.setattr(TenantWorker, "run", run)
    yield workers
    workers.end_all()
    for worker in list(workers.workers):
        worker.join(5)


def test_a_correction_borrowing_the_tenant_during_a_hand_back_waits_and_its_worker_keeps_the_lease(
    database: Database, scripted: Scripted
) -> None:
    """A correction asks for the tenant (on a gRPC thread) while its worker is handing it back,
    the release queued behind the workers' writes. It must not get a second worker while the first
    is still alive, and the worker it gets must hold the lease once the first has handed back: a
    worker started now would take the lease ahead of the pending release, and the release would
    then end the new worker's lease under its calls."""
    queue(database, ["t-a"])
    rounds = dispatcher(database)
    rounds._start_workers()
    [first] = scripted.of("t-a")
    seen: dict[str, object] = {}
    errors: list[BaseException] = []

    def borrow() -> None:
        try:
            with rounds.tenant_calls("t-a", 5.0) as lent:
                seen["worker"] = lent
                seen["first alive"] = first.is_alive()
                seen["lease live"] = held_by(database, "t-a", "poster-a")
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    with UnitOfWork(database):  # the workers' writes the release queues behind
        scripted.end(first)
        wait_for(queued_writes(database, 0, 1), 5.0, interval=0.005, what="the hand back's release to queue")
        borrower = started(borrow, callers=True)
        time.sleep(0.5)
        assert "worker" not in seen, "a correction got a worker while the tenant's worker was handing it back"
        assert first.is_alive()
    borrower.join(5)

    assert not borrower.is_alive() and not errors, errors
    assert seen["worker"] is not first
    assert seen["first alive"] is False
    assert seen["lease live"] is True, "the worker lent to the correction had no lease"
    [_, second] = scripted.of("t-a")
    assert second.is_alive()
    assert held_by(database, "t-a", "poster-a"), "the old worker's release ended the new worker's lease"
    assert scripted.most["t-a"] == 1, "two workers served the tenant at once"


def test_a_round_during_a_hand_back_starts_no_second_worker_and_the_next_one_keeps_its_lease(
    database: Database, scripted: Scripted
) -> None:
    """A round (here on a thread whose transactions go first, as a careless caller's would) runs
    while t-a's worker hands back, its release queued: the round takes t-b's lease ahead of the
    release, holding the workers' lock, and must leave t-a alone. The round after the worker ended
    starts t-a again, and that worker's lease must not be touched by the old worker's release."""
    queue(database, ["t-a"])
    rounds = dispatcher(database, max_tenants=5)
    rounds._start_workers()
    [first] = scripted.of("t-a")
    queue(database, ["t-b"], first=1)

    with UnitOfWork(database):
        scripted.end(first)
        wait_for(queued_writes(database, 0, 1), 5.0, interval=0.005, what="the hand back's release to queue")
        round_thread = started(rounds._start_workers, callers=True)
        wait_for(queued_writes(database, 1, 1), 5.0, interval=0.005, what="the round's transaction to queue")
        assert first.is_alive()
    round_thread.join(5)
    first.join(5)

    assert not round_thread.is_alive() and not first.is_alive()
    assert [w.tenant_id for w in scripted.workers] == ["t-a", "t-b"], "the round replaced a live worker"
    assert released(database, "t-a"), "the worker did not hand t-a back"
    assert held_by(database, "t-b", "poster-a")

    rounds._start_workers()
    [_, second] = scripted.of("t-a")
    assert second.is_alive()
    assert held_by(database, "t-a", "poster-a")
    assert scripted.most == Counter({"t-a": 1, "t-b": 1})


def test_a_worker_that_lost_its_lease_to_another_poster_hands_back_without_ending_the_others(
    database: Database, database_url: str, scripted: Scripted
) -> None:
    """t-a's worker stalls past its lease; another poster (another process: its own engines and
    writer) takes the tenant over while the stalled worker's release is queued. The release must
    leave the other poster's lease alone, and this poster must then start no worker for t-a, nor
    lend one to a correction, while the other holds it."""
    queue(database, ["t-a"])
    mine = dispatcher(database, lease_ttl=0.3)
    mine._start_workers()
    [stalled] = scripted.of("t-a")
    wait_for(
        lambda: not held_by(database, "t-a", "poster-a"),
        5.0,
        interval=0.005,
        what="the stalled worker's lease to expire",
    )
    elsewhere = open_database(database_url)
    if elsewhere.writer_file is not None:
        # This process's unit of work below holds the writer file on purpose: the other poster
        # goes on without it after a moment instead of SQLite's whole busy timeout (30 s).
        elsewhere.writer_file.wait_s = 0.05
    try:
        other = dispatcher(elsewhere, "poster-b")
        with UnitOfWork(database):
            scripted.end(stalled)
            wait_for(queued_writes(database, 0, 1), 5.0, interval=0.005, what="the hand back's release to queue")
            other._start_workers()
            [_, theirs] = scripted.of("t-a")
            assert theirs.d is other
            assert held_by(database, "t-a", "poster-b")
        stalled.join(5)

        assert not stalled.is_alive()
        assert theirs.is_alive()
        assert held_by(database, "t-a", "poster-b"), "the stalled worker's release ended the other poster's lease"

        mine._start_workers()
        assert len(scripted.of("t-a")) == 2, "this poster started a worker for a tenant another serves"
        with pytest.raises(LeaseLost), mine.tenant_calls("t-a", 0.3):
            pass
        assert held_by(database, "t-a", "poster-b")
        assert len(scripted.of("t-a")) == 2
    finally:
        scripted.end_all()
        for worker in scripted.of("t-a"):
            worker.join(5)
        elsewhere.dispose()


def test_stop_during_a_hand_back_waits_for_the_release_and_lends_nothing_meanwhile(
    database: Database, scripted: Scripted
) -> None:
    """stop() while t-a's worker hands back: stop waits for the hand back, a correction asking
    meanwhile is refused (no second worker), and the lease is released, not left to expire, so
    another poster can take the tenant at once."""
    queue(database, ["t-a"])
    rounds = dispatcher(database)
    rounds._start_workers()
    [first] = scripted.of("t-a")
    refused: list[BaseException] = []

    def borrow() -> None:
        try:
            with rounds.tenant_calls("t-a", 2.0):
                pass
        except LeaseLost as exc:
            refused.append(exc)

    with UnitOfWork(database):
        scripted.end(first)
        wait_for(queued_writes(database, 0, 1), 5.0, interval=0.005, what="the hand back's release to queue")
        stopper = started(lambda: rounds.stop(5))
        wait_for(lambda: rounds.stopping, 5.0, interval=0.005, what="stop")
        borrower = started(borrow, callers=True)
        borrower.join(5)
        assert not borrower.is_alive()
        assert len(refused) == 1, "a correction was lent the tenant of a stopping poster"
        time.sleep(0.2)
        assert stopper.is_alive(), "stop did not wait for the worker's hand back"
        assert first.is_alive()
    stopper.join(5)

    assert not stopper.is_alive() and not first.is_alive()
    assert len(scripted.of("t-a")) == 1
    assert released(database, "t-a"), "the stopping worker left its lease to expire"
    taken = run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t-a", "poster-b", now_us(), 30 * US))
    assert taken is not None, "another poster could not take the tenant at once"


def test_a_worker_no_longer_the_current_one_leaves_the_newer_workers_lease(
    database: Database, scripted: Scripted
) -> None:
    """Should a worker ever be replaced while alive (a careless caller launching one), the old
    worker's hand back must see it is no longer current and leave the lease to the newer one."""
    queue(database, ["t-a"])
    rounds = dispatcher(database)
    rounds._start_workers()
    [first] = scripted.of("t-a")
    with rounds._workers_lock:
        facts = run_in_transaction(database, partial(rounds._acquire, "t-a"))
        assert facts is not None
        second = rounds._launch("t-a", facts)

    scripted.end(first)
    first.join(5)

    assert not first.is_alive() and second.is_alive()
    assert held_by(database, "t-a", "poster-a"), "the replaced worker released the lease its successor holds"


def test_borrowers_rounds_and_hand_backs_racing_never_serve_a_tenant_twice(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real worker loop (idle after a poll: t-a's entries name no link, so a claim finds
    nothing to post, and the worker hands back after `idle_release`), with three correction
    threads borrowing t-a, a round every few milliseconds wanting t-a, and a writer keeping the
    hand backs' releases queued. At no moment may two workers serve t-a, a borrower hold a worker
    without the lease, or the current worker (not closing) find its lease released."""
    real_run = TenantWorker.run
    lock = threading.Lock()
    serving: Counter[str] = Counter()
    most: Counter[str] = Counter()
    runs: Counter[str] = Counter()

    def run(worker: TenantWorker) -> None:
        with lock:
            serving[worker.tenant_id] += 1
            most[worker.tenant_id] = max(most[worker.tenant_id], serving[worker.tenant_id])
            runs[worker.tenant_id] += 1
        try:
            real_run(worker)
        finally:
            with lock:
                serving[worker.tenant_id] -= 1

    monkeypatch.setattr(TenantWorker, "run", run)
    queue(database, ["t-a", "t-a", "t-a"])
    rounds = dispatcher(database, max_tenants=2, idle_release=0.01, poll_interval=0.002, claim_ttl=0.05)
    problems: list[str] = []
    lent = Counter[str]()
    deadline = time.monotonic() + 2.0

    def borrower() -> None:
        while time.monotonic() < deadline:
            try:
                with rounds.tenant_calls("t-a", 5.0) as worker:
                    lent["t-a"] += 1
                    if not worker.is_alive():
                        problems.append("a borrower was lent a worker that had ended")
                    if not held_by(database, "t-a", "poster-a"):
                        problems.append(f"a borrower held a worker without the lease: {lease_of(database, 't-a')}")
                    time.sleep(random.uniform(0, 0.002))
            except LeaseLost as exc:
                problems.append(f"a borrower was refused the tenant: {exc!r}")
            # Gaps between loans, so the worker finds itself idle and hands back now and then.
            time.sleep(random.uniform(0.002, 0.02))

    def supervisor() -> None:
        while time.monotonic() < deadline:
            rounds._start_workers()
            time.sleep(0.003)

    def writer() -> None:
        while time.monotonic() < deadline:
            with UnitOfWork(database):
                time.sleep(0.002)
            time.sleep(0.001)

    threads = [started(borrower, callers=True) for _ in range(3)] + [started(supervisor), started(writer)]
    while any(t.is_alive() for t in threads):
        current = rounds._workers.get("t-a")
        live = held_by(database, "t-a", "poster-a")
        if current is not None and current is rounds._workers.get("t-a") and current.is_alive():
            with current.lock:
                closing = current.closing
            if not closing and not live:
                problems.append(f"the current worker's lease was released under it: {lease_of(database, 't-a')}")
        time.sleep(0.003)
    for thread in threads:
        thread.join(5)
    rounds.stop(5)

    assert not problems, problems[:5]
    assert most["t-a"] == 1, "two workers served t-a at once"
    assert runs["t-a"] >= 5, f"only {runs['t-a']} workers: the race was hardly exercised"
    assert lent["t-a"] >= 10
    assert not any(w.is_alive() for w in rounds._workers.values())
    assert released(database, "t-a"), "the last worker did not hand the tenant back"
