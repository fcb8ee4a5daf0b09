"""Attacks on "a poster's PostgreSQL sessions are ended after idle_in_transaction_ms idle inside a
transaction, and the transaction before a Xero call waits call_lock_ms for a lock" (PostgresTimeouts,
lock_wait_ended and retryable of adapters/database.py, Gate.call of service_layer/dispatch/gate.py,
migrate, the XEROLINK_PG_* variables of entrypoints/config.py), from outside: another poster frozen inside
its transaction (a paused VM, a lost network with its socket open) holding the locks the
dispatcher's writes after a Xero call need, a poster that wakes after PostgreSQL ended its
session, an operator whose libpq environment or URL carries options of its own, and careless
values of the variables. Each test says what a user of the poster must see: an accountant never a
lost or duplicated document, nor a failed attempt for a call that worked or never went out; an
operator a clear error. Every wait has a timeout: a test fails, never hangs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text
from sqlmodel import select
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_common.errors import XerolinkError
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, PostgresTimeouts, now_us, open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.adapters.repositories.leases import _APP_MINUTE_LOCK, SqlLeaseRepository
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.adapters.token_vault import TokenVault
from xerolink_poster.adapters.write_turns import serve_callers_on_this_thread, serving_callers
from xerolink_poster.adapters.xero_client import Credentials, XeroAnswer, XeroClient
from xerolink_poster.adapters.xero_identity import TokenGrant, XeroApp, XeroApps, XeroIdentity
from xerolink_poster.domain.rate_limits import Limits
from xerolink_poster.entrypoints import config
from xerolink_poster.service_layer import connections
from xerolink_poster.service_layer.connection_tokens import ConnectionTokens
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.results import Results, Retry
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.gate import TestXero, tenant_gate
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_for, wait_settled
from tests.fixtures.postgres import lock_waiters
from tests.fixtures.threads import Call

US = 1_000_000
TENANT = "tenant-attack"
HOLDER = "poster-a"
# What the tests give the transaction before a Xero call to wait for a lock: five tries of it take
# about half a second, far below how long the other client below holds its lock.
LOCK_MS = 100


# -- helpers --------------------------------------------------------------------------------------


class _Frozen:
    """Another client (a poster frozen inside its transaction) that runs `statements` in one
    transaction and then holds its locks for `seconds`, or until `release`."""

    def __init__(self, outsider: Engine, statements: list[str], seconds: float) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()

        def hold() -> None:
            with outsider.connect() as conn, conn.begin():
                for statement in statements:
                    conn.execute(text(statement))
                self.holding.set()
                self.release.wait(seconds)

        self.run = Call(hold)
        assert self.holding.wait(10), "the other client could not take its locks"

    def end(self) -> None:
        self.release.set()
        self.run.result()


# The app's minute as a poster frozen inside its count leaves it: the advisory lock every count
# takes, and the row of the bucket it counted in (here every bucket's row).
FROZEN_COUNT = [f"SELECT pg_advisory_xact_lock({_APP_MINUTE_LOCK})", "SELECT bucket_us FROM app_call_bucket FOR UPDATE"]


class _SlowXero(TestXero):
    """Xero whose first answer comes after `during` ran and after the app-minute bucket the call
    was counted in has passed (so the gate moves its count to the bucket of the answer)."""

    def __init__(self, during: Callable[[], None], slow_for: float) -> None:
        super().__init__()
        self.during = during
        self.slow_for = slow_for

    def answer(self, method: str, path: str) -> XeroAnswer:
        if self.calls == 1:
            self.during()
            time.sleep(self.slow_for)
        return super().answer(method, path)


def _gate_on(db: Database, xero: XeroClient) -> tuple[Gate, Dispatcher]:
    """A tenant's gate on this poster, holding the tenant's lease; app-minute buckets of 0.1 s and
    one call at a time to the tenant."""
    limits = Limits(concurrent=1, minute_seconds=6.0)
    return tenant_gate(db, xero, DispatcherSettings(limits=limits, lease_ttl=30.0), TENANT, HOLDER)


CREDS = Credentials("http://127.0.0.1:9/xero", TENANT, "access")


@pytest.fixture
def registry(postgres_url: str) -> Iterator[Database]:
    """This poster's registry, the transaction before a Xero call waiting LOCK_MS for a lock."""
    db = open_database(postgres_url, PostgresTimeouts(call_lock_ms=LOCK_MS))
    migrate(db)
    yield db
    db.dispose()


# -- after the Xero call: the count moved to the answer's bucket -----------------------------------


