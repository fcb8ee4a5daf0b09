"""A poster on PostgreSQL beside a session that stalls inside a transaction: another poster
frozen mid-transaction (a paused VM, a lost network with its socket still open, a long GC), or
any client holding a lock. Every poster counts each Xero call in the app's minute under one
advisory lock, so one frozen poster would stop the whole fleet's calls; and a dispatcher write
waiting for a lock holds this poster's dispatcher turn, so its other writes (lease renewals
among them) would wait with it. Each wait below has a timeout: a test fails, never hangs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import select
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters import migrations
from xerolink_poster.adapters.database import Database, PostgresTimeouts, now_us, open_database
from xerolink_poster.adapters.migrations import _MIGRATION_LOCK, migrate
from xerolink_poster.adapters.repositories.leases import _APP_MINUTE_LOCK
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.adapters.write_turns import serve_callers_on_this_thread
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_for, wait_settled
from tests.fixtures.postgres import lock_waiters
from tests.fixtures.threads import Call

pytestmark = pytest.mark.postgres
MINUTE_US = 60_000_000
US = 1_000_000


def _opened(url: str, timeouts: PostgresTimeouts) -> Database:
    database = open_database(url, timeouts)
    migrate(database)
    return database


def _count(db: Database, attempts: int = 5) -> int:
    """A call counted in the app's minute, with no lock time of its own."""
    return run_in_transaction(db, lambda uow: uow.leases.count_app_call(now_us(), MINUTE_US), attempts)


def _count_before_a_call(db: Database) -> int:
    """A call counted as Gate.call's transaction before it counts one: waiting for locks at most
    the registry's call_lock_ms."""

    def before(uow: UnitOfWork) -> int:
        uow.leases.limit_lock_wait(db.call_lock_ms)
        return uow.leases.count_app_call(now_us(), MINUTE_US)

    return run_in_transaction(db, before)


def _holding(outsider: Engine, key: int, until: threading.Event) -> Call:
    """A client that takes the advisory lock `key` in a transaction and keeps it until `until`."""
    holding = threading.Event()

    def hold() -> None:
        with outsider.connect() as conn, conn.begin():
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            holding.set()
            until.wait(30)

    run = Call(hold)
    assert holding.wait(10)
    return run


def test_a_poster_frozen_inside_its_count_lets_go_of_the_app_minute_after_the_idle_timeout(
    postgres_url: str,
) -> None:
    """The frozen poster's session is ended by PostgreSQL after idle_in_transaction_ms, which
    rolls its count back and frees the lock: the other poster counts its call, and the frozen
    one, when it wakes, cannot commit (so it never makes the call it had counted)."""
    frozen = _opened(postgres_url, PostgresTimeouts(idle_in_transaction_ms=500))
    other = _opened(postgres_url, PostgresTimeouts(idle_in_transaction_ms=500))
    wakes = threading.Event()
    counted = threading.Event()

    def frozen_gate() -> None:
        with UnitOfWork(frozen) as uow:
            uow.leases.count_app_call(now_us(), MINUTE_US)
            counted.set()
            wakes.wait(30)
            uow.commit()

    try:
        asleep = Call(frozen_gate)
        assert counted.wait(10)
        began = time.monotonic()
        other_count = Call(lambda: _count(other))
        other_count.thread.join(10)
        waited = time.monotonic() - began
        wakes.set()
        assert other_count.result() == 1, "the frozen poster's count was rolled back: only this call counts"
        assert waited < 10, "the other poster waited for the frozen one to wake"
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver says of a session ended
            asleep.result()
    finally:
        wakes.set()
        frozen.dispose()
        other.dispose()


def test_the_count_before_a_call_waiting_for_a_lock_lets_the_dispatchers_other_writes_pass(
    postgres_url: str, outsider: Engine
) -> None:
    """While a client holds the app-minute lock, this poster's dispatcher counts a call and waits
    for it. Its lease renewal, another dispatcher write, goes through meanwhile: the count gives
    its turn back after call_lock_ms, and is tried again after the renewal."""
    db = _opened(postgres_url, PostgresTimeouts(call_lock_ms=300))
    release = threading.Event()
    try:
        holder = _holding(outsider, _APP_MINUTE_LOCK, release)
        count = Call(lambda: _count_before_a_call(db))
        wait_for(lambda: lock_waiters(outsider) == 1, timeout=10)
        renewal = Call(lambda: run_in_transaction(db, lambda uow: uow.leases.acquire_lease("t1", "me", now_us(), US)))
        renewal.thread.join(5)
        renewed_while_held = not renewal.thread.is_alive() and count.thread.is_alive()
        release.set()
        holder.result()
        assert renewal.result() is not None
        assert renewed_while_held, "the renewal waited behind the count that waited for the lock"
        assert count.result() == 1, "the count went through once the lock was free"
    finally:
        release.set()
        db.dispose()


