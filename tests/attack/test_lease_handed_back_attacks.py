"""Attacks on taking a tenant's lease without voiding claims when its last holder handed it back
(`leasing.take_lease`, 5f5f29c), and on the claim built once with bound parameters (23b59b3).

The claim under attack: a worker hands its lease back only once its jobs have ended, so no claim
of it is in flight; a lease that ran out instead belonged to a poster that died or was paused past
it, and its claims are voided by whoever takes the lease next. Attacked here as a crash, a paused
or concurrent poster and a failing registry would: every interleaving is forced by calling the
repositories, the supervisor and a worker's own methods in order (or by holding a PostgreSQL row
lock), never by racing the clock. End to end, several posters serve more tenants than max_tenants
through faults at the emulator, and nothing may be posted twice, lost or left waiting out its
claim (claim_ttl, 300 s, is far longer than any wait here)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, insert, select
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain.stored_rows import ClaimedEntry
from xerolink_poster.service_layer.dispatch.gate import HandingBack
from xerolink_poster.service_layer.dispatch.leasing import take_lease
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.outbox import ready_row
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_for,
    wait_settled,
    xero_objects,
)
from tests.fixtures.postgres import lock_waiters
from tests.fixtures.threads import Call

OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
US = 1_000_000
CLAIM_US = 300 * US  # the dispatcher's default claim time
LEASE_US = 30 * US  # the dispatcher's default lease time
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


# -- helpers ---------------------------------------------------------------------------------------


def _fill(database: Database, tenant: str, count: int, first: int = 0) -> list[int]:
    now = now_us()
    rows = [ready_row(tenant, f"c-{tenant}", first + n, now - 60 * US + n, now) for n in range(count)]
    with database.write.begin() as conn:
        got = conn.execute(insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True), rows)
        return [int(i) for i in got.scalars()]


def _claims(database: Database, ids: list[int]) -> list[tuple[str, int]]:
    with database.write.connect() as conn:
        rows = conn.execute(
            select(OUTBOX.c.claimed_by, OUTBOX.c.lease_until_us).where(OUTBOX.c.id.in_(ids)).order_by(OUTBOX.c.id)
        )
        return [(str(h), int(u)) for h, u in rows]


def _take(database: Database, tenant: str, holder: str, now: int, ttl_us: int = LEASE_US) -> bool:
    return run_in_transaction(database, lambda uow: take_lease(uow, tenant, holder, now, ttl_us)) is not None


def _claim(database: Database, tenant: str, holder: str, limit: int = 50, now: int | None = None) -> list[int]:
    at = now_us() if now is None else now
    got = run_in_transaction(database, lambda uow: uow.outbox.claim(tenant, holder, limit, at, CLAIM_US))
    return [e.id for e in got]


def _take_and_claim(database: Database, tenant: str, holder: str) -> tuple[bool, list[int]]:
    """A dispatcher's round, then its worker's first claim: only when the lease was taken."""
    taken = _take(database, tenant, holder, now_us())
    return taken, _claim(database, tenant, holder) if taken else []


def _lease(database: Database, tenant: str) -> tuple[str, int] | None:
    with UnitOfWork(database, write=False) as uow:
        lease = uow.leases.get_lease(tenant)
        return None if lease is None else (lease.holder, lease.expires_us)


def _dispatcher(database: Database, holder: str, **overrides: Any) -> Dispatcher:
    return Dispatcher(database, cast(XeroClient, None), settings(**overrides), holder)


@pytest.fixture
def elsewhere(database_url: str) -> Iterator[Database]:
    """The registry as another poster process opens it: its own pools and write turns (a
    process's dispatcher transactions take turns, adapters/write_turns.py)."""
    db = open_database(database_url)
    yield db
    db.dispose()


def _patch(worker: TenantWorker, name: str, fn: Callable[..., Any]) -> None:
    """One of the worker's methods replaced on this worker alone."""
    object.__setattr__(worker, name, fn)


def _worker(dispatcher: Dispatcher, tenant: str) -> TenantWorker:
    """A worker of `dispatcher` for the tenant, registered as its current one (as `_launch` does),
    not started: the test runs its methods in the order it wants."""
    worker = TenantWorker(dispatcher, dispatcher.settings, tenant, [], 0, 0.0, 0.0)
    dispatcher._workers[tenant] = worker
    return worker


# -- a hand-back after the lease was taken over, renewed, or lost -----------------------------------


def test_a_paused_workers_hand_back_after_another_poster_took_over_leaves_the_new_holder_alone(
    database: Database,
) -> None:
    """Poster A is paused past its lease; B takes the tenant over (voiding A's claims) and claims.
    A wakes and its worker hands back: B's lease and claims must stand, and once B dies, the next
    poster voids B's claims."""
    ids = _fill(database, "t1", 4)
    now = now_us()
    a = _dispatcher(database, "poster-a")
    worker = _worker(a, "t1")
    assert _take(database, "t1", "poster-a", now - 20 * US, 1 * US)  # A's lease ran out long ago
    assert _claim(database, "t1", "poster-a", now=now - 20 * US) == ids
    assert _take(database, "t1", "poster-b", now - 5 * US, 2 * US)  # B takes over, A's claims voided
    assert _claims(database, ids) == [("", 0)] * 4
    assert _claim(database, "t1", "poster-b", now=now - 5 * US) == ids
    # A, awake, ends its turn: not its lease any more.
    a.hand_back("t1", worker)
    holder = _lease(database, "t1")
    assert holder is not None and holder[0] == "poster-b" and holder[1] > 0
    # B died; its lease (2 s) has run out: C voids B's claims.
    assert _take(database, "t1", "poster-c", now_us())
    assert _claim(database, "t1", "poster-c") == ids


def test_a_dead_posters_claims_are_voided_after_a_paused_worker_renewed_over_its_lapsed_lease_and_handed_back(
    database: Database,
) -> None:
    """A's worker is paused past its lease; B takes the tenant over, claims a batch and dies; B's
    lease runs out too. A's worker wakes and renews (`TenantWorker._renew`). On 5f5f29c that was a
    plain acquire_lease, which took B's lapsed lease without voiding its claims; A found nothing
    to claim and handed the tenant back, the lease read "handed back", and the next poster did not
    void the dead B's claims either: they waited out the whole claim time (300 s). The renewal
    (`leasing.renew_lease`) now voids the claims of another holder whose lease ran out."""
    ids = _fill(database, "t1", 3)
    now = now_us()
    a = _dispatcher(database, "poster-a")
    worker = _worker(a, "t1")
    assert _take(database, "t1", "poster-a", now - 30 * US, 1 * US)
    assert _take(database, "t1", "poster-b", now - 20 * US, 1 * US)  # A's lease ran out: B takes over
    assert _claim(database, "t1", "poster-b", now=now - 20 * US) == ids  # ... claims, and dies
    assert worker._renew()  # A wakes: its renewal takes B's lapsed lease, and voids B's claims
    assert _claim(database, "t1", "poster-a") == ids
    worker._unclaim([cast(ClaimedEntry, SimpleNamespace(id=i)) for i in ids])  # A's job puts them back
    a.hand_back("t1", worker)  # A's turn ends
    assert _lease(database, "t1") == ("poster-a", 0)

    assert _take(database, "t1", "poster-c", now_us())
    assert _claim(database, "t1", "poster-c") == ids, (
        "a dead poster's claims survived a hand-back by a poster that never made them: "
        f"{_claims(database, ids)} (left for the whole claim time)"
    )


def test_a_paused_worker_that_wakes_after_the_tenant_was_handed_back_and_retaken_cannot_hold_entries(
    database: Database,
) -> None:
    """A's worker passed its renew check, then was paused past its lease; B took the tenant,
    served it and handed it back; C took it (handed back: no voiding). A wakes and claims (a claim
    checks no lease): its first call finds the lease C's, and its job lets the entries go at once,
    so C gets them on its next claim, not after the claim time."""
    ids = _fill(database, "t1", 2)
    now = now_us()
    a = _dispatcher(database, "poster-a")
    worker = _worker(a, "t1")
    assert _take(database, "t1", "poster-a", now - 20 * US, 1 * US)
    b = _dispatcher(database, "poster-b")
    b_worker = _worker(b, "t1")
    assert _take(database, "t1", "poster-b", now - 10 * US)
    b.hand_back("t1", b_worker)
    assert _take(database, "t1", "poster-c", now_us())
    late = _claim(database, "t1", "poster-a")  # A, awake: `TenantWorker._claim`'s statement
    assert late == ids
    # A's job: its first call checks the lease (Gate.call's `before`), finds it C's, and raises
    # LeaseLost; the job then unclaims its entries (TenantWorker._serve's job).
    lease = run_in_transaction(database, lambda uow: uow.leases.lease_for_call("t1", "poster-a", now_us()))
    assert lease is None
    worker._unclaim([cast(ClaimedEntry, SimpleNamespace(id=i)) for i in late])
    assert _claim(database, "t1", "poster-c") == ids


# -- a worker's run: jobs that fail, and the hand-back after them -----------------------------------


def _failing_run(database: Database, what: str) -> tuple[list[int], Dispatcher]:
    """A real worker run (`TenantWorker.run`, to its hand-back) over a tenant of three entries,
    whose one job fails in the way `what` says, and whose write about the failure fails too: the
    registry hiccuped (`record_failure`: the job raised, then `_record_failure` could not load the
    entries; `unclaim`: the job put its work back as the tenant was handed back, and the unclaim
    failed)."""
    ids = _fill(database, "t1", 3)
    a = _dispatcher(database, "poster-a", idle_release=0.2)
    assert run_in_transaction(database, partial_acquire(a, "t1")) is not None
    worker = _worker(a, "t1")
    # Entries as the claim read them, without links or connections (the job never reads them).
    _patch(
        worker,
        "_works",
        lambda uow, rows: [
            cast(Work, SimpleNamespace(row=r, handed_back=False, commit_unknown=False, sending=False)) for r in rows
        ],
    )

    def failing_job(claimed: list[Work]) -> None:
        if what == "unclaim":
            raise HandingBack("t1")
        raise RuntimeError("the registry went away mid-job")

    def failing_write(*_args: Any) -> Any:
        raise RuntimeError("the registry is still away")

    _patch(worker, "_process", failing_job)
    _patch(worker, "_load", failing_write)
    _patch(worker, "_unclaim", failing_write)
    worker.run()  # to the end: the pool waits for the job, then the lease goes back
    # As a lease that ran out (expiry 1, not 0): its claims are left, and the next holder voids them.
    assert _lease(database, "t1") == ("poster-a", 1)
    return ids, a


def partial_acquire(dispatcher: Dispatcher, tenant: str) -> Any:
    return lambda uow: dispatcher._acquire(tenant, uow)


@pytest.mark.parametrize("what", ["record_failure", "unclaim"])
def test_claims_left_by_a_failed_job_are_claimable_at_the_next_turn(database: Database, what: str) -> None:
    """Nothing of a failed job is in flight once its worker has handed the tenant back, yet its
    claims (300 s) stay. On 5f5f29c the next poster's lease read "handed back" and voided nothing,
    so the tenant's entries waited out the claim time, where before the next turn voided them.
    The worker now hands back such a lease as one that ran out."""
    ids, _ = _failing_run(database, what)
    assert [h for h, _ in _claims(database, ids)] == ["poster-a"] * 3  # the job ended; the claims stay
    assert _take(database, "t1", "poster-b", now_us())
    assert _claim(database, "t1", "poster-b") == ids, (
        f"entries of a job that ended were left claimed past a hand-back: {_claims(database, ids)}"
    )


def test_a_worker_whose_serve_raises_hands_back_after_its_jobs_and_leaves_no_claim(database: Database) -> None:
    """The turn fails outside a job (a claim that raises after a first batch): the pool's job
    still ends, and its outcome is written, before the tenant is handed back."""
    ids = _fill(database, "t1", 2)
    a = _dispatcher(database, "poster-a", idle_release=5.0, batch_size=1)
    assert run_in_transaction(database, partial_acquire(a, "t1")) is not None
    worker = _worker(a, "t1")
    _patch(
        worker,
        "_works",
        lambda uow, rows: [
            cast(Work, SimpleNamespace(row=r, handed_back=False, commit_unknown=False, sending=False)) for r in rows
        ],
    )
    in_job = threading.Event()
    release = threading.Event()
    claims = {"n": 0}
    claim = worker._claim

    def claim_then_fail() -> list[Work]:
        claims["n"] += 1
        if claims["n"] > 1:
            assert in_job.wait(10)
            release.set()
            raise RuntimeError("the registry went away between two claims")
        return claim()

    def slow_job(claimed: list[Work]) -> None:
        in_job.set()
        assert release.wait(10)
        # the job's outcome: the entry is let go (as a retry would clear its claim)
        run_in_transaction(database, lambda uow: uow.outbox.unclaim([w.row.id for w in claimed], "poster-a"))

    _patch(worker, "_claim", claim_then_fail)
    _patch(worker, "_claimable", lambda: True)
    _patch(worker, "_process", slow_job)
    worker.run()
    assert _lease(database, "t1") == ("poster-a", 0)
    assert _claims(database, ids) == [("", 0)] * 2
    assert _take(database, "t1", "poster-b", now_us())
    assert _claim(database, "t1", "poster-b") == ids


# -- take_lease on PostgreSQL: the row lock between the read and the upsert -------------------------


@postgres_only
def test_another_poster_cannot_take_and_claim_between_the_read_and_the_upsert(
    database: Database, elsewhere: Database, outsider: Engine
) -> None:
    """Poster B reads t1's lease (ran out, not handed back) and is held before its upsert; poster C
    tries to take the lease and claim meanwhile. C must wait for B (the row lock), then find the
    lease B's; B's claims are never voided by C, and C claims nothing."""
    ids = _fill(database, "t1", 3)
    now = now_us()
    assert _take(database, "t1", "poster-a", now - 10 * US, 1 * US)
    assert _claim(database, "t1", "poster-a", now=now - 10 * US) == ids  # A's, left when A died
    with UnitOfWork(database) as uow:
        prior = uow.leases.prior_lease("t1")  # the row locked until B's transaction ends
        assert prior is not None and not prior.handed_back
        other = Call(partial(_take_and_claim, elsewhere, "t1", "poster-c"))
        wait_for(lambda: lock_waiters(outsider) > 0, what="C waiting for the lease row")
        assert take_lease(uow, "t1", "poster-b", now_us(), LEASE_US) is not None
        uow.commit()
    taken, claimed = other.result()
    assert (taken, claimed) == (False, [])
    assert _claim(database, "t1", "poster-b") == ids


@postgres_only
def test_a_renewal_waiting_on_a_take_over_finds_the_lease_lost(
    database: Database, elsewhere: Database, outsider: Engine
) -> None:
    """A's worker renews while B, taking over A's lapsed lease, holds the row: the renewal waits,
    then fails (A stops), and B's voiding stands."""
    ids = _fill(database, "t1", 2)
    now = now_us()
    a = _dispatcher(elsewhere, "poster-a")
    worker = _worker(a, "t1")
    assert _take(database, "t1", "poster-a", now - 10 * US, 1 * US)
    assert _claim(database, "t1", "poster-a", now=now - 10 * US) == ids
    with UnitOfWork(database) as uow:
        prior = uow.leases.prior_lease("t1")
        assert prior is not None and not prior.handed_back
        renewal = Call(worker._renew)
        wait_for(lambda: lock_waiters(outsider) > 0, what="the renewal waiting for the lease row")
        assert take_lease(uow, "t1", "poster-b", now_us(), LEASE_US) is not None
        uow.commit()
    assert renewal.result() is False
    assert worker.lease_lost
    assert _claims(database, ids) == [("", 0)] * 2


@postgres_only
def test_two_posters_taking_many_tenants_at_once_never_both_hold_one_nor_deadlock(
    database: Database, database_url: str
) -> None:
    """Two posters take the leases of the same 12 tenants in one transaction each (as
    `_start_many`, in the tenants' order), over and over; some leases were handed back, some ran
    out, some never existed. Neither fails; each tenant goes to exactly one; the claims of a live
    holder are never voided."""
    tenants = [f"t{n:02d}" for n in range(12)]
    for n, tenant in enumerate(tenants):
        _fill(database, tenant, 2, first=100 * n)

    def settle(uow: UnitOfWork) -> None:
        # Half the tenants handed back by their holder, the others left to run out.
        for n, tenant in enumerate(tenants):
            lease = uow.leases.get_lease(tenant)
            assert lease is not None
            if n % 2:
                uow.outbox.release_claims(tenant)  # its jobs ended: their outcomes cleared the claims
                uow.leases.release_lease(tenant, lease.holder)
            else:
                uow.leases.acquire_lease(tenant, lease.holder, now_us() - 10 * US, 1 * US)

    def take_all(barrier: threading.Barrier, holder: str) -> list[str]:
        db = registries[holder]
        barrier.wait(10)

        def work(uow: UnitOfWork) -> list[str]:
            return [t for t in sorted(tenants) if take_lease(uow, t, holder, now_us(), LEASE_US) is not None]

        got = run_in_transaction(db, work)
        for tenant in got:
            _claim(db, tenant, holder, limit=1)
        return got

    registries = {h: open_database(database_url) for h in ("poster-x", "poster-y")}
    for rounds in range(6):
        if rounds:
            run_in_transaction(database, settle)
        barrier = threading.Barrier(2)
        calls = [Call(partial(take_all, barrier, h)) for h in ("poster-x", "poster-y")]
        try:
            got_x, got_y = (c.result(60) for c in calls)
        finally:
            if rounds == 5 or any(c.error for c in calls):
                for registry in registries.values():
                    registry.dispose()
        assert sorted(got_x + got_y) == sorted(tenants), (got_x, got_y)
        with database.write.connect() as conn:
            rows = conn.execute(select(OUTBOX.c.tenant_id, OUTBOX.c.claimed_by).where(OUTBOX.c.claimed_by != ""))
            claimed_by = Counter((str(t), str(h)) for t, h in rows)
        for tenant in got_x:
            assert claimed_by[(tenant, "poster-x")] == 1 and claimed_by[(tenant, "poster-y")] == 0
        for tenant in got_y:
            assert claimed_by[(tenant, "poster-y")] == 1 and claimed_by[(tenant, "poster-x")] == 0


# -- the claim, built once --------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 7, 2**31 - 1, 2**63 - 1])
def test_the_claim_takes_at_most_its_limit_of_the_right_tenant(database: Database, limit: int) -> None:
    t1 = _fill(database, "t1", 10)
    t2 = _fill(database, "t2", 3, first=100)
    got = _claim(database, "t1", "h1", limit=limit)
    assert got == t1[: min(limit, 10)]
    assert _claim(database, "t2", "h2", limit=limit) == t2[: min(limit, 3)]
    assert {h for h, _ in _claims(database, got)} <= {"h1"}


def test_the_claim_reused_across_tenants_holders_and_limits_binds_each_calls_values(database: Database) -> None:
    """The statement is one object: a dozen calls in one unit (past PostgreSQL's prepared
    threshold), each with its own tenant, holder, limit and time."""
    filled = {t: _fill(database, t, 6, first=100 * n) for n, t in enumerate(["a", "b", "c"])}
    now = now_us()

    def claims(uow: UnitOfWork) -> list[tuple[str, str, list[ClaimedEntry]]]:
        out = []
        for n in range(12):
            tenant = "abc"[n % 3]
            holder = f"h{n}"
            out.append((tenant, holder, uow.outbox.claim(tenant, holder, 1 + n % 2, now + n, 1000 + n)))
        return out

    got = run_in_transaction(database, claims)
    seen: list[int] = []
    for tenant, holder, entries in got:
        assert all(e.connection_id == f"c-{tenant}" for e in entries), (tenant, entries)
        assert all(e.id in filled[tenant] for e in entries)
        seen += [e.id for e in entries]
        for e in entries:
            assert _claims(database, [e.id])[0][0] == holder
    assert len(seen) == len(set(seen)) == sum(1 + n % 2 for n in range(12))
    # A read afterwards with its own values: none claimable once every entry is claimed.
    with UnitOfWork(database, write=False) as uow:
        assert not uow.outbox.has_claimable("a", now + 100)  # every entry of a is claimed
        assert uow.outbox.has_claimable("a", now + 10_000)  # ... until the claims run out
        assert not uow.outbox.has_claimable("zz", now + 10_000)


@postgres_only
def test_concurrent_claimers_on_postgres_take_disjoint_entries(database: Database, database_url: str) -> None:
    """Eight posters (each its own process's registry) claim batches of seven of one tenant's
    200 entries at once, until none is left."""
    ids = _fill(database, "t1", 200)
    barrier = threading.Barrier(8)
    registries = [open_database(database_url) for _ in range(8)]

    def claimer(n: int) -> list[int]:
        got: list[int] = []
        barrier.wait(10)
        while True:
            batch = _claim(registries[n], "t1", f"h{n}", limit=7)
            if not batch:
                return got
            assert len(batch) <= 7
            got += batch

    calls = [Call(partial(claimer, n)) for n in range(8)]
    try:
        taken = [i for c in calls for i in c.result(60)]
    finally:
        for registry in registries:
            registry.dispose()
    assert sorted(taken) == ids, "an entry was claimed twice or not at all"


# -- end to end: posters taking turns over more tenants than they serve at once ---------------------


@pytest.mark.parametrize("posters", [1, 2])
def test_posters_taking_turns_through_faults_post_each_invoice_once_and_never_wait_out_a_claim(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, posters: int
) -> None:
    """Five organisations, each poster serving two at a time with a batch of three (every turn a
    hand-back and a lease taken handed back), Xero failing some creates, dropping some answers
    after committing, and refusing some for rate. Every posting links, no invoice exists twice in
    Xero, and all settle well inside the claim time (300 s): no entry waited out a claim."""
    emulator = emulator_factory()
    dispatch = settings(batch_size=3, max_tenants=2, turn=0.2, idle_release=0.3, lease_ttl=5.0, max_attempts=20)
    apps = [poster_factory(dispatch, name=f"poster-{i}") for i in range(posters)]
    stub = stub_for(apps[0])
    orgs = {}
    for n in range(5):
        _, orgs[f"firm-{n}"] = connect(stub, emulator, f"firm-{n}")
    faults = [
        FaultRule("error", rate=0.5, count=6, methods=("PUT",), path_contains="Invoices"),
        FaultRule("drop_after_commit", rate=0.3, count=4, path_contains="Invoices"),
        FaultRule("rate_limit", rate=0.1, count=3, retry_after=1, methods=("PUT",)),
    ]
    for rule in faults:
        emulator.faults.add(rule)
    per = 12
    postings = []
    for n, connection_id in enumerate(orgs):
        bills = [samples.client_bill(10_000 * (n + 1) + i) for i in range(per)]
        results = stub.BatchPostTransactions(
            poster_pb2.BatchPostTransactionsRequest(connection_id=connection_id, transactions=bills), timeout=30
        ).results
        postings += [r.posting for r in results]
    watcher = stub_for(apps[-1])
    states = Counter(wait_settled(watcher, p.name, timeout=120).state for p in postings)
    assert states == Counter({poster_pb2.LINK_STATE_LINKED: len(postings)}), states
    for connection_id, org in orgs.items():
        numbers = Counter(i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices"))
        assert len(numbers) == per, connection_id
        assert set(numbers.values()) == {1}, f"{connection_id}: an invoice was posted twice: {numbers}"
    assert faults[0].hits and faults[1].hits, [rule.hits for rule in faults]
    # Nothing left claimed once everything settled.
    db = apps[0].db
    with db.write.connect() as conn:
        left = conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.state == "ready", OUTBOX.c.lease_until_us > 0)).all()
    assert left == []