@pytest.mark.postgres
def test_a_xero_answer_is_not_lost_when_moving_its_count_waits_out_the_lock_time(
    registry: Database, outsider: Engine
) -> None:
    """After a call answered in a later app-minute bucket than it was counted in, the gate moves
    its count (Gate._recount, a dispatcher write on the app_call_bucket rows). Another poster
    frozen inside its count holds those rows (up to the idle timeout). Found failing when every
    dispatcher session had the lock time: the move's every try waited it out and Gate.call raised
    though Xero made the call and answered, so the answer was lost (an attempt counted,
    DISPATCH_ERROR shown). Only the transaction before a call has the lock time now: the move
    waits, and the answer comes back."""
    frozen: list[_Frozen] = []
    xero = _SlowXero(lambda: frozen.append(_Frozen(outsider, FROZEN_COUNT, seconds=3.0)), slow_for=0.25)
    gate, shared = _gate_on(registry, xero)
    try:
        call = Call(lambda: gate.call(CREDS, "PUT", "Invoices", body={"Invoices": [{"Reference": "r1"}]}))
        error: BaseException | None = None
        try:
            answer = call.result(timeout=20)
        except Exception as exc:  # what the caller of the gate, the job, gets
            error = exc
    finally:
        shared.request_stop()
        for f in frozen:
            f.end()
    assert xero.calls == 1 and frozen, "the call was not made while the other poster was frozen: proved nothing"
    assert error is None, (
        f"Xero made the call and answered, but the gate raised {type(error).__name__}: {str(error)[:160]} "
        "(its answer, the invoice Xero created, is lost to the job)"
    )
    assert answer.status == 200


