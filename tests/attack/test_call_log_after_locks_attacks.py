"""Attacks on c898627: the transaction before each Xero call (`Gate.call`'s `before`) reads the
lease first (`lease_for_call`), counts the call in the app minute and marks, and logs the call in
the lease row last (`log_call`), at a fresh time once every lock is held, renewing the lease from
that time. Written from outside: real posters, a real emulator, locks held by outside sessions.

1. a count that waited for a lock: its log entry and the lease's expiry come from the moment the
   locks were held (SQLite: the file's write lock; PostgreSQL: the app minute's advisory lock);
2. transactions rolled back (lock waits ended, a full app minute) leave no log entry, no day call
   and no renewal behind, and the call made at last is logged, counted and made exactly once;
3. a count that waited past the lease it began under: the call must be made under a live lease,
   and another poster must not take the tenant over beneath it (a correction on a gRPC thread,
   whose transaction takes no dispatcher turn, beside the tenant worker's own renewals)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool
from xerolink_poster.adapters.database import PostgresTimeouts, now_us
from xerolink_poster.adapters.write_turns import serve_callers_on_this_thread
from xerolink_poster.domain.rate_limits import app_bucket_of
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    scaled_limits,
    settings,
    stub_for,
    wait_for,
)
from tests.fixtures.postgres import lock_waiters

US = 1_000_000
APP_MINUTE_LOCK = 0x78656C61  # leases._APP_MINUTE_LOCK


def _row(engine: Engine, tenant: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT holder, expires_us, minute_log, day_calls, day_started_us FROM tenant_lease "
                "WHERE tenant_id = :t"
            ),
            {"t": tenant},
        ).first()


def _app_calls(engine: Engine, since_us: int = 0) -> int:
    with engine.connect() as conn:
        total = conn.execute(text("SELECT sum(calls) FROM app_call_bucket WHERE bucket_us >= :s"), {"s": since_us})
        return int(total.scalar() or 0)


def _counting(emulator: Any, hook: Any = None) -> list[tuple[str, bool, float]]:
    """Every call the emulator's limiter decided: (tenant, allowed, wall time at arrival)."""
    seen: list[tuple[str, bool, float]] = []
    limiter = emulator.state.limiter
    acquire = limiter.acquire

    def counting_acquire(app_id: str, tenant: str) -> Any:
        decision = acquire(app_id, tenant)
        seen.append((tenant, decision.allowed, time.time()))
        if hook is not None:
            hook(tenant, decision)
        return decision

    limiter.acquire = counting_acquire
    return seen


def _connected(app: Any, emulator: Any, connection_id: str) -> tuple[str, Any]:
    """A new organisation connected through `app`: its tenant id and its connection row."""
    _, org = connect(stub_for(app), emulator, connection_id)
    with UnitOfWork(app.db, write=False) as uow:
        connection = uow.connections.get_connection(connection_id)
    assert connection is not None
    return org["tenant_id"], connection


def _outsider(database_url: str) -> Engine:
    return create_engine(database_url, poolclass=NullPool)


class _WriteLockFromOutside:
    """Holds the lock every count of a call must take, from another session: PostgreSQL's app
    minute advisory lock, or SQLite's one writer (BEGIN IMMEDIATE on another connection)."""

    def __init__(self, database_url: str, outsider: Engine) -> None:
        self.url = database_url
        self.outsider = outsider
        self.sqlite = database_url.startswith("sqlite")
        self._conn: Any = None

    def take(self) -> None:
        if self.sqlite:
            self._conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
            self._conn.execute("BEGIN IMMEDIATE")
        else:
            self._conn = self.outsider.connect()
            self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": APP_MINUTE_LOCK})

    def give(self) -> None:
        if self.sqlite:
            self._conn.execute("ROLLBACK")
        else:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": APP_MINUTE_LOCK})
            self._conn.commit()
        self._conn.close()
        self._conn = None

    def waited_for(self) -> bool:
        """Whether a count waits for the lock now (SQLite tells nobody: the test sleeps)."""
        return True if self.sqlite else lock_waiters(self.outsider, "advisory") >= 1