def test_a_poster_stopped_mid_turn_hands_back_and_another_finishes_without_waiting_out_a_claim(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The poster serving two tenants is stopped while Xero is slow (its jobs putting work back
    as it stops, its lease handed back): the other poster takes over and posts every invoice once,
    none waiting out the claim time."""
    emulator = emulator_factory()
    dispatch = settings(batch_size=2, max_tenants=4, lease_ttl=5.0, max_attempts=20)
    first = poster_factory(dispatch, name="poster-a")
    stub = stub_for(first)
    orgs = {}
    for n in range(2):
        _, orgs[f"firm-{n}"] = connect(stub, emulator, f"firm-{n}")
    emulator.faults.add(FaultRule("latency", seconds=0.3, path_contains="Invoices"))
    per = 10
    postings = []
    for n, connection_id in enumerate(orgs):
        bills = [samples.client_bill(30_000 + 100 * n + i) for i in range(per)]
        postings += [
            r.posting
            for r in stub.BatchPostTransactions(
                poster_pb2.BatchPostTransactionsRequest(connection_id=connection_id, transactions=bills), timeout=30
            ).results
        ]
    wait_for(
        lambda: any(xero_objects(emulator, o["tenant_id"], "Invoices") for o in orgs.values()),
        timeout=30,
        what="a first invoice",
    )
    assert first.dispatcher is not None
    first.dispatcher.stop(10.0)
    second = poster_factory(dispatch, name="poster-b")
    watcher = stub_for(second)
    states = Counter(wait_settled(watcher, p.name, timeout=120).state for p in postings)
    assert states == Counter({poster_pb2.LINK_STATE_LINKED: len(postings)}), states
    for connection_id, org in orgs.items():
        numbers = Counter(i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices"))
        assert len(numbers) == per and set(numbers.values()) == {1}, (connection_id, numbers)