@pytest.mark.parametrize("callers", [False, True], ids=["dispatcher", "caller"])
def test_other_writes_wait_for_a_lock_as_long_as_it_is_held(postgres_url: str, outsider: Engine, callers: bool) -> None:
    """call_lock_ms is the count's before a call, for itself: any other write, a caller's (a Post)
    or the dispatcher's (what Xero answered), waits for a lock as long as it is held, and is never
    refused for it."""
    db = _opened(postgres_url, PostgresTimeouts(call_lock_ms=100))
    release = threading.Event()
    try:
        holder = _holding(outsider, _APP_MINUTE_LOCK, release)

        def count() -> int:
            if callers:
                serve_callers_on_this_thread()
            return _count(db, attempts=1)

        counting = Call(count)
        wait_for(lambda: lock_waiters(outsider) == 1, timeout=10)
        time.sleep(0.5)  # five of the call's lock times
        waited = counting.thread.is_alive()
        release.set()
        holder.result()
        assert counting.result() == 1
        assert waited
    finally:
        release.set()
        db.dispose()


def test_a_migration_waits_for_another_posters_migration_beyond_the_lock_time(
    postgres_url: str, outsider: Engine
) -> None:
    """Posters starting together migrate one at a time under the migration lock; a migration can
    take longer than any lock time an operator sets for the poster's sessions (here in the URL),
    and the second poster must wait for it, not fail to start."""
    db = open_database(f"{postgres_url}?options=-c%20lock_timeout%3D100")
    release = threading.Event()
    try:
        holder = _holding(outsider, _MIGRATION_LOCK, release)
        migrating = Call(lambda: migrate(db))
        wait_for(lambda: lock_waiters(outsider) == 1, timeout=10)
        time.sleep(0.5)
        release.set()
        holder.result()
        migrating.result()
    finally:
        release.set()
        db.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_xero_call_waits_out_a_held_app_minute_without_counting_an_attempt(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, outsider: Engine
) -> None:
    """A bill whose Xero call waits for the app-minute lock longer than every retry of its
    transaction is posted once the lock is free: the entry counts no attempt and shows no error,
    since no call was made."""
    emulator = emulator_factory()
    app = poster_factory(settings(), postgres=PostgresTimeouts(call_lock_ms=100))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    release = threading.Event()
    try:
        holder = _holding(outsider, _APP_MINUTE_LOCK, release)
        posting = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(1))
        ).posting
        wait_for(lambda: lock_waiters(outsider) >= 1, timeout=10)
        time.sleep(1.5)  # more than the five tries of the transaction, 100 ms each
        release.set()
        holder.result()
        assert wait_settled(stub, posting.name, timeout=30).state == poster_pb2.LINK_STATE_LINKED
    finally:
        release.set()
    with app.db.session(write=False) as session:
        entries = session.exec(select(OutboxRow)).all()
    assert [(e.attempts, e.uncertain) for e in entries] == [(0, False)], "an attempt or a look-up for a call never made"
    assert len(emulator.state.organisation(org["tenant_id"]).objects["Invoices"]) == 1


@pytest.mark.empty_registry
def test_a_slow_migration_is_not_ended_by_the_idle_timeout(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alembic's Python between a migration's statements is idle time to PostgreSQL: on a busy
    machine it passed a short idle timeout, and PostgreSQL ended the poster's own migration at
    start (found by CI with the 300 ms timeout of an attack test)."""
    real = migrations._adopt_legacy_registry

    def slow(*args: Any) -> None:
        real(*args)
        time.sleep(0.6)  # idle inside the migration's transaction

    monkeypatch.setattr(migrations, "_adopt_legacy_registry", slow)
    db = open_database(postgres_url, PostgresTimeouts(idle_in_transaction_ms=200))
    try:
        migrate(db)
        migrate(db)
    finally:
        db.dispose()
