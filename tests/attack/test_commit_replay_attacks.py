"""Attacks on b7d4c33: `run_in_transaction` no longer runs a transaction again when its COMMIT
raised without the database refusing it (`commit_refused`); it raises CommitMayHaveGoneThrough.

- A caller of run_in_transaction that still reads any registry error as "rolled back, nothing
  stored" now tells a gRPC caller a lie, or forgets work it left claimed.
- `commit_refused` reads the SQLSTATE alone: an error PostgreSQL raised *inside* the COMMIT's
  critical section (after the commit record was written, ERROR is promoted to PANIC) carries a
  SQLSTATE too, and is not a refusal.

The lost acknowledgement is made where it really happens: inside `UnitOfWork.commit`, after the
real commit, as psycopg raises it ("server closed the connection unexpectedly", no SQLSTATE)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from xerolink_common.errors import XerolinkError
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters.database import CommitMayHaveGoneThrough, Database, commit_refused, now_us, open_database
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.service_layer.dispatch.leasing import take_lease
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.posting import GroupSettings
from xerolink_poster.service_layer.posting_values import PostOutcome
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.commit_ack import AckLost
from tests.fixtures.gate import TestXero
from tests.fixtures.outbox import ready_row
from tests.fixtures.poster import accepting_poster, settings
from tests.fixtures.registry_rows import link_with_posting, unreachable_connection

US = 1_000_000
TENANT, HOLDER, NEXT = "tenant-replay", "poster-replay", "poster-next"


@pytest.fixture
def mapper(mapper_target: str) -> Iterator[MapperClient]:
    client = MapperClient(mapper_target)
    yield client
    client.close()


def _count(database: Database, sql: str) -> int:
    with database.session(write=False) as session:
        return int(session.execute(text(sql)).scalar_one())


# -- Post: a group whose COMMIT went through unacknowledged --------------------------------------


def test_a_grouped_post_whose_commit_may_have_gone_through_is_not_answered_that_nothing_was_stored(
    database: Database, mapper: MapperClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Poster._write_group catches every DatabaseError, CommitMayHaveGoneThrough included, and
    answers each Post of the group UNAVAILABLE / REGISTRY_WRITE_FAILED, "nothing of it was
    stored: post again". Here the group's COMMIT went through: the bill is in the outbox and will
    be posted to Xero. A caller told nothing was stored may drop it, or post it again under a new
    request_id (a fresh attempt); it must not be told so. And a retry under the same request_id
    must be answered with the stored posting (docs/poster.md)."""
    poster = accepting_poster(database, mapper, GroupSettings())
    ack = AckLost(monkeypatch)
    bill = samples.client_bill(7101)
    ack.arm()
    answer: PostOutcome | XerolinkError
    try:
        answer = poster.post("firm-1", bill, request_id="req-7101", actor="caller:attack")
    except XerolinkError as err:
        answer = err
    assert ack.lost == 1
    stored = _count(database, "SELECT count(*) FROM outbox")
    assert stored == 1, "the COMMIT went through: the entry is stored"

    again = poster.post("firm-1", bill, request_id="req-7101", actor="caller:attack")
    assert again.duplicate and again.posting is not None
    assert _count(database, "SELECT count(*) FROM outbox") == 1
    assert _count(database, "SELECT count(*) FROM posting") == 1
    if isinstance(answer, XerolinkError):
        said = f"{answer.reason}: {answer.message}"
        assert "nothing of it was stored" not in answer.message and answer.reason != Reason.REGISTRY_WRITE_FAILED, (
            f"the Post was stored ({stored} outbox entry, to be posted to Xero) but its caller was told: {said}"
        )


