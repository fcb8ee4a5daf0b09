"""Attacks on the call log a tenant's lease keeps for whoever serves the tenant next
(`minute_log`; `Dispatcher._launch` loads every logged time plus `http_timeout`, the longest a
call can take to reach Xero once sent). Written from outside while a change that merged answer
times into the log at each hand back was under review; that change pushed the log one
`http_timeout` later at every hand back (sections 1 and 2) and could overwrite a call logged
while the hand back waited for the row (section 3), and did not land. What did land: each call
is logged at the moment every lock of the transaction before it is held, not before the waits
for them (section 4)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import PostgresTimeouts, now_us, open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.adapters.write_turns import serve_callers_on_this_thread
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.leases import record_call
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    record_refusals,
    scaled_limits,
    settings,
    stub_for,
    wait_for,
    wait_settled,
    xero_objects,
)
from tests.fixtures.postgres import lock_waiters

US = 1_000_000


def _lease(app: Any, tenant: str) -> Any:
    with UnitOfWork(app.db, write=False) as uow:
        return uow.leases.get_lease(tenant)


def _handed_back(app: Any, tenant: str) -> bool:
    lease = _lease(app, tenant)
    return lease is not None and lease.expires_us == 0


def _post(stub: Any, connection_id: str, first: int, count: int) -> list[str]:
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(
            connection_id=connection_id, transactions=[samples.client_bill(first + i) for i in range(count)]
        )
    ).results
    return [r.posting.name for r in results]


def _one_bill_posted(app: Any, stub: Any, emulator: Any, connection_id: str, record: int) -> str:
    """A new organisation connected, one bill posted to it and its worker's lease handed back:
    the tenant id, with the lease's call log holding the bill's calls."""
    _, org = connect(stub, emulator, connection_id)
    posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=samples.client_bill(record))
    ).posting
    assert wait_settled(stub, posting.name, timeout=30).state == poster_pb2.LINK_STATE_LINKED
    tenant: str = org["tenant_id"]
    wait_for(lambda: _handed_back(app, tenant), timeout=20, what="the posting's worker handed back")
    return tenant


# -- 1. every hand back pushes the log one http_timeout later ---------------------------------------
@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_worker_lent_and_handed_back_without_a_call_leaves_the_call_log_as_it_was(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    # A correction (or a drift poll, a webhook's look-up) borrows the tenant's worker and makes
    # no call: nothing happened at Xero, so the lease's call log must not change. Xero's minute
    # of the earlier calls passes when it passes, however many workers came and went.
    emulator = emulator_factory()
    http_timeout = 4.0
    app = poster_factory(settings(batch_size=1, idle_release=0.2, http_timeout=http_timeout, lease_ttl=10.0))
    dispatcher = app.dispatcher
    assert dispatcher is not None
    stub = stub_for(app)
    tenant = _one_bill_posted(app, stub, emulator, "firm-idle", 8100)
    before = sorted(json.loads(_lease(app, tenant).minute_log))
    assert before, "the posting's calls were logged"

    loans = 3
    for _ in range(loans):
        with dispatcher.tenant_calls(tenant, 10.0) as worker:
            pass  # no call
        worker.join(20)
        assert not worker.is_alive()
        assert _handed_back(app, tenant)
    observed = time.time()
    after = sorted(json.loads(_lease(app, tenant).minute_log))

    future = [round(t - observed, 2) for t in after if t > observed]
    moved = [round(b - a, 2) for a, b in zip(before, after, strict=False)]
    assert future == [], (
        f"after {loans} loans without a call the log holds calls answered in the future "
        f"(seconds ahead of now): {future}; each logged call moved by {moved} s "
        f"(http_timeout {http_timeout} s a hand back)"
    )
    assert after == before, f"no call was made, yet the log changed by {moved} s a call"


# -- 2. tenants taking turns with full minutes ----------------------------------------------------
MINUTE = 1.0  # a scaled Xero minute, in the emulator and the poster
PER_MINUTE = 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenants_taking_turns_with_full_minutes_never_log_calls_in_the_future(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    # One worker for two tenants (max_tenants=1). A tenant whose minute is full waits at least a
    # turn, so with the other tenant waiting its worker hands it back at once (Gate wait >= turn):
    # the tenants swap several times a (scaled) minute, and each swap is a hand back of a worker
    # that made no call. Xero lets each tenant call again a minute after its calls arrived.
    emulator = emulator_factory(minute_seconds=MINUTE, minute_limit=PER_MINUTE)
    refused = record_refusals(emulator)
    http_timeout = 0.9
    app = poster_factory(
        settings(
            batch_size=1,
            max_tenants=1,
            turn=0.3,
            lease_ttl=2.0,
            http_timeout=http_timeout,
            idle_release=0.2,
            limits=scaled_limits(MINUTE, per_minute=PER_MINUTE),
        )
    )
    assert app.dispatcher is not None
    stub = stub_for(app)
    tenants = {}
    for connection_id in ("firm-t0", "firm-t1"):
        _, org = connect(stub, emulator, connection_id)
        tenants[connection_id] = org["tenant_id"]
    bills = 3
    for n, connection_id in enumerate(tenants):
        _post(stub, connection_id, 60_000 + 1000 * n, bills)

    # Watch both leases: whatever a lease's log says, no call in it can have been answered (or
    # sent) after the moment the row was read.
    worst: dict[str, float] = {t: float("-inf") for t in tenants.values()}
    observations = 0
    started = time.monotonic()
    watch = 15.0  # the window of observation (at most); Xero allows the whole work in ~8 s here

    def invoices() -> int:
        return sum(len(xero_objects(emulator, t, "Invoices")) for t in tenants.values())

    while time.monotonic() - started < watch and invoices() < bills * len(tenants):
        for tenant in tenants.values():
            lease = _lease(app, tenant)
            observed = time.time()
            if lease is not None and json.loads(lease.minute_log):
                worst[tenant] = max(worst[tenant], max(json.loads(lease.minute_log)) - observed)
                observations += 1
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    posted = invoices()
    ahead = {t[:8]: round(s, 2) for t, s in worst.items()}
    assert all(s <= 0 for s in worst.values()), (
        f"a lease's log held a call up to {ahead} s after the moment it was read "
        f"({observations} reads); {posted} of {bills * len(tenants)} invoices posted in {elapsed:.1f} s "
        f"(minute {MINUTE} s, {PER_MINUTE} calls, http_timeout {http_timeout} s); refused {refused}"
    )
    assert refused == []


# -- 3. a call logged during the hand back is overwritten (PostgreSQL) ----------------------------
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_correction_call_logged_while_a_stopping_poster_hands_its_tenant_back_stays_in_the_log(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    # A correction borrows the tenant's worker on a gRPC thread (its transactions take no turn
    # among the dispatcher's on PostgreSQL, adapters/write_turns.py) and makes a call just as the
    # poster stops: the worker's loop ends on `stopping` and hands the tenant back without
    # waiting for its borrowers. The correction's call log and the hand back's release_lease
    # run at once. The schedule is fixed with a row lock held by an outside session: the
    # correction's lease_for_call queues on the lease row first, the hand back (which has read the
    # log already, without a lock) queues second.
    emulator = emulator_factory()
    counted: dict[str, int] = {}
    guard = threading.Lock()
    limiter = emulator.state.limiter
    acquire = limiter.acquire

    def counting_acquire(app_id: str, tenant: str) -> Any:
        decision = acquire(app_id, tenant)
        if decision.allowed:
            with guard:
                counted[tenant] = counted.get(tenant, 0) + 1
        return decision

    limiter.acquire = counting_acquire  # type: ignore[method-assign,assignment]
    # No lease renewal in the window (lease_ttl / 3), and the correction's count waits for the
    # outside lock as long as the test needs (call_lock_ms), whatever the machine's load.
    app = poster_factory(
        settings(batch_size=1, idle_release=0.2, lease_ttl=60.0, http_timeout=3.0),
        postgres=PostgresTimeouts(call_lock_ms=60_000),
    )
    dispatcher = app.dispatcher
    assert dispatcher is not None
    stub = stub_for(app)
    tenant = _one_bill_posted(app, stub, emulator, "firm-stop", 8200)
    with UnitOfWork(app.db, write=False) as uow:
        connection = uow.connections.get_connection("firm-stop")
    assert connection is not None

    outsider = create_engine(database_url, poolclass=NullPool)
    lent = threading.Event()
    go = threading.Event()
    outcome: dict[str, Any] = {}

    def correction() -> None:
        serve_callers_on_this_thread()  # a gRPC thread, as Corrections run on
        try:
            with dispatcher.tenant_calls(tenant, 10.0) as worker:
                outcome["worker"] = worker
                creds = worker.credentials(connection)
                lent.set()
                go.wait(30)
                outcome["status"] = worker.call(creds, "GET", "Contacts").status
        except BaseException as exc:
            outcome["error"] = repr(exc)
            lent.set()

    thread = threading.Thread(target=correction, daemon=True)
    thread.start()
    assert lent.wait(30) and "error" not in outcome, outcome
    conn = outsider.connect()
    try:
        tx = conn.begin()
        conn.execute(text("SELECT 1 FROM tenant_lease WHERE tenant_id = :t FOR UPDATE"), {"t": tenant})
        go.set()
        wait_for(lambda: lock_waiters(outsider) >= 1, timeout=20, interval=0.01, what="the correction's count")
        dispatcher.request_stop()
        wait_for(lambda: lock_waiters(outsider) >= 2, timeout=20, interval=0.01, what="the hand back's UPDATE")
        tx.rollback()
    finally:
        conn.close()
    thread.join(30)
    worker = outcome["worker"]
    worker.join(30)
    outsider.dispose()
    assert outcome.get("status") == 200, outcome
    assert _handed_back(app, tenant)
    logged = json.loads(_lease(app, tenant).minute_log)
    with guard:
        at_xero = counted.get(tenant, 0)
    # Every call Xero counted for the tenant (all within this minute) must be in the lease's log,
    # or the next holder (another poster) counts one call fewer than Xero does.
    assert len(logged) >= at_xero, (
        f"Xero counted {at_xero} calls of the tenant this minute, the lease's log holds {len(logged)}: "
        "the correction's call, logged while the hand back waited for the row, was "
        "overwritten by release_lease's UPDATE of the log it had read before"
    )


# -- 3b. the same race on the repository alone -----------------------------------------------------
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_release_lease_keeps_a_call_the_holder_logged_while_it_waited_for_the_row(database_url: str) -> None:
    db = open_database(database_url)
    migrate(db)
    try:
        holder, tenant, minute_us, day_us, ttl_us = "poster-a", "tenant-race", 60 * US, 86400 * US, 30 * US
        run_in_transaction(db, lambda uow: uow.leases.acquire_lease(tenant, holder, now_us(), ttl_us))
        first = now_us()
        run_in_transaction(db, lambda uow: record_call(uow.leases, tenant, holder, first, ttl_us, minute_us, day_us))
        recorded = threading.Event()
        commit = threading.Event()
        second: list[int] = []

        def caller_call() -> None:
            # A correction's count, on a caller's thread (no dispatcher turn): it locks the row
            # and logs its call, then commits only when told.
            serve_callers_on_this_thread()
            with UnitOfWork(db) as uow:
                at = now_us()
                second.append(at)
                assert record_call(uow.leases, tenant, holder, at, ttl_us, minute_us, day_us)
                recorded.set()
                commit.wait(30)
                uow.commit()

        calling = threading.Thread(target=caller_call, daemon=True)
        calling.start()
        assert recorded.wait(30)
        releasing = threading.Thread(
            target=lambda: run_in_transaction(db, lambda uow: uow.leases.release_lease(tenant, holder)),
            daemon=True,
        )
        releasing.start()
        watcher = create_engine(database_url, poolclass=NullPool)
        try:
            wait_for(lambda: lock_waiters(watcher) >= 1, timeout=20, interval=0.01, what="the release's UPDATE")
        finally:
            watcher.dispose()
        commit.set()
        calling.join(30)
        releasing.join(30)
        with UnitOfWork(db, write=False) as uow:
            lease = uow.leases.get_lease(tenant)
        assert lease is not None and lease.expires_us == 0
        logged = sorted(json.loads(lease.minute_log))
        assert len(logged) == 2, (
            f"two calls were logged under the lease, the released log holds {logged} "
            f"(the call logged {second[0] / US:.3f} while release_lease waited for the row)"
        )
    finally:
        db.dispose()


# -- 4. a count that waited before its call was sent ----------------------------------------------
APP_MINUTE_LOCK = 0x78656C61  # the advisory lock every poster's count of a call takes (leases.py)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_call_whose_count_waited_longer_than_http_timeout_is_not_refused_to_the_next_holder(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    # The count's transaction waits for the app minute's advisory lock (held here by another
    # session for 1.5 s, longer than the 0.9 s http_timeout: the multi-instance test's settings,
    # with call_lock_ms 2 s). The call reaches Xero 1.5 s after the transaction began; the next
    # holder (another poster) loads the logged time + 0.9 s. Logged when the transaction began
    # (as before the log was written last), the next holder's second call was refused.
    minute, per_minute, hold = 2.0, 2, 1.5
    emulator = emulator_factory(minute_seconds=minute, minute_limit=per_minute)
    refused = record_refusals(emulator)
    dispatch = settings(
        idle_release=0.2, http_timeout=0.9, lease_ttl=4.0, limits=scaled_limits(minute, per_minute=per_minute)
    )
    first = poster_factory(dispatch, name="poster-a", postgres=PostgresTimeouts(call_lock_ms=10_000))
    second = poster_factory(dispatch, name="poster-b", postgres=PostgresTimeouts(call_lock_ms=10_000))
    assert first.dispatcher is not None and second.dispatcher is not None
    _, org = connect(stub_for(first), emulator, "firm-wait")
    tenant = org["tenant_id"]
    with UnitOfWork(first.db, write=False) as uow:
        connection = uow.connections.get_connection("firm-wait")
    assert connection is not None

    outsider = create_engine(database_url, poolclass=NullPool)
    try:
        with first.dispatcher.tenant_calls(tenant, 10.0) as worker:
            creds = worker.credentials(connection)
            assert worker.call(creds, "GET", "Contacts").status == 200
            with outsider.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": APP_MINUTE_LOCK})
                done: list[int] = []
                caller = threading.Thread(
                    target=lambda: done.append(worker.call(creds, "GET", "Contacts").status), daemon=True
                )
                caller.start()
                wait_for(lambda: lock_waiters(outsider) >= 1, timeout=20, interval=0.01, what="the count")
                time.sleep(hold)  # the test's delay: the count waits this long for the lock
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": APP_MINUTE_LOCK})
                conn.commit()
                caller.join(20)
            assert done == [200]
        worker.join(20)
        assert _handed_back(first, tenant)
        with second.dispatcher.tenant_calls(tenant, 10.0) as worker:
            creds = worker.credentials(connection)
            statuses = [worker.call(creds, "GET", "Contacts").status for _ in range(per_minute)]
    finally:
        outsider.dispose()
    assert refused == [] and statuses == [200] * per_minute, (refused, statuses)
