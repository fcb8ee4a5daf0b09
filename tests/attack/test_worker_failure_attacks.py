"""Attacks on a tenant worker that fails outside a job (commit 0e83eec): the claim, the look for
claimable work or the lease's renewal raising, after which the worker logs the error, ends its
turn once its jobs in flight finished, and hands the tenant back (best effort: the lease expires
otherwise).

The registry is attacked from outside, as a hostile environment would: PostgreSQL sessions ended
with pg_terminate_backend from a session of nobody's pool, locks held by another client so that a
statement is caught in flight, and storage that fails a statement (a trigger the test installs
in the registry raising SQLSTATE XX001, data_corrupted, as a failing disk or a corrupt index
does; on SQLite RAISE(ABORT)). No product method is patched. What must hold whatever fails: no
bill lost, none posted twice or to another organisation, no thread dying with an unhandled
exception, and the tenant served again afterwards. Every wait is bounded."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import grpc
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool
from xero_emulator import EmulatorServer, FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.adapters.database import now_us
from xerolink_poster.entrypoints.bootstrap import PosterApp
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.fixtures.poster import (
    SETTLED,
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_for,
    xero_objects,
)
from tests.fixtures.postgres import end_sessions

FAILED = "tenant worker failed; handing the tenant back"
NOT_HANDED_BACK = "could not hand tenant"
POSTER_LOGGERS = ("xerolink_poster",)


# -- the hostile environment -------------------------------------------------------------------


@pytest.fixture
def admin(database_url: str) -> Iterator[Engine]:
    """A connection of nobody's pool: installs the failing storage, ends sessions, holds locks."""
    engine = create_engine(database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in POSTER_LOGGERS:
        caplog.set_level(logging.INFO, logger=name)
    return caplog


_PG_SETUP = [
    "CREATE TABLE attack_claim_knob (tenant_id text PRIMARY KEY, times int NOT NULL)",
    "CREATE SEQUENCE attack_claim_hits",
    """
    CREATE FUNCTION attack_claim() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE t int;
    BEGIN
        SELECT times INTO t FROM attack_claim_knob WHERE tenant_id = NEW.tenant_id;
        IF t IS NOT NULL THEN
            IF t < 0 OR nextval('attack_claim_hits') <= t THEN
                RAISE EXCEPTION 'attack: storage failed claiming work of %', NEW.tenant_id
                    USING ERRCODE = 'XX001';
            END IF;
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER attack_claim BEFORE UPDATE ON outbox FOR EACH ROW
    WHEN (OLD.claimed_by = '' AND NEW.claimed_by <> '') EXECUTE FUNCTION attack_claim()
    """,
    "CREATE TABLE attack_release_knob (tenant_id text PRIMARY KEY)",
    """
    CREATE FUNCTION attack_release() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM attack_release_knob WHERE tenant_id = NEW.tenant_id) THEN
            RAISE EXCEPTION 'attack: storage failed releasing %', NEW.tenant_id USING ERRCODE = 'XX001';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER attack_release BEFORE UPDATE ON tenant_lease FOR EACH ROW
    WHEN (NEW.expires_us = 0 AND OLD.expires_us <> 0) EXECUTE FUNCTION attack_release()
    """,
    """
    CREATE TABLE attack_lease_log (
        seq bigserial PRIMARY KEY, tenant_id text, holder text, expires_us bigint, claimed int
    )
    """,
    """
    CREATE FUNCTION attack_lease_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO attack_lease_log (tenant_id, holder, expires_us, claimed)
        VALUES (NEW.tenant_id, NEW.holder, NEW.expires_us, (
            SELECT count(*) FROM outbox o WHERE o.tenant_id = NEW.tenant_id AND o.state = 'ready'
            AND o.claimed_by = NEW.holder AND o.lease_until_us > 0
        ));
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER attack_lease_log AFTER INSERT OR UPDATE ON tenant_lease FOR EACH ROW
    EXECUTE FUNCTION attack_lease_log()
    """,
]

_SQLITE_SETUP = [
    "CREATE TABLE attack_claim_knob (tenant_id TEXT PRIMARY KEY, times INTEGER NOT NULL)",
    """
    CREATE TRIGGER attack_claim BEFORE UPDATE OF claimed_by ON outbox
    WHEN OLD.claimed_by = '' AND NEW.claimed_by <> ''
        AND EXISTS (SELECT 1 FROM attack_claim_knob WHERE tenant_id = NEW.tenant_id)
    BEGIN SELECT RAISE(ABORT, 'attack: storage failed claiming work'); END
    """,
    "CREATE TABLE attack_release_knob (tenant_id TEXT PRIMARY KEY)",
    """
    CREATE TRIGGER attack_release BEFORE UPDATE ON tenant_lease
    WHEN NEW.expires_us = 0 AND OLD.expires_us <> 0
        AND EXISTS (SELECT 1 FROM attack_release_knob WHERE tenant_id = NEW.tenant_id)
    BEGIN SELECT RAISE(ABORT, 'attack: storage failed releasing the lease'); END
    """,
    """
    CREATE TABLE attack_lease_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT, holder TEXT, expires_us INTEGER, claimed INTEGER
    )
    """,
    """
    CREATE TRIGGER attack_lease_log_u AFTER UPDATE ON tenant_lease
    BEGIN INSERT INTO attack_lease_log (tenant_id, holder, expires_us, claimed)
        VALUES (NEW.tenant_id, NEW.holder, NEW.expires_us, (
            SELECT count(*) FROM outbox o WHERE o.tenant_id = NEW.tenant_id AND o.state = 'ready'
            AND o.claimed_by = NEW.holder AND o.lease_until_us > 0)); END
    """,
    """
    CREATE TRIGGER attack_lease_log_i AFTER INSERT ON tenant_lease
    BEGIN INSERT INTO attack_lease_log (tenant_id, holder, expires_us, claimed)
        VALUES (NEW.tenant_id, NEW.holder, NEW.expires_us, 0); END
    """,
]


def install(admin: Engine) -> None:
    """The failing storage (off until a tenant is named) and the lease's audit, in the registry
    the posters migrated."""
    with admin.begin() as conn:
        for statement in _SQLITE_SETUP if admin.dialect.name == "sqlite" else _PG_SETUP:
            conn.execute(text(statement))


def fail_claims(admin: Engine, tenant: str, times: int = -1) -> None:
    """Claims of the tenant's work fail in the storage: `times` times (PostgreSQL), or every time
    until `heal` (-1)."""
    with admin.begin() as conn:
        conn.execute(text("DELETE FROM attack_claim_knob WHERE tenant_id = :t"), {"t": tenant})
        conn.execute(text("INSERT INTO attack_claim_knob VALUES (:t, :n)"), {"t": tenant, "n": times})


def heal(admin: Engine, tenant: str) -> None:
    with admin.begin() as conn:
        conn.execute(text("DELETE FROM attack_claim_knob WHERE tenant_id = :t"), {"t": tenant})


def fail_releases(admin: Engine, tenant: str) -> None:
    """Every release of the tenant's lease fails in the storage."""
    with admin.begin() as conn:
        conn.execute(text("INSERT INTO attack_release_knob VALUES (:t)"), {"t": tenant})


def lease_log(admin: Engine, tenant: str, after: int = 0) -> list[tuple[int, str, int, int]]:
    """(seq, holder, expires_us, entries still claimed by the holder) of each lease write committed."""
    with admin.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT seq, holder, expires_us, claimed FROM attack_lease_log "
                "WHERE tenant_id = :t AND seq > :a ORDER BY seq"
            ),
            {"t": tenant, "a": after},
        ).all()
    return [(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


def last_seq(admin: Engine) -> int:
    with admin.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM attack_lease_log")).scalar_one())


def lease(admin: Engine, tenant: str) -> tuple[str, int] | None:
    with admin.connect() as conn:
        row = conn.execute(
            text("SELECT holder, expires_us FROM tenant_lease WHERE tenant_id = :t"), {"t": tenant}
        ).first()
    return None if row is None else (str(row[0]), int(row[1]))


# -- callers ---------------------------------------------------------------------------------


def post(stub: poster_grpc.PosterServiceStub, record_id: int, connection_id: str = "firm-1") -> poster_pb2.Posting:
    """A Post, sent again (as a caller would, the same transaction) while the poster cannot
    answer; bounded."""
    request = poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=samples.client_bill(record_id))
    deadline = time.monotonic() + 30
    while True:
        try:
            posting: poster_pb2.Posting = stub.PostTransaction(request, timeout=10).posting
            return posting
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def settled(stub: poster_grpc.PosterServiceStub, name: str, timeout: float = 30.0) -> poster_pb2.Posting:
    """The posting once settled (the last state read when the time is up)."""
    deadline = time.monotonic() + timeout
    last: poster_pb2.Posting | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(grpc.RpcError):  # the poster's session was ended: read again
            last = stub.GetPosting(poster_pb2.GetPostingRequest(name=name), timeout=5).posting
        if last is not None and last.state in SETTLED:
            return last
        time.sleep(0.05)
    assert last is not None, "the posting could never be read"
    return last


def invoice_numbers(emulator: EmulatorServer, tenant: str) -> list[str]:
    return sorted(str(i.get("InvoiceNumber")) for i in xero_objects(emulator, tenant, "Invoices"))


def records(logs: pytest.LogCaptureFixture, message: str, tenant: str | None = None) -> list[logging.LogRecord]:
    out = []
    for record in list(logs.records):
        if message not in record.getMessage():
            continue
        if tenant is not None and getattr(record, "tenant_id", None) != tenant:
            continue
        out.append(record)
    return out


class FirstPoster(NamedTuple):
    emulator: EmulatorServer
    app: PosterApp
    stub: poster_grpc.PosterServiceStub
    tenant: str  # the organisation of connection firm-1


def first_poster(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, dispatch: DispatcherSettings | None = None
) -> FirstPoster:
    """An emulator, and poster-a (the lease holder the tests look for) with the connection firm-1
    to a new organisation of it."""
    emulator = emulator_factory()
    app = poster_factory(dispatch or settings(), name="poster-a")
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    return FirstPoster(emulator, app, stub, org["tenant_id"])


def dispatcher_of(app: PosterApp) -> Any:
    assert app.dispatcher is not None
    return app.dispatcher


# -- the attacks -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_claim_the_storage_fails_hands_the_tenant_back_and_the_bill_is_posted_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, admin: Engine, logs: pytest.LogCaptureFixture
) -> None:
    """The claim fails in the registry's storage: the worker logs it, hands the tenant back with
    no entry left claimed, and once the storage heals the bill is posted, once, and a later one
    too."""
    emulator = emulator_factory()
    app = poster_factory(settings())
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    tenant = org["tenant_id"]
    assert settled(stub, post(stub, 1).name).state == poster_pb2.LINK_STATE_LINKED
    install(admin)
    seq = last_seq(admin)

    fail_claims(admin, tenant)
    second = post(stub, 2)
    wait_for(lambda: len(records(logs, FAILED, tenant)) >= 1, 10, interval=0.02, what="the worker's failure")
    wait_for(
        lambda: any(expires == 0 for _, _, expires, _ in lease_log(admin, tenant, seq)),
        10,
        interval=0.02,
        what="the tenant handed back",
    )
    releases = [row for row in lease_log(admin, tenant, seq) if row[2] == 0]
    assert all(claimed == 0 for *_, claimed in releases), f"handed back with entries still claimed: {releases}"
    read = stub.GetPosting(poster_pb2.GetPostingRequest(name=second.name), timeout=10).posting
    assert read.state not in SETTLED, "the storage never failed the claim"
    heal(admin, tenant)

    assert settled(stub, second.name).state == poster_pb2.LINK_STATE_LINKED
    third = post(stub, 3)
    assert settled(stub, third.name).state == poster_pb2.LINK_STATE_LINKED
    assert invoice_numbers(emulator, tenant) == ["INV-1", "INV-2", "INV-3"]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_tenant_whose_claims_keep_failing_is_not_restarted_at_the_dispatchers_poll_rate(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, admin: Engine, logs: pytest.LogCaptureFixture
) -> None:
    """A failure that lasts (a corrupt page under one tenant's entries): the dispatcher must not
    start the tenant's worker again at every poll, each start a lease write, a failed claim and
    a traceback in the log, for as long as it lasts. Another organisation is served meanwhile,
    and once the storage heals the stuck bill is posted once to its own organisation."""
    emulator = emulator_factory()
    app = poster_factory(settings())
    stub = stub_for(app)
    _, org1 = connect(stub, emulator, "firm-1")
    _, org2 = connect(stub, emulator, "firm-2")
    sick, well = org1["tenant_id"], org2["tenant_id"]
    assert settled(stub, post(stub, 1, "firm-1").name).state == poster_pb2.LINK_STATE_LINKED
    install(admin)

    fail_claims(admin, sick)
    stuck = post(stub, 2, "firm-1")
    wait_for(lambda: len(records(logs, FAILED, sick)) >= 1, 10, interval=0.02, what="the first failure")
    began, counted = time.monotonic(), len(records(logs, FAILED, sick))
    others = [post(stub, n, "firm-2") for n in (10, 11, 12)]
    for posting in others:
        assert settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED, "the other organisation waited"
    time.sleep(max(0.0, 3.0 - (time.monotonic() - began)))
    window = time.monotonic() - began
    failures = len(records(logs, FAILED, sick)) - counted
    heal(admin, sick)

    assert settled(stub, stuck.name).state == poster_pb2.LINK_STATE_LINKED
    assert invoice_numbers(emulator, sick) == ["INV-1", "INV-2"]
    assert invoice_numbers(emulator, well) == ["INV-10", "INV-11", "INV-12"]
    # A back-off of the tenant capped at the settings' backoff_cap (0.5 s) allows about six a
    # window of three seconds; twice that is allowed.
    assert failures <= 12, (
        f"the worker failed {failures} times in {window:.1f} s, each logged with its traceback: "
        "the dispatcher starts it again at every poll while the failure lasts"
    )


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_worker_failing_while_lent_to_a_correction_keeps_the_tenant_until_it_is_given_back(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, admin: Engine, logs: pytest.LogCaptureFixture
) -> None:
    """Work outside the outbox (a correction, a drift's resolution) borrows the tenant's worker,
    which keeps the lease while lent (Dispatcher.tenant_calls): the normal end of a turn waits
    for its borrowers (_close_when_idle). A worker failing outside a job while lent must not hand
    the tenant back under its borrower: another poster would take it over and call Xero for the
    tenant beside the borrower's calls, whose next call fails (TENANT_BUSY mid-correction). The
    borrower is Dispatcher.tenant_calls and the worker's call, as corrections use them."""
    emulator, a, stub, tenant = first_poster(poster_factory, emulator_factory)
    assert settled(stub, post(stub, 1).name).state == poster_pb2.LINK_STATE_LINKED
    b = poster_factory(settings(), name="poster-b")  # waits for the tenant
    install(admin)
    with UnitOfWork(a.db, write=False) as uow:
        connection = uow.connections.get_connection("firm-1")
    assert connection is not None

    second: poster_pb2.Posting | None = None
    with dispatcher_of(a).tenant_calls(tenant, 15.0) as worker:
        creds = worker.credentials(connection)
        worker.call(creds, "GET", "Contacts")  # the correction's first call
        seq = last_seq(admin)
        fail_claims(admin, tenant, times=1)
        second = post(stub_for(b), 2)
        wait_for(lambda: len(records(logs, FAILED, tenant)) >= 1, 10, interval=0.02, what="the lent worker's failure")
        time.sleep(1.0)  # the correction reads what Xero answered; the posters poll
        during = lease_log(admin, tenant, seq)
        lost = [row for row in during if row[2] == 0 or row[1] != "poster-a"]
        try:
            worker.call(creds, "GET", "Contacts")  # the correction's next call
            next_call = "made"
        except Exception as exc:
            next_call = f"refused: {type(exc).__name__}"
        alive = worker.is_alive()
    assert second is not None
    assert settled(stub, second.name).state == poster_pb2.LINK_STATE_LINKED
    assert invoice_numbers(emulator, tenant) == ["INV-1", "INV-2"]
    assert not lost and next_call == "made", (
        f"the failed worker (alive: {alive}) handed the tenant back while lent: lease writes during the loan "
        f"{lost}; the borrower's next call was {next_call}"
    )


