"""The dispatcher's rounds: how it starts workers for the tenants with ready work. With more
tenants than workers, the workers take turns; a worker started while the round still said nobody
was waiting kept its tenant for the whole backlog, and a round that took each lease in a write of
its own started only a few tenants a second, so the last organisations waited a minute for theirs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from sqlalchemy import event, insert
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.outbox import ready_row
from tests.fixtures.threads import started

US = 1_000_000


def queue(database: Database, tenants: list[str]) -> None:
    """One ready entry for each tenant, the first tenant's waiting longest."""
    now = now_us()
    rows = [ready_row(tenant, f"c-{tenant}", n, now - (len(tenants) - n) * US, now) for n, tenant in enumerate(tenants)]
    with database.write.begin() as conn:
        conn.execute(insert(OutboxRow.__table__), rows)  # type: ignore[attr-defined]


class HeldWorkers:
    """Workers that only say what they saw as they began, then wait to be let go."""

    def __init__(self) -> None:
        self.saw: dict[str, bool] = {}
        self.go = threading.Event()

    def run(self, worker: TenantWorker) -> None:
        self.saw[worker.tenant_id] = worker.d.others_waiting
        self.go.wait(10)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldWorkers]:
    workers = HeldWorkers()

    def run(worker: TenantWorker) -> None:
        workers.run(worker)

    monkeypatch.setattr(TenantWorker, "run", run)
    yield workers
    workers.go.set()


def dispatcher(database: Database, max_tenants: int) -> Dispatcher:
    return Dispatcher(database, cast(XeroClient, None), DispatcherSettings(max_tenants=max_tenants), "poster-a")


def test_workers_of_a_round_know_from_their_start_that_tenants_are_left_waiting(
    database: Database, held: HeldWorkers
) -> None:
    queue(database, ["t-a", "t-b", "t-c", "t-d"])
    rounds = dispatcher(database, max_tenants=2)

    rounds._start_workers()
    held.go.set()
    for worker in list(rounds._workers.values()):
        worker.join(5)

    assert sorted(held.saw) == ["t-a", "t-b"], "the two waiting longest are served first"
    assert held.saw == {"t-a": True, "t-b": True}, "each must hand its tenant back after a turn"
    assert rounds.others_waiting


def test_a_round_takes_the_leases_of_all_the_tenants_it_starts_in_one_transaction(
    database: Database, held: HeldWorkers
) -> None:
    tenants = [f"t-{n:02d}" for n in range(12)]
    queue(database, tenants)
    rounds = dispatcher(database, max_tenants=50)
    commits: list[int] = []

    def listen(*_: Any) -> None:
        commits.append(1)

    event.listen(database.write, "commit", listen)
    try:
        rounds._start_workers()
    finally:
        event.remove(database.write, "commit", listen)
    try:
        assert sorted(held.saw) == tenants
        assert not any(held.saw.values()), "every tenant has a worker: nobody is left waiting"
        assert len(commits) == 1, f"{len(commits)} write transactions for one round"
        with UnitOfWork(database, write=False) as uow:
            assert all((lease := uow.leases.get_lease(t)) and lease.holder == "poster-a" for t in tenants)
    finally:
        held.go.set()
        for worker in list(rounds._workers.values()):
            worker.join(5)


def test_a_round_leaves_a_tenant_another_poster_holds_and_starts_the_rest(
    database: Database, held: HeldWorkers
) -> None:
    queue(database, ["t-a", "t-b", "t-c"])
    other = dispatcher(database, max_tenants=1)
    other._start_workers()  # poster-a serves t-a
    rounds = Dispatcher(database, cast(XeroClient, None), DispatcherSettings(max_tenants=5), "poster-b")

    rounds._start_workers()
    held.go.set()
    for worker in [*other._workers.values(), *rounds._workers.values()]:
        worker.join(5)

    assert sorted(other._workers) == ["t-a"]
    assert sorted(rounds._workers) == ["t-b", "t-c"]


def test_a_worker_started_for_a_loan_is_lent_before_it_runs(database: Database, held: HeldWorkers) -> None:
    """A correction, a drift read or the poller borrows the tenant's worker (tenant_calls). While
    tenants wait, a worker's turn is one batch: one lent only after it started could already be
    closing, and the borrower would wait for it and start another, until it gave up."""
    queue(database, ["t-a", "t-b"])
    rounds = dispatcher(database, max_tenants=1)
    rounds._others_waiting = True
    lent_at_start: dict[str, int] = {}
    record = held.run

    def run(worker: TenantWorker) -> None:
        lent_at_start[worker.tenant_id] = worker.borrowers
        record(worker)

    held.run = run  # type: ignore[method-assign]
    with rounds.tenant_calls("t-a", 5.0) as worker:
        assert worker.tenant_id == "t-a"
        assert worker.borrowers == 1
    held.go.set()
    worker.join(5)
    assert lent_at_start == {"t-a": 1}
    assert worker.borrowers == 0


def test_a_worker_hands_its_tenant_back_while_a_round_is_starting_workers(database: Database) -> None:
    """A round holds the workers' lock while its transaction takes leases, queued behind the
    workers' writes. Workers that ended meanwhile waited for the round to hand their tenants back,
    still alive: stack dumps of a 200-organisation drain found 15 to 38 of the 50 workers there,
    each keeping a place that a tenant with work waited for."""
    rounds = dispatcher(database, max_tenants=5)
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t-a", "poster-a", now_us(), 30 * US))
    ending = object()
    rounds._workers["t-a"] = ending  # type: ignore[assignment]

    with rounds._workers_lock:  # as a round starting workers holds it
        handing = started(lambda: rounds.hand_back("t-a", ending))
        handing.join(5)
        assert not handing.is_alive(), "the worker waited for the round to hand its tenant back"
    with UnitOfWork(database, write=False) as uow:
        lease = uow.leases.get_lease("t-a")
        assert lease is not None and lease.expires_us == 0, "the lease was not handed back"


def test_a_worker_that_could_not_renew_its_lease_is_lent_to_nobody(database: Database) -> None:
    """A worker whose lease another poster took stops its loop, but said it was closing only after
    its jobs in flight ended. A correction asking meanwhile was lent it; had this poster then
    started a new worker for the tenant, the correction's calls would have passed the lease check
    beside the new worker's, outside its budget."""
    poster_a = dispatcher(database, max_tenants=5)
    now = now_us()
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t-a", "poster-a", now - 60 * US, US))
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t-a", "poster-b", now, 30 * US))
    worker = TenantWorker(poster_a, poster_a.settings, "t-a", [], 0, 0.0, 0.0)

    assert not worker._renew(), "poster-b holds the lease"
    assert not worker.lend(), "a worker without its lease was lent"