@pytest.mark.postgres
def test_moves_taken_by_a_count_that_fails_are_written_by_the_next_and_the_budget_given_back(
    registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call answered in a later app-minute bucket than it was counted in has its count moved by
    the next call's count (AppCallMoves). Found failing before the moves were gathered: Gate.call
    gave the tenant's budget back only after moving the count in a transaction of its own, so a
    move that raised kept the budget for good and lost the answer of a call Xero made. Now a
    count that fails puts its moves back, gives the budget back, and the next count writes them:
    every call made is counted once, in its answer's bucket."""
    real = SqlLeaseRepository.add_app_calls
    refusals: list[dict[int, int]] = []

    def refused_once(self: SqlLeaseRepository, deltas: Any) -> None:
        if deltas and not refusals:
            refusals.append(dict(deltas))
            raise RuntimeError("the registry refused the write")
        real(self, deltas)

    monkeypatch.setattr(SqlLeaseRepository, "add_app_calls", refused_once)
    xero = _SlowXero(lambda: None, slow_for=0.25)
    gate, shared = _gate_on(registry, xero)
    try:
        answer = gate.call(CREDS, "PUT", "Invoices", body={"Invoices": [{"Reference": "r1"}]})
        with pytest.raises(RuntimeError):
            gate.call(CREDS, "GET", "Invoices/inv-1")  # its count fails: no call made
        gate.call(CREDS, "GET", "Invoices/inv-1")
        in_progress, app_in_flight = gate.budget.in_progress, shared.app_window.in_flight
    finally:
        shared.request_stop()
    with registry.session(write=False) as session:
        counted = session.execute(text("SELECT coalesce(sum(calls), 0) FROM app_call_bucket")).scalar_one()
    assert answer.status == 200 and xero.calls == 2
    assert refusals and sum(refusals[0].values()) == 0, "the first call's move was not taken"
    assert counted == 2, "every call made counted once"
    assert (in_progress, app_in_flight) == (0, 0)


class _RotatingXero(XeroIdentity):
    """Xero's token endpoint: rotates the refresh token (the one it was given works only for a
    grace period from now on), after `during` ran."""

    def __init__(self, during: Callable[[], None]) -> None:
        super().__init__()
        self.during = during
        self.given: list[str] = []

    def refresh(self, app: XeroApp, refresh_token: str) -> TokenGrant:
        self.given.append(refresh_token)
        self.during()
        return TokenGrant(f"access-{len(self.given) + 1}", f"refresh-{len(self.given) + 1}", 1800.0)


@pytest.mark.postgres
def test_the_tokens_xero_granted_in_a_refresh_are_stored_once_the_connection_is_let_go(
    registry: Database, outsider: Engine, tmp_path: Path
) -> None:
    """The dispatcher refreshes a connection's token (ConnectionTokens._exchange): Xero rotates the
    refresh token, then the new pair is stored (store_tokens, a dispatcher write on the connection
    row). Another client holds that row meanwhile (a frozen poster's transaction on the
    connection, up to the idle timeout). Found failing when every dispatcher session had the lock
    time: every try of the store waited it out and the refresh raised, so the pair Xero granted
    was lost and the refresh claim left on the row. The store must wait for the row."""
    apps_file = tmp_path / "xero-apps.json"
    apps_file.write_text(
        json.dumps(
            {"apps": {"default": {"client_id": "c", "client_secret": "s", "identity_url": "http://127.0.0.1:9"}}}
        )
    )
    vault = TokenVault.from_environment()
    connections.create_connection(
        registry,
        vault,
        "firm-1",
        "http://127.0.0.1:9/xero",
        TENANT,
        "access-1",
        "refresh-1",
        samples.demo_context(),
        xero_app="default",
    )
    frozen: list[_Frozen] = []
    identity = _RotatingXero(
        lambda: frozen.append(_Frozen(outsider, ["SELECT connection_id FROM connection FOR UPDATE"], seconds=3.0))
    )
    tokens = ConnectionTokens(registry, vault, XeroApps(str(apps_file)), identity, HOLDER)
    refreshing = Call(lambda: tokens.refresh("firm-1"))
    refreshing.thread.join(15)
    for f in frozen:
        f.end()
    error = refreshing.error
    row = tokens.get("firm-1")
    stored = tokens.tokens_of(row)
    assert identity.given == ["refresh-1"] and frozen, "Xero never rotated the token: proved nothing"
    assert (stored.refresh_token, row.refresh_holder, error) == ("refresh-2", "", None), (
        f"the registry holds {stored.refresh_token!r} (Xero rotated it to refresh-2), the refresh claim is left "
        f"to {row.refresh_holder!r}, and the refresh raised {type(error).__name__}: {str(error)[:100]}"
    )


# -- after the Xero call: the entry's outcome -----------------------------------------------------


def _settled(stub: Any, posting_name: str, timeout: float) -> str:
    """The posting's state once settled, or what it still was when `timeout` ran out."""
    try:
        return poster_pb2.LinkState.Name(wait_settled(stub, posting_name, timeout=timeout).state)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        posting = stub.GetPosting(poster_pb2.GetPostingRequest(name=posting_name), timeout=5).posting
        return f"still {poster_pb2.LinkState.Name(posting.state)} after {timeout:.0f} s"


def _entries(db: Database) -> list[tuple[int, bool]]:
    with db.session(write=False) as session:
        return [(e.attempts, e.uncertain) for e in session.exec(select(OutboxRow)).all()]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_bill_xero_created_while_its_link_was_locked_counts_no_failed_attempt(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, outsider: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While Xero creates a bill, another client takes the lock on its link: a Post of the same
    record on another poster, frozen mid-transaction, which PostgreSQL ends only after the idle
    timeout. Found failing when every dispatcher session had the lock time: writing Xero's answer
    (Results.write) waited it out on every try and raised, and the job recorded a failure of the
    work (DISPATCH_ERROR, an attempt counted, a look-up) for a bill Xero holds. The answer's write
    must wait for the lock and link at once. (The hook on Results.retry_together lets the other client go
    if that failure is ever recorded again.)"""
    recorded: list[str] = []
    recording, let_go = threading.Event(), threading.Event()
    original = Results.retry_together

    def watched(self: Results, retries: Sequence[Retry]) -> None:
        failures = [r.message for r in retries if r.reason == Reason.DISPATCH_ERROR]
        if failures and not recording.is_set():
            recorded.append(failures[0])
            recording.set()
            let_go.wait(10)  # the other client lets go of the link now
        original(self, retries)

    monkeypatch.setattr(Results, "retry_together", watched)
    emulator = emulator_factory()
    slow = emulator.faults.add(FaultRule("latency", seconds=0.5, count=1, methods=("PUT",), path_contains="Invoices"))
    app = poster_factory(settings(), postgres=PostgresTimeouts(call_lock_ms=LOCK_MS))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(1))
    ).posting
    wait_for(lambda: slow.hits == 1, timeout=15)
    frozen = _Frozen(outsider, ["SELECT id FROM link FOR UPDATE"], seconds=30)
    try:
        recording.wait(4)  # far more than the answer's write waits for the lock, five times over
    finally:
        frozen.end()
        let_go.set()
    state = _settled(stub, posting.name, timeout=15)
    invoices = emulator.state.organisation(org["tenant_id"]).objects["Invoices"]
    assert len(invoices) == 1, "Xero created the bill once"
    assert state == "LINK_STATE_LINKED", state
    assert _entries(app.db) == [(0, False)], f"a failed attempt for a call that worked: {recorded[:1]}"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_dispatcher_that_wakes_after_postgresql_ended_its_count_posts_the_bill_once_without_a_failed_attempt(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This poster's dispatcher freezes inside the transaction that counts its first Xero call,
    longer than idle_in_transaction_ms: PostgreSQL ends the session and rolls the count back, so
    the frozen count never becomes a call. When it wakes, the session's end surfaces as 25P03.
    Found failing: run_in_transaction did not retry it (it retried IntegrityError and
    OperationalError only), so the job failed, counting an attempt and showing DISPATCH_ERROR for
    a call that never went out. The transaction is tried again (database.retryable)."""
    original = SqlLeaseRepository.count_app_call
    froze = threading.Event()

    def frozen_once(self: SqlLeaseRepository, now: int, window_us: int, moved: Any = None) -> int:
        total = original(self, now, window_us, moved)
        if not serving_callers() and not froze.is_set():
            froze.set()
            time.sleep(2.5)  # the VM paused, inside the transaction
        return total

    monkeypatch.setattr(SqlLeaseRepository, "count_app_call", frozen_once)
    emulator = emulator_factory()
    app = poster_factory(settings(), postgres=PostgresTimeouts(idle_in_transaction_ms=1_000, call_lock_ms=LOCK_MS))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(1))
    ).posting
    state = _settled(stub, posting.name, timeout=20)
    assert froze.is_set(), "the dispatcher never counted a call: proved nothing"
    assert state == "LINK_STATE_LINKED"
    assert len(emulator.state.organisation(org["tenant_id"]).objects["Invoices"]) == 1
    assert _entries(app.db) == [(0, False)], "a failed attempt, or a look-up, for a call that never went out"