def claim_failures(admin: Engine) -> int:
    """How many claims the storage failed (PostgreSQL's sequence, counted outside transactions)."""
    with admin.connect() as conn:
        value, called = conn.execute(text("SELECT last_value, is_called FROM attack_claim_hits")).one()
    return int(value) if called else 0


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_correction_arriving_while_a_failed_worker_waits_for_its_job_is_not_lent_a_worker_about_to_hand_back(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, admin: Engine, logs: pytest.LogCaptureFixture
) -> None:
    """The worker's claim failed while a bill's create is at Xero: its turn is over, and it waits
    only for that job before handing the tenant back. A correction that asks for the tenant now
    must not be lent this worker (the normal end of a turn says it is closing first, and
    tenant_calls then waits for it and starts afresh): lent, the correction finds the tenant
    handed back under it, taken by the poster waiting for it, and its next call refused."""
    emulator, a, stub, tenant = first_poster(poster_factory, emulator_factory)
    assert settled(stub, post(stub, 1).name).state == poster_pb2.LINK_STATE_LINKED
    install(admin)
    with UnitOfWork(a.db, write=False) as uow:
        connection = uow.connections.get_connection("firm-1")
    assert connection is not None
    slow = emulator.faults.add(
        FaultRule("latency", seconds=2.0, count=1, methods=("PUT", "POST"), path_contains="Invoices", tenant_id=tenant)
    )
    second = post(stub, 2)
    wait_for(lambda: slow.hits >= 1, 15, interval=0.02, what="the create at Xero")
    b = poster_factory(settings(), name="poster-b")  # waits for the tenant
    fail_claims(admin, tenant, times=1)
    third = post(stub_for(b), 3)
    wait_for(
        lambda: claim_failures(admin) >= 1, 1.5, interval=0.02, what="the failed claim, within the create's latency"
    )

    with dispatcher_of(a).tenant_calls(tenant, 15.0) as worker:
        seq = last_seq(admin)
        creds = worker.credentials(connection)
        worker.call(creds, "GET", "Contacts")
        wait_for(lambda: len(records(logs, FAILED, tenant)) >= 1, 10, interval=0.02, what="the worker's failure")
        time.sleep(1.0)
        during = lease_log(admin, tenant, seq)
        lost = [row for row in during if row[2] == 0 or row[1] != "poster-a"]
        try:
            worker.call(creds, "GET", "Contacts")
            next_call = "made"
        except Exception as exc:
            next_call = f"refused: {type(exc).__name__}"
        alive = worker.is_alive()
    for posting in (second, third):
        assert settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    assert invoice_numbers(emulator, tenant) == ["INV-1", "INV-2", "INV-3"]
    assert not lost and next_call == "made", (
        f"lent a worker whose turn had failed (alive at the loan's end: {alive}): lease writes during the loan "
        f"{lost}; the borrower's next call was {next_call}"
    )


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_session_ended_in_the_look_for_work_with_a_bill_at_xero_hands_back_after_it_and_posts_it_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, admin: Engine, logs: pytest.LogCaptureFixture
) -> None:
    """A bill's create is at Xero (slow, and its answer lost after Xero created it) when the
    session of the worker's look for more work is ended mid-statement (caught waiting for a lock
    another client holds on the outbox). The worker fails, but hands the tenant back only once
    the job in flight has written what it knows (no entry still claimed), and another poster
    waiting for the tenant posts nothing twice: the bill is in Xero once."""
    emulator, _, stub, tenant = first_poster(poster_factory, emulator_factory)
    assert settled(stub, post(stub, 1).name).state == poster_pb2.LINK_STATE_LINKED
    b = poster_factory(settings(), name="poster-b")
    install(admin)
    seq = last_seq(admin)
    slow = emulator.faults.add(
        FaultRule("latency", seconds=1.5, count=1, methods=("PUT", "POST"), path_contains="Invoices", tenant_id=tenant)
    )
    emulator.faults.add(FaultRule("drop_after_commit", count=1, path_contains="Invoices", tenant_id=tenant))
    # Posted through B: whichever poster serves the tenant, the other waits for it.
    second = post(stub_for(b), 2)
    wait_for(lambda: slow.hits >= 1, 15, interval=0.02, what="the create at Xero")
    holder = lease(admin, tenant)
    assert holder is not None
    ended = 0
    with admin.connect() as locker:
        tx = locker.begin()
        locker.execute(text("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"))
        deadline = time.monotonic() + 1.2  # within the create's latency
        while time.monotonic() < deadline and not ended:
            ended = end_sessions(
                admin,
                "wait_event_type = 'Lock' AND query ILIKE 'SELECT outbox.id%' AND query ILIKE '%LIMIT%'",
            )
            time.sleep(0.005)
        tx.rollback()
    assert ended, "the worker's look for work was never caught waiting"
    wait_for(lambda: len(records(logs, FAILED, tenant)) >= 1, 15, interval=0.02, what="the worker's failure")

    assert settled(stub, second.name).state == poster_pb2.LINK_STATE_LINKED
    third = post(stub, 3)
    assert settled(stub, third.name).state == poster_pb2.LINK_STATE_LINKED
    assert invoice_numbers(emulator, tenant) == ["INV-1", "INV-2", "INV-3"], "a bill lost or posted twice"
    releases = [row for row in lease_log(admin, tenant, seq) if row[2] == 0]
    assert releases, "the tenant was never handed back"
    assert all(claimed == 0 for *_, claimed in releases), f"handed back with its job's entry claimed: {releases}"


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_hand_back_whose_sessions_are_ended_leaves_the_lease_to_expire_and_another_poster_takes_over(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, admin: Engine, logs: pytest.LogCaptureFixture
) -> None:
    """The worker's renewal and then its hand-back are caught waiting for the lease row (another
    client holds it) and their sessions ended, every try of the transaction: the worker fails,
    cannot hand the tenant back, and says so without a thread dying. The lease is left to
    expire; the poster stops, and another poster waiting for the tenant posts the next bill
    once the lease has run out."""
    ttl = 4.0
    dispatch = settings(lease_ttl=ttl, http_timeout=1.5)
    emulator, a, stub, tenant = first_poster(poster_factory, emulator_factory, dispatch)
    slow = emulator.faults.add(
        FaultRule("latency", seconds=0.8, count=1, methods=("PUT", "POST"), path_contains="Invoices", tenant_id=tenant)
    )
    first = post(stub, 1)
    wait_for(lambda: slow.hits >= 1, 15, interval=0.02, what="the create at Xero")
    b = poster_factory(dispatch, name="poster-b")
    ended = 0
    with admin.connect() as locker:
        tx = locker.begin()
        locker.execute(text("SELECT 1 FROM tenant_lease WHERE tenant_id = :t FOR UPDATE"), {"t": tenant})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not records(logs, NOT_HANDED_BACK):
            ended += end_sessions(admin, "wait_event_type = 'Lock' AND query ILIKE '%tenant_lease%'")
            time.sleep(0.005)
        tx.rollback()
    assert records(logs, NOT_HANDED_BACK), f"the hand-back never failed ({ended} sessions ended)"
    held = lease(admin, tenant)
    assert held is not None and held[0] == "poster-a" and held[1] > now_us(), f"the lease: {held}"
    assert settled(stub, first.name).state == poster_pb2.LINK_STATE_LINKED

    a.stop(0)
    began = time.monotonic()
    stub_b = stub_for(b)
    second = post(stub_b, 2)
    assert settled(stub_b, second.name, timeout=ttl + 20).state == poster_pb2.LINK_STATE_LINKED
    assert time.monotonic() - began < ttl + 15
    assert invoice_numbers(emulator, tenant) == ["INV-1", "INV-2"]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_worker_whose_claim_and_hand_back_both_fail_leaves_the_lease_to_expire_for_the_poster_waiting(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, admin: Engine, logs: pytest.LogCaptureFixture
) -> None:
    """The storage fails the worker's claim and then every release of the lease: the worker
    says it could not hand the tenant back, no thread dies, the lease stays this poster's until
    it expires. The poster serves the tenant again once claims work; when it stops (its hand-back
    failing again) the poster waiting for the tenant takes it after the lease ran out, and every
    bill is in Xero once."""
    ttl = 3.0
    dispatch = settings(lease_ttl=ttl, http_timeout=1.0)
    emulator, a, stub, tenant = first_poster(poster_factory, emulator_factory, dispatch)
    assert settled(stub, post(stub, 1).name).state == poster_pb2.LINK_STATE_LINKED
    b = poster_factory(dispatch, name="poster-b")
    install(admin)
    fail_releases(admin, tenant)
    fail_claims(admin, tenant)
    second = post(stub, 2)
    wait_for(lambda: len(records(logs, FAILED, tenant)) >= 1, 15, interval=0.02, what="the worker's failure")
    wait_for(lambda: len(records(logs, NOT_HANDED_BACK)) >= 1, 15, interval=0.02, what="the failed hand-back")
    held = lease(admin, tenant)
    assert held is not None and held[1] > 0, f"the lease was released: {held}"
    heal(admin, tenant)
    assert settled(stub, second.name).state == poster_pb2.LINK_STATE_LINKED

    a.stop(0)
    stub_b = stub_for(b)
    third = post(stub_b, 3)
    assert settled(stub_b, third.name, timeout=ttl + 20).state == poster_pb2.LINK_STATE_LINKED
    assert invoice_numbers(emulator, tenant) == ["INV-1", "INV-2", "INV-3"]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_sessions_ended_again_and_again_under_two_posters_post_each_bill_once_to_its_own_organisation(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, admin: Engine, logs: pytest.LogCaptureFixture
) -> None:
    """Two posters on one registry serve two organisations while every session of theirs is
    ended again and again for three seconds, bills being posted all the while: workers fail in
    their claims, looks, renewals and hand-backs, and jobs fail in flight. Afterwards every bill
    is in its own organisation once, nothing is left unposted, and both tenants are served."""
    emulator = emulator_factory()
    a = poster_factory(settings(), name="poster-a")
    b = poster_factory(settings(), name="poster-b")
    stubs = [stub_for(a), stub_for(b)]
    _, org1 = connect(stubs[0], emulator, "firm-1")
    _, org2 = connect(stubs[0], emulator, "firm-2")
    emulator.faults.add(FaultRule("latency", seconds=0.05, rate=0.5, path_contains="Invoices"))

    stop = threading.Event()
    ended = [0]

    def ender() -> None:
        while not stop.is_set():
            ended[0] += end_sessions(admin)
            time.sleep(0.02)

    killer = threading.Thread(target=ender, daemon=True)
    postings: dict[int, tuple[str, poster_pb2.Posting]] = {}
    killer.start()
    try:
        deadline = time.monotonic() + 3.0
        record = 100
        while time.monotonic() < deadline:
            connection = "firm-1" if record % 2 else "firm-2"
            postings[record] = (connection, post(stubs[record % 2], record, connection))
            record += 1
            time.sleep(0.03)
    finally:
        stop.set()
        killer.join(10)
    assert ended[0] > 0
    for connection in ("firm-1", "firm-2"):
        record += 1
        postings[record] = (connection, post(stubs[0], record, connection))

    states = {r: settled(stubs[0], p.name, timeout=40).state for r, (_, p) in postings.items()}
    not_linked = {r: poster_pb2.LinkState.Name(s) for r, s in states.items() if s != poster_pb2.LINK_STATE_LINKED}
    expected1 = sorted(f"INV-{r}" for r, (c, _) in postings.items() if c == "firm-1")
    expected2 = sorted(f"INV-{r}" for r, (c, _) in postings.items() if c == "firm-2")
    assert not not_linked, f"bills not linked: {not_linked}"
    assert invoice_numbers(emulator, org1["tenant_id"]) == expected1
    assert invoice_numbers(emulator, org2["tenant_id"]) == expected2