def test_a_batch_whose_commit_went_through_unacknowledged_is_stored_once_when_posted_again(
    database: Database, mapper: MapperClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BatchPost's write raises CommitMayHaveGoneThrough (INTERNAL to the caller, who retries the
    batch: BatchPost items carry no request_id). The retry must find every bill stored and add
    nothing: each bill one outbox entry, one posting."""
    poster = accepting_poster(database, mapper, GroupSettings())
    bills = [samples.client_bill(7200 + n) for n in range(3)]
    ack = AckLost(monkeypatch)
    ack.arm()
    with pytest.raises(CommitMayHaveGoneThrough):
        poster.post_many("firm-1", bills, actor="caller:attack")
    assert ack.lost == 1
    again = poster.post_many("firm-1", bills, actor="caller:attack")
    assert all(isinstance(o, PostOutcome) and o.duplicate for o in again), again
    assert _count(database, "SELECT count(*) FROM outbox") == 3
    assert _count(database, "SELECT count(*) FROM posting") == 3


# -- the dispatcher: a claim whose COMMIT went through unacknowledged ------------------------------


def _ready_entries(database: Database, n: int) -> list[int]:
    now = now_us()

    def fill(uow: UnitOfWork) -> list[int]:
        uow.connections.add_connection(unreachable_connection("c1", TENANT))
        links = [link_with_posting(uow, 8000 + r) for r in range(n)]
        uow.outbox.insert_outbox(
            [
                {
                    **ready_row(TENANT, "c1", k, 0, now),
                    "state": OutboxState.READY.value,
                    "link_id": link.id,
                    "posting_id": f"p{8000 + k}",
                }
                for k, link in enumerate(links)
            ]
        )
        return [link.id or 0 for link in links]

    run_in_transaction(database, fill)
    with database.session(write=False) as session:
        return [int(i) for i in session.execute(text("SELECT id FROM outbox ORDER BY id")).scalars()]


def test_a_batch_whose_claims_commit_went_through_unacknowledged_is_not_left_claimed_for_the_claim_time(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's claim (TenantWorker._claim) commits, and its acknowledgement is lost: the
    batch is claimed by this poster for claim_ttl (300 s), and the job never learns which
    entries. The error ends the worker's turn (TenantWorker.run), which hands the lease back with
    `claims_left` False: expiry 0 says "no claim left", so the tenant's next holder voids none, and
    the batch sits claimed, posted by nobody, for the whole claim time. The next holder must be
    able to claim the batch at once."""
    ids = _ready_entries(database, 2)
    dispatch = settings(claim_ttl=300.0, lease_ttl=30.0, idle_release=0.2)
    dispatcher = Dispatcher(database, TestXero(), dispatch, HOLDER)
    lease = run_in_transaction(database, lambda uow: take_lease(uow, TENANT, HOLDER, now_us(), 30 * US))
    assert lease is not None
    worker = TenantWorker(dispatcher, dispatch, TENANT, [], 0, time.time(), 0.0)
    dispatcher._workers[TENANT] = worker  # as Dispatcher._launch registers it
    ack = AckLost(monkeypatch)
    claims: list[Any] = []
    real_claim = TenantWorker._claim

    def claim_once(self: TenantWorker) -> Any:
        if claims:  # one claim is enough: later turns would claim nothing anyway
            return []
        ack.arm()
        claims.append(True)
        return real_claim(self)

    monkeypatch.setattr(TenantWorker, "_claim", claim_once)
    worker.run()  # the turn, on this thread
    assert ack.lost == 1
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    left = {i: (rows[i].claimed_by, (rows[i].lease_until_us - now_us()) // US) for i in ids}

    taken = run_in_transaction(database, lambda uow: take_lease(uow, TENANT, NEXT, now_us(), 30 * US))
    assert taken is not None
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim(TENANT, NEXT, 10, now_us(), 60 * US))
    assert sorted(c.id for c in claimed) == ids, (
        f"the tenant's next holder claims nothing: the entries stay claimed (holder, seconds left) {left}"
    )


# -- commit_refused: what a COMMIT's error says ----------------------------------------------------


class _ServerError(Exception):
    """What psycopg raises for an ErrorResponse: its `sqlstate`, and `diag` with the severity."""

    class _Diag:
        def __init__(self, severity: str) -> None:
            self.severity = self.severity_nonlocalized = severity

    def __init__(self, sqlstate: str, severity: str, message: str) -> None:
        super().__init__(f"{severity}:  {message}")
        self.sqlstate = sqlstate
        self.diag = self._Diag(severity)


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        # xlog.c issue_xlog_fsync: the commit record written, its flush failed (data_sync_retry off)
        ("58030", 'could not fsync file "pg_wal/000000010000000000000001": Input/output error'),
        # xact.c: an ERROR after RecordTransactionCommit, in its critical section
        ("XX000", "cannot abort transaction 741, it was already committed"),
    ],
)
def test_a_commit_answered_with_a_panic_is_not_taken_as_refused(sqlstate: str, message: str) -> None:
    """PostgreSQL writes the commit record in a critical section (RecordTransactionCommit): any
    error there, the WAL flush's first, is a PANIC, sent to the client with its SQLSTATE; the
    server restarts and replays its WAL, where the commit may be. Such a COMMIT may have gone
    through: `commit_refused` looks at the SQLSTATE alone (not class 08: "refused")."""
    exc = OperationalError("COMMIT", {}, _ServerError(sqlstate, "PANIC", message))
    assert not commit_refused(exc), f"a PANIC at COMMIT ({sqlstate}) taken as a refusal"


