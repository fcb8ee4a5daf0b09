"""The app's shared minute counts each Xero call before it is made, then in the bucket of its
answer, when Xero has surely counted it (Gate._recount): on SQLite and on PostgreSQL, the move
goes with the next call's count, not in a write transaction of its own, and a call whose answer
no other call follows is moved by the dispatcher's loop."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import text
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.adapters.xero_client import Credentials
from xerolink_poster.domain.rate_limits import app_bucket_of
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.app_minute import NextBucketXero, buckets, next_bucket_gate
from tests.fixtures.leases import record_call

US = 1_000_000
TENANT, HOLDER = "tenant-moves", "poster-moves"
CREDS = Credentials("http://127.0.0.1:9/xero", TENANT, "access")


def _gate(database: Database) -> tuple[Gate, Dispatcher, NextBucketXero]:
    return next_bucket_gate(database, TENANT, HOLDER)


def test_a_call_answered_in_a_later_bucket_costs_no_write_transaction_of_its_own(
    database: Database, monkeypatch: Any
) -> None:
    """Most calls are answered in a later bucket than they were counted in: the move of each was
    a write transaction of its own (on SQLite a turn of the process's one writer), one more for
    every call."""
    gate, _, xero = _gate(database)
    writes: list[bool] = []
    real_enter = UnitOfWork.__enter__

    def enter(self: UnitOfWork) -> UnitOfWork:
        writes.append(self.write)
        return real_enter(self)

    monkeypatch.setattr(UnitOfWork, "__enter__", enter)
    for _ in range(4):
        gate.call(CREDS, "GET", "Invoices/x")

    assert len(xero.answered_buckets) == 4
    assert writes.count(True) == 4, "a write transaction per call: its count"


def test_each_call_ends_counted_once_in_the_bucket_of_its_answer(database: Database) -> None:
    """The moves go with the next call's count; the last call's, with no call after it, with the
    dispatcher's loop (Dispatcher.write_app_moves). Then each call is counted once, in the bucket
    it was answered in."""
    gate, dispatcher, xero = _gate(database)
    for _ in range(4):
        gate.call(CREDS, "GET", "Invoices/x")
    before_the_loop = buckets(database)
    dispatcher.write_app_moves()

    assert sum(before_the_loop.values()) == 4
    assert before_the_loop != Counter(xero.answered_buckets), "the last call's move was written already"
    assert buckets(database) == Counter(xero.answered_buckets)
    assert dispatcher.app_moves.take() == {}


@pytest.mark.postgres
def test_counts_with_moves_and_the_loops_writes_of_two_posters_never_deadlock(postgres_url: str) -> None:
    """Every write of the app minute's buckets happens under its advisory lock, after the lease
    row a count checks: the counts of two posters' tenants, each moving earlier calls to the
    current bucket, and each dispatcher loop writing moves (buckets in another order) all go
    through on their first try, and every call counted stays counted once."""
    posters = [open_database(postgres_url) for _ in range(2)]
    migrate(posters[0])
    window = 60 * US
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def counting(db: Database, tenant: str) -> None:
        run_in_transaction(db, lambda uow: uow.leases.acquire_lease(tenant, tenant, now_us(), 600 * US), attempts=1)
        start.wait(10)

        def before(uow: UnitOfWork) -> int:
            now = now_us()
            moved = {app_bucket_of(now - 2 * US, window): -1, app_bucket_of(now, window): 1}
            assert record_call(uow.leases, tenant, tenant, now, 600 * US, window, 86_400 * US)
            return uow.leases.count_app_call(now, window, moved)

        for _ in range(40):
            run_in_transaction(db, before, attempts=1)

    def looping(db: Database) -> None:
        start.wait(10)

        def write(uow: UnitOfWork) -> None:
            now = now_us()
            uow.leases.add_app_calls({app_bucket_of(now, window): 1, app_bucket_of(now - 3 * US, window): -1})

        for _ in range(40):
            run_in_transaction(db, write, attempts=1)

    def guarded(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(counting, db, f"tenant-{i}-{j}"))
        for i, db in enumerate(posters)
        for j in range(2)
    ] + [threading.Thread(target=guarded, args=(looping, db)) for db in posters]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads), "still waiting"
        with posters[0].session(write=False) as session:
            total = session.execute(text("SELECT coalesce(sum(calls), 0) FROM app_call_bucket")).scalar_one()
    finally:
        for db in posters:
            db.dispose()
    assert errors == []
    assert total == 4 * 40, "a count lost or doubled"