# -- callers' threads wait without a limit ----------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_post_through_the_grpc_server_waits_for_a_lock_beyond_the_dispatchers_lock_time(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, outsider: Engine
) -> None:
    """Guard. A Post whose write waits for a lock held many times the call's lock time (an
    operator's LOCK TABLE, a frozen poster) is accepted once the lock is free, never refused as a
    failed registry write."""
    emulator = emulator_factory()
    app = poster_factory(settings(), run_dispatcher=False, postgres=PostgresTimeouts(call_lock_ms=LOCK_MS))
    stub = stub_for(app)
    connect(stub, emulator)
    frozen = _Frozen(outsider, ["LOCK TABLE outbox IN SHARE MODE"], seconds=30)
    try:
        request = poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(1))
        post = Call(lambda: stub.PostTransaction(request, timeout=20))
        wait_for(lambda: lock_waiters(outsider) >= 1, timeout=10)
        time.sleep(1.0)  # ten of the dispatcher's lock times
        waited = post.thread.is_alive()
    finally:
        frozen.end()
    answer = post.result()
    assert waited, "the Post did not wait for the lock: proved nothing"
    assert answer.posting.name and not answer.posting.duplicate


# -- the sessions' options ---------------------------------------------------------------------------


def _settings_seen(db: Database, write: bool) -> dict[str, str]:
    names = ("search_path", "statement_timeout", "application_name", "idle_in_transaction_session_timeout")
    with db.session(write=write) as session:
        rows = session.execute(
            text("SELECT name, setting FROM pg_settings WHERE name = ANY(:names)"), {"names": [*names, "lock_timeout"]}
        )
        return {str(name): str(setting) for name, setting in rows}