# -- 1. the entry and the renewal come from the moment the locks are held -----------------------
@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_call_whose_count_waited_is_logged_and_renewed_from_when_the_lock_was_held(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    emulator = emulator_factory()
    seen = _counting(emulator)
    ttl = 30.0
    app = poster_factory(
        settings(idle_release=0.2, lease_ttl=ttl, http_timeout=3.0), postgres=PostgresTimeouts(call_lock_ms=20_000)
    )
    assert app.dispatcher is not None
    tenant, connection = _connected(app, emulator, "firm-fresh")
    outsider = _outsider(database_url)
    lock = _WriteLockFromOutside(database_url, outsider)
    outcome: dict[str, Any] = {}
    try:
        with app.dispatcher.tenant_calls(tenant, 10.0) as worker:
            creds = worker.credentials(connection)
            assert worker.call(creds, "GET", "Contacts").status == 200
            before = _row(outsider, tenant)
            lock.take()
            try:

                def waited() -> None:
                    serve_callers_on_this_thread()  # a correction's call
                    outcome["status"] = worker.call(creds, "GET", "Contacts").status

                calling = threading.Thread(target=waited, daemon=True)
                calling.start()
                wait_for(lock.waited_for, timeout=20, interval=0.01, what="the count waiting for the lock")
                time.sleep(1.0)  # the test's delay: the count waits this long
                unlocked_us = now_us()
            finally:
                lock.give()
            calling.join(30)
            # Read while the tenant is still borrowed: once the borrow ends, a worker idle for longer
            # than idle_release hands the tenant back at once, and its lease reads 0.
            after = _row(outsider, tenant)
        assert outcome.get("status") == 200, outcome
    finally:
        outsider.dispose()
    new = sorted(set(json.loads(after.minute_log)) - set(json.loads(before.minute_log)))
    assert len(new) == 1, f"one call made, new log entries {new}"
    logged_us = round(new[0] * US)
    arrived = [t for tenant_id, allowed, t in seen if tenant_id == tenant and allowed][-1]
    assert logged_us >= unlocked_us - 1, (
        f"the call is logged {(unlocked_us - logged_us) / US:.3f} s before the count got its lock "
        "(the next holder takes it as arrived one http_timeout after that)"
    )
    assert logged_us <= round(arrived * US) + 1, "logged after Xero counted it"
    assert after.day_calls == before.day_calls + 1
    assert after.holder == before.holder
    assert abs(after.expires_us - (logged_us + int(ttl * US))) <= 1, (
        f"renewed to {after.expires_us}, not from the logged time {logged_us} + ttl"
    )


# -- 2a. lock waits ended: the tries rolled back leave nothing --------------------------------------
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_counts_whose_lock_wait_ended_leave_no_entry_and_the_call_is_logged_and_counted_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    # call_lock_ms 300 ms, the app minute's lock held 2.5 s from outside: every try of the
    # transaction (run_in_transaction's retries, then Gate.call's loop) ends its wait and rolls
    # back; the call goes when the lock is free. Samples of the lease row during the hold must
    # see it unchanged (lease_ttl 60 s: no renewal of the worker's own falls in the window).
    emulator = emulator_factory()
    seen = _counting(emulator)
    ttl = 60.0
    app = poster_factory(
        settings(idle_release=0.2, lease_ttl=ttl, http_timeout=3.0), postgres=PostgresTimeouts(call_lock_ms=300)
    )
    assert app.dispatcher is not None
    tenant, connection = _connected(app, emulator, "firm-ended")
    outsider = _outsider(database_url)
    lock = _WriteLockFromOutside(database_url, outsider)
    outcome: dict[str, Any] = {}
    samples: list[Any] = []
    try:
        with app.dispatcher.tenant_calls(tenant, 10.0) as worker:
            creds = worker.credentials(connection)
            assert worker.call(creds, "GET", "Contacts").status == 200
            before = _row(outsider, tenant)
            app_before = _app_calls(outsider)
            calls_before = len([s for s in seen if s[0] == tenant])
            lock.take()
            try:

                def waited() -> None:
                    outcome["status"] = worker.call(creds, "GET", "Contacts").status

                calling = threading.Thread(target=waited, daemon=True)
                calling.start()
                wait_for(lock.waited_for, timeout=20, interval=0.01, what="the count waiting for the lock")
                deadline = time.monotonic() + 2.5
                while time.monotonic() < deadline:
                    samples.append(_row(outsider, tenant))
                    time.sleep(0.05)
                unlocked_us = now_us()
            finally:
                lock.give()
            calling.join(30)
        assert outcome.get("status") == 200, outcome
        after = _row(outsider, tenant)
        # The poster's moves of counts to their answers' buckets keep the sum.
        app_after = _app_calls(outsider)
    finally:
        outsider.dispose()
    changed = [s for s in samples if tuple(s) != tuple(before)]
    assert changed == [], f"a try that rolled back changed the lease row: {changed[:2]} (was {before})"
    new = sorted(set(json.loads(after.minute_log)) - set(json.loads(before.minute_log)))
    assert len(new) == 1, f"one call made, new log entries {new}"
    assert round(new[0] * US) >= unlocked_us - 1
    assert after.day_calls == before.day_calls + 1
    assert len([s for s in seen if s[0] == tenant]) - calls_before == 1
    assert app_after - app_before == 1, f"the app minute counted {app_after - app_before} calls for one"


# -- 2b. a full app minute: the tries rolled back leave nothing ------------------------------------
MINUTE = 2.0


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_counts_refused_by_a_full_app_minute_leave_no_entry_and_the_call_is_logged_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    # Other posters (written from outside) filled the app's shared minute: every try raises
    # AppMinuteFull after lease_for_call, and rolls back; the call goes once the minute passes.
    emulator = emulator_factory(minute_seconds=MINUTE)
    seen = _counting(emulator)
    app_per_minute = 5
    app = poster_factory(
        settings(
            idle_release=0.2,
            lease_ttl=30.0,
            http_timeout=3.0,
            limits=scaled_limits(MINUTE, app_per_minute=app_per_minute),
        )
    )
    assert app.dispatcher is not None
    tenant, connection = _connected(app, emulator, "firm-full")
    outsider = _outsider(database_url)
    outcome: dict[str, Any] = {}
    samples: list[Any] = []
    try:
        with app.dispatcher.tenant_calls(tenant, 10.0) as worker:
            creds = worker.credentials(connection)
            before = _row(outsider, tenant)
            filled_at = now_us()
            bucket = app_bucket_of(filled_at, int(MINUTE * US))
            with outsider.begin() as conn:
                conn.execute(
                    text("INSERT INTO app_call_bucket (bucket_us, calls) VALUES (:b, :c)"),
                    {"b": bucket, "c": app_per_minute},
                )

            def waited() -> None:
                outcome["status"] = worker.call(creds, "GET", "Contacts").status
                outcome["done"] = time.monotonic()

            calling = threading.Thread(target=waited, daemon=True)
            calling.start()
            while calling.is_alive() and now_us() < filled_at + int(MINUTE * US) - 100_000:
                samples.append(_row(outsider, tenant))
                time.sleep(0.05)
            calling.join(30)
        assert outcome.get("status") == 200, outcome
        after = _row(outsider, tenant)
        app_after = _app_calls(outsider, bucket)
    finally:
        outsider.dispose()
    tenant_calls = [s for s in seen if s[0] == tenant]
    assert len(tenant_calls) == 1, tenant_calls
    assert tenant_calls[0][2] * US >= filled_at + MINUTE * US - 1, "called while the app minute was full"
    changed = [s for s in samples if tuple(s) != tuple(before)]
    assert changed == [], f"a try refused by the full minute changed the lease row: {changed[:2]} (was {before})"
    new = sorted(set(json.loads(after.minute_log)) - set(json.loads(before.minute_log)))
    assert len(new) == 1, f"one call made, new log entries {new}"
    assert after.day_calls == before.day_calls + 1
    assert app_after == app_per_minute + 1, f"app minute holds {app_after}: {app_per_minute} filled + 1 call"


# -- 3. a count that waited past the lease it began under --------------------------------------
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("on_a_grpc_thread", [False, True], ids=["dispatcher-thread", "grpc-thread"])
def test_a_call_whose_count_waited_past_the_lease_is_made_under_a_live_lease_and_not_taken_over(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str, on_a_grpc_thread: bool
) -> None:
    # lease_ttl 2 s, http_timeout 0.9 s, call_lock_ms 10 s (the settings of the commit's own
    # test). The app minute's lock is held from outside ~3.3 s while a call of poster A waits to
    # be counted, holding the lease row (FOR UPDATE). Poster B's correction asks for the tenant
    # after A's lease, renewed last before the wait, has run out by B's clock: B's acquire_lease
    # queues on the row. When the lock is freed A counts, logs, renews and calls. At Xero (the
    # call is held 0.3 s there) the lease must still be A's and live, and B must get the tenant
    # only after A's call was answered (A's worker hands it back 0.2 s idle after the loan).
    ttl, http_timeout = 2.0, 0.9
    emulator = emulator_factory()
    watching = threading.Event()
    at_xero: list[tuple[float, str, int, int]] = []
    outsider = _outsider(database_url)

    def hold_and_look(tenant_id: str, decision: Any) -> None:
        if watching.is_set() and decision.allowed and not at_xero:
            time.sleep(0.3)  # the call stays at Xero this long
            row = _row(outsider, tenant_id)
            at_xero.append((time.monotonic(), row.holder, row.expires_us, now_us()))

    _counting(emulator, hold_and_look)
    dispatch = settings(idle_release=0.2, http_timeout=http_timeout, lease_ttl=ttl)
    first = poster_factory(dispatch, name="poster-a", postgres=PostgresTimeouts(call_lock_ms=10_000))
    second = poster_factory(dispatch, name="poster-b", postgres=PostgresTimeouts(call_lock_ms=10_000))
    assert first.dispatcher is not None and second.dispatcher is not None
    tenant, connection = _connected(first, emulator, "firm-past")
    lock = _WriteLockFromOutside(database_url, outsider)
    outcome: dict[str, Any] = {}
    other: threading.Thread | None = None
    try:
        with first.dispatcher.tenant_calls(tenant, 10.0) as worker:
            creds = worker.credentials(connection)
            assert worker.call(creds, "GET", "Contacts").status == 200
            holder_a = _row(outsider, tenant).holder
            lock.take()
            try:

                def waited() -> None:
                    if on_a_grpc_thread:
                        serve_callers_on_this_thread()
                    outcome["status"] = worker.call(creds, "GET", "Contacts").status
                    outcome["answered"] = time.monotonic()

                calling = threading.Thread(target=waited, daemon=True)
                calling.start()
                wait_for(lock.waited_for, timeout=20, interval=0.01, what="A's count waiting for the lock")
                expires_before = _row(outsider, tenant).expires_us
                # Past A's lease by B's clock (the test's delay) by a whole lease more: past any
                # renewal of A's worker that queued on the row meanwhile, too (every ttl / 3).
                while now_us() < expires_before + int(ttl * US):
                    time.sleep(0.02)

                b_dispatcher = second.dispatcher
                assert b_dispatcher is not None

                def correction_on_b() -> None:
                    serve_callers_on_this_thread()
                    try:
                        with b_dispatcher.tenant_calls(tenant, 15.0):
                            outcome["b_got"] = time.monotonic()
                    except LeaseLost as exc:
                        outcome["b_error"] = repr(exc)

                other = threading.Thread(target=correction_on_b, daemon=True)
                other.start()
                wait_for(
                    lambda: lock_waiters(outsider) >= (3 if on_a_grpc_thread else 2),
                    timeout=20,
                    interval=0.01,
                    what="B's acquire_lease waiting for the lease row",
                )
                with outsider.connect() as conn:
                    outcome["waiting"] = sorted(
                        f"{r.application_name or '?'}: {' '.join(r.query.split())[:40]}"
                        for r in conn.execute(
                            text(
                                "SELECT a.application_name, a.query FROM pg_locks l JOIN pg_stat_activity a "
                                "ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()"
                            )
                        )
                    )
                watching.set()
            finally:
                lock.give()
            calling.join(30)
        assert outcome.get("status") == 200, outcome
        other.join(30)
    finally:
        if other is not None:
            other.join(30)
        outsider.dispose()
    assert at_xero, "A's call never reached Xero"
    _, holder, expires_us, seen_us = at_xero[0]
    assert holder == holder_a and expires_us > seen_us, (
        f"while A's call was at Xero the lease row said holder {holder!r} (A is {holder_a!r}), "
        f"expiring {(expires_us - seen_us) / US:+.3f} s from then; waiting on the database as the lock "
        f"was freed: {outcome.get('waiting')}"
    )
    assert "b_got" in outcome, outcome
    assert outcome["b_got"] > outcome["answered"], (
        f"B got the tenant {outcome['answered'] - outcome['b_got']:.3f} s before A's call was answered"
    )