def _run_and_count(postgres_url: str, work: Any, prefix: str) -> tuple[Exception | None, int]:
    """run_in_transaction(work) on a fresh registry connection: what it raised, and the leases
    whose tenant starts with `prefix` written (one per run of `work`)."""
    database = open_database(postgres_url)
    raised: Exception | None = None
    try:
        run_in_transaction(database, work)
    except Exception as exc:
        raised = exc
    written = _count(database, f"SELECT count(*) FROM tenant_lease WHERE tenant_id LIKE '{prefix}%'")
    database.dispose()
    return raised, written


@pytest.mark.postgres
def test_a_transaction_whose_commit_panicked_is_not_run_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The COMMIT's WAL record is written and its fsync fails: PANIC 58030, which psycopg raises
    as IoError, an OperationalError. `commit_refused` says refused, `retryable` says a race
    (CONFLICTS), and run_in_transaction runs the work again: written twice once the server has
    replayed its WAL. The work must run once and the error come out as CommitMayHaveGoneThrough."""
    real = UnitOfWork.commit
    panicked: list[int] = []

    def commit(uow: UnitOfWork) -> None:
        real(uow)
        if not panicked:
            panicked.append(1)
            orig = _ServerError("58030", "PANIC", 'could not fsync file "pg_wal/000000010000000000000001"')
            raise OperationalError("COMMIT", {}, orig)

    monkeypatch.setattr(UnitOfWork, "commit", commit)
    runs: list[int] = []

    def work(uow: UnitOfWork) -> None:
        runs.append(1)
        uow.leases.acquire_lease(f"panic-{len(runs)}", HOLDER, now_us(), 30 * US)

    raised, written = _run_and_count(postgres_url, work, "panic-")
    assert len(runs) == 1 and written == 1, f"run {len(runs)} times after a PANIC at COMMIT: {written} rows written"
    assert isinstance(raised, CommitMayHaveGoneThrough), repr(raised)


@pytest.mark.postgres
def test_a_commit_in_a_session_an_administrator_ended_is_not_run_again_blind(
    postgres_url: str, outsider: Engine
) -> None:
    """On the real server: pg_terminate_backend ends the session while it idles in the
    transaction; its COMMIT reads the FATAL 57P01 (admin_shutdown). Here nothing committed, but a
    termination can also land once a commit is done, before its acknowledgement: from the client
    the two look alike. The work is not run again: it comes out as CommitMayHaveGoneThrough (the
    caller posts again under its request_id, or the dispatcher voids its claims), and it is
    never written twice."""
    runs: list[int] = []

    def work(uow: UnitOfWork) -> None:
        runs.append(1)
        run = len(runs)
        uow.leases.acquire_lease(f"admin-{run}", HOLDER, now_us(), 30 * US)
        if run == 1:
            pid = uow._session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with outsider.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            time.sleep(0.3)

    raised, written = _run_and_count(postgres_url, work, "admin-")
    assert len(runs) == 1 and written == 0, f"{len(runs)} runs, {written} rows written, raised {raised!r}"
    assert isinstance(raised, CommitMayHaveGoneThrough), repr(raised)