@pytest.mark.postgres
def test_the_options_libpqs_environment_gives_still_reach_the_registrys_sessions(
    postgres_url: str, outsider: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator whose poster finds its registry through libpq's environment
    (PGOPTIONS="-c search_path=ledger", or a pg_service.conf `options`) upgrades to this release.
    libpq uses PGOPTIONS only when the connection gives no `options`. Found failing when the
    timeouts went as startup options: the search_path was silently dropped, migrate created an
    empty registry in public, and every connection, link and posting of the ledger schema was
    gone from the poster's sight (a repost would create the documents in Xero a second time). The
    timeouts are now set by a statement on each new session."""
    with outsider.connect() as conn, conn.begin():
        conn.execute(text("CREATE SCHEMA ledger"))
    monkeypatch.setenv("PGOPTIONS", "-c search_path=ledger")
    previous = open_database(postgres_url, PostgresTimeouts(0, 0))  # as the release before: no options sent
    try:
        migrate(previous)
        connections.create_connection(
            previous,
            TokenVault.from_environment(),
            "firm-1",
            "http://127.0.0.1:9/xero",
            "tenant-1",
            "access",
            "refresh",
            samples.demo_context(),
        )
    finally:
        previous.dispose()
    upgraded = open_database(postgres_url)
    try:
        search_path = _settings_seen(upgraded, write=True)["search_path"]
        migrate(upgraded)
        try:
            connections.get_connection(upgraded, "firm-1")
        except XerolinkError as exc:
            pytest.fail(
                f"the registry's connection is gone ({exc.message}): the sessions' search_path is {search_path}"
            )
        assert search_path == "ledger"
    finally:
        upgraded.dispose()


@pytest.mark.postgres
def test_every_option_of_the_url_and_both_timeouts_reach_each_pools_sessions(postgres_url: str) -> None:
    """Guard. The URL's `options`, percent- and plus-encoded, reach the dispatcher's
    and the callers' sessions, reads and writes, beside the idle timeout; no session carries a
    lock time (only the transaction before a Xero call sets one, for itself)."""
    url = f"{postgres_url}?options=-c%20statement_timeout%3D54321+-c+application_name%3Dledger-poster"
    db = open_database(url, PostgresTimeouts(idle_in_transaction_ms=45_000, call_lock_ms=1_500))
    try:
        dispatcher = [_settings_seen(db, write) for write in (True, False)]

        def callers() -> list[dict[str, str]]:
            serve_callers_on_this_thread()
            return [_settings_seen(db, write) for write in (True, False)]

        answering = Call(callers).result()
    finally:
        db.dispose()
    common = {
        "statement_timeout": "54321",
        "application_name": "ledger-poster",
        "idle_in_transaction_session_timeout": "45000",
    }
    for seen in dispatcher:
        assert seen.items() >= {**common, "lock_timeout": "0"}.items(), seen
    for seen in answering:
        assert seen.items() >= {**common, "lock_timeout": "0"}.items(), seen


# -- a session PostgreSQL ended -----------------------------------------------------------------------


@pytest.mark.postgres
def test_after_postgresql_ends_a_frozen_session_the_pools_next_units_go_through_first_time(
    postgres_url: str,
) -> None:
    """Guard. PostgreSQL ends a dispatcher session and a caller's session left idle inside a
    transaction: their counts never commit, and the next units of either pool work on their
    first try (run_in_transaction with one attempt): the ended session's connection is never
    handed out again (pool_pre_ping, and SQLAlchemy's invalidation of a connection whose error
    says the server closed it)."""
    db = open_database(postgres_url, PostgresTimeouts(idle_in_transaction_ms=300, call_lock_ms=LOCK_MS))
    migrate(db)
    minute_us = 60 * US

    def frozen_count() -> None:
        with UnitOfWork(db) as uow:
            uow.leases.count_app_call(now_us(), minute_us)
            time.sleep(1.0)
            uow.commit()

    def count_many() -> list[int]:
        return [
            run_in_transaction(db, lambda uow: uow.leases.count_app_call(now_us(), minute_us), attempts=1)
            for _ in range(3)
        ]

    try:
        for callers in (False, True):
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver says of a session ended
                Call(frozen_count, callers=callers).result()
        counted = Call(count_many).result() + Call(count_many, callers=True).result()
    finally:
        db.dispose()
    assert counted == list(range(1, 7)), "a frozen count was committed, or a later unit failed"


# -- the variables -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "1e12", "0.5"])
def test_a_timeout_postgresql_cannot_take_is_refused_at_start_naming_its_variable(value: str) -> None:
    """An operator's value PostgreSQL cannot take must be refused as the poster loads its
    configuration, with the variable's name (SystemExit, as for a negative one), or be one it can
    take that still sets a limit. Found failing: "inf" raised OverflowError and "nan" ValueError
    with no name; "1e12" loaded and the poster failed later, at its first session (PostgreSQL takes
    0 to 2147483647 ms); "0.5" loaded as 0, which silently meant no limit at all."""
    for name in ("XEROLINK_PG_IDLE_IN_TRANSACTION_MS", "XEROLINK_PG_CALL_LOCK_TIMEOUT_MS"):
        try:
            loaded = config.load({name: value}).postgres
        except SystemExit as exc:
            assert name in str(exc)
            continue
        except Exception as exc:
            pytest.fail(f"{name}={value}: {type(exc).__name__}: {exc} (no SystemExit naming the variable)")
        ms = loaded.idle_in_transaction_ms if "IDLE" in name else loaded.call_lock_ms
        assert 1 <= ms <= 2_147_483_647, f"{name}={value} loaded as {ms} ms"
